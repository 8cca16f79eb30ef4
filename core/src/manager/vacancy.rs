//! Vacancy: which slots of the formation nothing occupies (the rule, one
//! definition), and the launch index: the vacant slots split by whether
//! their relaunch backoff has ended, so that a report visits only slots it could
//! launch instead of walking every vacant slot and skipping those still
//! waiting (in a retry storm, nearly all of them).
//!
//! A cache, not state: which of two managers has moved more slots from
//! `waiting` to `ready` changes no decision (`launch_on` still checks each
//! slot's backoff), so a [`Cache`] compares equal and hashes as nothing,
//! and the model checker sees one state where the cache differs.

use crate::config::Config;
use crate::ids::{InstanceId, SlotId, Tick, TypeId};
use crate::journal::Durable;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// Whether an instance keeps its slot occupied: any instance of a
/// singleton slot (rule 3), a live (not stopping) one of a scalable slot.
pub(crate) fn occupies(cfg: &Config, durable: &Durable, instance: InstanceId) -> bool {
    cfg.is_singleton(instance.slot.process_type)
        || durable
            .instances
            .get(&instance)
            .is_some_and(|d| d.stop.is_none())
}

/// Whether `slot` is in the formation and nothing occupies it.
pub(crate) fn slot_is_vacant(cfg: &Config, durable: &Durable, slot: SlotId) -> bool {
    let desired = durable
        .formation
        .get(usize::from(slot.process_type.0))
        .copied()
        .unwrap_or(0);
    slot.index < desired && !super::instances_of(durable, slot).any(|id| occupies(cfg, durable, id))
}

/// Every slot for which `slot_is_vacant` holds, in one walk of the
/// formation and the ledger together (both in slot order).
pub(crate) fn compute_vacant(cfg: &Config, durable: &Durable) -> BTreeSet<SlotId> {
    // Sorted already: built in bulk.
    vacant_slots(cfg, durable).collect()
}

/// [`compute_vacant`]'s slots in order, without collecting them (a check
/// compares them with the index as they come).
pub(crate) fn vacant_slots<'a>(
    cfg: &'a Config,
    durable: &'a Durable,
) -> impl Iterator<Item = SlotId> + 'a {
    let mut occupied = durable
        .instances
        .iter()
        .filter(|(id, d)| cfg.is_singleton(id.slot.process_type) || d.stop.is_none())
        .map(|(id, _)| id.slot)
        .peekable();
    durable
        .formation
        .iter()
        .enumerate()
        .flat_map(|(t, count)| {
            let process_type = TypeId(u16::try_from(t).unwrap_or(u16::MAX));
            (0..*count).map(move |index| SlotId {
                process_type,
                index,
            })
        })
        .filter(move |slot| {
            while occupied.next_if(|s| s < slot).is_some() {}
            occupied.peek() != Some(slot)
        })
}

/// A value derived from the rest of a state, kept for speed: equal to any
/// other and hashed as nothing, so it never splits one state into two.
#[derive(Clone, Default)]
pub(crate) struct Cache<T>(pub(crate) T);

// Printed as nothing too: equal states print the same (traces, Explorer).
impl<T> std::fmt::Debug for Cache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

impl<T> PartialEq for Cache<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Cache<T> {}

impl<T> Hash for Cache<T> {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

/// The vacant slots, as `ready` (backoff ended by the last [`Self::promote`])
/// and `waiting` (keyed by the backoff's end). Every vacant slot is in
/// exactly one of them, and a waiting slot's key is its backoff's
/// `not_before`: `check` verifies both.
#[derive(Clone, Debug, Default)]
pub(crate) struct Vacancies {
    /// Built from the vacant set (a fresh or deserialized manager starts
    /// unbuilt and builds it on first use).
    built: bool,
    ready: BTreeSet<SlotId>,
    waiting: BTreeSet<(Tick, SlotId)>,
}

impl Vacancies {
    /// Whether it has been built (and so is kept up to date).
    pub(crate) fn is_built(&self) -> bool {
        self.built
    }

    /// Rebuilds from the vacant slots, each with its backoff's end.
    pub(crate) fn rebuild(&mut self, vacant: impl Iterator<Item = (SlotId, Tick)>) {
        self.ready.clear();
        self.waiting = vacant.map(|(s, t)| (t, s)).collect();
        self.built = true;
    }

    /// A slot became vacant; its backoff ends at `not_before`.
    pub(crate) fn add(&mut self, slot: SlotId, not_before: Tick) {
        if self.built {
            self.waiting.insert((not_before, slot));
        }
    }

    /// A slot is no longer vacant; its backoff ends at `not_before`.
    pub(crate) fn remove(&mut self, slot: SlotId, not_before: Tick) {
        if self.built && !self.ready.remove(&slot) {
            self.waiting.remove(&(not_before, slot));
        }
    }

    /// Moves every slot whose backoff has ended by `now` to `ready`.
    pub(crate) fn promote(&mut self, now: Tick) {
        while let Some(&(t, slot)) = self.waiting.first() {
            if t > now {
                break;
            }
            self.waiting.pop_first();
            self.ready.insert(slot);
        }
    }

    /// The ready slots, in slot order.
    pub(crate) fn ready(&self) -> &BTreeSet<SlotId> {
        &self.ready
    }

    /// Whether it is exactly `vacant`, split as documented.
    pub(crate) fn check(
        &self,
        vacant: &BTreeSet<SlotId>,
        not_before: impl Fn(SlotId) -> Tick,
    ) -> bool {
        if !self.built {
            return true;
        }
        let waiting: BTreeSet<SlotId> = self.waiting.iter().map(|(_, s)| *s).collect();
        waiting.len() == self.waiting.len()
            && self.ready.len() + waiting.len() == vacant.len()
            && self.ready.iter().all(|s| vacant.contains(s))
            && self
                .waiting
                .iter()
                .all(|(t, s)| vacant.contains(s) && !self.ready.contains(s) && *t == not_before(*s))
    }
}
