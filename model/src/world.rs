//! The model's state and actions: the core's manager and agents, a hostile
//! network, and ground truth of which processes really run.
//!
//! Every transition of Tally is the core's: an action only decides which
//! input reaches which machine, and turns the effects into ground truth.

use crate::config::{FaultBudget, MODEL_APPS_MAX, ModelConfig, ScriptedCommand};
use crate::ha::{Ha, ManagerIdx};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tally_core::AppId;
use tally_core::agent::AgentNote;
use tally_core::{
    Agent, AgentEffect, AgentInput, Counters, Effect, Generation, HostId, Incarnation, InstanceId,
    JournalRecord, LaunchBoundInputs, Manager, ManagerInput, Message, Note, SlotId, Tick,
};

/// Events the last action caused, as bits: the evidence for `sometimes`.
pub mod witness {
    /// A boot outlasted its timeout.
    pub const BOOT_TIMED_OUT: u32 = 1 << 0;
    /// A lease expired in the manager's view.
    pub const LEASE_EXPIRED: u32 = 1 << 1;
    /// A phantom was told to stop.
    pub const PHANTOM_REAPED: u32 = 1 << 2;
    /// A relaunch was refused by the budget.
    pub const RETRY_REFUSED: u32 = 1 << 3;
    /// The breaker opened by itself.
    pub const BREAKER_TRIPPED: u32 = 1 << 4;
    /// A user command was refused by lockdown.
    pub const LOCKDOWN_REFUSED: u32 = 1 << 5;
    /// An agent killed an instance whose lease ran out.
    pub const SELF_FENCED: u32 = 1 << 6;
    /// An agent refused a launch at or below its highest generation.
    pub const STALE_LAUNCH_REFUSED: u32 = 1 << 7;
    /// A relaunch (paid launch) was sent.
    pub const RELAUNCHED: u32 = 1 << 8;
    /// A relaunch was paid by the probe credit.
    pub const PROBE_SPENT: u32 = 1 << 9;
    /// A phantom was reaped while lockdown was on.
    pub const PHANTOM_REAPED_IN_LOCKDOWN: u32 = 1 << 10;
    /// A boot timed out while lockdown was on.
    pub const BOOT_TIMED_OUT_IN_LOCKDOWN: u32 = 1 << 11;
    /// An agent self-fenced while lockdown was on.
    pub const SELF_FENCED_IN_LOCKDOWN: u32 = 1 << 12;
    /// A relaunch after a lease expiry: the replacement of a lost instance.
    pub const REPLACED_AFTER_EXPIRY: u32 = 1 << 13;
    /// The fleet breaker opened by itself.
    pub const FLEET_BREAKER_TRIPPED: u32 = 1 << 14;
    /// A standby took the leader key and recovered from the store.
    pub const TAKEOVER: u32 = 1 << 15;
    /// A manager found itself deposed (failed append or keep-alive).
    pub const DEPOSED: u32 = 1 << 16;
    /// A manager dropped an input outside its leadership guard.
    pub const OUTSIDE_GUARD: u32 = 1 << 17;
    /// An agent refused a reply of a lower term.
    pub const STALE_TERM_REFUSED: u32 = 1 << 18;
}

/// One host: its agent, how far its clock lags real time, whether it is cut off.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct HostState {
    /// The core's agent.
    pub agent: Agent,
    /// Ticks the agent's clock is behind real time (drift).
    pub lag: u8,
    /// Partitioned: its processes live on, its messages are not delivered.
    pub partitioned: bool,
}

/// A process that really runs, whatever the ledger says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Process {
    /// Where it runs.
    pub host: HostId,
    /// What it is.
    pub instance: InstanceId,
    /// `Some(start)` while booting, `None` once up.
    pub booting_since: Option<Tick>,
    /// `Some(t)` once its agent killed it at real time `t`: it runs on,
    /// still counting for every property, until its exit, which comes at
    /// the latest as real time reaches `t + kill_ticks` (see `World::tick`).
    pub killed_at: Option<Tick>,
}

impl Process {
    /// Being killed: the agent's kill has not taken effect yet.
    #[must_use]
    pub fn dying(&self) -> bool {
        self.killed_at.is_some()
    }
}

/// Counters the properties need that no machine keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Ghost {
    /// Launches the manager decided (journaled `InstanceLaunched`).
    pub launches: u32,
    /// Boots that really completed.
    pub boots: u32,
    /// The same per app, and the app's relaunches (paid launches), indexed
    /// by `AppId`. With one app these repeat what the state already says,
    /// so they add no state.
    pub apps: [AppGhost; MODEL_APPS_MAX],
    /// When each app last had a boot failure counted by the breakers,
    /// indexed by `AppId`; kept only with two apps or more (only S7 reads
    /// it, and with one app it would split states for nothing).
    pub last_failure: [Option<Tick>; MODEL_APPS_MAX],
    /// Apps a relaunch was refused to by the last action (bit per `AppId`).
    pub refused_apps: u8,
    /// Highest generation ever launched per slot.
    pub launched_high_water: BTreeMap<SlotId, Generation>,
    /// A launch reused a generation: fencing tokens are no longer unique.
    pub generation_reused: bool,
    /// Slots whose last instance left by lease expiry, not yet replaced.
    pub expired_slots: Vec<SlotId>,
    /// What the last action caused (`witness` bits).
    pub last: u32,
}

/// [`Ghost`] counters of one app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct AppGhost {
    /// Launches of the app's slots.
    pub launches: u16,
    /// Of which paid (not free).
    pub relaunches: u16,
    /// Boots of the app's instances that really completed.
    pub boots: u16,
}

/// The bit of `app` in a per-app bit set; apps past the model's range
/// share the last bit (validation keeps them out).
fn app_bit(app: AppId) -> u8 {
    1 << app.index().min(MODEL_APPS_MAX - 1)
}

