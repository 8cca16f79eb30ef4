//! The ledger's one consistency check: everything recomputed from the
//! durable state and compared.

use super::{Ledger, vacancy};
use crate::config::Config;
use crate::ids::SlotId;
use crate::invariants::Violation;
use crate::journal::Durable;
use std::collections::BTreeSet;

impl Ledger {
    /// Whether the ledger is exactly what `durable` and the volatile halves
    /// imply: the same instances on the same hosts with the same durable
    /// fields, and every index equal to its recomputation.
    pub(crate) fn check(&self, cfg: &Config, durable: &Durable) -> Result<(), Violation> {
        self.check_entries(durable)?;
        let stale = |index| Err(Violation::IndexStale { index });
        let same_deadlines = self.dirty.is_empty()
            && self.deadlines.len() == self.host_due.len()
            && self
                .deadlines
                .iter()
                .all(|(t, h)| self.host_due.get(h) == Some(t));
        // Compared as they are recomputed: no set is built.
        if !same_deadlines
            || !self
                .host_due
                .iter()
                .map(|(h, t)| (*h, *t))
                .eq(self.host_dues(cfg))
        {
            return stale("deadlines");
        }
        if !self
            .vacant
            .iter()
            .copied()
            .eq(vacancy::vacant_slots(cfg, durable))
        {
            return stale("vacant");
        }
        if !self.crowded.iter().copied().eq(crowded_slots(durable)) {
            return stale("crowded");
        }
        if !self
            .launchable
            .0
            .check(&self.vacant, |s| self.backoff(s).not_before)
        {
            return stale("launchable");
        }
        Ok(())
    }

    fn check_entries(&self, durable: &Durable) -> Result<(), Violation> {
        let mut entries = 0usize;
        for (host, v) in self.hosts() {
            let sorted = v.windows(2).all(|w| matches!(w, [a, b] if a.id < b.id));
            if !sorted || v.iter().any(|e| e.d.host != host) {
                return Err(Violation::IndexStale { index: "by_host" });
            }
            entries += v.len();
        }
        if self.by_host.last().is_some_and(Vec::is_empty) {
            return Err(Violation::IndexStale { index: "by_host" });
        }
        // Each durable instance found, equal, on the host it names; and as
        // many entries as instances (ids are unique per host list, and each
        // list holds only its host's): the two halves are the same set.
        for (id, d) in &durable.instances {
            match self.entry(d.host, *id) {
                None => return Err(Violation::LedgerHalvesDisagree { instance: *id }),
                Some(e) if e.d != *d => {
                    return Err(Violation::IndexStale { index: "by_host" });
                }
                Some(_) => {}
            }
        }
        if entries != durable.instances.len() {
            let extra = self
                .hosts()
                .flat_map(|(_, v)| v.iter())
                .find(|e| !durable.instances.contains_key(&e.id))
                .map(|e| e.id)
                .unwrap_or_default();
            return Err(Violation::LedgerHalvesDisagree { instance: extra });
        }
        Ok(())
    }
}

/// Slots with two or more instances in `durable`.
pub(super) fn compute_crowded(durable: &Durable) -> BTreeSet<SlotId> {
    crowded_slots(durable).collect()
}

/// [`compute_crowded`]'s slots in order, each once, without collecting.
fn crowded_slots(durable: &Durable) -> impl Iterator<Item = SlotId> + '_ {
    let mut last: Option<SlotId> = None;
    let mut reported: Option<SlotId> = None;
    durable.instances.keys().filter_map(move |id| {
        let again = last == Some(id.slot) && reported != Some(id.slot);
        last = Some(id.slot);
        again.then(|| {
            reported = Some(id.slot);
            id.slot
        })
    })
}
