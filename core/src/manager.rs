//! The manager: the ledger of every instance that may still be alive, and
//! the decisions made from it (launch, stop, lease, budget, breaker, lockdown).
//!
//! Sans-IO: [`Manager::step`] takes the time and one input and appends
//! effects to a buffer. It never reads a clock, never panics, and changes its
//! durable state only through journal records emitted before the effects
//! that depend on them.

use crate::breaker::{Breaker, BreakerChange};
use crate::budget::Budget;
use crate::config::{Config, ConfigError, Mutation};
use crate::ids::{Generation, HostId, InstanceId, SlotId, Tick, TypeId};
use crate::journal::{Durable, DurableInstance, JournalRecord, StopReason};
use crate::message::{AgentReport, ExitOutcome, ManagerReply, PROTOCOL_VERSION, RunPhase};
use crate::vacancy::{Cache, Vacancies};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The manager's view of an instance's life (DESIGN.md, "Ledger lifecycle").
///
/// `Stopped` is the absence from the ledger of an instance at or below its
/// slot's high water: see [`Manager::phase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Launch sent; not yet reported up.
    Launching,
    /// Reported up.
    Up,
    /// Asked to stop; still alive until proven dead.
    Stopping(StopReason),
    /// Host silent, or the manager restarted since it last heard.
    Unknown,
    /// Proven dead; no longer in the ledger.
    Stopped,
}

/// What the manager knows of an instance and forgets on restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Liveness {
    /// Launching (with its boot deadline), up, or unknown.
    pub view: LiveView,
    /// Manager time after which the instance's lease has certainly expired.
    pub lease_deadline: Tick,
}

/// Liveness apart from any stop request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveView {
    /// Not yet up; timed out at `boot_deadline`.
    Launching {
        /// When the boot times out.
        boot_deadline: Tick,
    },
    /// Reported up.
    Up,
    /// Not heard of lately.
    Unknown,
}

/// Per-slot relaunch spacing; volatile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Backoff {
    /// Consecutive failures.
    pub attempts: u8,
    /// No relaunch before this time.
    pub not_before: Tick,
}

/// A user's command on app management.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum UserCommand {
    /// Set the desired count of a type (`heroku ps:scale web=4`).
    Scale {
        /// The type.
        process_type: TypeId,
        /// The new count.
        count: u16,
    },
    /// Replace the running instances of one type, or of all.
    Restart {
        /// The type, or `None` for every type.
        process_type: Option<TypeId>,
    },
    /// A new release: replace every instance.
    Deploy,
}

/// An operator's flow control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum OperatorCommand {
    /// Lockdown on or off.
    Lockdown {
        /// On.
        on: bool,
    },
    /// Open the breaker by hand.
    BreakerOpen,
    /// Close the breaker by hand.
    BreakerClose,
    /// Pause launches on one host, or everywhere.
    PauseLaunches {
        /// The host, or `None` for all.
        host: Option<HostId>,
    },
    /// Resume launches on one host, or everywhere.
    ResumeLaunches {
        /// The host, or `None` for all.
        host: Option<HostId>,
    },
}

/// One input to the manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "input")]
pub enum ManagerInput {
    /// Time passed: check boot timeouts, leases, probe credit, breaker.
    Tick,
    /// An agent's report (inventory and lease request) arrived.
    ReportReceived(AgentReport),
    /// A user's command.
    User(UserCommand),
    /// An operator's command.
    Operator(OperatorCommand),
}

/// An alert for the operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "alert")]
pub enum Alert {
    /// The breaker opened on its own: boots are failing.
    BreakerTripped,
    /// An agent runs an instance above its slot's high-water generation:
    /// the journal lost records. The high water was raised (journaled)
    /// before any launch of the slot, and the instance is reaped.
    GenerationAboveHighWater {
        /// The instance reported.
        instance: InstanceId,
    },
}

/// Something worth counting that changed no rule: the evidence for the
/// checker's `sometimes` properties and the shell's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "note")]
pub enum Note {
    /// A report from an unsupported protocol version was dropped.
    ReportVersionMismatch,
    /// An exit for an instance no longer in the ledger (late or duplicated).
    StaleExit,
    /// An unknown running instance was told to stop.
    PhantomReaped {
        /// The instance.
        instance: InstanceId,
    },
    /// A boot outlasted its timeout.
    BootTimedOut {
        /// The instance.
        instance: InstanceId,
    },
    /// A lease expired: the instance is proven dead.
    LeaseExpired {
        /// The instance.
        instance: InstanceId,
    },
    /// A relaunch was refused: no token and no probe credit.
    RetryRefused {
        /// The slot.
        slot: SlotId,
    },
    /// An instance booted for the first time.
    BootSucceeded {
        /// The instance.
        instance: InstanceId,
    },
    /// A user command was refused because of lockdown.
    LockdownRefused,
    /// A relaunch was paid by the probe credit.
    ProbeSpent,
}

/// What the manager asks its shell to do, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum Effect {
    /// Make this record durable before performing any later effect.
    Persist(JournalRecord),
    /// Send a reply to an agent.
    Send(ManagerReply),
    /// Raise an alert.
    Alert(Alert),
    /// Count this.
    Note(Note),
}

/// The kind of user command refused by lockdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    /// Scale down.
    ScaleDown,
    /// Restart.
    Restart,
    /// Deploy.
    Deploy,
}

impl std::fmt::Display for CommandKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommandKind::ScaleDown => "scale down",
            CommandKind::Restart => "restart",
            CommandKind::Deploy => "deploy",
        })
    }
}

/// A user's request the manager refuses; the state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Rejected {
    /// No such process type.
    #[error("unknown process type {process_type:?}: it is not in the configuration")]
    UnknownProcessType {
        /// The id given.
        process_type: TypeId,
    },
    /// A count over the configured maximum.
    #[error("cannot scale type {process_type:?} to {requested}: the configured maximum is {max}")]
    ScaleAboveMax {
        /// The type.
        process_type: TypeId,
        /// The count asked for.
        requested: u16,
        /// The maximum.
        max: u16,
    },
    /// A singleton scaled above one.
    #[error(
        "cannot scale singleton type {process_type:?} to {requested}: a singleton runs at most 1"
    )]
    SingletonAboveOne {
        /// The type.
        process_type: TypeId,
        /// The count asked for.
        requested: u16,
    },
    /// Lockdown is on.
    #[error(
        "{command} refused: app management is locked down; an operator must turn lockdown off first"
    )]
    LockedDown {
        /// What was refused.
        command: CommandKind,
    },
}

/// The derived indexes: vacant slots, deadlines (per host), crowded slots.
pub(crate) type Indexes = (BTreeSet<SlotId>, BTreeMap<HostId, Tick>, BTreeSet<SlotId>);

