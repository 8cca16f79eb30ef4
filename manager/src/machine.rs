//! The core's manager with its configuration, as the shell's [`Machine`],
//! plus what the shell shows about it: lifecycle log lines and the counts
//! `tally ps` explains itself with. Every decision is the core's `step`.

use crate::settings::Deployment;
use crate::shell::Machine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use tally_core::{
    Alert, Breaker, Counters, Effect, ExitOutcome, FleetBreaker, JournalRecord, Manager,
    ManagerInput, Note, Rejected, SlotId, Tick,
};

/// Lifecycle lines kept for `tally ps`.
const RECENT_MAX: usize = 40;

/// What happened to a slot last, for `tally ps`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlotHistory {
    /// Launches of this slot.
    pub launches: u64,
    /// Exits seen as boot failures.
    pub boot_failures: u64,
    /// Exits seen as crashes after boot.
    pub crashes: u64,
    /// Boot timeouts.
    pub boot_timeouts: u64,
    /// Relaunches refused for want of a token.
    pub retries_refused: u64,
    /// The last thing that happened to it.
    pub last: String,
    /// Its latest exit that its agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<SlotExit>,
}

/// A slot's latest exit, as its agent's report told the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotExit {
    /// The generation that exited.
    pub generation: u32,
    /// Where it ran.
    pub host: u16,
    /// The core's reading: `crashed`, `failed to boot`, `was stopped`,
    /// `never started`.
    pub what: String,
    /// Whether it counts against the slot (a crash or a failed boot), as
    /// opposed to a stop tally asked for.
    pub failed: bool,
    /// The manager tick at which the report came.
    pub at: u64,
    /// The instance (for its exit words in [`ProcessTable`]).
    #[serde(skip)]
    pub instance: Option<tally_core::InstanceId>,
}

/// The dynos' processes as their agents last reported them (`Frame::Dynos`):
/// pids, ports and exit words, for `tally ps` alone. Shared by the link
/// threads that fill it and the machine that reads it; nothing decides on it.
/// An agent's frame is untrusted: at most [`PROCESSES_PER_HOST_MAX`] running
/// dynos and [`crate::wire::EXITS_KEPT`] exits are kept per host, each exit's
/// words cut to [`EXIT_WORDS_MAX`] printable characters.
#[derive(Debug, Default)]
pub struct ProcessTable {
    running: BTreeMap<tally_core::HostId, BTreeMap<tally_core::InstanceId, (Option<u32>, u16)>>,
    exits: BTreeMap<tally_core::HostId, BTreeMap<tally_core::InstanceId, String>>,
}

/// The most running dynos kept per host (far above what a host runs).
pub const PROCESSES_PER_HOST_MAX: usize = 4096;

/// The longest exit words kept (`signal 9 (SIGKILL)` is 18).
pub const EXIT_WORDS_MAX: usize = 80;

impl ProcessTable {
    /// Takes a host's report whole, replacing what it said before.
    pub fn record(&mut self, host: tally_core::HostId, facts: crate::wire::DynoFacts) {
        let keep = facts.exits.len().saturating_sub(crate::wire::EXITS_KEPT);
        let exits = facts
            .exits
            .into_iter()
            .skip(keep)
            .map(|e| {
                let words: String = e
                    .status
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(EXIT_WORDS_MAX)
                    .collect();
                (e.instance, words)
            })
            .collect();
        self.exits.insert(host, exits);
        let running = facts
            .running
            .into_iter()
            .take(PROCESSES_PER_HOST_MAX)
            .map(|p| (p.instance, (p.pid, p.port)))
            .collect();
        self.running.insert(host, running);
    }

    /// Forgets what a host's agent said (its link closed).
    pub fn forget(&mut self, host: tally_core::HostId) {
        self.running.remove(&host);
    }

    /// A running instance's pid (once known) and port.
    #[must_use]
    pub fn process(
        &self,
        host: tally_core::HostId,
        instance: tally_core::InstanceId,
    ) -> Option<(Option<u32>, u16)> {
        self.running.get(&host)?.get(&instance).copied()
    }

    /// An exited instance's words (`exit 137`).
    #[must_use]
    pub fn exit_words(
        &self,
        host: tally_core::HostId,
        instance: tally_core::InstanceId,
    ) -> Option<&str> {
        self.exits.get(&host)?.get(&instance).map(String::as_str)
    }
}

