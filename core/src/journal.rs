//! The manager's journal: the records it persists before it acts, and the
//! durable state they fold into.
//!
//! The manager changes its durable state only by emitting a record and
//! applying it with [`Durable::apply`], so the fold of the records it emitted
//! is, by construction, the state it recovers from (DESIGN.md rule 4).

use crate::breaker::Breaker;
use crate::budget::Budget;
use crate::config::{Config, Mutation};
use crate::ids::{Generation, HostId, InstanceId, SlotId, Tick, TypeId};
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
    /// The retry budget's new value.
    BudgetSet {
        /// The budget.
        budget: Budget,
    },
    /// The breaker's new state.
    BreakerSet {
        /// The breaker.
        breaker: Breaker,
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
}

/// Journal format version.
pub const JOURNAL_VERSION: u16 = 2;

/// Counts of records, kept by the shell beside the durable state (a fold
/// of the same journal, never compacted away) and read by
/// [`crate::budget::launch_bound_inputs`]. Not part of [`Durable`]: the core
/// decides nothing from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counters {
    /// Launches journaled (free ones included).
    pub launches: u64,
    /// Free first launches used.
    pub free_launches: u64,
    /// First successful boots seen (`S`): one per `BootSeenDone`.
    pub boots_seen_done: u64,
}

impl Counters {
    /// Counts `record`.
    pub fn apply(&mut self, record: &JournalRecord) {
        match record {
            JournalRecord::InstanceLaunched { free, .. } => {
                self.launches = self.launches.saturating_add(1);
                self.free_launches = self.free_launches.saturating_add(u64::from(*free));
            }
            JournalRecord::BootSeenDone { .. } => {
                self.boots_seen_done = self.boots_seen_done.saturating_add(1);
            }
            _ => {}
        }
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
    /// `F`: free launches granted so far.
    pub free_launches_granted: u64,
    /// The retry budget.
    pub budget: Budget,
    /// The breaker.
    pub breaker: Breaker,
    /// App-management lockdown.
    pub lockdown: bool,
    /// Launches paused everywhere.
    pub paused_all: bool,
    /// Hosts with launches paused.
    pub paused_hosts: BTreeSet<HostId>,
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
            free_launches_granted: 0,
            budget: Budget::full(cfg, now),
            breaker: Breaker::closed(now),
            lockdown: false,
            paused_all: false,
            paused_hosts: BTreeSet::new(),
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
                    self.free_launches_granted = self.free_launches_granted.saturating_add(1);
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
            JournalRecord::BudgetSet { budget } => self.budget = budget,
            JournalRecord::BreakerSet { breaker } => self.breaker = breaker,
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
        }
        true
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
