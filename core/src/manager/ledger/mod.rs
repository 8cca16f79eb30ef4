//! The ledger: every instance that may still be alive, by host, with the
//! indexes the decisions read (vacant slots and their launch index, crowded
//! slots, per-host deadlines) and the per-slot backoff.
//!
//! The manager changes it only through this module's methods, each of which
//! keeps every index in step, and [`Ledger::follow`] is called with every
//! journal record, so the copy of the durable half it keeps can never lag
//! the journal. [`Ledger::check`] recomputes everything from `Durable` and
//! is what the invariant checker calls.

use super::time::min_due;
use super::types::{Backoff, LiveView, Liveness};
use super::vacancy::{self, Cache, Vacancies};

mod check;
use crate::config::Config;
use crate::ids::{HostId, InstanceId, SlotId, Tick};
use crate::journal::{Durable, DurableInstance, JournalRecord};
use check::compute_crowded;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One ledger entry, kept with the other entries of its host: the volatile
/// half (`live`) and a copy of the durable half (`d`, equal to
/// `durable.instances[id]`), so that a report reads only its host's entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) id: InstanceId,
    pub(crate) d: DurableInstance,
    pub(crate) live: Liveness,
}

/// The ledger and its indexes. Every field but `by_host` and `backoff` is
/// derived; equal ledgers compare equal (no empty list is kept at an end).
/// Hashed by those two fields alone (see the `Hash` impl below).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ledger {
    /// Entries by host id, each host's sorted by instance.
    #[serde(rename = "ledger")]
    by_host: Vec<Vec<Entry>>,
    /// Per-slot relaunch spacing, by type then index; a slot past the end
    /// has the default. Dense because every launch and failure reads it.
    backoff: Vec<Vec<Backoff>>,
    /// Slots of the formation with nothing occupying them.
    vacant: BTreeSet<SlotId>,
    /// `vacant` split by backoff, for launching; a cache (see `vacancy`).
    #[serde(skip)]
    launchable: Cache<Vacancies>,
    /// Slots with two or more instances in the ledger.
    crowded: BTreeSet<SlotId>,
    /// Every host with entries, keyed by the earliest tick at which a tick
    /// has work for one of them (see `time::due_at`), so a tick visits only
    /// hosts with due entries. `host_due` is the same, by host.
    deadlines: BTreeSet<(Tick, HostId)>,
    host_due: BTreeMap<HostId, Tick>,
    /// Hosts whose entries changed in this step: their deadline is brought
    /// up to date by [`Ledger::flush`]. Empty between steps.
    #[serde(skip)]
    dirty: Vec<HostId>,
}

/// Hashes what the ledger is, not its indexes: every other field is a
/// function of these two, the durable state and the configuration (see
/// `check`), so equal ledgers still hash equal, and a model checker that
/// fingerprints a state per generated successor skips the index trees.
impl std::hash::Hash for Ledger {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.by_host.hash(state);
        self.backoff.hash(state);
    }
}

