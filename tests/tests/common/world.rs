//! An adversarial world for property tests: a manager and a few agents,
//! each on its own clock (which may jump, also backwards), joined by a
//! network that loses, duplicates, reorders and delays, plus an attacker
//! that forges reports and replies with unknown ids, stale generations and
//! stale incarnations, crashes hosts and restarts the manager.

use proptest::prelude::*;
use tally_core::invariants::{check_agent, check_manager};
use tally_core::message::{Exited, Running};
use tally_core::{
    Agent, AgentEffect, AgentInput, AgentReport, Config, Durable, Effect, ExitOutcome, Generation,
    HostId, Incarnation, InstanceId, JournalRecord, Manager, ManagerInput, ManagerReply,
    OperatorCommand, RunPhase, SlotId, StopReason, Term, Tick, TypeId, UserCommand,
};

/// Hosts with an agent; forged messages also name hosts beyond these.
pub const HOSTS: u16 = 3;

/// Property-test cases: 5,000 by default, `TALLY_PROPTEST_CASES` if set.
#[must_use]
pub fn cases() -> u32 {
    std::env::var("TALLY_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000)
}

/// The configurations the properties run under: the example, and variants
/// that make budget exhaustion, breaker trips, admission and backoff common.
#[must_use]
pub fn configs() -> Vec<Config> {
    let base = Config::example();
    let mut tight = base.clone();
    tight.budget.capacity = 0;
    tight.budget.probe_cooldown_ticks = 7;
    tight.breaker.failure_threshold = 1;
    tight.breaker.cooldown_ticks = 5;
    tight.boots_in_flight_max = 1;
    let mut wide = base.clone();
    wide.process_types[1].count_initial = 4;
    wide.boots_in_flight_max = 3;
    wide.timing.drift_ppm = 0;
    wide.timing.margin_ticks = 1;
    wide.budget.jitter_max_ticks = 0;
    wide.budget.refill_per_boot_milli = 999;
    vec![base, tight, wide]
}

/// One thing that can happen.
#[derive(Clone, Debug)]
pub enum Op {
    ManagerTick,
    /// Manager clock moves by `delta` (negative: backwards).
    ManagerClock(i16),
    AgentTick(u16),
    AgentClock(u16, i16),
    /// Deliver the `i`th report in flight (mod len); keep a copy if `dup`.
    DeliverReport(usize, bool),
    DropReport(usize),
    DeliverReply(usize, bool),
    DropReply(usize),
    /// A process of host `h` (the `i`th, mod len) finishes its boot.
    Boot(u16, usize),
    /// A process of host `h` (the `i`th, mod len) exits.
    Exit(u16, usize),
    /// The shell reports an event for a process the agent may not know.
    ProcessEvent(u16, InstanceId, bool),
    User(UserCommand),
    Operator(OperatorCommand),
    ForgedReport(AgentReport),
    ForgedReply(ManagerReply),
    CrashAgent(u16),
    RestartManager,
    /// Every clock moves forward by the same amount (no drift).
    Time(u8),
    /// Host `h` ticks, and its report (if one is due) and the reply to it
    /// travel at once: the progress a fault-free network makes.
    Exchange(u16),
    /// Every booting process of host `h` finishes its boot.
    BootAll(u16),
}

fn instance() -> impl Strategy<Value = InstanceId> {
    (0u16..3, 0u16..5, 0u32..7).prop_map(|(t, index, g)| InstanceId {
        slot: SlotId {
            process_type: TypeId(t),
            index,
        },
        generation: Generation(g),
    })
}

fn run_phase() -> impl Strategy<Value = RunPhase> {
    prop_oneof![
        Just(RunPhase::Booting),
        Just(RunPhase::Up),
        Just(RunPhase::Killing)
    ]
}

fn outcome() -> impl Strategy<Value = ExitOutcome> {
    prop_oneof![
        Just(ExitOutcome::BootFailed),
        Just(ExitOutcome::Crashed),
        Just(ExitOutcome::Killed),
        Just(ExitOutcome::NeverStarted)
    ]
}

fn host() -> impl Strategy<Value = HostId> {
    (0u16..HOSTS + 1).prop_map(HostId)
}

fn forged_report() -> impl Strategy<Value = AgentReport> {
    (
        prop_oneof![9 => Just(1u16), 1 => Just(0u16)],
        host(),
        0u32..3,
        0u64..120,
        prop::collection::vec((instance(), run_phase()), 0..4),
        prop::collection::vec((instance(), outcome()), 0..3),
    )
        .prop_map(
            |(version, host, inc, sent_at, running, exited)| AgentReport {
                version,
                host,
                incarnation: Incarnation(inc),
                sent_at: Tick(sent_at),
                running: running
                    .into_iter()
                    .map(|(instance, phase)| Running { instance, phase })
                    .collect(),
                exited: exited
                    .into_iter()
                    .map(|(instance, outcome)| Exited { instance, outcome })
                    .collect(),
            },
        )
}

fn forged_reply() -> impl Strategy<Value = ManagerReply> {
    (
        prop_oneof![9 => Just(1u16), 1 => Just(2u16)],
        host(),
        0u32..3,
        0u64..120,
        prop::collection::vec(instance(), 0..3),
        prop::collection::vec(instance(), 0..3),
        prop::collection::vec(instance(), 0..3),
    )
        .prop_map(
            |(version, host, inc, sent, renew, launch, stop)| ManagerReply {
                version,
                host,
                incarnation: Incarnation(inc),
                request_sent_at: Tick(sent),
                renew,
                launch,
                stop,
                term: Term(0),
            },
        )
}

fn user_command() -> impl Strategy<Value = UserCommand> {
    prop_oneof![
        (0u16..3, 0u16..10).prop_map(|(t, count)| UserCommand::Scale {
            process_type: TypeId(t),
            count
        }),
        prop::option::of(0u16..3).prop_map(|t| UserCommand::Restart {
            process_type: t.map(TypeId)
        }),
        Just(UserCommand::Deploy),
    ]
}

fn operator_command() -> impl Strategy<Value = OperatorCommand> {
    prop_oneof![
        any::<bool>().prop_map(|on| OperatorCommand::Lockdown { on }),
        Just(OperatorCommand::BreakerOpen),
        Just(OperatorCommand::BreakerClose),
        prop::option::of(host()).prop_map(|host| OperatorCommand::PauseLaunches { host }),
        prop::option::of(host()).prop_map(|host| OperatorCommand::ResumeLaunches { host }),
    ]
}

/// Any op, weighted towards the ones that make a run progress.
pub fn op() -> impl Strategy<Value = Op> {
    let h = 0u16..HOSTS;
    prop_oneof![
        6 => Just(Op::ManagerTick),
        6 => (-3i16..12).prop_map(Op::ManagerClock),
        1 => prop_oneof![Just(-500i16), Just(2000i16)].prop_map(Op::ManagerClock),
        8 => h.clone().prop_map(Op::AgentTick),
        5 => (h.clone(), -3i16..12).prop_map(|(h, d)| Op::AgentClock(h, d)),
        1 => (h.clone(), prop_oneof![Just(-500i16), Just(2000i16)]).prop_map(|(h, d)| Op::AgentClock(h, d)),
        10 => (any::<usize>(), prop::bool::weighted(0.15)).prop_map(|(i, d)| Op::DeliverReport(i, d)),
        2 => any::<usize>().prop_map(Op::DropReport),
        10 => (any::<usize>(), prop::bool::weighted(0.15)).prop_map(|(i, d)| Op::DeliverReply(i, d)),
        2 => any::<usize>().prop_map(Op::DropReply),
        6 => (h.clone(), any::<usize>()).prop_map(|(h, i)| Op::Boot(h, i)),
        3 => (h.clone(), any::<usize>()).prop_map(|(h, i)| Op::Exit(h, i)),
        1 => (h.clone(), instance(), any::<bool>()).prop_map(|(h, i, b)| Op::ProcessEvent(h, i, b)),
        3 => user_command().prop_map(Op::User),
        2 => operator_command().prop_map(Op::Operator),
        2 => forged_report().prop_map(Op::ForgedReport),
        2 => forged_reply().prop_map(Op::ForgedReply),
        1 => h.clone().prop_map(Op::CrashAgent),
        1 => Just(Op::RestartManager),
        8 => (1u8..4).prop_map(Op::Time),
        8 => h.clone().prop_map(Op::Exchange),
        4 => h.prop_map(Op::BootAll),
    ]
}

/// An op of an honest world: faults of the network, hosts, clocks and the
/// manager, but no forged message.
pub fn honest_op() -> impl Strategy<Value = Op> {
    op().prop_filter("no forgery", |o| {
        !matches!(
            o,
            Op::ForgedReport(_) | Op::ForgedReply(_) | Op::ProcessEvent(..)
        )
    })
}

/// An op of a mostly healthy world: clocks without drift, exchanges that
/// get through, boots that finish, with users, operators and every fault
/// now and then. Reaches the deep states (instances up, renewed, replaced,
/// restarted) that a uniformly adversarial run seldom gets to.
pub fn gentle_op() -> impl Strategy<Value = Op> {
    let h = 0u16..HOSTS;
    prop_oneof![
        10 => (1u8..4).prop_map(Op::Time),
        12 => h.clone().prop_map(Op::Exchange),
        6 => h.clone().prop_map(Op::BootAll),
        6 => Just(Op::ManagerTick),
        2 => (h.clone(), any::<usize>()).prop_map(|(h, i)| Op::Exit(h, i)),
        3 => user_command().prop_map(Op::User),
        2 => operator_command().prop_map(Op::Operator),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Op::DeliverReport(i, d)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, d)| Op::DeliverReply(i, d)),
        1 => any::<usize>().prop_map(Op::DropReply),
        1 => (h.clone(), -2i16..3).prop_map(|(h, d)| Op::AgentClock(h, d)),
        1 => h.prop_map(Op::CrashAgent),
        1 => Just(Op::RestartManager),
    ]
}

