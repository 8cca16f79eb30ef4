//! The manager's journal: the records it persists before it acts, and the
//! durable state they fold into.
//!
//! The manager changes its durable state only by emitting a record and
//! applying it with [`Durable::apply`], so the fold of the records it emitted
//! is, by construction, the state it recovers from (DESIGN.md rule 4).

use crate::breaker::{Breaker, FleetBreaker};
use crate::budget::Budget;
use crate::config::{Config, Mutation};
use crate::ids::{AppId, Generation, HostId, InstanceId, SlotId, Term, Tick, TypeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why the manager asked an instance to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Its boot outlasted the timeout: the manager's own safety action.
    BootTimedOut,
    /// A user asked (restart, deploy, scale down); lockdown undoes it.
    UserRequested,
}

/// What the journal keeps of one instance that may still be alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurableInstance {
    /// The host it was launched on.
    pub host: HostId,
    /// The "boot seen done" mark: its first success refilled the budget.
    pub boot_seen_done: bool,
    /// Whether the manager asked it to stop, and why.
    pub stop: Option<StopReason>,
}

impl DurableInstance {
    /// What `InstanceLaunched` records: placed on `host`, not yet booted,
    /// not asked to stop.
    #[must_use]
    pub fn launched(host: HostId) -> DurableInstance {
        DurableInstance {
            host,
            boot_seen_done: false,
            stop: None,
        }
    }
}

/// One journal record. Versioned through [`JOURNAL_VERSION`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "record")]
pub enum JournalRecord {
    /// Desired count of a process type.
    FormationSet {
        /// The type.
        process_type: TypeId,
        /// Its new desired count.
        count: u16,
    },
    /// A slot may launch once without spending a token (`F` grows by one).
    FreeLaunchGranted {
        /// The slot.
        slot: SlotId,
    },
    /// An instance was placed; persisted before its launch is sent.
    InstanceLaunched {
        /// The instance (its generation becomes the slot's high water).
        instance: InstanceId,
        /// Where.
        host: HostId,
        /// Whether it used the slot's free launch.
        free: bool,
    },
    /// The instance's first successful boot was seen.
    BootSeenDone {
        /// The instance.
        instance: InstanceId,
    },
    /// The manager asked the instance to stop.
    StopRequested {
        /// The instance.
        instance: InstanceId,
        /// Why.
        reason: StopReason,
    },
    /// Lockdown took back a user's stop.
    StopCancelled {
        /// The instance.
        instance: InstanceId,
    },
    /// Death proven (exit confirmation or lease expiry): the instance leaves.
    InstanceStopped {
        /// The instance.
        instance: InstanceId,
    },
    /// An app's retry budget's new value.
    BudgetSet {
        /// The app.
        app: AppId,
        /// The budget.
        budget: Budget,
    },
    /// An app's breaker's new state.
    BreakerSet {
        /// The app.
        app: AppId,
        /// The breaker.
        breaker: Breaker,
    },
    /// The fleet breaker's new state.
    FleetBreakerSet {
        /// The breaker.
        breaker: FleetBreaker,
    },
    /// Lockdown on or off.
    LockdownSet {
        /// On.
        on: bool,
    },
    /// An agent reported an instance above the slot's high water (a journal
    /// that lost records, restored from an old copy): the high water is
    /// raised before any launch of the slot, so no generation is issued twice.
    HighWaterRaised {
        /// The slot.
        slot: SlotId,
        /// The generation reported.
        generation: Generation,
    },
    /// Launches paused or resumed, on one host or everywhere.
    PauseSet {
        /// The host, or `None` for all.
        host: Option<HostId>,
        /// Paused.
        paused: bool,
    },
    /// A manager took the leader key in the store: its first record,
    /// appended (fenced by this term) before it acts (DESIGN.md, "More than
    /// one manager", rule 3).
    TermBegan {
        /// The new leader's term.
        term: Term,
    },
}

