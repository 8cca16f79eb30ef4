//! A small deterministic test driver shared by the core tests: one manager
//! and a few agents on one virtual clock, with an in-memory network whose
//! messages the test delivers (or drops, duplicates, reorders) by hand.
//!
//! Every step goes through [`Net::manager_step`] or [`Net::agent_step`],
//! which check the machine's invariants afterwards, so no test can break
//! one silently.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

pub mod world;

use tally_core::invariants::{check_agent, check_manager};
use tally_core::message::{Exited, PROTOCOL_VERSION, Running};
use tally_core::{
    Agent, AgentEffect, AgentInput, AgentNote, AgentReport, Alert, Config, Effect, ExitOutcome,
    Generation, HostId, Incarnation, InstanceId, JournalRecord, Manager, ManagerInput,
    ManagerReply, Note, Rejected, RunPhase, SlotId, Term, Tick, TypeId,
};

/// The clock type (singleton) of `Config::example()`.
pub const CLOCK: TypeId = TypeId(0);
/// The web type (scalable, 2 of at most 8) of `Config::example()`.
pub const WEB: TypeId = TypeId(1);

/// `type.index@generation`, all as plain numbers.
#[must_use]
pub fn inst(process_type: u16, index: u16, generation: u32) -> InstanceId {
    InstanceId {
        slot: slot(process_type, index),
        generation: Generation(generation),
    }
}

/// `type.index`.
#[must_use]
pub fn slot(process_type: u16, index: u16) -> SlotId {
    SlotId {
        process_type: TypeId(process_type),
        index,
    }
}

/// `Config::example()` changed by `f`.
#[must_use]
pub fn cfg_with(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::example();
    f(&mut c);
    c.validate().expect("test config must be valid");
    c
}

/// A report as an agent would send it.
#[must_use]
pub fn report(
    host: u16,
    incarnation: u32,
    sent_at: u64,
    running: &[(InstanceId, RunPhase)],
    exited: &[(InstanceId, ExitOutcome)],
) -> AgentReport {
    AgentReport {
        version: PROTOCOL_VERSION,
        host: HostId(host),
        incarnation: Incarnation(incarnation),
        sent_at: Tick(sent_at),
        running: running
            .iter()
            .map(|(instance, phase)| Running {
                instance: *instance,
                phase: *phase,
            })
            .collect(),
        exited: exited
            .iter()
            .map(|(instance, outcome)| Exited {
                instance: *instance,
                outcome: *outcome,
            })
            .collect(),
    }
}

/// A reply as the manager would send it.
#[must_use]
pub fn reply(
    host: u16,
    incarnation: u32,
    request_sent_at: u64,
    renew: &[InstanceId],
    launch: &[InstanceId],
    stop: &[InstanceId],
) -> ManagerReply {
    ManagerReply {
        version: PROTOCOL_VERSION,
        host: HostId(host),
        incarnation: Incarnation(incarnation),
        request_sent_at: Tick(request_sent_at),
        renew: renew.to_vec(),
        launch: launch.to_vec(),
        stop: stop.to_vec(),
        term: Term(0),
    }
}

/// One manager, `agents.len()` agents (hosts `0..n`), one virtual clock, and
/// the messages in flight in each direction.
#[derive(Clone, Debug)]
pub struct Net {
    pub cfg: Config,
    pub now: Tick,
    pub manager: Manager,
    pub agents: Vec<Agent>,
    /// Reports in flight to the manager, oldest first.
    pub reports: Vec<AgentReport>,
    /// Replies in flight to the agents, oldest first.
    pub replies: Vec<ManagerReply>,
    /// Every record the manager persisted, in order.
    pub journal: Vec<JournalRecord>,
    /// Every note the manager emitted.
    pub notes: Vec<Note>,
    /// Every alert the manager raised.
    pub alerts: Vec<Alert>,
    /// Every reply the manager sent (also those later dropped).
    pub sent: Vec<ManagerReply>,
    /// Every note an agent emitted.
    pub agent_notes: Vec<(HostId, AgentNote)>,
    /// Every `StartProcess`.
    pub started: Vec<(HostId, InstanceId)>,
    /// Every `KillProcess`.
    pub killed: Vec<(HostId, InstanceId)>,
}

impl Net {
    /// A fresh deployment at tick 0 with `hosts` agents.
    #[must_use]
    pub fn new(cfg: Config, hosts: u16) -> Net {
        let mut out = Vec::new();
        let manager = Manager::new(&cfg, Tick(0), &mut out).expect("valid config");
        let agents = (0..hosts)
            .map(|h| Agent::new(HostId(h), Incarnation(0), Tick(0)))
            .collect();
        let mut net = Net {
            cfg,
            now: Tick(0),
            manager,
            agents,
            reports: Vec::new(),
            replies: Vec::new(),
            journal: Vec::new(),
            notes: Vec::new(),
            alerts: Vec::new(),
            sent: Vec::new(),
            agent_notes: Vec::new(),
            started: Vec::new(),
            killed: Vec::new(),
        };
        net.absorb_manager(out);
        net
    }

    /// Steps the manager at `self.now` and checks its invariants.
    pub fn manager_step(&mut self, input: ManagerInput) -> Result<(), Rejected> {
        let mut out = Vec::new();
        let r = self.manager.step(&self.cfg, self.now, input, &mut out);
        self.absorb_manager(out);
        // A mutation is a deliberate bug: its broken invariants are the
        // checker's to find, so only the shipped behaviour is held to them.
        if self.cfg.mutations.is_empty() {
            assert_eq!(check_manager(&self.manager, &self.cfg), Ok(()));
        }
        r
    }