/// Counters since this manager process started (the journal's own counts,
/// which a restart keeps, are [`ManagerMachine::counters`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Breaker trips.
    pub breaker_trips: u64,
    /// Phantoms told to stop.
    pub phantoms_reaped: u64,
    /// Leases that expired.
    pub leases_expired: u64,
    /// User commands refused by lockdown.
    pub lockdown_refusals: u64,
    /// Inputs dropped outside the leadership guard (a highly available
    /// manager that is not, or no longer, confirmed as leader).
    pub not_leading_drops: u64,
    /// Per slot.
    pub slots: BTreeMap<String, SlotHistory>,
    /// The latest lifecycle lines, oldest first.
    pub recent: VecDeque<String>,
    /// When each instance in the ledger last changed phase as this manager
    /// saw it (launched, up, asked to stop): `ps` shows it as an age. Not
    /// journaled: after a restart an instance's age counts from the first
    /// change this manager sees.
    #[serde(skip)]
    pub since: BTreeMap<tally_core::InstanceId, Tick>,
}

/// The core's manager and its configuration.
#[derive(Clone)]
pub struct ManagerMachine {
    /// The deployment (configuration and commands).
    pub deployment: Arc<Deployment>,
    /// The core.
    pub manager: Manager,
    /// The journal's counters (launches, free launches, `S`): the recovered
    /// ones plus every record persisted since, folded by the same
    /// [`Counters::apply`] as the journal, so a restart shows the same.
    pub counters: Counters,
    /// What `ps` shows besides.
    pub stats: Stats,
    /// The managers of a highly available deployment (leader, term,
    /// standbys), kept fresh from the store by the manager's registration
    /// thread; `None` for a manager alone on its data dir.
    pub managers: Option<Arc<std::sync::Mutex<crate::api::PsManagers>>>,
    /// The dynos' processes as the agents report them (shared with the
    /// link threads).
    pub processes: Arc<std::sync::Mutex<ProcessTable>>,
    /// Whether the last input was dropped for want of leadership (the
    /// first of a run is logged, not the rest).
    dropping: bool,
    /// Log lines of steps not yet committed.
    pending: Vec<String>,
    /// The instances this step took out of the ledger, with their hosts, as
    /// the core's `Note::InstanceStopped` names them: the step's log lines
    /// are written after the step, when the ledger no longer places them.
    gone: Vec<(tally_core::InstanceId, tally_core::HostId)>,
}

impl ManagerMachine {
    fn slot(&mut self, slot: SlotId) -> &mut SlotHistory {
        let name = self.deployment.slot_name(slot);
        self.stats.slots.entry(name).or_default()
    }

    /// A manager as the shell runs it, with the journal's `counters` (those
    /// it recovered, or the default for a new journal).
    #[must_use]
    pub fn new(deployment: Arc<Deployment>, manager: Manager, counters: Counters) -> Self {
        ManagerMachine {
            deployment,
            manager,
            counters,
            stats: Stats::default(),
            managers: None,
            processes: Arc::default(),
            dropping: false,
            pending: Vec::new(),
            gone: Vec::new(),
        }
    }

    fn log(&mut self, now: Tick, line: String) {
        self.pending.push(line.clone());
        if self.stats.recent.len() >= RECENT_MAX {
            self.stats.recent.pop_front();
        }
        self.stats.recent.push_back(format!("{now} {line}"));
    }

    /// Logs and counts what one step did.
    fn observe(&mut self, now: Tick, input: &ManagerInput, effects: &[Effect]) {
        if !effects
            .iter()
            .any(|e| matches!(e, Effect::Note(Note::NotLeading)))
            && !matches!(
                input,
                ManagerInput::LeadershipConfirmed { .. } | ManagerInput::LeadershipLost
            )
        {
            self.dropping = false;
        }
        let d = Arc::clone(&self.deployment);
        self.gone.clear();
        self.gone.extend(effects.iter().filter_map(|e| match e {
            Effect::Note(Note::InstanceStopped { instance, host }) => Some((*instance, *host)),
            _ => None,
        }));
        if let ManagerInput::ReportReceived(report) = input {
            for e in &report.exited {
                let h = self.slot(e.instance.slot);
                h.last_exit = Some(SlotExit {
                    generation: e.instance.generation.0,
                    host: report.host.0,
                    what: e.outcome.words().into(),
                    failed: matches!(e.outcome, ExitOutcome::BootFailed | ExitOutcome::Crashed),
                    at: now.0,
                    instance: Some(e.instance),
                });
                match e.outcome {
                    ExitOutcome::BootFailed => h.boot_failures += 1,
                    ExitOutcome::Crashed => h.crashes += 1,
                    ExitOutcome::Killed | ExitOutcome::NeverStarted => {}
                }
                let what = e.outcome.words();
                h.last = format!("{} {what}", d.instance_name(e.instance));
            }
        }
        for effect in effects {
            match effect {
                Effect::Persist(record) => self.observe_record(now, &d, record),
                Effect::Alert(Alert::BreakerTripped { app }) => {
                    self.stats.breaker_trips += 1;
                    let name = d
                        .config
                        .app_names()
                        .get(app.index())
                        .map_or(String::new(), |n| (*n).to_owned());
                    self.log(now, format!("ALERT breaker of app {name} tripped: its boots are failing; its launches stop until a probe boots"));
                }
                Effect::Alert(Alert::FleetBreakerTripped) => {
                    self.stats.breaker_trips += 1;
                    self.log(now, "ALERT fleet breaker tripped: boots of many apps are failing; no app launches until a probe boots".into());
                }
                Effect::Alert(Alert::GenerationAboveHighWater { instance }) => {
                    let line = format!(
                        "ALERT {} runs above the journal's high water: the journal lost records; high water raised, instance reaped",
                        d.instance_name(*instance)
                    );
                    tracing::error!("{line}");
                    self.log(now, line);
                }
                Effect::Note(note) => self.observe_note(now, &d, *note),
                Effect::Send(_) => {}
            }
        }
    }