/// The whole state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct World {
    /// Real time (the manager's clock).
    pub now: Tick,
    /// The core's manager (with a store: the latest leader's, see
    /// [`Ha`]). Shared with the states it came from until a step changes
    /// it: most steps change one machine, and a successor then copies only
    /// that one.
    pub manager: Arc<Manager>,
    /// The store and the second manager, when the core has `leadership`.
    pub ha: Option<Arc<Ha>>,
    /// Hosts, indexed by `HostId` (each shared until changed, as the
    /// manager is).
    pub hosts: Vec<Arc<HostState>>,
    /// Ground truth, sorted.
    pub processes: Vec<Process>,
    /// Messages in flight, a sorted multiset: any may be delivered next.
    pub network: Vec<Arc<Message>>,
    /// Faults left.
    pub faults_left: FaultBudget,
    /// Next scripted command.
    pub script_next: u8,
    /// Ghost counters.
    pub ghost: Ghost,
}

/// One step of the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Real time advances one tick on every clock.
    Tick,
    /// Real time advances, but this host's clock stalls (drift).
    TickWithClockStall(HostId),
    /// The message at this index is delivered.
    Deliver(usize),
    /// The message at this index is delivered and stays in flight.
    DeliverDuplicate(usize),
    /// The message at this index is lost.
    Lose(usize),
    /// A boot completes.
    BootCompletes(InstanceId, HostId),
    /// A boot fails.
    BootFails(InstanceId, HostId),
    /// A dyno crashes after boot.
    DynoCrashes(InstanceId, HostId),
    /// A killed process exits before its kill's deadline.
    KillCompletes(InstanceId, HostId),
    /// A host crashes: its processes die, its agent restarts.
    HostCrashes(HostId),
    /// A host is cut off.
    Partition(HostId),
    /// A host's partition heals.
    Heal(HostId),
    /// The manager restarts from its journal.
    ManagerRestarts,
    /// The next scripted command is issued.
    Command,
    /// The report at this index reaches manager process `1` (with a store).
    DeliverTo(usize, ManagerIdx),
    /// The report at this index reaches manager process `1`, which then
    /// pauses before its effects leave (appends and replies wait).
    DeliverThenPause(usize, ManagerIdx),
    /// A manager process stops being scheduled while time passes.
    ManagerPauses(ManagerIdx),
    /// A paused manager process runs again: its waiting effects go out
    /// first (appends fenced then).
    ManagerResumes(ManagerIdx),
    /// A manager process crashes; it comes back as a standby.
    ManagerCrashes(ManagerIdx),
    /// A standby takes the free leader key and recovers from the store.
    TakesOver(ManagerIdx),
    /// Real time advances, but this manager's clock stalls (drift).
    TickWithManagerClockStall(ManagerIdx),
    /// Manager process `1`'s keep-alive stream breaks.
    KeepAlivesCut(ManagerIdx),
    /// Manager process `1`'s keep-alive stream is restored.
    KeepAlivesRestored(ManagerIdx),
}

impl World {
    /// The initial state: a fresh manager and agents at tick 0.
    pub fn initial(cfg: &ModelConfig) -> Option<World> {
        let mut out = Vec::new();
        let mut manager = Manager::new(&cfg.core, Tick(0), &mut out).ok()?;
        // With a store, process 0 has taken the key in term 1 at tick 0.
        let ha = cfg
            .core
            .leadership
            .as_ref()
            .map(|l| Ha::initial(l.lease_ticks));
        if let Some(ha) = &ha {
            manager = Manager::take_over(
                &cfg.core,
                manager.durable().clone(),
                (Tick(0), Tick(0)),
                ha.term,
                &mut out,
            )
            .ok()?;
        }
        let hosts = crate::config::host_ids(cfg.hosts)
            .map(|h| {
                Arc::new(HostState {
                    agent: Agent::new(h, Incarnation(0), Tick(0)),
                    lag: 0,
                    partitioned: false,
                })
            })
            .collect();
        let mut w = World {
            now: Tick(0),
            manager: Arc::new(manager),
            ha: ha.map(Arc::new),
            hosts,
            processes: Vec::new(),
            network: Vec::new(),
            faults_left: cfg.faults,
            script_next: 0,
            ghost: Ghost::default(),
        };
        w.apply_manager_effects(cfg, None, out);
        Some(w)
    }

    /// A measure that every action strictly increases (compared
    /// lexicographically), so that no behaviour returns to a state: time;
    /// then faults spent (a partition counts until it heals); then scripted
    /// commands run; then messages consumed (a report, answered by at most
    /// one reply, weighs two); then boots completed; then kills completed.
    /// Agents send only on ticks, so delivering a reply or a boot sends
    /// nothing. The checker verifies the increase on every edge it
    /// generates, which proves the state graph acyclic: with it, L1 needs no
    /// graph (see `tally_verification::engine`).
    #[must_use]
    pub fn progress(&self) -> [u64; 6] {
        // Destructured, so that a new fault class cannot be left out.
        let FaultBudget {
            message_loss,
            message_duplication,
            host_crash,
            host_partition,
            manager_restart,
            boot_failure,
            dyno_crash,
            clock_stall,
            manager_pause,
            keepalive_cut,
            slow_boots: _,
        } = self.faults_left;
        let faults_left = [
            message_loss,
            message_duplication,
            host_crash,
            host_partition,
            manager_restart,
            boot_failure,
            dyno_crash,
            clock_stall,
            manager_pause,
            keepalive_cut,
        ]
        .iter()
        .map(|n| u64::from(*n))
        .sum::<u64>();
        let partitioned = self.hosts.iter().filter(|h| h.partitioned).count() as u64;
        // A pause counts until it ends, as a partition does; a free leader
        // key counts until a standby takes it.
        let (paused, keyless) = self.ha.as_ref().map_or((0, 0), |ha| {
            (ha.disturbed() as u64, u64::from(ha.holder.is_none()))
        });
        let messages: u64 = self
            .network
            .iter()
            .map(|m| match &**m {
                Message::Report(_) => 2,
                Message::Reply(_) => 1,
            })
            .sum();
        let booting = self
            .processes
            .iter()
            .filter(|p| p.booting_since.is_some() && !p.dying())
            .count() as u64;
        let dying = self.processes.iter().filter(|p| p.dying()).count() as u64;
        [
            self.now.0,
            u64::MAX - (2 * faults_left + partitioned + paused + keyless),
            u64::from(self.script_next),
            u64::MAX - messages,
            u64::MAX - booting,
            u64::MAX - dying,
        ]
    }