/// Journal format version. 4 added `TermBegan`; a version 3 journal is
/// read as it is (it has none).
pub const JOURNAL_VERSION: u16 = 4;

/// The oldest records version this core still reads: 3 (per-app budgets
/// and breakers), which differs from 4 only by lacking `TermBegan` (a
/// local journal never holds one).
pub const JOURNAL_VERSION_OLDEST_READ: u16 = 3;

/// Counts of records, kept by the shell beside the durable state (a fold
/// of the same journal, never compacted away) and read by
/// [`crate::budget::launch_bound_inputs`]. Not part of [`Durable`]: the core
/// decides nothing from them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counters {
    /// Launches journaled (free ones included).
    pub launches: u64,
    /// Free first launches used.
    pub free_launches: u64,
    /// First successful boots seen (`S`): one per `BootSeenDone`.
    pub boots_seen_done: u64,
    /// The same counts per process type, indexed by `TypeId` (a type past
    /// the end has none): an app's are the sum over its types.
    #[serde(default)]
    pub by_type: Vec<TypeCounters>,
}

/// [`Counters`] of one process type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TypeCounters {
    /// Launches journaled (free ones included).
    pub launches: u64,
    /// Free first launches used.
    pub free_launches: u64,
    /// First successful boots seen.
    pub boots_seen_done: u64,
}

impl TypeCounters {
    fn add(&mut self, other: &TypeCounters) {
        self.launches = self.launches.saturating_add(other.launches);
        self.free_launches = self.free_launches.saturating_add(other.free_launches);
        self.boots_seen_done = self.boots_seen_done.saturating_add(other.boots_seen_done);
    }
}

impl Counters {
    /// Counts `record`.
    pub fn apply(&mut self, record: &JournalRecord) {
        match record {
            JournalRecord::InstanceLaunched { instance, free, .. } => {
                self.launches = self.launches.saturating_add(1);
                self.free_launches = self.free_launches.saturating_add(u64::from(*free));
                self.count(instance.slot.process_type, |t| {
                    t.launches = t.launches.saturating_add(1);
                    t.free_launches = t.free_launches.saturating_add(u64::from(*free));
                });
            }
            JournalRecord::BootSeenDone { instance } => {
                self.boots_seen_done = self.boots_seen_done.saturating_add(1);
                self.count(instance.slot.process_type, |t| {
                    t.boots_seen_done = t.boots_seen_done.saturating_add(1);
                });
            }
            _ => {}
        }
    }

    /// Changes `process_type`'s counts through `change`.
    fn count(&mut self, process_type: TypeId, change: impl FnOnce(&mut TypeCounters)) {
        let i = usize::from(process_type.0);
        if self.by_type.len() <= i {
            self.by_type.resize(i + 1, TypeCounters::default());
        }
        if let Some(t) = self.by_type.get_mut(i) {
            change(t);
        }
    }

    /// The counts of `app`'s process types together (`type_apps` is
    /// `Config::type_apps`).
    #[must_use]
    pub fn of_app(&self, type_apps: &[AppId], app: AppId) -> TypeCounters {
        let mut sum = TypeCounters::default();
        for (t, counts) in self.by_type.iter().enumerate() {
            if type_apps.get(t) == Some(&app) {
                sum.add(counts);
            }
        }
        sum
    }
}