    fn absorb_manager(&mut self, out: Vec<Effect>) {
        for e in out {
            match e {
                Effect::Persist(r) => self.journal.push(r),
                Effect::Send(r) => {
                    self.sent.push(r.clone());
                    self.replies.push(r);
                }
                Effect::Alert(a) => self.alerts.push(a),
                Effect::Note(n) => self.notes.push(n),
            }
        }
    }

    /// Steps agent `host` at `self.now` and checks its invariants.
    pub fn agent_step(&mut self, host: u16, input: AgentInput) {
        let mut out = Vec::new();
        let cfg = self.cfg.clone();
        let agent = &mut self.agents[usize::from(host)];
        agent.step(&cfg, self.now, input, &mut out);
        if cfg.mutations.is_empty() {
            assert_eq!(check_agent(agent, &cfg), Ok(()));
        }
        let h = agent.host();
        for e in out {
            match e {
                AgentEffect::StartProcess { instance } => self.started.push((h, instance)),
                AgentEffect::KillProcess { instance } => self.killed.push((h, instance)),
                AgentEffect::Send(r) => self.reports.push(r),
                AgentEffect::Note(n) => self.agent_notes.push((h, n)),
            }
        }
    }

    pub fn advance(&mut self, ticks: u64) {
        self.now = self.now.plus(ticks);
    }

    pub fn tick_manager(&mut self) {
        self.manager_step(ManagerInput::Tick)
            .expect("a tick is a fact");
    }

    pub fn tick_agents(&mut self) {
        for h in 0..self.agents.len() {
            self.agent_step(u16::try_from(h).unwrap(), AgentInput::Tick);
        }
    }

    /// Delivers every report in flight, oldest first.
    pub fn deliver_reports(&mut self) {
        for r in std::mem::take(&mut self.reports) {
            self.manager_step(ManagerInput::ReportReceived(r))
                .expect("a report is a fact");
        }
    }

    /// Delivers every reply in flight, oldest first, to the host it names.
    pub fn deliver_replies(&mut self) {
        for r in std::mem::take(&mut self.replies) {
            self.deliver_reply(r);
        }
    }

    pub fn deliver_reply(&mut self, r: ManagerReply) {
        let host = r.host.0;
        if usize::from(host) < self.agents.len() {
            self.agent_step(host, AgentInput::ReplyReceived(r));
        }
    }

    /// One exchange on a perfect network: the manager ticks, agents tick
    /// (and report when due), reports and replies are delivered at once.
    pub fn round(&mut self) {
        self.tick_manager();
        self.tick_agents();
        self.deliver_reports();
        self.deliver_replies();
    }

    /// Every booting process finishes its boot.
    pub fn boot_all(&mut self) {
        for h in 0..self.agents.len() {
            let booting: Vec<InstanceId> = self.agents[h]
                .instances()
                .iter()
                .filter(|(_, l)| l.phase == RunPhase::Booting)
                .map(|(id, _)| *id)
                .collect();
            for instance in booting {
                self.agent_step(
                    u16::try_from(h).unwrap(),
                    AgentInput::ProcessBooted { instance },
                );
            }
        }
    }

    /// Every process being killed exits.
    pub fn finish_kills(&mut self) {
        for h in 0..self.agents.len() {
            let killing: Vec<InstanceId> = self.agents[h]
                .instances()
                .iter()
                .filter(|(_, l)| l.phase == RunPhase::Killing)
                .map(|(id, _)| *id)
                .collect();
            for instance in killing {
                self.agent_step(
                    u16::try_from(h).unwrap(),
                    AgentInput::ProcessExited { instance },
                );
            }
        }
    }

    /// Runs a fault-free system for `ticks` ticks: every boot succeeds
    /// and every kill completes within the tick.
    pub fn run_healthy(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.advance(1);
            self.round();
            self.boot_all();
            self.finish_kills();
        }
    }

    /// The instances of the ledger.
    #[must_use]
    pub fn ledger(&self) -> Vec<InstanceId> {
        self.manager.ledger().map(|(id, _, _)| id).collect()
    }

    /// The ledger's instances of `slot`.
    #[must_use]
    pub fn ledger_of(&self, s: SlotId) -> Vec<InstanceId> {
        self.manager.instances_of(s).collect()
    }

    /// Instances launched in every reply sent so far.
    #[must_use]
    pub fn launched(&self) -> Vec<InstanceId> {
        self.sent.iter().flat_map(|r| r.launch.clone()).collect()
    }

    /// Whether the manager emitted `note`.
    #[must_use]
    pub fn noted(&self, note: Note) -> bool {
        self.notes.contains(&note)
    }

    /// Whether agent `host` emitted `note`.
    #[must_use]
    pub fn agent_noted(&self, host: u16, note: AgentNote) -> bool {
        self.agent_notes.contains(&(HostId(host), note))
    }

    /// The agent of `host`.
    #[must_use]
    pub fn agent(&self, host: u16) -> &Agent {
        &self.agents[usize::from(host)]
    }

    /// Steps the manager with a user command, and asserts that a refusal
    /// left the manager exactly as it was.
    pub fn user(&mut self, command: tally_core::UserCommand) -> Result<(), Rejected> {
        let before = self.manager.clone();
        let journal_len = self.journal.len();
        let r = self.manager_step(ManagerInput::User(command));
        if r.is_err() {
            assert_eq!(self.manager, before, "a refused command changed the state");
            assert_eq!(
                self.journal.len(),
                journal_len,
                "a refused command persisted"
            );
        }
        r
    }

    /// Steps the manager with an operator command.
    pub fn operator(&mut self, command: tally_core::OperatorCommand) {
        self.manager_step(ManagerInput::Operator(command))
            .expect("operator commands are never refused");
    }
}
