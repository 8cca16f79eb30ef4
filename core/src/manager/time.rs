//! Time: what a tick finds due (leases run out, boots time out, entries go
//! unknown), the probe credit and breaker cool-downs, and relaunch backoff.

use super::Step;
use super::ledger::Entry;
use super::types::{Effect, LiveView, Liveness, Note};
use crate::config::{Config, Mutation};
use crate::ids::{HostId, InstanceId, SlotId, Tick};
use crate::journal::StopReason;

impl Step<'_> {
    pub(super) fn on_tick(&mut self) {
        let (cfg, now) = (self.cfg, self.now);
        for app in 0..self.m.durable.budgets.len() {
            let app = crate::ids::AppId(u16::try_from(app).unwrap_or(u16::MAX));
            self.update_budget(app, |b| {
                b.on_tick(cfg, now);
            });
            self.update_breaker(app, |b| b.on_tick(cfg, now));
        }
        self.update_fleet_breaker(|b| b.on_tick(cfg, now));
        for (instance, l, host) in self.due_entries() {
            if l.lease_deadline <= now {
                self.out.push(Effect::Note(Note::LeaseExpired { instance }));
                self.note_failure_if_unbooted((host, instance), false);
                self.remove((host, instance));
            } else if let LiveView::Launching { boot_deadline } = l.view {
                if boot_deadline <= now {
                    self.on_boot_timeout((host, instance));
                }
            } else {
                self.go_unknown(host, instance);
            }
        }
    }

    /// Only entries whose earliest deadline has come (on hosts that have
    /// one), in instance order, each with its liveness as it was before any
    /// was handled.
    fn due_entries(&self) -> Vec<(InstanceId, Liveness, HostId)> {
        let (cfg, now) = (self.cfg, self.now);
        let expiry = cfg.lease_expiry_ticks();
        let ledger = &self.m.ledger;
        let mut due: Vec<(InstanceId, Liveness, HostId)> = ledger
            .hosts_due(now)
            .flat_map(|h| ledger.entries_on(h))
            .filter(|e| due_at(cfg, expiry, &e.live) <= now)
            .map(|e| (e.id, e.live, e.d.host))
            .collect();
        due.sort_unstable_by_key(|(id, _, _)| *id);
        due
    }

    fn go_unknown(&mut self, host: HostId, instance: InstanceId) {
        self.m
            .ledger
            .update_live(host, (instance, usize::MAX), |live| {
                live.view = LiveView::Unknown;
            });
    }

    fn on_boot_timeout(&mut self, (host, instance): (HostId, InstanceId)) {
        self.out.push(Effect::Note(Note::BootTimedOut { instance }));
        self.note_failure_if_unbooted((host, instance), true);
        if self.cfg.mutations.has(Mutation::TimeoutFreesSlot) {
            // The 2012 bug: a timeout is taken as proof of death.
            self.remove((host, instance));
            return;
        }
        // Stays counted against admission until the agent confirms.
        self.go_unknown(host, instance);
        self.request_stop(instance, StopReason::BootTimedOut);
    }

    /// Counts a failed boot (breaker when `breaker`, backoff always) unless
    /// the instance had booted or was being stopped at a user's request.
    pub(super) fn note_failure_if_unbooted(
        &mut self,
        (host, instance): (HostId, InstanceId),
        breaker: bool,
    ) {
        let Some(d) = self.m.ledger.entry(host, instance).map(|e| e.d) else {
            return;
        };
        if d.stop == Some(StopReason::UserRequested) {
            return;
        }
        if breaker && !d.boot_seen_done {
            self.count_boot_failure(instance);
        }
        if d.stop.is_none() {
            self.back_off(instance.slot);
        }
    }

    fn back_off(&mut self, slot: SlotId) {
        let (cfg, now) = (self.cfg, self.now);
        let jitter = self.next_jitter();
        self.m.ledger.set_backoff(slot, |b| {
            let shift = u32::from(b.attempts.min(32));
            let delay = cfg
                .budget
                .backoff_base_ticks
                .checked_shl(shift)
                .unwrap_or(u64::MAX)
                .min(cfg.budget.backoff_max_ticks);
            b.attempts = b.attempts.saturating_add(1);
            b.not_before = now.plus(delay.saturating_add(jitter));
        });
    }

    /// splitmix64 over the seed held in the state: deterministic jitter.
    fn next_jitter(&mut self) -> u64 {
        let span = self.cfg.budget.jitter_max_ticks;
        if span == 0 {
            return 0;
        }
        self.m.rng = self.m.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.m.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % span.saturating_add(1)
    }
}

/// The earliest deadline among a host's entries.
pub(super) fn min_due(cfg: &Config, entries: &[Entry]) -> Option<Tick> {
    let expiry = cfg.lease_expiry_ticks();
    entries.iter().map(|e| due_at(cfg, expiry, &e.live)).min()
}

/// The earliest tick at which a tick has work for a ledger entry: its
/// lease runs out, its boot times out (launching), or it goes unknown (up,
/// `unknown_after` ticks after its last renewal). It is due at `now` exactly
/// when this is at or before `now`. `lease_expiry_ticks` is
/// `cfg.lease_expiry_ticks()`, computed once by the caller.
pub(super) fn due_at(cfg: &Config, lease_expiry_ticks: u64, l: &Liveness) -> Tick {
    let mut at = l.lease_deadline;
    match l.view {
        LiveView::Launching { boot_deadline } => at = at.min(boot_deadline),
        LiveView::Up => {
            let unknown_after = cfg.timing.unknown_after_ticks;
            // Due when `now.since(renewed) >= unknown_after`; `since` is
            // zero before `renewed`, so with no wait it is due at once.
            let renewed = Tick(l.lease_deadline.0.saturating_sub(lease_expiry_ticks));
            let unknown = if unknown_after == 0 {
                Tick(0)
            } else {
                renewed.plus(unknown_after)
            };
            at = at.min(unknown);
        }
        LiveView::Unknown => {}
    }
    at
}