/// Everything a restarted manager remembers: the fold of its journal.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Durable {
    /// Desired count per process type, indexed by `TypeId`.
    pub formation: Vec<u16>,
    /// Every instance that may still be alive.
    #[serde(with = "pairs")]
    pub instances: BTreeMap<InstanceId, DurableInstance>,
    /// Per-slot high-water generation, never dropped (shortcut 5).
    #[serde(with = "pairs")]
    pub high_water: BTreeMap<SlotId, Generation>,
    /// Slots holding an unused free launch.
    pub free_launches: BTreeSet<SlotId>,
    /// `F`: free launches granted so far, per process type (indexed by
    /// `TypeId`); an app's `F_a` is the sum over its types.
    pub free_launches_granted: Vec<u64>,
    /// Each app's retry budget, indexed by `AppId`.
    pub budgets: Vec<Budget>,
    /// Each app's breaker, indexed by `AppId`.
    pub breakers: Vec<Breaker>,
    /// The fleet breaker, over failures spread across apps.
    pub fleet_breaker: FleetBreaker,
    /// App-management lockdown.
    pub lockdown: bool,
    /// Launches paused everywhere.
    pub paused_all: bool,
    /// Hosts with launches paused.
    pub paused_hosts: BTreeSet<HostId>,
    /// The term of the leader that wrote the latest `TermBegan` (0: the
    /// sole manager of a local journal). Every reply carries it.
    #[serde(default)]
    pub term: Term,
}

impl Durable {
    /// The state before any record: the configured initial formation, a
    /// full budget, a closed breaker. Free launches for the initial formation
    /// are granted by the manager's first records, not here.
    #[must_use]
    pub fn genesis(cfg: &Config, now: Tick) -> Durable {
        Durable {
            formation: vec![0; cfg.process_types.len()],
            instances: BTreeMap::new(),
            high_water: BTreeMap::new(),
            free_launches: BTreeSet::new(),
            free_launches_granted: vec![0; cfg.process_types.len()],
            budgets: vec![Budget::full(cfg, now); cfg.app_count()],
            breakers: vec![Breaker::closed(now); cfg.app_count()],
            fleet_breaker: FleetBreaker::closed(now),
            lockdown: false,
            paused_all: false,
            paused_hosts: BTreeSet::new(),
            term: Term(0),
        }
    }

    /// Applies one record. Total: a record about an unknown instance or type
    /// changes nothing, so any journal (even a corrupt one) folds.
    pub fn apply(&mut self, record: &JournalRecord) {
        self.apply_fresh(record);
    }