/// A run: which configuration, and the ops.
pub fn run(len: usize) -> impl Strategy<Value = (usize, Vec<Op>)> {
    (0..configs().len(), prop::collection::vec(op(), 0..len))
}

/// The world the ops act on.
#[derive(Clone, Debug)]
pub struct World {
    pub cfg: Config,
    /// The manager's start time: the journal folds onto `genesis(cfg, t0)`.
    pub t0: Tick,
    pub manager: Manager,
    pub manager_now: Tick,
    pub agents: Vec<Agent>,
    pub agent_now: Vec<Tick>,
    pub reports: Vec<AgentReport>,
    pub replies: Vec<ManagerReply>,
    /// Every record the manager persisted, across restarts.
    pub journal: Vec<JournalRecord>,
    /// Refused user commands, and whether each left the manager unchanged.
    pub refusals: usize,
}

fn shift(t: Tick, delta: i16) -> Tick {
    let d = u64::from(delta.unsigned_abs());
    if delta >= 0 {
        t.plus(d)
    } else {
        Tick(t.0.saturating_sub(d))
    }
}

impl World {
    #[must_use]
    pub fn new(cfg: Config) -> World {
        let t0 = Tick(100);
        let mut out = Vec::new();
        let manager = Manager::new(&cfg, t0, &mut out).expect("valid config");
        let mut w = World {
            cfg,
            t0,
            manager,
            manager_now: t0,
            agents: (0..HOSTS)
                .map(|h| Agent::new(HostId(h), Incarnation(0), Tick(0)))
                .collect(),
            agent_now: vec![Tick(0); usize::from(HOSTS)],
            reports: Vec::new(),
            replies: Vec::new(),
            journal: Vec::new(),
            refusals: 0,
        };
        w.absorb_manager(out);
        w
    }

