//! Launching on a reporting host: choosing the next vacant slot, admitting
//! (pause, breaker, `K` boots in flight, backoff), paying (free launch,
//! token or probe credit), and launching (a fresh generation, journaled).

use super::Step;
use super::types::{Effect, Note};
use crate::budget::Payment;
use crate::ids::{HostId, InstanceId, SlotId, TypeId};
use crate::journal::JournalRecord;
use crate::message::ManagerReply;
use std::collections::BTreeSet;
use std::ops::Bound;

/// Where a report's launch loop stands.
struct Round {
    /// Boots on the host not yet confirmed ended: counted once per report,
    /// then kept up to date (a scan per candidate slot would cost
    /// O(instances on the host) each).
    boots: usize,
    /// The last slot visited.
    cursor: Option<SlotId>,
    /// Whether a budget refused once already in this report (noted once:
    /// evidence enough).
    noted: bool,
    /// The spreading share of the type last asked about: its slots on this
    /// host and its share (see `Step::leaves_to_others`), kept up to date
    /// by the launches of this round.
    share: Option<(TypeId, usize, usize)>,
    /// Types whose first launches this host leaves to others in this round
    /// (`Step::leaves_to_others`; a type stays deferred for the round, as
    /// launches only raise what the host holds): `next_slot` jumps over
    /// their free slots instead of visiting each.
    deferred: Vec<TypeId>,
}

/// What admission says of the next slot.
enum Admission {
    /// Launch it.
    Admit,
    /// Skip it (backoff not ended).
    Skip,
    /// Launch nothing more on this host in this report.
    Stop,
}

/// The first and last slots `process_type` can have.
fn type_bounds(process_type: TypeId) -> (SlotId, SlotId) {
    let slot = |index| SlotId {
        process_type,
        index,
    };
    (slot(0), slot(u16::MAX))
}