    /// Applies one record; `false` when it launched a generation at or
    /// below its slot's high water (a reused fencing token: never for a
    /// record the manager writes, possible in a corrupt journal). Read in the
    /// same lookup that raises the high water, so the writer's assertion
    /// costs nothing.
    pub(crate) fn apply_fresh(&mut self, record: &JournalRecord) -> bool {
        match *record {
            JournalRecord::FormationSet {
                process_type,
                count,
            } => {
                if let Some(c) = self.formation.get_mut(usize::from(process_type.0)) {
                    *c = count;
                }
            }
            JournalRecord::FreeLaunchGranted { slot } => {
                if self.free_launches.insert(slot) {
                    let i = usize::from(slot.process_type.0);
                    if self.free_launches_granted.len() <= i {
                        self.free_launches_granted.resize(i + 1, 0);
                    }
                    if let Some(n) = self.free_launches_granted.get_mut(i) {
                        *n = n.saturating_add(1);
                    }
                }
            }
            JournalRecord::InstanceLaunched {
                instance,
                host,
                free,
            } => {
                let hw = self.high_water.entry(instance.slot).or_default();
                let fresh = instance.generation > *hw;
                *hw = (*hw).max(instance.generation);
                if free {
                    self.free_launches.remove(&instance.slot);
                }
                self.instances
                    .insert(instance, DurableInstance::launched(host));
                return fresh;
            }
            JournalRecord::BootSeenDone { instance } => {
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.boot_seen_done = true;
                }
            }
            JournalRecord::StopRequested { instance, reason } => {
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.stop = Some(reason);
                }
            }
            JournalRecord::StopCancelled { instance } => {
                if let Some(i) = self.instances.get_mut(&instance) {
                    i.stop = None;
                }
            }
            JournalRecord::InstanceStopped { instance } => {
                self.instances.remove(&instance);
            }
            JournalRecord::HighWaterRaised { slot, generation } => {
                let hw = self.high_water.entry(slot).or_default();
                *hw = (*hw).max(generation);
            }
            JournalRecord::BudgetSet { app, budget } => {
                if let Some(b) = self.budgets.get_mut(app.index()) {
                    *b = budget;
                }
            }
            JournalRecord::BreakerSet { app, breaker } => {
                if let Some(b) = self.breakers.get_mut(app.index()) {
                    *b = breaker;
                }
            }
            JournalRecord::FleetBreakerSet { ref breaker } => {
                self.fleet_breaker = breaker.clone();
            }
            JournalRecord::LockdownSet { on } => self.lockdown = on,
            JournalRecord::PauseSet { host, paused } => match (host, paused) {
                (None, p) => self.paused_all = p,
                (Some(h), true) => {
                    self.paused_hosts.insert(h);
                }
                (Some(h), false) => {
                    self.paused_hosts.remove(&h);
                }
            },
            JournalRecord::TermBegan { term } => self.term = self.term.max(term),
        }
        true
    }

    /// `F`: free launches granted so far, every type together.
    #[must_use]
    pub fn free_launches_granted_total(&self) -> u64 {
        self.free_launches_granted.iter().sum()
    }

    /// `F_a`: free launches granted so far to `app`'s types.
    #[must_use]
    pub fn free_launches_granted_to(&self, type_apps: &[AppId], app: AppId) -> u64 {
        self.free_launches_granted
            .iter()
            .zip(type_apps)
            .filter(|(_, a)| **a == app)
            .map(|(n, _)| *n)
            .sum()
    }

    /// Sizes the per-type and per-app vectors for `cfg` (a journal written
    /// before a type or an app was added): a new app starts with a full
    /// budget and a closed breaker.
    pub fn fit(&mut self, cfg: &Config, now: Tick) {
        let types = cfg.process_types.len();
        self.formation.resize(types, 0);
        if self.free_launches_granted.len() < types {
            self.free_launches_granted.resize(types, 0);
        }
        let apps = cfg.app_count();
        self.budgets.resize(apps, Budget::full(cfg, now));
        self.breakers.resize(apps, Breaker::closed(now));
        // Fewer apps than the journal had: the fleet breaker forgets the
        // apps that are gone, and a count that now reaches the smaller
        // threshold starts again (a trip needs failures seen under this
        // configuration).
        let counted = self.fleet_breaker.failing();
        let gone = counted.iter().any(|a| a.index() >= apps);
        if gone || counted.len() >= cfg.fleet_breaker_threshold_of(apps) {
            self.fleet_breaker = match self.fleet_breaker {
                FleetBreaker::Open { .. } => self.fleet_breaker.clone(),
                _ => FleetBreaker::closed(now),
            };
        }
    }

    /// Folds `records` onto `self`.
    pub fn apply_all<'a>(&mut self, records: impl IntoIterator<Item = &'a JournalRecord>) {
        for r in records {
            self.apply(r);
        }
    }

    /// What compaction keeps: everything. Under
    /// `journal-forgets-generations` it drops the high water of slots with no
    /// live instance, the unsafe shortcut 5.
    #[must_use]
    pub fn compacted(&self, cfg: &Config) -> Durable {
        let mut d = self.clone();
        if cfg.mutations.has(Mutation::JournalForgetsGenerations) {
            let live: BTreeSet<SlotId> = d.instances.keys().map(|i| i.slot).collect();
            d.high_water.retain(|slot, _| live.contains(slot));
        }
        d
    }

    /// The generation the slot's next instance gets.
    #[must_use]
    pub fn next_generation(&self, slot: SlotId) -> Option<Generation> {
        self.high_water
            .get(&slot)
            .copied()
            .unwrap_or_default()
            .next()
    }
}

/// A map with structured keys as a sequence of `[key, value]` pairs, so that
/// formats whose map keys must be strings (JSON: the journal's snapshots)
/// can carry it.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}
