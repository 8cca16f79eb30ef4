//! An agent's report: exits, running instances (renewed, revived, or
//! phantoms to reap), surplus to stop, vacant slots to launch, one reply.

use super::Step;
use super::types::{Alert, Backoff, Effect, LiveView, Note};
use super::vacancy::occupies;
use crate::config::Mutation;
use crate::ids::{HostId, InstanceId};
use crate::journal::{JournalRecord, StopReason};
use crate::message::{AgentReport, ExitOutcome, ManagerReply, PROTOCOL_VERSION, RunPhase};

impl Step<'_> {
    pub(super) fn on_report(&mut self, report: &AgentReport) {
        if report.version != PROTOCOL_VERSION {
            self.out.push(Effect::Note(Note::ReportVersionMismatch));
            return;
        }
        let host = report.host;
        self.apply_exits(report);
        let mut reply = ManagerReply {
            version: PROTOCOL_VERSION,
            host,
            incarnation: report.incarnation,
            request_sent_at: report.sent_at,
            renew: Vec::with_capacity(report.running.len()),
            launch: Vec::new(),
            stop: Vec::new(),
            term: self.m.durable.term,
        };
        if self.cfg.mutations.has(Mutation::AbsenceConfirmsDeath) {
            // Shortcut 3: an instance missing from a report taken as dead.
            let missing: Vec<InstanceId> = self
                .m
                .instances_on(host)
                .filter(|id| !report.running.iter().any(|r| r.instance == *id))
                .collect();
            for id in missing {
                self.remove((host, id));
            }
        }
        let mut hint = 0;
        for r in &report.running {
            self.apply_running(host, (r.instance, r.phase, &mut hint), &mut reply);
        }
        if self.cfg.mutations.has(Mutation::HostWideRenewal) {
            let all: Vec<InstanceId> = self.m.instances_on(host).collect();
            for id in all {
                self.renew(host, (id, usize::MAX), &mut reply);
            }
        }
        if !self.m.durable.lockdown {
            self.stop_surplus(host);
        }
        self.launch_on(host, &mut reply);
        let stopping = self.m.ledger.entries_on(host).iter();
        reply
            .stop
            .extend(stopping.filter(|e| e.d.stop.is_some()).map(|e| e.id));
        // Sorted and without repeats: an instance may be named twice above.
        for list in [&mut reply.renew, &mut reply.stop] {
            list.sort_unstable();
            list.dedup();
        }
        self.out.push(Effect::Send(reply));
    }

    fn apply_exits(&mut self, report: &AgentReport) {
        let host = report.host;
        for e in &report.exited {
            // Not in the ledger, or placed on another host: stale.
            if self.m.ledger.entry(host, e.instance).is_none() {
                self.raise_high_water(e.instance);
                self.out.push(Effect::Note(Note::StaleExit));
                continue;
            }
            let at = (host, e.instance);
            match e.outcome {
                ExitOutcome::BootFailed => self.note_failure_if_unbooted(at, true),
                ExitOutcome::Crashed | ExitOutcome::NeverStarted => {
                    self.note_failure_if_unbooted(at, false);
                }
                ExitOutcome::Killed => {}
            }
            self.remove(at);
        }
    }

    /// One running instance of the report: a phantom is reaped; a live one
    /// has its boot or revival noted and its lease renewed.
    fn apply_running(
        &mut self,
        host: HostId,
        (instance, phase, hint): (InstanceId, RunPhase, &mut usize),
        reply: &mut ManagerReply,
    ) {
        // Not in the ledger, or placed on another host: a phantom.
        let at = self
            .m
            .ledger
            .locate(host, instance, *hint)
            .unwrap_or(usize::MAX);
        let entry = self.m.ledger.entry_at(host, at).copied();
        *hint = at.saturating_add(1);
        let Some(e) = entry else {
            self.raise_high_water(instance);
            self.out
                .push(Effect::Note(Note::PhantomReaped { instance }));
            reply.stop.push(instance);
            return;
        };
        if e.d.stop.is_some() || phase == RunPhase::Killing {
            // Not renewed: its lease runs out if the stop is lost.
            return;
        }
        let view = if phase == RunPhase::Up {
            self.on_up(e.id, e.d.boot_seen_done, e.live.view);
            LiveView::Up
        } else if e.live.view == LiveView::Unknown && !e.d.boot_seen_done {
            let boot_deadline = self.now.plus(self.cfg.timing.boot_timeout_ticks);
            LiveView::Launching { boot_deadline }
        } else if e.live.view == LiveView::Unknown {
            LiveView::Up
        } else {
            e.live.view
        };
        if view != e.live.view {
            self.m
                .ledger
                .update_live(host, (instance, at), |l| l.view = view);
        }
        self.renew(host, (instance, at), reply);
    }

    /// An instance reported up: its first boot refills the budget, resets
    /// its slot's backoff and tells the breaker.
    fn on_up(&mut self, instance: InstanceId, boot_seen_done: bool, view: LiveView) {
        let first = !boot_seen_done;
        let revived = view != LiveView::Up;
        if first {
            self.persist(JournalRecord::BootSeenDone { instance });
            self.out
                .push(Effect::Note(Note::BootSucceeded { instance }));
            self.m
                .ledger
                .set_backoff(instance.slot, |b| *b = Backoff::default());
            let now = self.now;
            let app = self.m.app_of(instance.slot.process_type);
            self.update_breaker(app, |b| b.on_success(now, instance));
            self.update_fleet_breaker(|b| b.on_success(now, instance));
        }
        if first || (revived && self.cfg.mutations.has(Mutation::RefillOnRevive)) {
            let cfg = self.cfg;
            let bucket = self.m.bucket_of(cfg, instance.slot.process_type);
            self.update_budget(bucket, |b| b.refill(cfg));
        }
    }

    /// Defence in depth: an agent ran (or runs) `instance`, which is above
    /// its slot's high water only if the journal lost records. The high
    /// water is raised, journaled, before any launch of the slot in this
    /// step, so the generation is never issued again.
    fn raise_high_water(&mut self, instance: InstanceId) {
        let high_water = self.m.durable.high_water.get(&instance.slot).copied();
        if high_water.unwrap_or_default() < instance.generation {
            let (slot, generation) = (instance.slot, instance.generation);
            self.persist(JournalRecord::HighWaterRaised { slot, generation });
            let alert = Alert::GenerationAboveHighWater { instance };
            self.out.push(Effect::Alert(alert));
        }
    }

    /// Renews `instance`'s lease if it is in the ledger on `host`.
    fn renew(&mut self, host: HostId, at: (InstanceId, usize), reply: &mut ManagerReply) {
        let lease_deadline = self.now.plus(self.cfg.lease_expiry_ticks());
        if self.m.ledger.update_live(host, at, |l| {
            l.lease_deadline = l.lease_deadline.max(lease_deadline);
        }) {
            reply.renew.push(at.0);
        }
    }

    /// Stops instances on `host` the formation no longer wants: slots above
    /// the desired count, and older live instances of a slot with a newer one.
    fn stop_surplus(&mut self, host: HostId) {
        let (cfg, m) = (self.cfg, &*self.m);
        let surplus: Vec<InstanceId> = m
            .ledger
            .entries_on(host)
            .iter()
            .filter(|e| {
                let id = e.id;
                let live = e.d.stop.is_none();
                let above = id.slot.index >= m.desired(id.slot.process_type);
                // Only a crowded slot holds another instance.
                live && (above
                    || (m.ledger.is_crowded(id.slot)
                        && m.instances_of(id.slot)
                            .any(|o| o.generation > id.generation && occupies(cfg, &m.durable, o))))
            })
            .map(|e| e.id)
            .collect();
        for id in surplus {
            self.request_stop(id, StopReason::UserRequested);
        }
    }
}