    /// Whether faults have stopped: calm time reached and the script done.
    #[must_use]
    pub fn is_calm(&self, cfg: &ModelConfig) -> bool {
        self.now.0 >= cfg.calm_at && usize::from(self.script_next) >= cfg.script.len()
    }

    fn may_fault(&self, cfg: &ModelConfig) -> bool {
        self.now.0 < cfg.calm_at
    }

    fn deliverable(&self, m: &Message) -> bool {
        self.hosts
            .get(usize::from(m.host().0))
            .is_some_and(|h| !h.partitioned)
    }

    /// Whether time may advance: before the horizon, and once calm only when
    /// every message is delivered, every partition healed and every boot due
    /// has completed (the fairness the liveness check assumes).
    fn may_tick(&self, cfg: &ModelConfig) -> bool {
        if self.now.0 >= cfg.horizon {
            return false;
        }
        if self.now.0 >= cfg.calm_at && usize::from(self.script_next) < cfg.script.len() {
            return false;
        }
        let urgent = self.now.0 >= cfg.calm_at || !cfg.faults.slow_boots;
        if urgent && self.processes.iter().any(|p| self.boot_due(cfg, p)) {
            return false;
        }
        // With a store, reports wait while no manager runs (until a
        // standby takes the key): time must pass for that.
        let undelivered = |m: &Arc<Message>| match (&self.ha, &**m) {
            (Some(ha), Message::Report(_)) => (0..2).any(|p| ha.schedulable(p)),
            _ => true,
        };
        if self.now.0 >= cfg.calm_at
            && (self.network.iter().any(undelivered) || self.hosts.iter().any(|h| h.partitioned))
        {
            return false;
        }
        // After calm every pause ends and a free key is taken before time
        // passes.
        if self.now.0 >= cfg.calm_at
            && let Some(ha) = &self.ha
            && (ha.disturbed() > 0 || (ha.holder.is_none() && (0..2).any(|p| ha.standby(p))))
        {
            return false;
        }
        true
    }

    /// The clock of manager process `p`: real time minus its lag (real
    /// time itself without a store).
    #[must_use]
    pub fn manager_now(&self, p: ManagerIdx) -> Tick {
        let lag = self.ha.as_ref().map_or(0, |ha| ha.proc(p).lag);
        Tick(self.now.0.saturating_sub(u64::from(lag)))
    }

    /// A boot that must complete before time advances. A process being
    /// killed never completes its boot: it is on its way out.
    fn boot_due(&self, cfg: &ModelConfig, p: &Process) -> bool {
        !p.dying()
            && p.booting_since
                .is_some_and(|s| self.now.since(s) >= cfg.core.timing.boot_ticks)
    }

    /// Every action enabled in this state.
    pub fn actions(&self, cfg: &ModelConfig, actions: &mut Vec<Action>) {
        let fault = self.may_fault(cfg);
        let f = &self.faults_left;
        if self.may_tick(cfg) {
            actions.push(Action::Tick);
            let stall_max = u8::try_from(cfg.core.drift_ticks_per_lease()).unwrap_or(u8::MAX);
            if fault && f.clock_stall > 0 {
                for (i, h) in self.hosts.iter().enumerate() {
                    if h.lag < stall_max {
                        actions.push(Action::TickWithClockStall(host(i)));
                    }
                }
                if let (Some(ha), Some(l)) = (&self.ha, &cfg.core.leadership) {
                    let max =
                        u8::try_from(cfg.core.drift_ticks_over(l.lease_ticks)).unwrap_or(u8::MAX);
                    for p in 0..2 {
                        if ha.runs_core(p) && ha.proc(p).lag < max {
                            actions.push(Action::TickWithManagerClockStall(p));
                        }
                    }
                }
            }
        }
        if let Some(ha) = &self.ha {
            self.ha_actions(ha, fault, actions);
        }
        for (i, m) in self.network.iter().enumerate() {
            if !self.deliverable(m) || (i > 0 && self.network.get(i - 1) == Some(m)) {
                continue;
            }
            let report = matches!(**m, Message::Report(_));
            if let (Some(ha), true) = (&self.ha, report) {
                // A report reaches whichever manager its agent found.
                for p in 0..2 {
                    if ha.schedulable(p) {
                        actions.push(Action::DeliverTo(i, p));
                        if fault && f.manager_pause > 0 {
                            actions.push(Action::DeliverThenPause(i, p));
                        }
                    }
                }
                if fault && f.message_duplication > 0 && ha.schedulable(ha.leader) {
                    actions.push(Action::DeliverDuplicate(i));
                }
                if fault && f.message_loss > 0 {
                    actions.push(Action::Lose(i));
                }
                continue;
            }
            actions.push(Action::Deliver(i));
            if fault && f.message_duplication > 0 {
                actions.push(Action::DeliverDuplicate(i));
            }
            if fault && f.message_loss > 0 {
                actions.push(Action::Lose(i));
            }
        }
        for p in &self.processes {
            if p.dying() {
                actions.push(Action::KillCompletes(p.instance, p.host));
                continue;
            }
            let broken = cfg.is_broken(p.instance.slot.process_type);
            match p.booting_since {
                Some(_) if broken => {
                    if self.boot_due(cfg, p) {
                        actions.push(Action::BootFails(p.instance, p.host));
                    }
                    continue;
                }
                Some(_) if self.boot_due(cfg, p) => {
                    actions.push(Action::BootCompletes(p.instance, p.host));
                }
                Some(_) => {}
                None => {
                    if fault && f.dyno_crash > 0 {
                        actions.push(Action::DynoCrashes(p.instance, p.host));
                    }
                }
            }
            if p.booting_since.is_some() && fault && f.boot_failure > 0 {
                actions.push(Action::BootFails(p.instance, p.host));
            }
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if h.partitioned {
                actions.push(Action::Heal(host(i)));
            } else if fault && f.host_partition > 0 {
                actions.push(Action::Partition(host(i)));
            }
            if fault && f.host_crash > 0 {
                actions.push(Action::HostCrashes(host(i)));
            }
        }
        if fault && f.manager_restart > 0 && self.ha.is_none() {
            actions.push(Action::ManagerRestarts);
        }
        if usize::from(self.script_next) < cfg.script.len() {
            actions.push(Action::Command);
        }
    }

