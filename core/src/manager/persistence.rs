//! Durable changes: every one goes through a record, emitted before any
//! effect that depends on it, and followed by the ledger in the same call.

use super::Step;
use super::types::{Alert, Effect};
use crate::breaker::{Breaker, BreakerChange, FleetBreaker};
use crate::budget::Budget;
use crate::ids::{AppId, HostId, InstanceId, SlotId, TypeId};
use crate::journal::{JournalRecord, StopReason};

impl Step<'_> {
    /// Applies `record` to the durable state and the ledger, and asks the
    /// shell to make it durable before any later effect.
    pub(super) fn persist(&mut self, record: JournalRecord) {
        self.persist_placed(record, None);
    }

    /// `persist`, told where an `InstanceStopped`'s instance ran when the
    /// caller knows (it saves a lookup in the whole ledger).
    fn persist_placed(&mut self, record: JournalRecord, host: Option<HostId>) {
        let (cfg, now) = (self.cfg, self.now);
        let m = &mut *self.m;
        // Where a stopped instance ran, read before the record removes it.
        let placed = match record {
            JournalRecord::InstanceStopped { instance } => host
                .or_else(|| m.durable.instances.get(&instance).map(|d| d.host))
                .map(|h| (instance, h)),
            _ => None,
        };
        let old_count = match record {
            JournalRecord::FormationSet { process_type, .. } => m.desired(process_type),
            _ => 0,
        };
        let fresh = m.durable.apply_fresh(&record);
        // A bug, not input: a launch at or below its slot's high water would
        // reuse a fencing token (S6).
        assert!(fresh, "{record:?} reuses a generation of its slot");
        let placed_on = placed.map(|(_, h)| h);
        m.ledger.follow((cfg, now), &m.durable, &record, placed_on);
        if let JournalRecord::FormationSet {
            process_type,
            count,
        } = record
        {
            let upto = old_count.max(count);
            m.ledger.refresh_type(cfg, &m.durable, process_type, upto);
        }
        if let JournalRecord::BudgetSet { app, .. } | JournalRecord::BreakerSet { app, .. } = record
        {
            m.refresh_payable(cfg, Some(app));
        }
        self.out.push(Effect::Persist(record));
        if let Some((instance, host)) = placed {
            let note = super::Note::InstanceStopped { instance, host };
            self.out.push(Effect::Note(note));
        }
    }

    /// Changes `app`'s budget through `change`, journaling the result if
    /// it differs.
    pub(super) fn update_budget(&mut self, app: AppId, change: impl FnOnce(&mut Budget)) {
        let Some(mut budget) = self.m.durable.budgets.get(app.index()).copied() else {
            return;
        };
        change(&mut budget);
        if Some(&budget) != self.m.durable.budgets.get(app.index()) {
            self.persist(JournalRecord::BudgetSet { app, budget });
        }
    }

    /// Changes `app`'s breaker through `change`, journaling what it reports.
    pub(super) fn update_breaker(
        &mut self,
        app: AppId,
        change: impl FnOnce(&mut Breaker) -> BreakerChange,
    ) {
        let Some(mut breaker) = self.m.durable.breakers.get(app.index()).copied() else {
            return;
        };
        match change(&mut breaker) {
            BreakerChange::None => {}
            BreakerChange::Changed => self.persist(JournalRecord::BreakerSet { app, breaker }),
            BreakerChange::Tripped => {
                self.persist(JournalRecord::BreakerSet { app, breaker });
                let alert = Alert::BreakerTripped { app };
                self.out.push(Effect::Alert(alert));
            }
        }
    }

    /// Changes the fleet breaker through `change`, journaling what it reports.
    pub(super) fn update_fleet_breaker(
        &mut self,
        change: impl FnOnce(&mut FleetBreaker) -> BreakerChange,
    ) {
        let mut breaker = self.m.durable.fleet_breaker.clone();
        match change(&mut breaker) {
            BreakerChange::None => {}
            BreakerChange::Changed => self.persist(JournalRecord::FleetBreakerSet { breaker }),
            BreakerChange::Tripped => {
                self.persist(JournalRecord::FleetBreakerSet { breaker });
                self.out.push(Effect::Alert(Alert::FleetBreakerTripped));
            }
        }
    }

    /// A boot of `instance` failed or timed out: its app's breaker and the
    /// fleet breaker count it.
    pub(super) fn count_boot_failure(&mut self, instance: InstanceId) {
        let (cfg, now) = (self.cfg, self.now);
        let app = self.m.app_of(instance.slot.process_type);
        self.out
            .push(Effect::Note(super::Note::BootFailureCounted { instance }));
        // The mutation re-creates the fleet-wide breaker of before: no app
        // has a breaker of its own.
        if !cfg
            .mutations
            .has(crate::config::Mutation::BreakerCountsOneApp)
        {
            self.update_breaker(app, |b| b.on_failure(cfg, now, instance));
        }
        let apps = self.m.app_count();
        self.update_fleet_breaker(|b| b.on_failure((cfg, apps), now, (app, instance)));
    }

    /// Sets the desired count of `process_type`; each new slot gets a free
    /// first launch.
    pub(super) fn set_formation(&mut self, process_type: TypeId, count: u16) {
        let old = self.m.desired(process_type);
        if old != count {
            self.persist(JournalRecord::FormationSet {
                process_type,
                count,
            });
        }
        for index in old..count {
            let slot = SlotId {
                process_type,
                index,
            };
            self.grant_free_launch(slot);
        }
    }

    pub(super) fn grant_free_launch(&mut self, slot: SlotId) {
        if !self.m.durable.free_launches.contains(&slot) {
            self.persist(JournalRecord::FreeLaunchGranted { slot });
        }
    }

    /// Proven dead: the instance leaves the ledger.
    pub(super) fn remove(&mut self, (host, instance): (HostId, InstanceId)) {
        let Some(d) = self.m.ledger.entry(host, instance).map(|e| e.d) else {
            return;
        };
        self.persist_placed(JournalRecord::InstanceStopped { instance }, Some(host));
        // A probe that never booted counts as a failed probe.
        if d.boot_seen_done {
            return;
        }
        let (cfg, now) = (self.cfg, self.now);
        let app = self.m.app_of(instance.slot.process_type);
        if matches!(self.m.breaker(app), Breaker::HalfOpen { probe: Some(p) } if p == instance) {
            self.update_breaker(app, |b| b.on_failure(cfg, now, instance));
        }
        // For the fleet, not when a user stopped it: the fleet breaker counts
        // failing apps, and a restart is no failure.
        let user_stop = d.stop == Some(StopReason::UserRequested);
        if !user_stop
            && matches!(self.m.durable.fleet_breaker, FleetBreaker::HalfOpen { probe: Some(p), .. } if p == instance)
        {
            self.out
                .push(Effect::Note(super::Note::BootFailureCounted { instance }));
            let apps = self.m.app_count();
            self.update_fleet_breaker(|b| b.on_failure((cfg, apps), now, (app, instance)));
        }
    }

    pub(super) fn request_stop(&mut self, instance: InstanceId, reason: StopReason) {
        let current = self.m.durable.instances.get(&instance).and_then(|d| d.stop);
        if current.is_none() {
            self.persist(JournalRecord::StopRequested { instance, reason });
        }
    }
}