/// The derived indexes, borrowed.
pub(crate) type IndexesRef<'a> = (
    &'a BTreeSet<SlotId>,
    &'a BTreeMap<HostId, Tick>,
    &'a BTreeSet<SlotId>,
);

/// One ledger entry, kept with the other entries of its host: the volatile
/// half (`live`) and a copy of the durable half (`d`, kept equal to
/// `durable.instances[id]` by `persist`), so that a report reads only its
/// host's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Entry {
    id: InstanceId,
    d: DurableInstance,
    live: Liveness,
}

/// The manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manager {
    durable: Durable,
    /// The ledger by host, indexed by host id: each host's entries sorted by
    /// instance, no empty list at the end (so equal ledgers compare equal).
    /// Holds the volatile half and a copy of the durable half (checked
    /// against `durable` by `check_invariants`).
    ledger: Vec<Vec<Entry>>,
    /// Per-slot relaunch spacing, by type then index; a slot past the end
    /// has the default. Trimmed of trailing defaults (so equal spacings
    /// compare equal) and dense because every launch and failure reads it.
    backoff: Vec<Vec<Backoff>>,
    /// Slots of the formation with nothing occupying them; derived.
    vacant: BTreeSet<SlotId>,
    /// `vacant` split by backoff, for `launch_on`; a cache (see `vacancy`).
    #[serde(skip)]
    launchable: Cache<Vacancies>,
    /// Slots with two or more instances in the ledger; derived.
    crowded: BTreeSet<SlotId>,
    /// Every host with ledger entries keyed by the earliest tick at which
    /// `on_tick` has work for one of them (see `due_at`); derived, so a tick
    /// visits only hosts with due entries. `host_due` is the same, by host.
    deadlines: BTreeSet<(Tick, HostId)>,
    host_due: BTreeMap<HostId, Tick>,
    /// Hosts whose entries changed in this step: their deadline is brought
    /// up to date at the end of the step. Empty between steps.
    #[serde(skip)]
    dirty: Vec<HostId>,
    rng: u64,
}

impl Manager {
    /// A new manager with the configured initial formation. Emits the
    /// records that grant the initial free launches.
    pub fn new(cfg: &Config, now: Tick, out: &mut Vec<Effect>) -> Result<Manager, ConfigError> {
        cfg.validate()?;
        let mut m = Manager::recover(cfg, Durable::genesis(cfg, now), now)?;
        for (i, p) in cfg.process_types.iter().enumerate() {
            let process_type = TypeId(u16::try_from(i).unwrap_or(u16::MAX));
            m.set_formation(cfg, process_type, p.count_initial, out);
        }
        Ok(m)
    }

    /// A manager rebuilt from its journal (already folded into `durable`)
    /// at `now`. Every instance is treated as leased for a full expiry period
    /// from now, since the grant times were not journaled.
    pub fn recover(cfg: &Config, durable: Durable, now: Tick) -> Result<Manager, ConfigError> {
        cfg.validate()?;
        let mut durable = durable;
        durable.formation.resize(cfg.process_types.len(), 0);
        if cfg.mutations.has(Mutation::BudgetNotJournaled) {
            durable.budget.tokens_milli = Budget::full(cfg, now).tokens_milli;
        }
        if cfg.mutations.has(Mutation::ProbeNotJournaled) {
            durable.budget.probe_ready = true;
        }
        let lease_deadline = now.plus(cfg.lease_expiry_ticks());
        let live = Liveness {
            view: LiveView::Unknown,
            lease_deadline,
        };
        let mut ledger: Vec<Vec<Entry>> = Vec::new();
        for (id, d) in &durable.instances {
            // In instance order, so each host's entries come sorted.
            let i = usize::from(d.host.0);
            if ledger.len() <= i {
                ledger.resize_with(i + 1, Vec::new);
            }
            if let Some(v) = ledger.get_mut(i) {
                v.push(Entry {
                    id: *id,
                    d: *d,
                    live,
                });
            }
        }
        let mut m = Manager {
            durable,
            ledger,
            backoff: Vec::new(),
            vacant: BTreeSet::new(),
            launchable: Cache::default(),
            crowded: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            host_due: BTreeMap::new(),
            dirty: Vec::new(),
            rng: cfg.seed,
        };
        m.vacant = m.compute_vacant(cfg);
        m.crowded = m.compute_crowded();
        m.host_due = m.compute_host_due(cfg);
        m.deadlines = m.host_due.iter().map(|(h, t)| (*t, *h)).collect();
        Ok(m)
    }

    /// Applies one input at `now`, appending effects to `out`.
    ///
    /// Facts (ticks, reports) never fail. A refused user command returns
    /// `Err` and leaves the state exactly as it was.
    pub fn step(
        &mut self,
        cfg: &Config,
        now: Tick,
        input: ManagerInput,
        out: &mut Vec<Effect>,
    ) -> Result<(), Rejected> {
        let result = match input {
            ManagerInput::Tick => {
                self.on_tick(cfg, now, out);
                Ok(())
            }
            ManagerInput::ReportReceived(report) => {
                self.on_report(cfg, now, &report, out);
                Ok(())
            }
            ManagerInput::User(command) => self.on_user(cfg, now, command, out),
            ManagerInput::Operator(command) => {
                self.on_operator(cfg, now, command, out);
                Ok(())
            }
        };
        if let Err(Rejected::LockedDown { .. }) = result {
            out.push(Effect::Note(Note::LockdownRefused));
        }
        self.flush_due(cfg);
        // Mutations are deliberate bugs: their broken invariants are for the
        // checker to find, not for a debug assertion to stop.
        debug_assert!(
            !cfg.mutations.is_empty() || crate::invariants::check_manager(self, cfg).is_ok(),
            "manager invariant broken: {:?}",
            crate::invariants::check_manager(self, cfg)
        );
        result
    }

    // ----- queries -----

    /// The durable state: what a restart would recover.
    #[must_use]
    pub fn durable(&self) -> &Durable {
        &self.durable
    }

    /// The ledger: every instance that may still be alive, with what the
    /// manager knows of its liveness.
    pub fn ledger(&self) -> impl Iterator<Item = (InstanceId, &DurableInstance, &Liveness)> {
        self.durable
            .instances
            .iter()
            .filter_map(|(id, d)| self.entry(d.host, *id).map(|e| (*id, d, &e.live)))
    }

    /// Number of instances in the ledger.
    #[must_use]
    pub fn ledger_len(&self) -> usize {
        self.durable.instances.len()
    }

    /// The phase of `instance`: `Stopped` once it has left the ledger,
    /// `None` if it was never launched.
    #[must_use]
    pub fn phase(&self, instance: InstanceId) -> Option<Phase> {
        match (
            self.durable.instances.get(&instance),
            self.liveness(instance),
        ) {
            (Some(d), Some(l)) => Some(phase_of(d, &l)),
            _ => {
                let hw = self.durable.high_water.get(&instance.slot)?;
                (instance.generation <= *hw).then_some(Phase::Stopped)
            }
        }
    }