    /// The state after `action`, or `None` if it does not apply.
    #[must_use]
    pub fn next(&self, cfg: &ModelConfig, action: Action) -> Option<World> {
        let mut w = self.clone();
        w.ghost.last = 0;
        w.ghost.refused_apps = 0;
        match action {
            Action::Tick => w.tick(cfg, None),
            Action::TickWithClockStall(h) => {
                w.faults_left.clock_stall = w.faults_left.clock_stall.checked_sub(1)?;
                w.tick(cfg, Some(h));
            }
            Action::Deliver(i) => {
                let m = w.take_message(i)?;
                w.deliver(cfg, m);
            }
            Action::DeliverDuplicate(i) => {
                w.faults_left.message_duplication =
                    w.faults_left.message_duplication.checked_sub(1)?;
                let m = Arc::clone(w.network.get(i)?);
                w.deliver(cfg, m);
            }
            Action::Lose(i) => {
                w.faults_left.message_loss = w.faults_left.message_loss.checked_sub(1)?;
                w.take_message(i)?;
            }
            Action::BootCompletes(instance, h) => {
                let p = w
                    .processes
                    .iter_mut()
                    .find(|p| p.instance == instance && p.host == h)?;
                p.booting_since = None;
                w.ghost.boots = w.ghost.boots.saturating_add(1);
                let app = w.manager.app_of(instance.slot.process_type);
                if let Some(a) = w.ghost.apps.get_mut(app.index()) {
                    a.boots = a.boots.saturating_add(1);
                }
                w.agent_step(cfg, h, AgentInput::ProcessBooted { instance });
            }
            Action::BootFails(instance, h) => {
                // A broken app's boot fails when due, as no fault.
                if !cfg.is_broken(instance.slot.process_type) {
                    w.faults_left.boot_failure = w.faults_left.boot_failure.checked_sub(1)?;
                }
                w.process_exits(cfg, h, instance)?;
            }
            Action::DynoCrashes(instance, h) => {
                w.faults_left.dyno_crash = w.faults_left.dyno_crash.checked_sub(1)?;
                w.process_exits(cfg, h, instance)?;
            }
            Action::KillCompletes(instance, h) => {
                w.processes
                    .iter()
                    .find(|p| p.instance == instance && p.host == h)
                    .filter(|p| p.dying())?;
                w.process_exits(cfg, h, instance)?;
            }
            Action::HostCrashes(h) => {
                w.faults_left.host_crash = w.faults_left.host_crash.checked_sub(1)?;
                w.processes.retain(|p| p.host != h);
                let now = w.agent_now(h);
                let hs = w.hosts.get_mut(usize::from(h.0)).map(Arc::make_mut)?;
                let inc = Incarnation(hs.agent.incarnation().0.saturating_add(1));
                hs.agent = Agent::new(h, inc, now);
            }
            Action::Partition(h) => {
                w.faults_left.host_partition = w.faults_left.host_partition.checked_sub(1)?;
                w.hosts
                    .get_mut(usize::from(h.0))
                    .map(Arc::make_mut)?
                    .partitioned = true;
            }
            Action::Heal(h) => {
                w.hosts
                    .get_mut(usize::from(h.0))
                    .map(Arc::make_mut)?
                    .partitioned = false;
            }
            Action::ManagerRestarts => {
                w.faults_left.manager_restart = w.faults_left.manager_restart.checked_sub(1)?;
                let durable = w.manager.durable().compacted(&cfg.core);
                w.manager = Arc::new(Manager::recover(&cfg.core, durable, w.now).ok()?);
            }
            Action::DeliverTo(i, p) => {
                let m = w.take_message(i)?;
                let Message::Report(r) = Arc::unwrap_or_clone(m) else {
                    return None;
                };
                w.ha.as_ref().filter(|ha| ha.schedulable(p))?;
                w.manager_step_on(cfg, Some(p), ManagerInput::ReportReceived(r));
            }
            Action::DeliverThenPause(i, p) => {
                w.faults_left.manager_pause = w.faults_left.manager_pause.checked_sub(1)?;
                let m = w.take_message(i)?;
                let Message::Report(r) = Arc::unwrap_or_clone(m) else {
                    return None;
                };
                w.ha.as_ref().filter(|ha| ha.schedulable(p))?;
                w.step_then_pause(cfg, p, ManagerInput::ReportReceived(r))?;
            }
            Action::ManagerPauses(p) => {
                w.faults_left.manager_pause = w.faults_left.manager_pause.checked_sub(1)?;
                let ha = w.ha.as_mut().map(Arc::make_mut)?;
                if !ha.schedulable(p) {
                    return None;
                }
                ha.proc_mut(p).paused = true;
            }
            Action::ManagerResumes(p) => {
                let ha = w.ha.as_mut().map(Arc::make_mut)?;
                let proc = ha.proc_mut(p);
                if !proc.paused {
                    return None;
                }
                proc.paused = false;
                if let Some(pending) = proc.pending.take() {
                    w.apply_manager_effects(cfg, Some(p), Arc::unwrap_or_clone(pending));
                }
            }
            Action::ManagerCrashes(p) => {
                w.faults_left.manager_restart = w.faults_left.manager_restart.checked_sub(1)?;
                let ha = w.ha.as_ref()?;
                if !ha.runs_core(p) {
                    return None;
                }
                w.drop_core(p, false);
                let proc = w.ha.as_mut().map(Arc::make_mut)?.proc_mut(p);
                proc.paused = false;
            }
            Action::TakesOver(p) => w.take_over(cfg, p)?,
            Action::KeepAlivesCut(p) => {
                w.faults_left.keepalive_cut = w.faults_left.keepalive_cut.checked_sub(1)?;
                let proc = w.ha.as_mut().map(Arc::make_mut)?.proc_mut(p);
                if proc.cut {
                    return None;
                }
                proc.cut = true;
            }
            Action::KeepAlivesRestored(p) => {
                let proc = w.ha.as_mut().map(Arc::make_mut)?.proc_mut(p);
                if !proc.cut {
                    return None;
                }
                proc.cut = false;
            }
            Action::TickWithManagerClockStall(p) => {
                w.faults_left.clock_stall = w.faults_left.clock_stall.checked_sub(1)?;
                let ha = w.ha.as_mut().map(Arc::make_mut)?;
                let proc = ha.proc_mut(p);
                proc.lag = proc.lag.saturating_add(1);
                w.tick(cfg, None);
            }
            Action::Command => {
                let c = *cfg.script.get(usize::from(w.script_next))?;
                w.script_next = w.script_next.saturating_add(1);
                let input = match c {
                    ScriptedCommand::User { command } => ManagerInput::User(command),
                    ScriptedCommand::Operator { command } => ManagerInput::Operator(command),
                };
                w.manager_step(cfg, input);
            }
        }
        Some(w)
    }

