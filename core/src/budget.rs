//! The retry budget (token bucket plus probe credit) and the launch bound.
//!
//! The bound that the model checker proves (S3) is written here, once, next
//! to the bucket whose behaviour it bounds.

use crate::config::{Config, Mutation};
use crate::ids::{AppId, Tick};
use crate::journal::{Counters, Durable};
use serde::{Deserialize, Serialize};

/// Thousandths of a token per whole relaunch.
pub const MILLI: u32 = 1000;

/// One app's durable retry budget: journaled, so a restart cannot refill
/// it (DESIGN.md shortcuts 6 and 9). Each app has its own, so a broken app
/// spends only its own relaunches ("Apps are isolated").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    /// Tokens, in thousandths; within `[0, B * 1000]`.
    pub tokens_milli: u32,
    /// One relaunch credit per cool-down, independent of the breaker;
    /// never more than one.
    pub probe_ready: bool,
    /// When the next probe credit becomes ready (manager clock).
    pub probe_refresh_at: Tick,
}

/// What paid for a relaunch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Payment {
    /// One whole token from the bucket.
    Token,
    /// The cool-down's probe credit.
    Probe,
    /// Nothing: `unbounded-retries` is on.
    Unbounded,
}

impl Budget {
    /// A full bucket, first probe credit one cool-down after `now`.
    #[must_use]
    pub fn full(cfg: &Config, now: Tick) -> Budget {
        Budget {
            tokens_milli: capacity_milli(cfg),
            probe_ready: false,
            probe_refresh_at: now.plus(cfg.budget.probe_cooldown_ticks),
        }
    }

    /// Makes the probe credit ready when its cool-down has passed.
    /// Returns whether anything changed.
    pub fn on_tick(&mut self, cfg: &Config, now: Tick) -> bool {
        if self.probe_ready || now < self.probe_refresh_at {
            return false;
        }
        self.probe_ready = true;
        // Credits come on a fixed schedule, so at most one per cool-down
        // has elapsed, however the ticks fall.
        let cooldown = cfg.budget.probe_cooldown_ticks.max(1);
        let missed = now.since(self.probe_refresh_at) / cooldown;
        self.probe_refresh_at = self
            .probe_refresh_at
            .plus(cooldown.saturating_mul(missed.saturating_add(1)));
        true
    }

    /// When `on_tick` would next change the budget: the probe credit's
    /// refresh, if none is ready. `None` when no tick can change it.
    #[must_use]
    pub fn next_change(&self) -> Option<Tick> {
        (!self.probe_ready).then_some(self.probe_refresh_at)
    }

    /// Whether [`Budget::try_spend`] would pay a relaunch now.
    #[must_use]
    pub fn can_spend(&self, cfg: &Config) -> bool {
        cfg.mutations.has(Mutation::UnboundedRetries)
            || self.tokens_milli >= MILLI
            || (self.probe_ready && !cfg.mutations.has(Mutation::BreakerProbeOnly))
    }

    /// How many relaunches the bucket can pay now, one after another with
    /// nothing refilled: its whole tokens and its probe credit, as
    /// [`Budget::try_spend`] would spend them (`u64::MAX` under
    /// `unbounded-retries`). An observation for the simulator's reports.
    #[must_use]
    pub fn relaunches_payable(&self, cfg: &Config) -> u64 {
        if cfg.mutations.has(Mutation::UnboundedRetries) {
            return u64::MAX;
        }
        u64::from(self.tokens_milli / MILLI)
            + u64::from(self.probe_ready && !cfg.mutations.has(Mutation::BreakerProbeOnly))
    }

    /// Spends one relaunch, or refuses when the bucket is empty and no
    /// probe credit is ready (exactly when [`Budget::can_spend`] is false).
    pub fn try_spend(&mut self, cfg: &Config) -> Option<Payment> {
        if cfg.mutations.has(Mutation::UnboundedRetries) {
            return Some(Payment::Unbounded);
        }
        if self.tokens_milli >= MILLI {
            self.tokens_milli -= MILLI;
            return Some(Payment::Token);
        }
        if self.probe_ready && !cfg.mutations.has(Mutation::BreakerProbeOnly) {
            self.probe_ready = false;
            return Some(Payment::Probe);
        }
        None
    }

    /// Refills `r` after an instance's first successful boot.
    pub fn refill(&mut self, cfg: &Config) {
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(cfg.budget.refill_per_boot_milli)
            .min(capacity_milli(cfg));
    }

    /// Whether the tokens are within `[0, B]`.
    #[must_use]
    pub fn within_capacity(&self, cfg: &Config) -> bool {
        self.tokens_milli <= capacity_milli(cfg)
    }
}

fn capacity_milli(cfg: &Config) -> u32 {
    cfg.budget.capacity.saturating_mul(MILLI)
}

