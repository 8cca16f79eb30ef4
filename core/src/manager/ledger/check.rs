//! The ledger's one consistency check: everything recomputed from the
//! durable state and compared.

use super::{Ledger, vacancy};
use crate::config::Config;
use crate::ids::{InstanceId, SlotId};
use crate::invariants::Violation;
use crate::journal::{Durable, DurableInstance};
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
        if !same_deadlines || self.host_due != self.compute_host_due(cfg) {
            return stale("deadlines");
        }
        if self.vacant != vacancy::compute_vacant(cfg, durable) {
            return stale("vacant");
        }
        if self.crowded != compute_crowded(durable) {
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
        let mut all: Vec<(InstanceId, DurableInstance)> = Vec::new();
        for (host, v) in self.hosts() {
            let sorted = v.windows(2).all(|w| matches!(w, [a, b] if a.id < b.id));
            if !sorted || v.iter().any(|e| e.d.host != host) {
                return Err(Violation::IndexStale { index: "by_host" });
            }
            all.extend(v.iter().map(|e| (e.id, e.d)));
        }
        if self.by_host.last().is_some_and(Vec::is_empty) {
            return Err(Violation::IndexStale { index: "by_host" });
        }
        // One sorted walk against `durable` rather than a lookup per entry.
        all.sort_unstable_by_key(|(id, _)| *id);
        let first_difference = all
            .iter()
            .map(|(id, _)| id)
            .zip(durable.instances.keys())
            .find_map(|(a, b)| (a != b).then_some(*b));
        if let Some(instance) = first_difference.or_else(|| {
            (all.len() != durable.instances.len())
                .then(|| durable.instances.keys().next().copied().unwrap_or_default())
        }) {
            return Err(Violation::LedgerHalvesDisagree { instance });
        }
        let same = all
            .iter()
            .zip(&durable.instances)
            .all(|((_, da), (_, db))| da == db);
        if same {
            Ok(())
        } else {
            Err(Violation::IndexStale { index: "by_host" })
        }
    }
}

/// Slots with two or more instances in `durable`.
pub(super) fn compute_crowded(durable: &Durable) -> BTreeSet<SlotId> {
    let mut c = BTreeSet::new();
    let mut last: Option<SlotId> = None;
    for id in durable.instances.keys() {
        if last == Some(id.slot) {
            c.insert(id.slot);
        }
        last = Some(id.slot);
    }
    c
}