    /// The moves of the store and the manager processes.
    fn ha_actions(&self, ha: &Ha, fault: bool, actions: &mut Vec<Action>) {
        let f = &self.faults_left;
        for p in 0..2 {
            if ha.proc(p).paused {
                actions.push(Action::ManagerResumes(p));
            } else if ha.runs_core(p) && fault && f.manager_pause > 0 {
                actions.push(Action::ManagerPauses(p));
            }
            if ha.runs_core(p) && fault && f.manager_restart > 0 {
                actions.push(Action::ManagerCrashes(p));
            }
            if ha.holder.is_none() && ha.standby(p) {
                actions.push(Action::TakesOver(p));
            }
            if ha.proc(p).cut {
                actions.push(Action::KeepAlivesRestored(p));
            } else if ha.runs_core(p) && fault && f.keepalive_cut > 0 {
                actions.push(Action::KeepAlivesCut(p));
            }
        }
    }

    fn take_message(&mut self, i: usize) -> Option<Arc<Message>> {
        (i < self.network.len()).then(|| self.network.remove(i))
    }

    fn deliver(&mut self, cfg: &ModelConfig, m: Arc<Message>) {
        match Arc::unwrap_or_clone(m) {
            // With a store, to the leader (the only duplicate delivery).
            Message::Report(r) => self.manager_step(cfg, ManagerInput::ReportReceived(r)),
            Message::Reply(r) => {
                let h = r.host;
                self.agent_step(cfg, h, AgentInput::ReplyReceived(r));
            }
        }
    }

    fn send(&mut self, cfg: &ModelConfig, m: Message) {
        let cut = self
            .hosts
            .get(usize::from(m.host().0))
            .is_none_or(|h| h.partitioned);
        // The capacity is a loss, so it applies only before calm.
        let full = self.now.0 < cfg.calm_at
            && self.in_flight(m.host()) >= usize::from(cfg.network_capacity);
        if cut || full {
            return;
        }
        let at = self.network.partition_point(|x| **x <= m);
        self.network.insert(at, Arc::new(m));
    }

    /// Messages in flight to or from `h`. The capacity is per host, so the
    /// rule of which send is lost does not depend on host ids (symmetry).
    #[must_use]
    pub fn in_flight(&self, h: HostId) -> usize {
        self.network.iter().filter(|m| m.host() == h).count()
    }

    /// The agent's own clock: real time minus its lag.
    #[must_use]
    pub fn agent_now(&self, h: HostId) -> Tick {
        let lag = self.hosts.get(usize::from(h.0)).map_or(0, |s| s.lag);
        Tick(self.now.0.saturating_sub(u64::from(lag)))
    }