impl Step<'_> {
    pub(super) fn launch_on(&mut self, host: HostId, reply: &mut ManagerReply) {
        let d = &self.m.durable;
        if d.paused_all || d.paused_hosts.contains(&host) {
            return;
        }
        let mut round = Round {
            boots: self.m.boots_unconfirmed(self.cfg, host),
            cursor: None,
            noted: false,
            share: None,
            deferred: Vec::new(),
        };
        while let Some(slot) = self.next_slot(&round) {
            round.cursor = Some(slot);
            match self.admit(&round, slot) {
                Admission::Stop => return,
                Admission::Skip => continue,
                Admission::Admit => {}
            }
            if self.leaves_to_others(&mut round, host, slot) {
                if !round.deferred.contains(&slot.process_type) {
                    round.deferred.push(slot.process_type);
                }
                continue;
            }
            let Some(free) = self.pay(&mut round, slot) else {
                continue;
            };
            // A bug, not input: admission is decided before a boot is
            // counted, so a host never holds more than `K` (S4).
            assert!(
                round.boots < usize::from(self.cfg.boots_in_flight_max),
                "launch on {host} past admission"
            );
            if let Some(instance) = self.launch(host, slot, free) {
                round.boots += 1;
                if let Some((t, held, _)) = round.share.as_mut() {
                    if *t == slot.process_type {
                        *held += 1;
                    }
                }
                reply.launch.push(instance);
            }
        }
    }

    /// The next vacant slot after the cursor whose backoff has ended and
    /// that can launch: a free launch of an app its breaker lets through,
    /// or a slot of a payable type (`Manager::payable`). The same slots in
    /// the same order as a walk of every vacant slot that skips the others,
    /// but it jumps over them: after an incident hundreds of apps may have
    /// vacancies and empty buckets. The first slot a budget cannot pay in a
    /// report is still returned, so that `pay` notes the refusal.
    fn next_slot(&mut self, round: &Round) -> Option<SlotId> {
        let after = match round.cursor {
            None => (Bound::Unbounded, Bound::Unbounded),
            Some(c) => (Bound::Excluded(c), Bound::Unbounded),
        };
        let m = &mut *self.m;
        let mut first = m.ledger.launchable(self.now).range(after).next().copied()?;
        let m = &*m;
        let ready = m.ledger.launchable_as_promoted();
        let free_launches = &m.durable.free_launches;
        // Over a deferred type's free slots in one walk: to its next paid
        // slot, or past the type.
        while round.deferred.contains(&first.process_type) && free_launches.contains(&first) {
            let end = type_bounds(first.process_type).1;
            let mut free_in_type = free_launches
                .range((Bound::Excluded(first), Bound::Included(end)))
                .peekable();
            let paid = ready
                .range((Bound::Excluded(first), Bound::Included(end)))
                .find(|s| {
                    while free_in_type.next_if(|f| *f < *s).is_some() {}
                    free_in_type.peek() != Some(s)
                })
                .copied();
            first = match paid {
                Some(p) => p,
                None => *ready
                    .range((Bound::Excluded(end), Bound::Unbounded))
                    .next()?,
            };
        }
        let t = first.process_type;
        let allowed = |s: &SlotId| m.breaker(m.app_of(s.process_type)).allows_launch();
        let free = m.durable.free_launches.contains(&first);
        if (free && allowed(&first)) || m.payable.contains(t) {
            return Some(first);
        }
        if !free && !round.noted && allowed(&first) {
            return Some(first);
        }
        let next_free = m
            .durable
            .free_launches
            .range((Bound::Excluded(first), Bound::Unbounded))
            .find(|s| ready.contains(s) && allowed(s))
            .copied();
        let next_paid = next_payable(m, ready, first);
        match (next_free, next_paid) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn admit(&self, round: &Round, slot: SlotId) -> Admission {
        if !self.m.durable.fleet_breaker.allows_launch() {
            return Admission::Stop;
        }
        if round.boots >= usize::from(self.cfg.boots_in_flight_max) {
            return Admission::Stop;
        }
        if self.m.ledger.backoff(slot).not_before > self.now {
            return Admission::Skip;
        }
        Admission::Admit
    }

    /// Spreading (DESIGN.md, "Placement"): a first launch of a scalable
    /// type is left to other hosts when this one already holds its share,
    /// `ceil(desired / holders)`, where the holders are the hosts with
    /// instances in the ledger that are not paused, this one counted. What
    /// a host holds is `Manager::slots_of_type_on`, which is below the
    /// desired count while a slot of the formation is vacant, so a host
    /// alone never defers. A relaunch after a failure goes wherever a
    /// report comes from, so recovery never waits for a share; a host that
    /// dies leaves the holders once its instances leave the ledger.
    /// Singletons are never deferred. It counts hosts and never compares
    /// their ids: no safety property depends on where an instance runs.
    fn leaves_to_others(&mut self, round: &mut Round, host: HostId, slot: SlotId) -> bool {
        let t = slot.process_type;
        if self.cfg.is_singleton(t) || !self.m.durable.free_launches.contains(&slot) {
            return false;
        }
        if round.share.is_none_or(|(known, _, _)| known != t) {
            round.share = Some((t, self.m.slots_of_type_on(host, t), self.share(host, t)));
        }
        round.share.is_some_and(|(_, held, share)| held >= share)
    }

    /// `ceil(desired / holders)` for type `t` as seen from `host`.
    fn share(&self, host: HostId, t: TypeId) -> usize {
        let m = &*self.m;
        let (holds, holders) = m.ledger.holders(host);
        let paused = m
            .durable
            .paused_hosts
            .iter()
            .filter(|h| m.ledger.holders(**h).0)
            .count();
        let holders = holders
            .saturating_sub(paused)
            .saturating_add(usize::from(!holds))
            .max(1);
        usize::from(m.desired(t)).div_ceil(holders)
    }

    /// Pays for launching `slot`: its free launch, or its app's budget.
    /// `None` when the budget refuses (noted once per report: evidence
    /// enough).
    fn pay(&mut self, round: &mut Round, slot: SlotId) -> Option<bool> {
        if self.m.durable.free_launches.contains(&slot) {
            return Some(true);
        }
        let cfg = self.cfg;
        let bucket = self.m.bucket_of(cfg, slot.process_type);
        let mut budget = self.m.budget(bucket)?;
        let Some(payment) = budget.try_spend(cfg) else {
            if !round.noted {
                round.noted = true;
                self.out.push(Effect::Note(Note::RetryRefused { slot }));
            }
            return None;
        };
        self.update_budget(bucket, |b| *b = budget);
        if payment == Payment::Probe {
            self.out.push(Effect::Note(Note::ProbeSpent));
        }
        Some(false)
    }

    /// Launches `slot`'s next generation on `host`: journaled first, then
    /// the breakers told (a half-open breaker's probe).
    fn launch(&mut self, host: HostId, slot: SlotId, free: bool) -> Option<InstanceId> {
        let generation = self.m.durable.next_generation(slot)?;
        let instance = InstanceId { slot, generation };
        self.persist(JournalRecord::InstanceLaunched {
            instance,
            host,
            free,
        });
        let app = self.m.app_of(slot.process_type);
        self.update_breaker(app, |b| b.on_launch(instance));
        self.update_fleet_breaker(|b| b.on_launch(instance));
        Some(instance)
    }
}

/// The first vacant slot after `first` (in `ready`, the launchable slots)
/// whose type is payable. Two walks that find the same slot, taken in
/// turns so that the cheaper one ends the search: the launchable slots in
/// order, one type at a time, and the payable types in order. After an
/// incident the payable types are few; in steady state the vacant slots
/// are.
fn next_payable(m: &super::Manager, ready: &BTreeSet<SlotId>, first: SlotId) -> Option<SlotId> {
    let mut slots_after = first;
    let mut types_from = Some(first.process_type);
    loop {
        let s = ready
            .range((Bound::Excluded(slots_after), Bound::Unbounded))
            .next()?;
        if m.payable.contains(s.process_type) {
            return Some(*s);
        }
        slots_after = type_bounds(s.process_type).1;
        let t = m.payable.first_from(types_from?)?;
        let (lo, hi) = type_bounds(t);
        let lo = if lo > first {
            Bound::Included(lo)
        } else {
            Bound::Excluded(first)
        };
        if let Some(s) = ready.range((lo, Bound::Included(hi))).next() {
            return Some(*s);
        }
        types_from = t.0.checked_add(1).map(TypeId);
    }
}