    fn absorb_manager(&mut self, out: Vec<Effect>) {
        for e in out {
            match e {
                Effect::Persist(r) => self.journal.push(r),
                Effect::Send(r) => self.replies.push(r),
                Effect::Alert(_) | Effect::Note(_) => {}
            }
        }
    }

    fn manager_step(&mut self, input: ManagerInput) -> Result<(), String> {
        let before = self.manager.clone();
        let user = matches!(input, ManagerInput::User(_));
        let mut out = Vec::new();
        let r = self
            .manager
            .step(&self.cfg, self.manager_now, input, &mut out);
        // S5: no user command accepted under lockdown stops an instance.
        let user_stop = out.iter().any(|e| {
            matches!(
                e,
                Effect::Persist(JournalRecord::StopRequested {
                    reason: StopReason::UserRequested,
                    ..
                })
            )
        });
        if user && before.lockdown() && user_stop {
            return Err(format!(
                "a user command under lockdown stopped an instance: {out:?}"
            ));
        }
        if r.is_err() {
            self.refusals += 1;
            if self.manager != before {
                return Err(format!("refusal {r:?} changed the manager"));
            }
            if out
                .iter()
                .any(|e| matches!(e, Effect::Persist(_) | Effect::Send(_)))
            {
                return Err(format!("refusal {r:?} emitted {out:?}"));
            }
        }
        self.absorb_manager(out);
        Ok(())
    }

    fn agent_step(&mut self, h: u16, input: AgentInput) {
        let i = usize::from(h);
        let (Some(agent), Some(now)) = (self.agents.get_mut(i), self.agent_now.get(i)) else {
            return;
        };
        let mut out = Vec::new();
        agent.step(&self.cfg, *now, input, &mut out);
        for e in out {
            if let AgentEffect::Send(r) = e {
                self.reports.push(r);
            }
        }
    }

    fn agent_instance(&self, h: u16, i: usize) -> Option<InstanceId> {
        let a = self.agents.get(usize::from(h))?;
        let n = a.instances().len();
        if n == 0 {
            return None;
        }
        a.instances().keys().nth(i % n).copied()
    }