/// The counts the launch bound is a function of, for one app or for the
/// fleet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LaunchBoundInputs {
    /// `F`: free first launches granted by formation changes and restarts.
    pub first_launches: u64,
    /// `S`: instances that really booted (each counted once).
    pub successful_boots: u64,
    /// `P`: probe cool-downs elapsed since the manager first started.
    pub cooldowns_elapsed: u64,
    /// Buckets the launches may draw on: one for an app, one per app for
    /// the fleet. Each holds `B` at start and earns one probe credit per
    /// cool-down.
    pub buckets: u64,
}

/// S3, the launch bound: an app's launches never exceed
/// `F_a + B + r*S_a + P` (DESIGN.md, "Retry budget and flow control" and
/// "Apps are isolated"), and the fleet's never exceed their sum,
/// `F + n*B + r*S + n*P` for `n` apps (`inputs.buckets`).
///
/// Relaunches are paid by a token (at most `B` at start plus `r` per first
/// successful boot of the app) or a probe credit (at most one per cool-down
/// and app); first launches are free and counted in `F`.
#[must_use]
pub fn launch_bound(cfg: &Config, inputs: LaunchBoundInputs) -> u64 {
    let refill =
        u64::from(cfg.budget.refill_per_boot_milli).saturating_mul(inputs.successful_boots);
    let tokens_milli = u64::from(cfg.budget.capacity)
        .saturating_mul(u64::from(MILLI))
        .saturating_mul(inputs.buckets)
        .saturating_add(refill);
    inputs
        .first_launches
        .saturating_add(tokens_milli / u64::from(MILLI))
        .saturating_add(inputs.cooldowns_elapsed.saturating_mul(inputs.buckets))
}

/// The closed form for a bounded horizon, for `buckets` apps together:
/// since `S <= launches`, for `r < 1` relaunches stay within
/// `(n*B + r*F + n*P) / (1 - r)`, so launches stay within
/// `F + (n*B + r*F + n*P) / (1 - r)`. Finite whatever the boots do.
#[must_use]
pub fn launch_bound_closed(
    cfg: &Config,
    (first_launches, buckets): (u64, u64),
    horizon: Tick,
) -> u64 {
    let r = u64::from(cfg.budget.refill_per_boot_milli);
    let one_minus_r = u64::from(MILLI).saturating_sub(r).max(1);
    let cooldowns = horizon.0 / cfg.budget.probe_cooldown_ticks.max(1);
    let numerator = u64::from(cfg.budget.capacity)
        .saturating_add(cooldowns)
        .saturating_mul(buckets)
        .saturating_mul(u64::from(MILLI))
        .saturating_add(r.saturating_mul(first_launches));
    first_launches.saturating_add(numerator.div_ceil(one_minus_r))
}

/// `S` from journaled counts, `F` from the durable state, `P` from the
/// time: the inputs of the fleet's launch bound at `now`, one definition for
/// every reader. `tally ps` and the simulator pass the journal's counters;
/// the model's S3 passes its ground-truth count of real boots (at least the
/// journal's, so its bound is the looser one: S3 does not trust the journal
/// it checks, and the budget refills only on a journaled first boot).
#[must_use]
pub fn launch_bound_inputs(
    cfg: &Config,
    durable: &Durable,
    counters: &Counters,
    now: Tick,
) -> LaunchBoundInputs {
    LaunchBoundInputs {
        first_launches: durable.free_launches_granted_total(),
        successful_boots: counters.boots_seen_done,
        cooldowns_elapsed: cooldowns_elapsed(cfg, now),
        // Under `fleet-wide-budget` every app draws on the first bucket.
        buckets: if cfg.mutations.has(Mutation::FleetWideBudget) {
            1
        } else {
            durable.budgets.len() as u64
        },
    }
}

/// [`launch_bound_inputs`] of one app: its `F_a` from the durable state,
/// `S_a` as given (the journal's `Counters::of_app`, or the model's ground
/// truth), one bucket. `type_apps` is `Config::type_apps`.
#[must_use]
pub fn launch_bound_inputs_of_app(
    cfg: &Config,
    durable: &Durable,
    (type_apps, app): (&[AppId], AppId),
    successful_boots: u64,
    now: Tick,
) -> LaunchBoundInputs {
    LaunchBoundInputs {
        first_launches: durable.free_launches_granted_to(type_apps, app),
        successful_boots,
        cooldowns_elapsed: cooldowns_elapsed(cfg, now),
        buckets: 1,
    }
}

/// Cool-downs elapsed by `now` on the schedule `Budget::full` starts at tick 0.
#[must_use]
pub fn cooldowns_elapsed(cfg: &Config, now: Tick) -> u64 {
    now.0 / cfg.budget.probe_cooldown_ticks.max(1)
}