    fn observe_record(&mut self, now: Tick, d: &Deployment, record: &JournalRecord) {
        // The record reaches the journal in this step's commit, which folds
        // it the same way.
        self.counters.apply(record);
        match record {
            JournalRecord::InstanceLaunched {
                instance,
                host,
                free,
            } => {
                self.stats.since.insert(*instance, now);
                let h = self.slot(instance.slot);
                h.launches += 1;
                h.last = format!("{} launched on {host}", d.instance_name(*instance));
                let line = format!("{} free={free}", self.lifecycle("launch", *instance));
                self.log(now, line);
            }
            JournalRecord::StopRequested { instance, reason } => {
                self.stats.since.insert(*instance, now);
                let line = format!("{} reason={reason:?}", self.lifecycle("stop", *instance));
                self.log(now, line);
            }
            JournalRecord::InstanceStopped { instance } => {
                self.stats.since.remove(instance);
                let mut line = self.lifecycle("stopped", *instance);
                // How it ended, when its agent said (`crashed (exit 137)`).
                let slot = d.slot_name(instance.slot);
                if let Some(exit) = self
                    .stats
                    .slots
                    .get(&slot)
                    .and_then(|h| h.last_exit.as_ref())
                    .filter(|e| e.generation == instance.generation.0 && e.at == now.0)
                {
                    let words = self.processes.lock().ok().and_then(|t| {
                        t.exit_words(tally_core::HostId(exit.host), *instance)
                            .map(str::to_owned)
                    });
                    line = match words {
                        Some(w) => format!("{line} {} ({w})", exit.what),
                        None => format!("{line} {}", exit.what),
                    };
                }
                self.log(now, line);
            }
            JournalRecord::BreakerSet { app, breaker } => {
                let name = d
                    .config
                    .app_names()
                    .get(app.index())
                    .map_or(String::new(), |n| (*n).to_owned());
                let what = match breaker {
                    Breaker::Closed { .. } => "closed".to_string(),
                    Breaker::Open { manual: true, .. } => "opened by an operator".into(),
                    Breaker::Open { .. } => "open: its boots keep failing".into(),
                    Breaker::HalfOpen { probe: None } => "half-open: one probe may launch".into(),
                    Breaker::HalfOpen { probe: Some(p) } => format!(
                        "half-open: probing with slot={} generation={}",
                        d.slot_name(p.slot),
                        p.generation.0
                    ),
                };
                self.log(now, format!("breaker of app {name} {what}"));
            }
            JournalRecord::FleetBreakerSet { breaker } => {
                let what = match breaker {
                    FleetBreaker::Closed { failing, .. } if failing.is_empty() => {
                        "closed".to_string()
                    }
                    FleetBreaker::Closed { failing, .. } => {
                        format!("closed, {} apps failing in the window", failing.len())
                    }
                    FleetBreaker::Open { manual: true, .. } => "opened by an operator".into(),
                    FleetBreaker::Open { .. } => "open: boots of many apps keep failing".into(),
                    FleetBreaker::HalfOpen { probe: None, .. } => {
                        "half-open: one probe may launch".into()
                    }
                    FleetBreaker::HalfOpen { probe: Some(p), .. } => format!(
                        "half-open: probing with slot={} generation={}",
                        d.slot_name(p.slot),
                        p.generation.0
                    ),
                };
                self.log(now, format!("fleet breaker {what}"));
            }
            JournalRecord::LockdownSet { on } => {
                self.log(now, format!("lockdown {}", if *on { "on" } else { "off" }));
            }
            JournalRecord::TermBegan { term } => {
                self.log(now, format!("leading in {term}"));
            }
            JournalRecord::PauseSet { host, paused } => {
                let at = host.map_or("everywhere".to_string(), |h| h.to_string());
                let what = if *paused { "paused" } else { "resumed" };
                self.log(now, format!("launches {what} {at}"));
            }
            JournalRecord::FormationSet {
                process_type,
                count,
            } => {
                let line = format!("formation {}={count}", d.type_name(*process_type));
                self.log(now, line);
            }
            JournalRecord::BootSeenDone { .. }
            | JournalRecord::HighWaterRaised { .. }
            | JournalRecord::StopCancelled { .. }
            | JournalRecord::FreeLaunchGranted { .. }
            | JournalRecord::BudgetSet { .. } => {}
        }
    }