    /// Applies one op; `Err` says which rule of the test broke.
    pub fn apply(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::ManagerTick => self.manager_step(ManagerInput::Tick)?,
            Op::ManagerClock(d) => self.manager_now = shift(self.manager_now, d),
            Op::AgentTick(h) => self.agent_step(h, AgentInput::Tick),
            Op::AgentClock(h, d) => {
                if let Some(t) = self.agent_now.get_mut(usize::from(h)) {
                    *t = shift(*t, d);
                }
            }
            Op::DeliverReport(i, dup) => {
                if !self.reports.is_empty() {
                    let i = i % self.reports.len();
                    let r = if dup {
                        self.reports.get(i).cloned()
                    } else {
                        Some(self.reports.remove(i))
                    };
                    if let Some(r) = r {
                        self.manager_step(ManagerInput::ReportReceived(r))?;
                    }
                }
            }
            Op::DropReport(i) => {
                if !self.reports.is_empty() {
                    let i = i % self.reports.len();
                    self.reports.remove(i);
                }
            }
            Op::DeliverReply(i, dup) => {
                if !self.replies.is_empty() {
                    let i = i % self.replies.len();
                    let r = if dup {
                        self.replies.get(i).cloned()
                    } else {
                        Some(self.replies.remove(i))
                    };
                    if let Some(r) = r {
                        self.agent_step(r.host.0, AgentInput::ReplyReceived(r));
                    }
                }
            }
            Op::DropReply(i) => {
                if !self.replies.is_empty() {
                    let i = i % self.replies.len();
                    self.replies.remove(i);
                }
            }
            Op::Boot(h, i) => {
                if let Some(instance) = self.agent_instance(h, i) {
                    self.agent_step(h, AgentInput::ProcessBooted { instance });
                }
            }
            Op::Exit(h, i) => {
                if let Some(instance) = self.agent_instance(h, i) {
                    self.agent_step(h, AgentInput::ProcessExited { instance });
                }
            }
            Op::ProcessEvent(h, instance, booted) => {
                let input = if booted {
                    AgentInput::ProcessBooted { instance }
                } else {
                    AgentInput::ProcessExited { instance }
                };
                self.agent_step(h, input);
            }
            Op::User(c) => self.manager_step(ManagerInput::User(c))?,
            Op::Operator(c) => self.manager_step(ManagerInput::Operator(c))?,
            Op::ForgedReport(r) => self.manager_step(ManagerInput::ReportReceived(r))?,
            Op::ForgedReply(r) => {
                // Delivered to the host it names, or to host 0 if none has it.
                let h = if r.host.0 < HOSTS { r.host.0 } else { 0 };
                self.agent_step(h, AgentInput::ReplyReceived(r));
            }
            Op::CrashAgent(h) => {
                let i = usize::from(h);
                if let (Some(a), Some(now)) = (self.agents.get_mut(i), self.agent_now.get(i)) {
                    let next = Incarnation(a.incarnation().0.saturating_add(1));
                    *a = Agent::new(HostId(h), next, *now);
                }
            }
            Op::Time(d) => {
                let d = u64::from(d);
                self.manager_now = self.manager_now.plus(d);
                for t in &mut self.agent_now {
                    *t = t.plus(d);
                }
            }
            Op::Exchange(h) => {
                let sent = self.reports.len();
                self.agent_step(h, AgentInput::Tick);
                if self.reports.len() > sent {
                    if let Some(r) = self.reports.pop() {
                        let replies = self.replies.len();
                        self.manager_step(ManagerInput::ReportReceived(r))?;
                        if self.replies.len() > replies {
                            if let Some(r) = self.replies.pop() {
                                self.agent_step(h, AgentInput::ReplyReceived(r));
                            }
                        }
                    }
                }
            }
            Op::BootAll(h) => {
                let booting: Vec<InstanceId> = self
                    .agents
                    .get(usize::from(h))
                    .map(|a| {
                        a.instances()
                            .iter()
                            .filter(|(_, l)| l.phase == RunPhase::Booting)
                            .map(|(id, _)| *id)
                            .collect()
                    })
                    .unwrap_or_default();
                for instance in booting {
                    self.agent_step(h, AgentInput::ProcessBooted { instance });
                }
            }
            Op::RestartManager => {
                let folded = self.fold();
                if self.cfg.mutations.is_empty() && folded != *self.manager.durable() {
                    return Err("journal fold differs from the manager's durable state".into());
                }
                self.manager = Manager::recover(&self.cfg, folded, self.manager_now)
                    .map_err(|e| e.to_string())?;
            }
        }
        self.check()
    }

    /// The journal folded onto genesis.
    #[must_use]
    pub fn fold(&self) -> Durable {
        let mut d = Durable::genesis(&self.cfg, self.t0);
        d.apply_all(&self.journal);
        d
    }

    /// Every machine's invariants (under a mutation, a deliberate bug, none).
    pub fn check(&self) -> Result<(), String> {
        if !self.cfg.mutations.is_empty() {
            return Ok(());
        }
        check_manager(&self.manager, &self.cfg).map_err(|v| format!("manager: {v}"))?;
        for a in &self.agents {
            check_agent(a, &self.cfg).map_err(|v| format!("{}: {v}", a.host()))?;
        }
        Ok(())
    }
}