    fn tick(&mut self, cfg: &ModelConfig, stalled: Option<HostId>) {
        self.now = self.now.plus(1);
        // A kill takes at most `kill_ticks`: a process killed at `t` is gone
        // when real time reaches `t + kill_ticks`, before any machine steps
        // at that instant (so a margin equal to the kill time suffices, as
        // DESIGN.md rule 7 says, and a smaller one is refuted).
        let kill = cfg.core.timing.kill_ticks;
        let overdue: Vec<Process> = self
            .processes
            .iter()
            .filter(|p| p.killed_at.is_some_and(|t| self.now.since(t) >= kill))
            .copied()
            .collect();
        for p in overdue {
            let _ = self.process_exits(cfg, p.host, p.instance);
        }
        for i in 0..self.hosts.len() {
            let h = host(i);
            if stalled == Some(h) {
                if let Some(s) = self.hosts.get_mut(i).map(Arc::make_mut) {
                    s.lag = s.lag.saturating_add(1);
                }
                continue;
            }
            self.agent_step(cfg, h, AgentInput::Tick);
        }
        match self.ha.as_ref().map(|ha| ha.leader) {
            None => self.manager_step(cfg, ManagerInput::Tick),
            Some(leader) => {
                self.store_tick(cfg);
                for p in [leader, Ha::other(leader)] {
                    if self.ha.as_ref().is_some_and(|ha| ha.schedulable(p)) {
                        self.manager_step_on(cfg, Some(p), ManagerInput::Tick);
                    }
                }
            }
        }
    }

    /// The store at a new instant: the leader key lapses once its lease
    /// ran out; then each scheduled manager's keep-alive (sent now, on its
    /// clock) either renews the key and confirms its leadership, or finds
    /// the key gone or another's and deposes it.
    fn store_tick(&mut self, cfg: &ModelConfig) {
        let Some(ttl) = cfg.core.leadership.as_ref().map(|l| l.lease_ticks) else {
            return;
        };
        let now = self.now;
        let Some(ha) = self.ha.as_mut().map(Arc::make_mut) else {
            return;
        };
        if ha.holder.is_some() && now >= ha.key_until {
            ha.holder = None;
        }
        for p in 0..2 {
            if !self
                .ha
                .as_ref()
                .is_some_and(|ha| ha.schedulable(p) && !ha.proc(p).cut)
            {
                continue;
            }
            if self.fenced(p) {
                if let Some(ha) = self.ha.as_mut().map(Arc::make_mut) {
                    ha.key_until = now.plus(ttl);
                }
                let sent_at = self.manager_now(p);
                self.manager_step_on(cfg, Some(p), ManagerInput::LeadershipConfirmed { sent_at });
            } else {
                self.drop_core(p, true);
            }
        }
    }

    /// Whether the store's leader key is live and has `p`'s term: what a
    /// fenced append and a keep-alive compare.
    fn fenced(&self, p: ManagerIdx) -> bool {
        self.ha
            .as_ref()
            .is_none_or(|ha| ha.holder == Some(p) && self.term_of(p).is_some_and(|t| t == ha.term))
    }

    /// The term of `p`'s core (its last `TermBegan`), if it runs one.
    fn term_of(&self, p: ManagerIdx) -> Option<tally_core::Term> {
        let ha = self.ha.as_ref()?;
        if p == ha.leader {
            Some(self.manager.durable().term)
        } else {
            ha.zombie.as_ref().map(|z| z.durable().term)
        }
    }

    /// `p` stops running its core: crashed, or found itself deposed. The
    /// leader's core stays in `manager`, frozen, for the properties.
    fn drop_core(&mut self, p: ManagerIdx, deposed: bool) {
        let Some(ha) = self.ha.as_mut().map(Arc::make_mut) else {
            return;
        };
        ha.proc_mut(p).pending = None;
        let dropped = if p == ha.leader {
            std::mem::replace(&mut ha.leader_running, false)
        } else {
            ha.zombie.take().is_some()
        };
        if dropped && deposed {
            self.ghost.last |= witness::DEPOSED;
        }
    }

    /// The standby `p` takes the free key: a new term, a linearizable read
    /// of the journal, the core's takeover (every lease a full expiry from
    /// now), its `TermBegan` appended first. An old leader still running
    /// becomes a zombie.
    fn take_over(&mut self, cfg: &ModelConfig, p: ManagerIdx) -> Option<()> {
        let ttl = cfg.core.leadership.as_ref()?.lease_ticks;
        let now = self.now;
        let own = self.manager_now(p);
        let ha = self.ha.as_mut().map(Arc::make_mut)?;
        if ha.holder.is_some() || !ha.standby(p) {
            return None;
        }
        ha.term = tally_core::Term(ha.term.0.saturating_add(1));
        ha.holder = Some(p);
        ha.key_until = now.plus(ttl);
        let journal = ha
            .journal
            .take()
            .map_or_else(|| self.manager.durable().clone(), Arc::unwrap_or_clone)
            .compacted(&cfg.core);
        let mut out = Vec::new();
        let core = Manager::take_over(&cfg.core, journal, (own, own), ha.term, &mut out).ok()?;
        let old = std::mem::replace(&mut self.manager, Arc::new(core));
        if ha.leader != p && ha.leader_running {
            ha.zombie = Some(old);
        }
        ha.leader = p;
        ha.leader_running = true;
        self.ghost.last |= witness::TAKEOVER;
        self.apply_manager_effects(cfg, Some(p), out);
        Some(())
    }

    /// `p` processes `input`, then pauses before its effects leave: they
    /// wait in its `pending` until it resumes.
    fn step_then_pause(
        &mut self,
        cfg: &ModelConfig,
        p: ManagerIdx,
        input: ManagerInput,
    ) -> Option<()> {
        // The store keeps what it had: the leader's core runs ahead of it.
        self.materialize_journal();
        let now = self.manager_now(p);
        let mut out = Vec::new();
        let _refused = self.core_mut(p)?.step(&cfg.core, now, input, &mut out);
        let ha = self.ha.as_mut().map(Arc::make_mut)?;
        let proc = ha.proc_mut(p);
        proc.paused = true;
        proc.pending = Some(Arc::new(out));
        Some(())
    }

