//! Launching on a reporting host: choosing the next vacant slot, admitting
//! (pause, breaker, `K` boots in flight, backoff), paying (free launch,
//! token or probe credit), and launching (a fresh generation, journaled).

use super::Step;
use super::types::{Effect, Note};
use crate::budget::Payment;
use crate::ids::{HostId, InstanceId, SlotId};
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
    /// Whether the budget refused once already in this report.
    refused: bool,
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

impl Step<'_> {
    pub(super) fn launch_on(&mut self, host: HostId, reply: &mut ManagerReply) {
        let d = &self.m.durable;
        if d.paused_all || d.paused_hosts.contains(&host) {
            return;
        }
        let mut round = Round {
            boots: self.m.boots_unconfirmed(self.cfg, host),
            cursor: None,
            refused: false,
        };
        while let Some(slot) = self.next_slot(&round) {
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

    /// The next vacant slot after the cursor whose backoff has ended: the
    /// same slots in the same order as a walk of `vacant`, skipping those
    /// that would be skipped.
    fn next_slot(&mut self, round: &Round) -> Option<SlotId> {
        let after = match round.cursor {
            None => (Bound::Unbounded, Bound::Unbounded),
            Some(c) => (Bound::Excluded(c), Bound::Unbounded),
        };
        let free = &self.m.durable.free_launches;
        let ready = self.m.ledger.launchable(self.now);
        // After a refusal the budget cannot pay (it changes here only when
        // spent): only a slot with a free launch can still launch, so visit
        // just those, in the same order, when they are fewer.
        if round.refused && free.len() < ready.len() {
            free.range(after).find(|s| ready.contains(s)).copied()
        } else {
            ready.range(after).next().copied()
        }
    }

    fn admit(&self, round: &Round, slot: SlotId) -> Admission {
        if !self.m.durable.breaker.allows_launch() {
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

    /// Pays for launching `slot`: its free launch, or the budget. `None`
    /// when the budget refuses (noted once per report: evidence enough).
    fn pay(&mut self, round: &mut Round, slot: SlotId) -> Option<bool> {
        if self.m.durable.free_launches.contains(&slot) {
            return Some(true);
        }
        let mut budget = self.m.durable.budget;
        let Some(payment) = budget.try_spend(self.cfg) else {
            if !round.refused {
                round.refused = true;
                self.out.push(Effect::Note(Note::RetryRefused { slot }));
            }
            return None;
        };
        self.set_budget(budget);
        if payment == Payment::Probe {
            self.out.push(Effect::Note(Note::ProbeSpent));
        }
        Some(false)
    }

    /// Launches `slot`'s next generation on `host`: journaled first, then
    /// the breaker told (a half-open breaker's probe).
    fn launch(&mut self, host: HostId, slot: SlotId, free: bool) -> Option<InstanceId> {
        let generation = self.m.durable.next_generation(slot)?;
        let instance = InstanceId { slot, generation };
        self.persist(JournalRecord::InstanceLaunched {
            instance,
            host,
            free,
        });
        let mut b = self.m.durable.breaker;
        let change = b.on_launch(instance);
        self.set_breaker(b, change);
        Some(instance)
    }
}
