//! Launching on a reporting host: choosing the next vacant slot, admitting
//! (pause, breaker, `K` boots in flight, backoff), paying (free launch,
//! token or probe credit), and launching (a fresh generation, journaled).

use super::Step;
use super::types::{Effect, Note};
use crate::budget::Payment;
use crate::ids::{AppId, HostId, InstanceId, SlotId, TypeId};
use crate::journal::JournalRecord;
use crate::message::ManagerReply;
use std::ops::Bound;

/// Where a report's launch loop stands.
struct Round {
    /// Boots on the host not yet confirmed ended: counted once per report,
    /// then kept up to date (a scan per candidate slot would cost
    /// O(instances on the host) each).
    boots: usize,
    /// The last slot visited.
    cursor: Option<SlotId>,
    /// Buckets that refused once already in this report: few, so a list.
    refused: Vec<AppId>,
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

/// The last slot `process_type` can have: the cursor that skips the rest
/// of a type.
fn end_of_type(process_type: TypeId) -> SlotId {
    SlotId {
        process_type,
        index: u16::MAX,
    }
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
            refused: Vec::new(),
        };
        while let Some(slot) = self.next_slot(&mut round) {
            round.cursor = Some(slot);
            match self.admit(&round, slot) {
                Admission::Stop => return,
                Admission::Skip => continue,
                Admission::Admit => {}
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
                reply.launch.push(instance);
            }
        }
    }

    /// The next vacant slot after the cursor whose backoff has ended, whose
    /// app's breaker lets it through, and that can be paid for: the slots a
    /// walk of `vacant` would launch, in the same order, without visiting
    /// every slot of a held app.
    fn next_slot(&mut self, round: &mut Round) -> Option<SlotId> {
        loop {
            let after = match round.cursor {
                None => (Bound::Unbounded, Bound::Unbounded),
                Some(c) => (Bound::Excluded(c), Bound::Unbounded),
            };
            let ready = self.m.ledger.launchable(self.now);
            let slot = ready.range(after).next().copied()?;
            let t = slot.process_type;
            if !self.m.breaker(self.m.app_of(t)).allows_launch() {
                // Held by its app's breaker: the rest of the type is too.
                round.cursor = Some(end_of_type(t));
                continue;
            }
            let free = &self.m.durable.free_launches;
            if free.contains(&slot) || !round.refused.contains(&self.m.bucket_of(self.cfg, t)) {
                return Some(slot);
            }
            // After a refusal the bucket cannot pay (it changes here only
            // when spent): only a slot of this type with a free launch can
            // still launch, so visit just those.
            let ready = self.m.ledger.launchable(self.now);
            let free = &self.m.durable.free_launches;
            let rest = (Bound::Excluded(slot), Bound::Included(end_of_type(t)));
            if let Some(s) = free.range(rest).find(|s| ready.contains(s)) {
                return Some(*s);
            }
            round.cursor = Some(end_of_type(t));
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

    /// Pays for launching `slot`: its free launch, or its app's budget.
    /// `None` when the budget refuses (noted once per app and report:
    /// evidence enough).
    fn pay(&mut self, round: &mut Round, slot: SlotId) -> Option<bool> {
        if self.m.durable.free_launches.contains(&slot) {
            return Some(true);
        }
        let cfg = self.cfg;
        let bucket = self.m.bucket_of(cfg, slot.process_type);
        let mut budget = self.m.budget(bucket)?;
        let Some(payment) = budget.try_spend(cfg) else {
            if !round.refused.contains(&bucket) {
                round.refused.push(bucket);
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