impl Ledger {
    /// Hashes what [`Hash`](std::hash::Hash) does but the entries, which
    /// belong to hosts (see `Manager::hash_without_hosts`).
    pub(crate) fn hash_without_hosts<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::Hash;
        self.backoff.hash(state);
    }

    /// The ledger of `durable`'s instances, each with liveness `live`.
    pub(crate) fn recovered(cfg: &Config, durable: &Durable, live: Liveness) -> Ledger {
        let mut by_host: Vec<Vec<Entry>> = Vec::new();
        for (id, d) in &durable.instances {
            // In instance order, so each host's entries come sorted.
            let v = host_list(&mut by_host, d.host);
            v.push(Entry {
                id: *id,
                d: *d,
                live,
            });
        }
        let mut l = Ledger {
            by_host,
            backoff: Vec::new(),
            vacant: vacancy::compute_vacant(cfg, durable),
            launchable: Cache::default(),
            crowded: compute_crowded(durable),
            deadlines: BTreeSet::new(),
            host_due: BTreeMap::new(),
            dirty: Vec::new(),
        };
        l.host_due = l.compute_host_due(cfg);
        l.deadlines = l.host_due.iter().map(|(h, t)| (*t, *h)).collect();
        l
    }

    // ----- reading -----

    /// The entries of `host`, sorted by instance.
    pub(crate) fn entries_on(&self, host: HostId) -> &[Entry] {
        self.by_host
            .get(usize::from(host.0))
            .map_or(&[], Vec::as_slice)
    }

    /// The hosts with entries, with their entries.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = (HostId, &[Entry])> {
        self.by_host
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(h, v)| (host_id(h), v.as_slice()))
    }

    /// The position of `instance` among `host`'s entries, if it is in the
    /// ledger on `host`; tried first at `hint` (a report lists its instances
    /// in order, so the next one is usually just after the last).
    pub(crate) fn locate(&self, host: HostId, instance: InstanceId, hint: usize) -> Option<usize> {
        let v = self.by_host.get(usize::from(host.0))?;
        if v.get(hint).is_some_and(|e| e.id == instance) {
            return Some(hint);
        }
        v.binary_search_by_key(&instance, |e| e.id).ok()
    }

    /// The entry at position `at` of `host`'s entries.
    pub(crate) fn entry_at(&self, host: HostId, at: usize) -> Option<&Entry> {
        self.by_host.get(usize::from(host.0))?.get(at)
    }

    /// The entry of `instance` if it is in the ledger on `host`.
    pub(crate) fn entry(&self, host: HostId, instance: InstanceId) -> Option<&Entry> {
        self.entry_at(host, self.locate(host, instance, usize::MAX)?)
    }

    /// The relaunch spacing of `slot`.
    pub(crate) fn backoff(&self, slot: SlotId) -> Backoff {
        self.backoff
            .get(usize::from(slot.process_type.0))
            .and_then(|v| v.get(usize::from(slot.index)))
            .copied()
            .unwrap_or_default()
    }

    /// Slots of the formation with nothing occupying them.
    pub(crate) fn vacant(&self) -> &BTreeSet<SlotId> {
        &self.vacant
    }

    /// Whether `slot` has two or more instances in the ledger.
    pub(crate) fn is_crowded(&self, slot: SlotId) -> bool {
        self.crowded.contains(&slot)
    }

    /// The hosts with an entry due by `now`.
    pub(crate) fn hosts_due(&self, now: Tick) -> impl Iterator<Item = HostId> + '_ {
        self.deadlines
            .range(..=(now, HostId(u16::MAX)))
            .map(|(_, h)| *h)
    }

    /// Whether `host` has entries, and how many hosts have: O(log hosts).
    /// From the deadline index, which is brought up to date at the end of
    /// a step (`flush`): within a report's step only the reporting host's
    /// entries change, and `launching` counts that host itself.
    pub(crate) fn holders(&self, host: HostId) -> (bool, usize) {
        (self.host_due.contains_key(&host), self.host_due.len())
    }

    /// The earliest deadline of any entry.
    pub(crate) fn next_due(&self) -> Option<Tick> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The vacant slots whose backoff has ended by `now`, in slot order.
    /// What the last [`Ledger::launchable`] returned, without promoting:
    /// for reading it beside the rest of the manager in the same step.
    pub(crate) fn launchable_as_promoted(&self) -> &BTreeSet<SlotId> {
        self.launchable.0.ready()
    }

    pub(crate) fn launchable(&mut self, now: Tick) -> &BTreeSet<SlotId> {
        if !self.launchable.0.is_built() {
            let vacant: Vec<(SlotId, Tick)> = self
                .vacant
                .iter()
                .map(|s| (*s, self.backoff(*s).not_before))
                .collect();
            self.launchable.0.rebuild(vacant.into_iter());
        }
        self.launchable.0.promote(now);
        self.launchable.0.ready()
    }

    // ----- changing: each method keeps every index in step -----

    /// Follows `record`, just applied to `durable` at `now`: an instance
    /// launched (launching, leased from `now`), stopped (it was on
    /// `placed`), or its durable half changed. Then refreshes the vacancy
    /// of the slot concerned.
    pub(crate) fn follow(
        &mut self,
        (cfg, now): (&Config, Tick),
        durable: &Durable,
        record: &JournalRecord,
        placed: Option<HostId>,
    ) {
        match *record {
            JournalRecord::InstanceLaunched { instance, host, .. } => {
                let live = Liveness {
                    view: LiveView::Launching {
                        boot_deadline: now.plus(cfg.timing.boot_timeout_ticks),
                    },
                    lease_deadline: now.plus(cfg.lease_expiry_ticks()),
                };
                let d = DurableInstance::launched(host);
                self.insert(
                    durable,
                    Entry {
                        id: instance,
                        d,
                        live,
                    },
                );
                // Occupied by the instance just launched: no need to ask.
                self.set_vacant(instance.slot, false);
            }
            JournalRecord::InstanceStopped { instance } => {
                if let Some(host) = placed {
                    self.remove(durable, host, instance);
                }
                self.refresh_slot(cfg, durable, instance.slot);
            }
            // Occupancy does not depend on the boot.
            JournalRecord::BootSeenDone { instance } => self.sync(durable, instance),
            JournalRecord::StopRequested { instance, .. }
            | JournalRecord::StopCancelled { instance } => {
                self.sync(durable, instance);
                self.refresh_slot(cfg, durable, instance.slot);
            }
            _ => {}
        }
    }

    /// Refreshes the vacancy of every slot of `durable`'s formation of the
    /// type, and of those up to `upto` (a formation that just shrank).
    pub(crate) fn refresh_type(
        &mut self,
        cfg: &Config,
        durable: &Durable,
        process_type: crate::ids::TypeId,
        upto: u16,
    ) {
        for index in 0..upto {
            let slot = SlotId {
                process_type,
                index,
            };
            self.refresh_slot(cfg, durable, slot);
        }
    }

    /// Makes `slot`'s membership of `vacant` follow the occupancy rule.
    pub(crate) fn refresh_slot(&mut self, cfg: &Config, durable: &Durable, slot: SlotId) {
        self.set_vacant(slot, vacancy::slot_is_vacant(cfg, durable, slot));
    }

    fn set_vacant(&mut self, slot: SlotId, vacant: bool) {
        let not_before = self.backoff(slot).not_before;
        // `vacant` changes only here, so `launchable` follows it.
        if vacant && self.vacant.insert(slot) {
            self.launchable.0.add(slot, not_before);
        } else if !vacant && self.vacant.remove(&slot) {
            self.launchable.0.remove(slot, not_before);
        }
    }

    fn insert(&mut self, durable: &Durable, entry: Entry) {
        let host = entry.d.host;
        let v = host_list(&mut self.by_host, host);
        match v.binary_search_by_key(&entry.id, |e| e.id) {
            Ok(i) => {
                if let Some(e) = v.get_mut(i) {
                    *e = entry;
                }
            }
            Err(i) => v.insert(i, entry),
        }
        self.touch(host);
        self.refresh_crowded(durable, entry.id.slot);
    }

    fn remove(&mut self, durable: &Durable, host: HostId, instance: InstanceId) {
        let Some(v) = self.by_host.get_mut(usize::from(host.0)) else {
            return;
        };
        let Ok(i) = v.binary_search_by_key(&instance, |e| e.id) else {
            return;
        };
        v.remove(i);
        while self.by_host.last().is_some_and(Vec::is_empty) {
            self.by_host.pop();
        }
        self.touch(host);
        self.refresh_crowded(durable, instance.slot);
    }

    /// Copies the durable half of `instance` into its entry.
    fn sync(&mut self, durable: &Durable, instance: InstanceId) {
        let Some(d) = durable.instances.get(&instance).copied() else {
            return;
        };
        let at = self.locate(d.host, instance, usize::MAX);
        let e = at.and_then(|i| self.by_host.get_mut(usize::from(d.host.0))?.get_mut(i));
        if let Some(e) = e {
            // A bug, not input: the durable record and the ledger must
            // agree on where an instance runs (S2 reads one, reports the other).
            assert_eq!(
                e.d.host, d.host,
                "ledger entry of {instance} on another host"
            );
            e.d = d;
        }
    }

    /// Changes the liveness of `instance` through `f`, if it is in the
    /// ledger on `host` (probably at `hint` there). Returns whether it was.
    pub(crate) fn update_live(
        &mut self,
        host: HostId,
        (instance, hint): (InstanceId, usize),
        f: impl FnOnce(&mut Liveness),
    ) -> bool {
        let Some(i) = self.locate(host, instance, hint) else {
            return false;
        };
        let Some(e) = self
            .by_host
            .get_mut(usize::from(host.0))
            .and_then(|v| v.get_mut(i))
        else {
            return false;
        };
        let old = e.live;
        f(&mut e.live);
        if e.live != old {
            // The host's deadline is recomputed once, by `flush`.
            self.touch(host);
        }
        true
    }

    /// Changes `slot`'s backoff through `f`, re-keying the launch index.
    pub(crate) fn set_backoff(&mut self, slot: SlotId, f: impl FnOnce(&mut Backoff)) {
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

    /// Brings the deadlines of the hosts changed in this step up to date:
    /// the end of every step.
    pub(crate) fn flush(&mut self, cfg: &Config) {
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

    /// Renames every host id through `rename` (a permutation).
    pub(crate) fn rename_hosts(&mut self, rename: impl Fn(HostId) -> HostId) {
        // `rename` is a bijection, so each host's list moves whole and stays
        // sorted by instance.
        let by_host = std::mem::take(&mut self.by_host);
        for (old, mut list) in by_host.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let h = rename(host_id(old));
            for e in &mut list {
                e.d.host = h;
            }
            *host_list(&mut self.by_host, h) = list;
        }
        self.host_due = self
            .host_due
            .iter()
            .map(|(h, t)| (rename(*h), *t))
            .collect();
        self.deadlines = self.host_due.iter().map(|(h, t)| (*t, *h)).collect();
    }

    fn touch(&mut self, host: HostId) {
        if self.dirty.last() != Some(&host) {
            self.dirty.push(host);
        }
    }

    fn refresh_crowded(&mut self, durable: &Durable, slot: SlotId) {
        if super::instances_of(durable, slot).nth(1).is_some() {
            self.crowded.insert(slot);
        } else {
            self.crowded.remove(&slot);
        }
    }

    fn compute_host_due(&self, cfg: &Config) -> BTreeMap<HostId, Tick> {
        self.host_dues(cfg).collect()
    }

    /// [`Ledger::compute_host_due`]'s pairs in host order, not collected.
    fn host_dues<'a>(&'a self, cfg: &'a Config) -> impl Iterator<Item = (HostId, Tick)> + 'a {
        self.hosts()
            .filter_map(|(h, v)| Some((h, min_due(cfg, v)?)))
    }
}

/// `host`'s list in `by_host`, created (with those before it) if absent.
#[allow(clippy::indexing_slicing)] // Just made long enough.
fn host_list(by_host: &mut Vec<Vec<Entry>>, host: HostId) -> &mut Vec<Entry> {
    let i = usize::from(host.0);
    if by_host.len() <= i {
        by_host.resize_with(i + 1, Vec::new);
    }
    &mut by_host[i]
}

fn host_id(i: usize) -> HostId {
    HostId(u16::try_from(i).unwrap_or(u16::MAX))
}