    /// Makes the store's journal explicit (before the leader's core moves
    /// ahead of it).
    fn materialize_journal(&mut self) {
        if let Some(ha) = self.ha.as_mut().map(Arc::make_mut)
            && ha.journal.is_none()
        {
            ha.journal = Some(Arc::new(self.manager.durable().clone()));
        }
    }

    /// Forgets the explicit journal when the leader's core has caught up.
    fn normalize_journal(&mut self) {
        let equal = self.ha.as_ref().is_some_and(|ha| {
            ha.journal
                .as_ref()
                .is_some_and(|j| **j == *self.manager.durable())
        });
        if equal && let Some(ha) = self.ha.as_mut().map(Arc::make_mut) {
            ha.journal = None;
        }
    }

    /// Process `p`'s core, to step it.
    fn core_mut(&mut self, p: ManagerIdx) -> Option<&mut Manager> {
        let leader = self.ha.as_ref().map_or(0, |ha| ha.leader);
        if p == leader {
            return Some(Arc::make_mut(&mut self.manager));
        }
        let ha = self.ha.as_mut().map(Arc::make_mut)?;
        ha.zombie.as_mut().map(Arc::make_mut)
    }

    /// Appends `record` for `p` if the store's fence lets it (always under
    /// `unfenced-append`); `false` when it did not commit.
    fn store_append(&mut self, cfg: &ModelConfig, p: ManagerIdx, record: &JournalRecord) -> bool {
        let Some(ha) = self.ha.as_ref() else {
            return true;
        };
        // The key's term while it is live; its holder's term is the store's
        // latest (a key is created only at a new term).
        let key_term = ha.holder.map(|_| ha.term);
        let Some(term) = self.term_of(p) else {
            return false;
        };
        if !tally_core::append_admitted(&cfg.core, key_term, term) {
            return false;
        }
        // The leader's core already holds the record; the store's copy is
        // explicit only when the two differ.
        if p != ha.leader || ha.journal.is_some() {
            self.materialize_journal();
            if let Some(j) = self
                .ha
                .as_mut()
                .map(Arc::make_mut)
                .and_then(|ha| ha.journal.as_mut())
            {
                Arc::make_mut(j).apply(record);
            }
        }
        let now = self.manager_now(p);
        if let Some(core) = self.core_mut(p) {
            core.append_committed(&cfg.core, now);
        }
        true
    }

    /// The agent kills `instance`: with `kill_ticks` zero it is gone at
    /// once (and its exit reported back); otherwise it runs on, dying.
    fn kill(&mut self, cfg: &ModelConfig, h: HostId, instance: InstanceId) {
        if cfg.core.timing.kill_ticks == 0 {
            let _ = self.process_exits(cfg, h, instance);
            return;
        }
        let now = self.now;
        if let Some(p) = self
            .processes
            .iter_mut()
            .find(|p| p.instance == instance && p.host == h)
        {
            p.killed_at.get_or_insert(now);
        }
    }

    fn process_exits(&mut self, cfg: &ModelConfig, h: HostId, instance: InstanceId) -> Option<()> {
        let at = self
            .processes
            .iter()
            .position(|p| p.instance == instance && p.host == h)?;
        self.processes.remove(at);
        self.agent_step(cfg, h, AgentInput::ProcessExited { instance });
        Some(())
    }

    fn manager_step(&mut self, cfg: &ModelConfig, input: ManagerInput) {
        let leader = self.ha.as_ref().map(|ha| ha.leader);
        if leader.is_some_and(|p| !self.ha.as_ref().is_some_and(|ha| ha.schedulable(p))) {
            return;
        }
        self.manager_step_on(cfg, leader, input);
    }

    /// Steps the core of manager process `p` (`None`: the one manager
    /// without a store) on its own clock and applies its effects.
    fn manager_step_on(&mut self, cfg: &ModelConfig, p: Option<ManagerIdx>, input: ManagerInput) {
        let now = p.map_or(self.now, |p| self.manager_now(p));
        // A leader whose appends may fail (the key lapsed) runs ahead of
        // the store from here.
        if p.is_some_and(|p| Some(p) == self.ha.as_ref().map(|ha| ha.leader) && !self.fenced(p)) {
            self.materialize_journal();
        }
        let mut out = Vec::new();
        let Some(core) = self.core_mut(p.unwrap_or(0)) else {
            return;
        };
        // A refusal is an expected outcome (lockdown), visible as a note.
        let _refused = core.step(&cfg.core, now, input, &mut out);
        self.apply_manager_effects(cfg, p, out);
    }

    /// Turns effects of process `p` (`None`: the one manager) into the
    /// world: with a store, each append is fenced, and the first that
    /// fails deposes `p` and drops every later effect (rule 1).
    fn apply_manager_effects(
        &mut self,
        cfg: &ModelConfig,
        p: Option<ManagerIdx>,
        out: Vec<Effect>,
    ) {
        let lockdown = self.manager.lockdown();
        for e in out {
            if let (Some(p), Effect::Persist(r)) = (p, &e)
                && !self.store_append(cfg, p, r)
            {
                self.drop_core(p, true);
                break;
            }
            match e {
                Effect::Persist(JournalRecord::InstanceLaunched { instance, free, .. }) => {
                    self.on_launch(instance, free);
                }
                Effect::Alert(tally_core::Alert::BreakerTripped { .. }) => {
                    self.ghost.last |= witness::BREAKER_TRIPPED;
                }
                Effect::Alert(tally_core::Alert::FleetBreakerTripped) => {
                    self.ghost.last |= witness::BREAKER_TRIPPED | witness::FLEET_BREAKER_TRIPPED;
                }
                // Reachable only when the journal forgets generations (a
                // mutation); the high water it raises is the core's state.
                Effect::Alert(tally_core::Alert::GenerationAboveHighWater { .. }) => {}
                Effect::Persist(_) => {}
                Effect::Send(reply) => self.send(cfg, Message::Reply(reply)),
                Effect::Note(n) => self.on_note(n, lockdown),
            }
        }
        if p.is_some() {
            self.normalize_journal();
        }
    }