    fn observe_note(&mut self, now: Tick, d: &Deployment, note: Note) {
        match note {
            Note::BootSucceeded { instance } => {
                self.stats.since.insert(instance, now);
                self.slot(instance.slot).last = format!("{} up", d.instance_name(instance));
                let line = self.lifecycle("up", instance);
                self.log(now, line);
            }
            Note::BootTimedOut { instance } => {
                let h = self.slot(instance.slot);
                h.boot_timeouts += 1;
                h.last = format!("{} boot timed out", d.instance_name(instance));
                let line = self.lifecycle("boot-timeout", instance);
                self.log(now, line);
            }
            Note::LeaseExpired { instance } => {
                self.stats.leases_expired += 1;
                let line = self.lifecycle("lease-expired", instance);
                self.log(now, line);
            }
            Note::PhantomReaped { instance } => {
                self.stats.phantoms_reaped += 1;
                let line = self.lifecycle("phantom-reaped", instance);
                self.log(now, line);
            }
            Note::RetryRefused { slot } => {
                let h = self.slot(slot);
                h.retries_refused += 1;
                h.last = format!("{} relaunch refused: retry budget empty", d.slot_name(slot));
            }
            Note::LockdownRefused => self.stats.lockdown_refusals += 1,
            Note::ProbeSpent => self.log(now, "probe relaunch spent".into()),
            // Once per run of dropped inputs: a deposed or stalled leader
            // drops every report its links still hold.
            Note::NotLeading => {
                self.stats.not_leading_drops += 1;
                if !self.dropping {
                    self.dropping = true;
                    self.log(
                        now,
                        "inputs dropped: not leading (outside the leadership guard, or deposed); nothing is done until the store confirms the leadership again".into(),
                    );
                }
            }
            Note::ReportVersionMismatch
            | Note::StaleExit
            | Note::InstanceStopped { .. }
            | Note::BootFailureCounted { .. } => {}
        }
    }

    /// `WHAT slot=web.1 generation=3 host=host0`: one lifecycle log line.
    fn lifecycle(&self, what: &str, instance: tally_core::InstanceId) -> String {
        format!(
            "{what} slot={} generation={} host={}",
            self.deployment.slot_name(instance.slot),
            instance.generation.0,
            self.host_name(instance)
        )
    }

    /// Where `instance` runs: the ledger's placement, or, for one this
    /// step removed, the host its `Note::InstanceStopped` named.
    fn host_name(&self, instance: tally_core::InstanceId) -> String {
        let gone = || {
            self.gone
                .iter()
                .find(|(i, _)| *i == instance)
                .map(|(_, h)| *h)
        };
        self.manager
            .host_of(instance)
            .or_else(gone)
            .map_or("-".to_string(), |h| h.to_string())
    }
}

impl Machine for ManagerMachine {
    type Input = ManagerInput;
    type Effect = Effect;
    type Refusal = Rejected;

    fn step(
        &mut self,
        now: Tick,
        input: ManagerInput,
        out: &mut Vec<Effect>,
    ) -> Result<(), Rejected> {
        let start = out.len();
        let seen = input.clone();
        let cfg = Arc::clone(&self.deployment);
        let result = self.manager.step(&cfg.config, now, input, out);
        let effects = out.get(start..).unwrap_or(&[]).to_vec();
        self.observe(now, &seen, &effects);
        result
    }

    fn appended(&mut self, now: Tick, effects: &[Effect]) {
        // The append was sent at `now` or later: the earliest send time is
        // the conservative one (a no-op in the core but under a mutation).
        if effects.iter().any(|e| matches!(e, Effect::Persist(_))) {
            self.manager.append_committed(&self.deployment.config, now);
        }
    }

    fn committed(&mut self) {
        for line in self.pending.drain(..) {
            tracing::info!(target: "tally::lifecycle", "{line}");
        }
    }
}