    /// The host an instance in the ledger was placed on.
    #[must_use]
    pub fn host_of(&self, instance: InstanceId) -> Option<HostId> {
        self.durable.instances.get(&instance).map(|d| d.host)
    }

    /// Desired count of `process_type`.
    #[must_use]
    pub fn desired(&self, process_type: TypeId) -> u16 {
        self.durable
            .formation
            .get(usize::from(process_type.0))
            .copied()
            .unwrap_or(0)
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> Breaker {
        self.durable.breaker
    }

    /// Whether lockdown is on.
    #[must_use]
    pub fn lockdown(&self) -> bool {
        self.durable.lockdown
    }

    /// Per-slot backoff, for display.
    #[must_use]
    pub fn backoff(&self, slot: SlotId) -> Backoff {
        self.backoff
            .get(usize::from(slot.process_type.0))
            .and_then(|v| v.get(usize::from(slot.index)))
            .copied()
            .unwrap_or_default()
    }

    /// Slots of the formation with nothing occupying them.
    pub fn vacant_slots(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.vacant.iter().copied()
    }

    /// Boots on `host` not yet confirmed ended (DESIGN.md shortcut 11):
    /// `Launching`, or stopping/unknown without the "boot seen done" mark.
    #[must_use]
    pub fn boots_unconfirmed(&self, cfg: &Config, host: HostId) -> usize {
        self.count_boots(host, cfg.mutations.has(Mutation::AdmissionCountsLaunching))
    }

    /// Boots on `host` not yet confirmed ended, by the shipped rule whatever
    /// the mutations: what the admission invariant is checked against.
    #[must_use]
    pub fn boots_unconfirmed_shipped(&self, host: HostId) -> usize {
        self.count_boots(host, false)
    }

    fn count_boots(&self, host: HostId, only_launching: bool) -> usize {
        self.entries_on(host)
            .iter()
            .filter(|e| match phase_of(&e.d, &e.live) {
                Phase::Launching => true,
                Phase::Stopping(_) | Phase::Unknown => !only_launching && !e.d.boot_seen_done,
                Phase::Up | Phase::Stopped => false,
            })
            .count()
    }

    /// Instances in the ledger placed on `host`.
    pub fn instances_on(&self, host: HostId) -> impl Iterator<Item = InstanceId> + '_ {
        self.entries_on(host).iter().map(|e| e.id)
    }

    /// The ledger entries of `host`, sorted by instance.
    fn entries_on(&self, host: HostId) -> &[Entry] {
        self.ledger
            .get(usize::from(host.0))
            .map_or(&[], Vec::as_slice)
    }