    fn on_launch(&mut self, instance: InstanceId, free: bool) {
        let app = self.manager.app_of(instance.slot.process_type);
        let g = &mut self.ghost;
        g.launches = g.launches.saturating_add(1);
        if let Some(a) = g.apps.get_mut(app.index()) {
            a.launches = a.launches.saturating_add(1);
            a.relaunches = a.relaunches.saturating_add(u16::from(!free));
        }
        let hw = g.launched_high_water.entry(instance.slot).or_default();
        if instance.generation <= *hw {
            g.generation_reused = true;
        }
        *hw = (*hw).max(instance.generation);
        if !free {
            g.last |= witness::RELAUNCHED;
        }
        if let Some(i) = g.expired_slots.iter().position(|s| *s == instance.slot) {
            g.expired_slots.remove(i);
            g.last |= witness::REPLACED_AFTER_EXPIRY;
        }
    }

    fn on_note(&mut self, n: Note, lockdown: bool) {
        let app_of = |slot: SlotId| self.manager.app_of(slot.process_type);
        match n {
            Note::RetryRefused { slot } => self.ghost.refused_apps |= app_bit(app_of(slot)),
            Note::BootFailureCounted { instance } if self.manager.app_count() > 1 => {
                let app = app_of(instance.slot);
                if let Some(t) = self.ghost.last_failure.get_mut(app.index()) {
                    *t = Some(self.now);
                }
            }
            _ => {}
        }
        let g = &mut self.ghost;
        g.last |= match n {
            Note::BootTimedOut { .. } if lockdown => {
                witness::BOOT_TIMED_OUT | witness::BOOT_TIMED_OUT_IN_LOCKDOWN
            }
            Note::BootTimedOut { .. } => witness::BOOT_TIMED_OUT,
            Note::LeaseExpired { instance } => {
                if !g.expired_slots.contains(&instance.slot) {
                    g.expired_slots.push(instance.slot);
                    g.expired_slots.sort();
                }
                witness::LEASE_EXPIRED
            }
            Note::PhantomReaped { .. } if lockdown => {
                witness::PHANTOM_REAPED | witness::PHANTOM_REAPED_IN_LOCKDOWN
            }
            Note::PhantomReaped { .. } => witness::PHANTOM_REAPED,
            Note::RetryRefused { .. } => witness::RETRY_REFUSED,
            Note::LockdownRefused => witness::LOCKDOWN_REFUSED,
            Note::ProbeSpent => witness::PROBE_SPENT,
            Note::NotLeading => witness::OUTSIDE_GUARD,
            Note::ReportVersionMismatch
            | Note::StaleExit
            | Note::BootFailureCounted { .. }
            | Note::BootSucceeded { .. }
            | Note::InstanceStopped { .. } => 0,
        };
    }

    fn agent_step(&mut self, cfg: &ModelConfig, h: HostId, input: AgentInput) {
        let now = self.agent_now(h);
        let mut out = Vec::new();
        let Some(hs) = self.hosts.get_mut(usize::from(h.0)).map(Arc::make_mut) else {
            return;
        };
        hs.agent.step(&cfg.core, now, input, &mut out);
        let lockdown = self.manager.lockdown();
        for e in out {
            match e {
                AgentEffect::StartProcess { instance } => {
                    let p = Process {
                        host: h,
                        instance,
                        booting_since: Some(self.now),
                        killed_at: None,
                    };
                    let at = self.processes.partition_point(|x| *x <= p);
                    self.processes.insert(at, p);
                }
                AgentEffect::KillProcess { instance } => self.kill(cfg, h, instance),
                AgentEffect::Send(report) => self.send(cfg, Message::Report(report)),
                AgentEffect::Note(AgentNote::SelfFenced { .. }) => {
                    self.ghost.last |= witness::SELF_FENCED;
                    if lockdown {
                        self.ghost.last |= witness::SELF_FENCED_IN_LOCKDOWN;
                    }
                }
                AgentEffect::Note(AgentNote::StaleLaunch { .. }) => {
                    self.ghost.last |= witness::STALE_LAUNCH_REFUSED;
                }
                AgentEffect::Note(AgentNote::StaleTerm { .. }) => {
                    self.ghost.last |= witness::STALE_TERM_REFUSED;
                }
                AgentEffect::Note(_) => {}
            }
        }
    }

    /// The launch bound's inputs, by the core's one definition, at the
    /// manager's time.
    #[must_use]
    pub fn launch_bound_inputs(&self, cfg: &ModelConfig) -> LaunchBoundInputs {
        // S counts boots that really completed (ground truth, a ghost count kept anyway): S3 does not trust the journal it checks.
        let counters = Counters {
            boots_seen_done: u64::from(self.ghost.boots),
            ..Counters::default()
        };
        self.manager
            .launch_bound_inputs(&cfg.core, &counters, self.now)
    }

    /// `app`'s launch bound inputs, by the core's one definition, with its
    /// ground-truth boots as `S_a`.
    #[must_use]
    pub fn launch_bound_inputs_of_app(&self, cfg: &ModelConfig, app: AppId) -> LaunchBoundInputs {
        let boots = self.ghost.apps.get(app.index()).map_or(0, |a| a.boots);
        self.manager
            .launch_bound_inputs_of_app(&cfg.core, (app, u64::from(boots)), self.now)
    }
}

fn host(i: usize) -> HostId {
    HostId(u16::try_from(i).unwrap_or(u16::MAX))
}