    /// The hosts with ledger entries, with their entries.
    fn hosts(&self) -> impl Iterator<Item = (HostId, &[Entry])> {
        self.ledger
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(h, v)| (HostId(u16::try_from(h).unwrap_or(u16::MAX)), v.as_slice()))
    }

    /// The position of `instance` among `host`'s entries, if it is in the
    /// ledger on `host`; tried first at `hint` (a report lists its instances
    /// in order, so the next one is usually just after the last).
    fn locate(&self, host: HostId, instance: InstanceId, hint: usize) -> Option<usize> {
        let v = self.ledger.get(usize::from(host.0))?;
        if v.get(hint).is_some_and(|e| e.id == instance) {
            return Some(hint);
        }
        v.binary_search_by_key(&instance, |e| e.id).ok()
    }

    /// The entry of `instance` if it is in the ledger on `host`.
    fn entry(&self, host: HostId, instance: InstanceId) -> Option<&Entry> {
        let i = self.locate(host, instance, usize::MAX)?;
        self.ledger.get(usize::from(host.0))?.get(i)
    }

    /// The durable half of `instance` if it is in the ledger on `host`: the
    /// same as `durable.instances[instance]` when placed there, read from
    /// the host's short list instead of the whole ledger's map.
    fn durable_on(&self, host: HostId, instance: InstanceId) -> Option<DurableInstance> {
        self.entry(host, instance).map(|e| e.d)
    }

    fn entry_mut(&mut self, host: HostId, instance: InstanceId, hint: usize) -> Option<&mut Entry> {
        let i = self.locate(host, instance, hint)?;
        self.ledger.get_mut(usize::from(host.0))?.get_mut(i)
    }

    /// The liveness of `instance`, if it is in the ledger.
    fn liveness(&self, instance: InstanceId) -> Option<Liveness> {
        let d = self.durable.instances.get(&instance)?;
        self.entry(d.host, instance).map(|e| e.live)
    }

    /// Instances in the ledger of `slot`.
    pub fn instances_of(&self, slot: SlotId) -> impl Iterator<Item = InstanceId> + '_ {
        let lo = InstanceId {
            slot,
            generation: Generation(0),
        };
        let hi = InstanceId {
            slot,
            generation: Generation(u32::MAX),
        };
        self.durable.instances.range(lo..=hi).map(|(id, _)| *id)
    }

    /// Recomputes the derived indexes from scratch (for invariant checks).
    pub(crate) fn recomputed_indexes(&self, cfg: &Config) -> Indexes {
        (
            self.compute_vacant(cfg),
            self.compute_host_due(cfg),
            self.compute_crowded(),
        )
    }

    /// The derived indexes; `None` when `deadlines` and `host_due` disagree
    /// or a step left a host's deadline pending.
    pub(crate) fn indexes(&self) -> Option<IndexesRef<'_>> {
        let same = self.dirty.is_empty()
            && self.deadlines.len() == self.host_due.len()
            && self
                .deadlines
                .iter()
                .all(|(t, h)| self.host_due.get(h) == Some(t));
        same.then_some((&self.vacant, &self.host_due, &self.crowded))
    }

    /// The earliest deadline of each host's entries.
    fn compute_host_due(&self, cfg: &Config) -> BTreeMap<HostId, Tick> {
        self.hosts()
            .filter_map(|(h, v)| Some((h, min_due(cfg, v)?)))
            .collect()
    }

    /// Marks `host`'s deadline for recomputation at the end of the step.
    fn touch(&mut self, host: HostId) {
        if self.dirty.last() != Some(&host) {
            self.dirty.push(host);
        }
    }

    /// Brings the deadlines of the hosts changed in this step up to date.
    fn flush_due(&mut self, cfg: &Config) {
        let dirty = std::mem::take(&mut self.dirty);
        for host in &dirty {
            let due = min_due(cfg, self.entries_on(*host));
            let old = self.host_due.get(host).copied();
            if old == due {
                continue;
            }
            if let Some(t) = old {
                self.deadlines.remove(&(t, *host));
                self.host_due.remove(host);
            }
            if let Some(t) = due {
                self.deadlines.insert((t, *host));
                self.host_due.insert(*host, t);
            }
        }
        // Keep the allocation for the next step.
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// Whether the by-host ledger is well formed and its copy of the durable
    /// half equals `durable` (same instances, same hosts, same fields).
    pub(crate) fn by_host_consistent(&self) -> bool {
        if self.ledger.last().is_some_and(Vec::is_empty) {
            return false;
        }
        let mut all: Vec<(InstanceId, DurableInstance)> = Vec::new();
        for (host, v) in self.hosts() {
            if !v.windows(2).all(|w| matches!(w, [a, b] if a.id < b.id)) {
                return false;
            }
            if v.iter().any(|e| e.d.host != host) {
                return false;
            }
            all.extend(v.iter().map(|e| (e.id, e.d)));
        }
        // One sorted walk against `durable` rather than a lookup per entry.
        all.sort_unstable_by_key(|(id, _)| *id);
        all.len() == self.durable.instances.len()
            && all
                .iter()
                .zip(&self.durable.instances)
                .all(|((a, da), (b, db))| a == b && da == db)
    }

    // ----- the volatile ledger: every change keeps `deadlines` in step -----

    /// Sets the liveness of `instance` (just launched on `host`, already in
    /// `durable`), adding it to the ledger if absent.
    fn set_liveness(
        &mut self,
        host: HostId,
        (instance, d): (InstanceId, DurableInstance),
        live: Liveness,
    ) {
        let hi = usize::from(host.0);
        if self.ledger.len() <= hi {
            self.ledger.resize_with(hi + 1, Vec::new);
        }
        let Some(v) = self.ledger.get_mut(hi) else {
            return;
        };
        let entry = Entry {
            id: instance,
            d,
            live,
        };
        match v.binary_search_by_key(&instance, |e| e.id) {
            Ok(i) => {
                if let Some(e) = v.get_mut(i) {
                    *e = entry;
                }
            }
            Err(i) => v.insert(i, entry),
        }
        self.touch(host);
        self.refresh_crowded(instance.slot);
    }

    /// Changes the liveness of `instance` through `f`, if it is in the ledger
    /// on `host` (probably at `hint` there). Returns whether it was.
    fn update_liveness_on(
        &mut self,
        host: HostId,
        instance: InstanceId,
        hint: usize,
        f: impl FnOnce(&mut Liveness),
    ) -> bool {
        let Some(e) = self.entry_mut(host, instance, hint) else {
            return false;
        };
        let old = e.live;
        f(&mut e.live);
        if e.live != old {
            // The host's deadline is recomputed once at the end of the step.
            self.touch(host);
        }
        true
    }

    /// Takes `instance`, placed on `host`, out of the ledger.
    fn remove_liveness(&mut self, host: HostId, instance: InstanceId) {
        let Some(v) = self.ledger.get_mut(usize::from(host.0)) else {
            return;
        };
        let Ok(i) = v.binary_search_by_key(&instance, |e| e.id) else {
            return;
        };
        v.remove(i);
        while self.ledger.last().is_some_and(Vec::is_empty) {
            self.ledger.pop();
        }
        self.touch(host);
        self.refresh_crowded(instance.slot);
    }

    /// Every instance of the volatile half, in order.
    pub(crate) fn liveness_keys(&self) -> Vec<InstanceId> {
        let mut keys: Vec<InstanceId> = self.ledger.iter().flatten().map(|e| e.id).collect();
        keys.sort_unstable();
        keys
    }

    fn refresh_crowded(&mut self, slot: SlotId) {
        if self.instances_of(slot).nth(1).is_some() {
            self.crowded.insert(slot);
        } else {
            self.crowded.remove(&slot);
        }
    }

    fn compute_crowded(&self) -> BTreeSet<SlotId> {
        let mut c = BTreeSet::new();
        let mut last: Option<SlotId> = None;
        for id in self.durable.instances.keys() {
            if last == Some(id.slot) {
                c.insert(id.slot);
            }
            last = Some(id.slot);
        }
        c
    }

    // ----- durable changes: every one goes through a record -----

    fn persist(&mut self, record: JournalRecord, out: &mut Vec<Effect>) {
        self.durable.apply(&record);
        match record {
            JournalRecord::BootSeenDone { instance }
            | JournalRecord::StopRequested { instance, .. }
            | JournalRecord::StopCancelled { instance } => self.sync_entry(instance),
            // Launches and removals change the by-host ledger themselves.
            _ => {}
        }
        out.push(Effect::Persist(record));
    }

    /// Copies the durable half of `instance` into its ledger entry.
    fn sync_entry(&mut self, instance: InstanceId) {
        let Some(d) = self.durable.instances.get(&instance).copied() else {
            return;
        };
        if let Some(e) = self.entry_mut(d.host, instance, usize::MAX) {
            e.d = d;
        }
    }

    fn set_budget(&mut self, budget: Budget, out: &mut Vec<Effect>) {
        if budget != self.durable.budget {
            self.persist(JournalRecord::BudgetSet { budget }, out);
        }
    }

    fn set_breaker(&mut self, breaker: Breaker, change: BreakerChange, out: &mut Vec<Effect>) {
        if change == BreakerChange::None {
            return;
        }
        self.persist(JournalRecord::BreakerSet { breaker }, out);
        if change == BreakerChange::Tripped {
            out.push(Effect::Alert(Alert::BreakerTripped));
        }
    }

    fn set_formation(
        &mut self,
        cfg: &Config,
        process_type: TypeId,
        count: u16,
        out: &mut Vec<Effect>,
    ) {
        let old = self.desired(process_type);
        if old != count {
            self.persist(
                JournalRecord::FormationSet {
                    process_type,
                    count,
                },
                out,
            );
        }
        for index in old..count {
            let slot = SlotId {
                process_type,
                index,
            };
            self.grant_free_launch(slot, out);
        }
        self.refresh_type(cfg, process_type, old.max(count));
    }

    fn grant_free_launch(&mut self, slot: SlotId, out: &mut Vec<Effect>) {
        if !self.durable.free_launches.contains(&slot) {
            self.persist(JournalRecord::FreeLaunchGranted { slot }, out);
        }
    }

    /// Proven dead: the instance leaves the ledger.
    fn remove(
        &mut self,
        cfg: &Config,
        now: Tick,
        (host, instance): (HostId, InstanceId),
        out: &mut Vec<Effect>,
    ) {
        let Some(d) = self.durable_on(host, instance) else {
            return;
        };
        self.persist(JournalRecord::InstanceStopped { instance }, out);
        self.remove_liveness(d.host, instance);
        if !d.boot_seen_done
            && matches!(self.durable.breaker, Breaker::HalfOpen { probe: Some(p) } if p == instance)
        {
            // A probe that never booted counts as a failed probe.
            let mut b = self.durable.breaker;
            let change = b.on_failure(cfg, now, instance);
            self.set_breaker(b, change, out);
        }
        self.refresh_slot(cfg, instance.slot);
    }

    fn request_stop(&mut self, instance: InstanceId, reason: StopReason, out: &mut Vec<Effect>) {
        let current = self.durable.instances.get(&instance).and_then(|d| d.stop);
        if current.is_none() {
            self.persist(JournalRecord::StopRequested { instance, reason }, out);
        }
    }

    // ----- derived indexes -----

    /// Whether an instance keeps its slot occupied: any instance of a
    /// singleton slot (rule 3), a live (not stopping) one of a scalable slot.
    fn occupies(&self, cfg: &Config, instance: InstanceId) -> bool {
        if cfg.is_singleton(instance.slot.process_type) {
            return true;
        }
        self.durable
            .instances
            .get(&instance)
            .is_some_and(|d| d.stop.is_none())
    }

    fn slot_is_vacant(&self, cfg: &Config, slot: SlotId) -> bool {
        slot.index < self.desired(slot.process_type)
            && !self.instances_of(slot).any(|id| self.occupies(cfg, id))
    }

    fn refresh_slot(&mut self, cfg: &Config, slot: SlotId) {
        if self.slot_is_vacant(cfg, slot) {
            self.add_vacant(slot);
        } else {
            self.remove_vacant(slot);
        }
    }

    // `vacant` changes only here, so `launchable` follows it.
    fn add_vacant(&mut self, slot: SlotId) {
        if self.vacant.insert(slot) {
            let not_before = self.backoff(slot).not_before;
            self.launchable.0.add(slot, not_before);
        }
    }

    fn remove_vacant(&mut self, slot: SlotId) {
        if self.vacant.remove(&slot) {
            let not_before = self.backoff(slot).not_before;
            self.launchable.0.remove(slot, not_before);
        }
    }

    /// Changes `slot`'s backoff through `f`, keeping `launchable` in step.
    fn set_backoff(&mut self, slot: SlotId, f: impl FnOnce(&mut Backoff)) {
        let old = self.backoff(slot);
        let mut new = old;
        f(&mut new);
        if new == old {
            return;
        }
        let (t, i) = (usize::from(slot.process_type.0), usize::from(slot.index));
        if self.backoff.len() <= t {
            self.backoff.resize_with(t + 1, Vec::new);
        }
        if let Some(v) = self.backoff.get_mut(t) {
            if v.len() <= i {
                v.resize(i + 1, Backoff::default());
            }
            if let Some(b) = v.get_mut(i) {
                *b = new;
            }
            while v.last() == Some(&Backoff::default()) {
                v.pop();
            }
        }
        while self.backoff.last().is_some_and(Vec::is_empty) {
            self.backoff.pop();
        }
        if old.not_before != new.not_before && self.vacant.contains(&slot) {
            self.launchable.0.remove(slot, old.not_before);
            self.launchable.0.add(slot, new.not_before);
        }
    }

    /// Whether the launch index agrees with `vacant` and the backoffs.
    pub(crate) fn launchable_consistent(&self) -> bool {
        self.launchable
            .0
            .check(&self.vacant, |s| self.backoff(s).not_before)
    }

    fn refresh_type(&mut self, cfg: &Config, process_type: TypeId, upto: u16) {
        for index in 0..upto {
            self.refresh_slot(
                cfg,
                SlotId {
                    process_type,
                    index,
                },
            );
        }
    }

    /// Every slot for which `slot_is_vacant` holds, in one walk of the
    /// formation and the ledger together (both in slot order).
    fn compute_vacant(&self, cfg: &Config) -> BTreeSet<SlotId> {
        let mut occupied = self
            .durable
            .instances
            .iter()
            .filter(|(id, d)| cfg.is_singleton(id.slot.process_type) || d.stop.is_none())
            .map(|(id, _)| id.slot)
            .peekable();
        let mut v = Vec::new();
        for (t, count) in self.durable.formation.iter().enumerate() {
            let process_type = TypeId(u16::try_from(t).unwrap_or(u16::MAX));
            for index in 0..*count {
                let slot = SlotId {
                    process_type,
                    index,
                };
                while occupied.next_if(|s| *s < slot).is_some() {}
                if occupied.peek() != Some(&slot) {
                    v.push(slot);
                }
            }
        }
        // Sorted already: built in bulk.
        v.into_iter().collect()
    }

    // ----- time -----

    fn on_tick(&mut self, cfg: &Config, now: Tick, out: &mut Vec<Effect>) {
        let mut budget = self.durable.budget;
        budget.on_tick(cfg, now);
        self.set_budget(budget, out);
        let mut breaker = self.durable.breaker;
        let change = breaker.on_tick(cfg, now);
        self.set_breaker(breaker, change, out);

        // Only entries whose earliest deadline has come (on hosts that have
        // one); visited in instance order, each with its liveness as it was
        // before any was handled.
        let expiry = cfg.lease_expiry_ticks();
        let mut due: Vec<(InstanceId, Liveness, HostId)> = self
            .deadlines
            .range(..=(now, HostId(u16::MAX)))
            .flat_map(|(_, h)| self.entries_on(*h))
            .filter(|e| due_at(cfg, expiry, &e.live) <= now)
            .map(|e| (e.id, e.live, e.d.host))
            .collect();
        due.sort_unstable_by_key(|(id, _, _)| *id);
        for (instance, l, host) in due {
            if l.lease_deadline <= now {
                out.push(Effect::Note(Note::LeaseExpired { instance }));
                self.note_failure_if_unbooted(cfg, now, (host, instance), false, out);
                self.remove(cfg, now, (host, instance), out);
            } else if let LiveView::Launching { boot_deadline } = l.view {
                if boot_deadline <= now {
                    self.on_boot_timeout(cfg, now, (host, instance), out);
                }
            } else {
                self.update_liveness_on(host, instance, usize::MAX, |live| {
                    live.view = LiveView::Unknown;
                });
            }
        }
    }

    fn on_boot_timeout(
        &mut self,
        cfg: &Config,
        now: Tick,
        (host, instance): (HostId, InstanceId),
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Note(Note::BootTimedOut { instance }));
        self.note_failure_if_unbooted(cfg, now, (host, instance), true, out);
        if cfg.mutations.has(Mutation::TimeoutFreesSlot) {
            // The 2012 bug: a timeout is taken as proof of death.
            self.remove(cfg, now, (host, instance), out);
            return;
        }
        // Stays counted against admission until the agent confirms.
        self.update_liveness_on(host, instance, usize::MAX, |live| {
            live.view = LiveView::Unknown;
        });
        self.request_stop(instance, StopReason::BootTimedOut, out);
        self.refresh_slot(cfg, instance.slot);
    }

    /// Counts a failed boot (breaker when `breaker`, backoff always) unless the
    /// instance had booted or was being stopped at a user's request.
    fn note_failure_if_unbooted(
        &mut self,
        cfg: &Config,
        now: Tick,
        (host, instance): (HostId, InstanceId),
        breaker: bool,
        out: &mut Vec<Effect>,
    ) {
        let Some(d) = self.durable_on(host, instance) else {
            return;
        };
        if d.stop == Some(StopReason::UserRequested) {
            return;
        }
        if breaker && !d.boot_seen_done {
            let mut b = self.durable.breaker;
            let change = b.on_failure(cfg, now, instance);
            self.set_breaker(b, change, out);
        }
        if d.stop.is_none() {
            self.back_off(cfg, now, instance.slot);
        }
    }

    fn back_off(&mut self, cfg: &Config, now: Tick, slot: SlotId) {
        let jitter = self.next_jitter(cfg);
        self.set_backoff(slot, |b| {
            let shift = u32::from(b.attempts.min(32));
            let delay = cfg
                .budget
                .backoff_base_ticks
                .checked_shl(shift)
                .unwrap_or(u64::MAX)
                .min(cfg.budget.backoff_max_ticks);
            b.attempts = b.attempts.saturating_add(1);
            b.not_before = now.plus(delay.saturating_add(jitter));
        });
    }

    /// splitmix64 over the seed held in the state: deterministic jitter.
    fn next_jitter(&mut self, cfg: &Config) -> u64 {
        let span = cfg.budget.jitter_max_ticks;
        if span == 0 {
            return 0;
        }
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % span.saturating_add(1)
    }

    // ----- reports -----

    fn on_report(&mut self, cfg: &Config, now: Tick, report: &AgentReport, out: &mut Vec<Effect>) {
        if report.version != PROTOCOL_VERSION {
            out.push(Effect::Note(Note::ReportVersionMismatch));
            return;
        }
        let host = report.host;
        self.apply_exits(cfg, now, report, out);
        let mut reply = ManagerReply {
            version: PROTOCOL_VERSION,
            host,
            incarnation: report.incarnation,
            request_sent_at: report.sent_at,
            renew: Vec::with_capacity(report.running.len()),
            launch: Vec::new(),
            stop: Vec::new(),
        };
        if cfg.mutations.has(Mutation::AbsenceConfirmsDeath) {
            // Shortcut 3: an instance missing from a report taken as dead.
            let missing: Vec<InstanceId> = self
                .instances_on(host)
                .filter(|id| !report.running.iter().any(|r| r.instance == *id))
                .collect();
            for id in missing {
                self.remove(cfg, now, (host, id), out);
            }
        }
        let mut hint = 0;
        for r in &report.running {
            let at = (r.instance, r.phase, &mut hint);
            self.apply_running(cfg, now, host, at, &mut reply, out);
        }
        if cfg.mutations.has(Mutation::HostWideRenewal) {
            let all: Vec<InstanceId> = self.instances_on(host).collect();
            for id in all {
                self.renew(cfg, now, host, (id, usize::MAX), &mut reply);
            }
        }
        if !self.durable.lockdown {
            self.stop_surplus(cfg, host, out);
        }
        self.launch_on(cfg, now, host, &mut reply, out);
        reply.stop.extend(
            self.entries_on(host)
                .iter()
                .filter(|e| e.d.stop.is_some())
                .map(|e| e.id),
        );
        // Sorted and without repeats: an instance may be named twice above.
        for list in [&mut reply.renew, &mut reply.stop] {
            list.sort_unstable();
            list.dedup();
        }
        out.push(Effect::Send(reply));
    }

    fn apply_exits(
        &mut self,
        cfg: &Config,
        now: Tick,
        report: &AgentReport,
        out: &mut Vec<Effect>,
    ) {
        let host = report.host;
        for e in &report.exited {
            // Not in the ledger, or placed on another host: stale.
            if self.durable_on(host, e.instance).is_none() {
                self.raise_high_water(e.instance, out);
                out.push(Effect::Note(Note::StaleExit));
                continue;
            }
            let at = (host, e.instance);
            match e.outcome {
                ExitOutcome::BootFailed => self.note_failure_if_unbooted(cfg, now, at, true, out),
                ExitOutcome::Crashed | ExitOutcome::NeverStarted => {
                    self.note_failure_if_unbooted(cfg, now, at, false, out);
                }
                ExitOutcome::Killed => {}
            }
            self.remove(cfg, now, at, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_running(
        &mut self,
        cfg: &Config,
        now: Tick,
        host: HostId,
        (instance, phase, hint): (InstanceId, RunPhase, &mut usize),
        reply: &mut ManagerReply,
        out: &mut Vec<Effect>,
    ) {
        // Not in the ledger, or placed on another host: a phantom.
        let found = self.locate(host, instance, *hint);
        let at = found.unwrap_or(usize::MAX);
        let entry = self
            .ledger
            .get(usize::from(host.0))
            .and_then(|v| v.get(at))
            .copied();
        *hint = at.saturating_add(1);
        let Some(Entry { d, live, .. }) = entry else {
            self.raise_high_water(instance, out);
            out.push(Effect::Note(Note::PhantomReaped { instance }));
            reply.stop.push(instance);
            return;
        };
        if d.stop.is_some() || phase == RunPhase::Killing {
            // Not renewed: its lease runs out if the stop is lost.
            return;
        }
        if phase == RunPhase::Up {
            let first = !d.boot_seen_done;
            let revived = live.view != LiveView::Up;
            if first {
                self.persist(JournalRecord::BootSeenDone { instance }, out);
                out.push(Effect::Note(Note::BootSucceeded { instance }));
                self.set_backoff(instance.slot, |b| *b = Backoff::default());
                let mut b = self.durable.breaker;
                let change = b.on_success(now, instance);
                self.set_breaker(b, change, out);
            }
            if first || (revived && cfg.mutations.has(Mutation::RefillOnRevive)) {
                let mut budget = self.durable.budget;
                budget.refill(cfg);
                self.set_budget(budget, out);
            }
            if live.view != LiveView::Up {
                self.update_liveness_on(host, instance, at, |l| l.view = LiveView::Up);
            }
        } else if live.view == LiveView::Unknown && !d.boot_seen_done {
            let boot_deadline = now.plus(cfg.timing.boot_timeout_ticks);
            self.update_liveness_on(host, instance, at, |l| {
                l.view = LiveView::Launching { boot_deadline };
            });
        } else if live.view == LiveView::Unknown {
            self.update_liveness_on(host, instance, at, |l| l.view = LiveView::Up);
        }
        self.renew(cfg, now, host, (instance, at), reply);
    }

    /// Defence in depth: an agent ran (or runs) `instance`, which is above
    /// its slot's high water only if the journal lost records. The high
    /// water is raised, journaled, before any launch of the slot in this
    /// step, so the generation is never issued again.
    fn raise_high_water(&mut self, instance: InstanceId, out: &mut Vec<Effect>) {
        let high_water = self.durable.high_water.get(&instance.slot).copied();
        if high_water.unwrap_or_default() < instance.generation {
            let (slot, generation) = (instance.slot, instance.generation);
            self.persist(JournalRecord::HighWaterRaised { slot, generation }, out);
            out.push(Effect::Alert(Alert::GenerationAboveHighWater { instance }));
        }
    }

    /// Renews `instance`'s lease if it is in the ledger on `host`.
    fn renew(
        &mut self,
        cfg: &Config,
        now: Tick,
        host: HostId,
        (instance, hint): (InstanceId, usize),
        reply: &mut ManagerReply,
    ) {
        let lease_deadline = now.plus(cfg.lease_expiry_ticks());
        if self.update_liveness_on(host, instance, hint, |l| {
            l.lease_deadline = l.lease_deadline.max(lease_deadline);
        }) {
            reply.renew.push(instance);
        }
    }

    /// Stops instances on `host` the formation no longer wants: slots above
    /// the desired count, and older live instances of a slot with a newer one.
    fn stop_surplus(&mut self, cfg: &Config, host: HostId, out: &mut Vec<Effect>) {
        let surplus: Vec<InstanceId> = self
            .entries_on(host)
            .iter()
            .filter(|e| {
                let id = e.id;
                let live = e.d.stop.is_none();
                let above = id.slot.index >= self.desired(id.slot.process_type);
                // Only a crowded slot holds another instance.
                live && (above
                    || (self.crowded.contains(&id.slot)
                        && self
                            .instances_of(id.slot)
                            .any(|o| o.generation > id.generation && self.occupies(cfg, o))))
            })
            .map(|e| e.id)
            .collect();
        for id in surplus {
            self.request_stop(id, StopReason::UserRequested, out);
            self.refresh_slot(cfg, id.slot);
        }
    }

    fn launch_on(
        &mut self,
        cfg: &Config,
        now: Tick,
        host: HostId,
        reply: &mut ManagerReply,
        out: &mut Vec<Effect>,
    ) {
        if self.durable.paused_all || self.durable.paused_hosts.contains(&host) {
            return;
        }
        // Counted once per report, then kept up to date: a scan per
        // candidate slot costs O(instances on the host) each.
        let mut boots = self.boots_unconfirmed(cfg, host);
        let mut refused_noted = false;
        // Visit only vacant slots whose backoff has ended (the others would
        // be skipped): the same slots in the same order as a walk of `vacant`.
        if !self.launchable.0.is_built() {
            let vacant: Vec<(SlotId, Tick)> = self
                .vacant
                .iter()
                .map(|s| (*s, self.backoff(*s).not_before))
                .collect();
            self.launchable.0.rebuild(vacant.into_iter());
        }
        self.launchable.0.promote(now);
        let mut cursor: Option<SlotId> = None;
        loop {
            let after = match cursor {
                None => (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
                Some(c) => (std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded),
            };
            // After a refusal the budget cannot pay (it changes here only
            // when spent): only a slot with a free launch can still launch,
            // and the others would be skipped without an effect. So visit
            // just those, in the same order, when they are fewer.
            let ready = self.launchable.0.ready();
            let next = if refused_noted && self.durable.free_launches.len() < ready.len() {
                self.durable
                    .free_launches
                    .range(after)
                    .find(|s| ready.contains(s))
            } else {
                ready.range(after).next()
            };
            let Some(&slot) = next else {
                return;
            };
            cursor = Some(slot);
            if !self.durable.breaker.allows_launch() {
                return;
            }
            if boots >= usize::from(cfg.boots_in_flight_max) {
                return;
            }
            if self.backoff(slot).not_before > now {
                continue;
            }
            let free = self.durable.free_launches.contains(&slot);
            if !free {
                let mut budget = self.durable.budget;
                match budget.try_spend(cfg) {
                    Some(payment) => {
                        self.set_budget(budget, out);
                        if payment == crate::budget::Payment::Probe {
                            out.push(Effect::Note(Note::ProbeSpent));
                        }
                    }
                    None => {
                        // One note per report is evidence enough.
                        if !refused_noted {
                            refused_noted = true;
                            out.push(Effect::Note(Note::RetryRefused { slot }));
                        }
                        continue;
                    }
                }
            }
            let Some(generation) = self.durable.next_generation(slot) else {
                continue;
            };
            let instance = InstanceId { slot, generation };
            self.persist(
                JournalRecord::InstanceLaunched {
                    instance,
                    host,
                    free,
                },
                out,
            );
            // Its durable half is what the record just added, copied
            // rather than looked up again.
            self.set_liveness(
                host,
                (instance, DurableInstance::launched(host)),
                Liveness {
                    view: LiveView::Launching {
                        boot_deadline: now.plus(cfg.timing.boot_timeout_ticks),
                    },
                    lease_deadline: now.plus(cfg.lease_expiry_ticks()),
                },
            );
            self.remove_vacant(slot);
            boots += 1;
            let mut b = self.durable.breaker;
            let change = b.on_launch(instance);
            self.set_breaker(b, change, out);
            reply.launch.push(instance);
        }
    }

    // ----- commands -----

    fn on_user(
        &mut self,
        cfg: &Config,
        now: Tick,
        command: UserCommand,
        out: &mut Vec<Effect>,
    ) -> Result<(), Rejected> {
        let _ = now;
        match command {
            UserCommand::Scale {
                process_type,
                count,
            } => {
                let p = cfg
                    .process_type(process_type)
                    .ok_or(Rejected::UnknownProcessType { process_type })?;
                if cfg.is_singleton(process_type) && count > 1 {
                    return Err(Rejected::SingletonAboveOne {
                        process_type,
                        requested: count,
                    });
                }
                if count > p.count_max {
                    return Err(Rejected::ScaleAboveMax {
                        process_type,
                        requested: count,
                        max: p.count_max,
                    });
                }
                let old = self.desired(process_type);
                // Live instances this count would stop. Under lockdown that
                // includes those whose earlier scale-down lockdown took back
                // (S5), even when the count does not go down.
                // Instances are ordered by slot, so those of this type at or
                // above `count` form one range.
                let lo = InstanceId {
                    slot: SlotId {
                        process_type,
                        index: count,
                    },
                    generation: Generation(0),
                };
                let hi = InstanceId {
                    slot: SlotId {
                        process_type,
                        index: u16::MAX,
                    },
                    generation: Generation(u32::MAX),
                };
                let above: Vec<InstanceId> = self
                    .durable
                    .instances
                    .range(lo..=hi)
                    .filter(|(_, d)| d.stop.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                if (count < old || !above.is_empty()) && self.durable.lockdown {
                    return Err(Rejected::LockedDown {
                        command: CommandKind::ScaleDown,
                    });
                }
                self.set_formation(cfg, process_type, count, out);
                for id in above {
                    self.request_stop(id, StopReason::UserRequested, out);
                }
                self.refresh_type(cfg, process_type, old.max(count));
                Ok(())
            }
            UserCommand::Restart { process_type } => {
                if let Some(t) = process_type {
                    cfg.process_type(t)
                        .ok_or(Rejected::UnknownProcessType { process_type: t })?;
                }
                if self.durable.lockdown {
                    return Err(Rejected::LockedDown {
                        command: CommandKind::Restart,
                    });
                }
                self.replace(cfg, process_type, out);
                Ok(())
            }
            UserCommand::Deploy => {
                if self.durable.lockdown {
                    return Err(Rejected::LockedDown {
                        command: CommandKind::Deploy,
                    });
                }
                self.replace(cfg, None, out);
                Ok(())
            }
        }
    }

    /// Restart: every live instance of the type(s) is asked to stop, and
    /// its slot gets a free launch (a formation change, not a retry).
    fn replace(&mut self, cfg: &Config, process_type: Option<TypeId>, out: &mut Vec<Effect>) {
        let targets: Vec<InstanceId> = self
            .durable
            .instances
            .iter()
            .filter(|(id, d)| {
                d.stop.is_none()
                    && process_type.is_none_or(|t| id.slot.process_type == t)
                    && id.slot.index < self.desired(id.slot.process_type)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            self.request_stop(id, StopReason::UserRequested, out);
            self.grant_free_launch(id.slot, out);
            self.refresh_slot(cfg, id.slot);
        }
    }

    fn on_operator(
        &mut self,
        cfg: &Config,
        now: Tick,
        command: OperatorCommand,
        out: &mut Vec<Effect>,
    ) {
        match command {
            OperatorCommand::Lockdown { on } => {
                // Cancel first: a journal cut after `LockdownSet` must not
                // recover a lockdown that still holds user stops (S5).
                if on {
                    self.cancel_user_stops(cfg, out);
                }
                if self.durable.lockdown != on {
                    self.persist(JournalRecord::LockdownSet { on }, out);
                }
            }
            OperatorCommand::BreakerOpen => {
                let b = Breaker::Open {
                    since: now,
                    manual: true,
                };
                if self.durable.breaker != b {
                    self.persist(JournalRecord::BreakerSet { breaker: b }, out);
                }
            }
            OperatorCommand::BreakerClose => {
                if !matches!(self.durable.breaker, Breaker::Closed { .. }) {
                    let breaker = Breaker::closed(now);
                    self.persist(JournalRecord::BreakerSet { breaker }, out);
                }
            }
            OperatorCommand::PauseLaunches { host } => {
                self.persist(JournalRecord::PauseSet { host, paused: true }, out);
            }
            OperatorCommand::ResumeLaunches { host } => {
                self.persist(
                    JournalRecord::PauseSet {
                        host,
                        paused: false,
                    },
                    out,
                );
            }
        }
    }

    /// Lockdown takes back user stops of instances still alive: a stop
    /// accepted just before lockdown must not take a working app down.
    fn cancel_user_stops(&mut self, cfg: &Config, out: &mut Vec<Effect>) {
        let user_stopped: Vec<InstanceId> = self
            .durable
            .instances
            .iter()
            .filter(|(_, d)| d.stop == Some(StopReason::UserRequested))
            .map(|(id, _)| *id)
            .collect();
        for instance in user_stopped {
            self.persist(JournalRecord::StopCancelled { instance }, out);
            self.refresh_slot(cfg, instance.slot);
        }
    }
}

/// The earliest deadline among a host's entries.
fn min_due(cfg: &Config, entries: &[Entry]) -> Option<Tick> {
    let expiry = cfg.lease_expiry_ticks();
    entries.iter().map(|e| due_at(cfg, expiry, &e.live)).min()
}

/// The earliest tick at which `on_tick` has work for a ledger entry: its
/// lease runs out, its boot times out (launching), or it goes unknown (up,
/// `unknown_after` ticks after its last renewal). It is due at `now` exactly
/// when this is at or before `now`.
/// `lease_expiry_ticks` is `cfg.lease_expiry_ticks()`, computed once by the
/// caller for all its entries.
fn due_at(cfg: &Config, lease_expiry_ticks: u64, l: &Liveness) -> Tick {
    let mut at = l.lease_deadline;
    match l.view {
        LiveView::Launching { boot_deadline } => at = at.min(boot_deadline),
        LiveView::Up => {
            let unknown_after = cfg.timing.unknown_after_ticks;
            // Due when `now.since(renewed) >= unknown_after`; `since` is
            // zero before `renewed`, so with no wait it is due at once.
            let renewed = Tick(l.lease_deadline.0.saturating_sub(lease_expiry_ticks));
            let unknown = if unknown_after == 0 {
                Tick(0)
            } else {
                renewed.plus(unknown_after)
            };
            at = at.min(unknown);
        }
        LiveView::Unknown => {}
    }
    at
}

/// The combined phase of one ledger entry.
#[must_use]
pub fn phase_of(d: &DurableInstance, l: &Liveness) -> Phase {
    match (d.stop, l.view) {
        (Some(reason), _) => Phase::Stopping(reason),
        (None, LiveView::Launching { .. }) => Phase::Launching,
        (None, LiveView::Up) => Phase::Up,
        (None, LiveView::Unknown) => Phase::Unknown,
    }
}

impl Manager {
    /// Renames every host id through `rename` (a permutation of the hosts).
    ///
    /// The manager treats host ids only as names: it places on the reporting
    /// host and never compares ids by order for a decision. So a renamed
    /// manager behaves like the original with its hosts relabelled, which is
    /// what the model checker's symmetry reduction relies on.
    pub fn rename_hosts(&mut self, rename: impl Fn(HostId) -> HostId) {
        for d in self.durable.instances.values_mut() {
            d.host = rename(d.host);
        }
        self.durable.paused_hosts = self
            .durable
            .paused_hosts
            .iter()
            .map(|h| rename(*h))
            .collect();
        let ledger = std::mem::take(&mut self.ledger);
        for mut e in ledger.into_iter().flatten() {
            e.d.host = rename(e.d.host);
            let hi = usize::from(e.d.host.0);
            if self.ledger.len() <= hi {
                self.ledger.resize_with(hi + 1, Vec::new);
            }
            if let Some(v) = self.ledger.get_mut(hi) {
                v.push(e);
            }
        }
        for v in &mut self.ledger {
            v.sort_unstable_by_key(|e| e.id);
        }
        self.host_due = self
            .host_due
            .iter()
            .map(|(h, t)| (rename(*h), *t))
            .collect();
        self.deadlines = self.host_due.iter().map(|(h, t)| (*t, *h)).collect();
    }
}
