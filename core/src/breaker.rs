//! The automatic breakers over boot failures and timeouts: one per app,
//! and the fleet breaker over failures spread across apps.
//!
//! They guard what the manager sends: while an app's breaker is open, none
//! of that app's launches leaves the manager, and while the fleet breaker
//! is open no launch at all; after a cool-down each half-opens and lets a
//! single probe through (DESIGN.md, "Apps are isolated").

use crate::config::{Config, Mutation};
use crate::ids::{AppId, InstanceId, Tick};
use serde::{Deserialize, Serialize};

/// Breaker state; journaled, so a restart does not close an open breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Breaker {
    /// Launches flow; failures are counted in a window.
    Closed {
        /// Start of the current counting window.
        window_start: Tick,
        /// Failures in the window.
        failures: u16,
    },
    /// No launches.
    Open {
        /// When it opened.
        since: Tick,
        /// Opened by an operator: stays open until closed by hand.
        manual: bool,
    },
    /// One probe launch allowed; its boot decides.
    HalfOpen {
        /// The probe, once launched.
        probe: Option<InstanceId>,
    },
}

/// What a breaker transition means for the operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerChange {
    /// Nothing changed.
    None,
    /// It changed, nothing to alert.
    Changed,
    /// It opened automatically: raise an alert.
    Tripped,
}

impl Breaker {
    /// A closed breaker with an empty window starting at `now`.
    #[must_use]
    pub fn closed(now: Tick) -> Breaker {
        Breaker::Closed {
            window_start: now,
            failures: 0,
        }
    }

    /// Whether a launch may be sent now.
    #[must_use]
    pub fn allows_launch(&self) -> bool {
        matches!(
            self,
            Breaker::Closed { .. } | Breaker::HalfOpen { probe: None }
        )
    }

    /// Records that `instance` was launched; in half-open it becomes the probe.
    pub fn on_launch(&mut self, instance: InstanceId) -> BreakerChange {
        if let Breaker::HalfOpen { probe: None } = self {
            *self = Breaker::HalfOpen {
                probe: Some(instance),
            };
            return BreakerChange::Changed;
        }
        BreakerChange::None
    }

    /// Records a boot failure or timeout of `instance`.
    pub fn on_failure(&mut self, cfg: &Config, now: Tick, instance: InstanceId) -> BreakerChange {
        match *self {
            Breaker::Closed {
                window_start,
                failures,
            } => {
                let fresh = now.since(window_start) >= cfg.breaker.window_ticks;
                let (window_start, failures) = if fresh {
                    (now, 1)
                } else {
                    (window_start, failures.saturating_add(1))
                };
                if failures >= cfg.breaker.failure_threshold {
                    *self = Breaker::Open {
                        since: now,
                        manual: false,
                    };
                    return BreakerChange::Tripped;
                }
                *self = Breaker::Closed {
                    window_start,
                    failures,
                };
                BreakerChange::Changed
            }
            Breaker::HalfOpen { probe } if probe == Some(instance) => {
                *self = Breaker::Open {
                    since: now,
                    manual: false,
                };
                BreakerChange::Tripped
            }
            Breaker::HalfOpen { .. } | Breaker::Open { .. } => BreakerChange::None,
        }
    }

    /// Records a first successful boot of `instance`; the probe's closes it.
    pub fn on_success(&mut self, now: Tick, instance: InstanceId) -> BreakerChange {
        if *self
            == (Breaker::HalfOpen {
                probe: Some(instance),
            })
        {
            *self = Breaker::closed(now);
            return BreakerChange::Changed;
        }
        BreakerChange::None
    }

    /// When `on_tick` would next change the breaker: the end of an
    /// automatic opening's cool-down. `None` when no tick can change it.
    #[must_use]
    pub fn next_change(&self, cfg: &Config) -> Option<Tick> {
        match *self {
            Breaker::Open { since, manual } => half_open_at(cfg, since, manual),
            _ => None,
        }
    }

    /// Half-opens an automatically opened breaker after its cool-down.
    pub fn on_tick(&mut self, cfg: &Config, now: Tick) -> BreakerChange {
        match self.next_change(cfg) {
            Some(at) if at <= now => {
                *self = Breaker::HalfOpen { probe: None };
                BreakerChange::Changed
            }
            _ => BreakerChange::None,
        }
    }
}

/// When a breaker opened at `since` half-opens by itself: after the
/// cool-down, unless an operator opened it (or under
/// `breaker-never-half-opens`). One rule for an app's breaker and the
/// fleet's.
fn half_open_at(cfg: &Config, since: Tick, manual: bool) -> Option<Tick> {
    (!manual && !cfg.mutations.has(Mutation::BreakerNeverHalfOpens))
        .then(|| since.plus(cfg.breaker.cooldown_ticks))
}

/// The fleet breaker: it counts distinct apps whose boots fail, so that
/// only a cause shared by many apps (the 2012 case) trips it, never one
/// app's bad release (that app's own [`Breaker`] holds it back). Journaled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum FleetBreaker {
    /// Launches flow; failing apps are counted in a window.
    Closed {
        /// Start of the current counting window.
        window_start: Tick,
        /// Apps with a boot failure in the window, sorted, fewer than the
        /// threshold (`Config::fleet_breaker_threshold`).
        failing: Vec<AppId>,
    },
    /// No launches of any app.
    Open {
        /// When it opened.
        since: Tick,
        /// Opened by an operator: stays open until closed by hand.
        manual: bool,
    },
    /// One probe launch allowed; a success closes it, failures of as many
    /// apps as the threshold within one window open it again. A failed
    /// probe alone only lets the next probe through: one app cannot keep
    /// the fleet shut.
    HalfOpen {
        /// The probe, once launched.
        probe: Option<InstanceId>,
        /// Start of the current counting window.
        window_start: Tick,
        /// Apps with a boot failure in the window, sorted.
        failing: Vec<AppId>,
    },
}

impl FleetBreaker {
    /// A closed breaker with an empty window starting at `now`.
    #[must_use]
    pub fn closed(now: Tick) -> FleetBreaker {
        FleetBreaker::Closed {
            window_start: now,
            failing: Vec::new(),
        }
    }

    /// Opened by an operator.
    #[must_use]
    pub fn opened_by_hand(now: Tick) -> FleetBreaker {
        FleetBreaker::Open {
            since: now,
            manual: true,
        }
    }

    /// Whether a launch may be sent now.
    #[must_use]
    pub fn allows_launch(&self) -> bool {
        matches!(
            self,
            FleetBreaker::Closed { .. } | FleetBreaker::HalfOpen { probe: None, .. }
        )
    }

    /// Records that `instance` was launched; in half-open it becomes the probe.
    pub fn on_launch(&mut self, instance: InstanceId) -> BreakerChange {
        if let FleetBreaker::HalfOpen {
            probe: p @ None, ..
        } = self
        {
            *p = Some(instance);
            return BreakerChange::Changed;
        }
        BreakerChange::None
    }

    /// Records a boot failure or timeout of `instance`, of `app`, among
    /// `apps` apps.
    pub fn on_failure(
        &mut self,
        (cfg, apps): (&Config, usize),
        now: Tick,
        (app, instance): (AppId, InstanceId),
    ) -> BreakerChange {
        let threshold = cfg.fleet_breaker_threshold_of(apps);
        let one_app = cfg.mutations.has(Mutation::BreakerCountsOneApp);
        if !one_app && apps < threshold && matches!(self, FleetBreaker::Closed { .. }) {
            // Too few apps to ever trip it (one app, say): counting would
            // only add state. Only an operator opens it, and then it never
            // half-opens by itself.
            return BreakerChange::None;
        }
        let (window_start, failing, probe_failed) = match self {
            FleetBreaker::Closed {
                window_start,
                failing,
            } => (window_start, failing, false),
            FleetBreaker::HalfOpen {
                probe,
                window_start,
                failing,
            } => {
                let probe_failed = *probe == Some(instance);
                if probe_failed {
                    *probe = None;
                }
                (window_start, failing, probe_failed)
            }
            FleetBreaker::Open { .. } => return BreakerChange::None,
        };
        let fresh = now.since(*window_start) >= cfg.breaker.window_ticks;
        if fresh {
            *window_start = now;
            failing.clear();
        }
        let counted = match failing.binary_search(&app) {
            // The mutation counts every failure, as a fleet-wide breaker
            // over raw failures would.
            Ok(at) if one_app => {
                failing.insert(at, app);
                true
            }
            Ok(_) => false,
            Err(at) => {
                failing.insert(at, app);
                true
            }
        };
        if failing.len() >= threshold {
            *self = FleetBreaker::Open {
                since: now,
                manual: false,
            };
            return BreakerChange::Tripped;
        }
        if counted || probe_failed || fresh {
            BreakerChange::Changed
        } else {
            BreakerChange::None
        }
    }

    /// Records a first successful boot of `instance`; the probe's closes it.
    pub fn on_success(&mut self, now: Tick, instance: InstanceId) -> BreakerChange {
        match self {
            FleetBreaker::HalfOpen { probe: Some(p), .. } if *p == instance => {
                *self = FleetBreaker::closed(now);
                BreakerChange::Changed
            }
            _ => BreakerChange::None,
        }
    }

    /// When `on_tick` would next change the breaker: the end of an
    /// automatic opening's cool-down. `None` when no tick can change it.
    #[must_use]
    pub fn next_change(&self, cfg: &Config) -> Option<Tick> {
        match *self {
            FleetBreaker::Open { since, manual } => half_open_at(cfg, since, manual),
            _ => None,
        }
    }

    /// Half-opens an automatically opened breaker after its cool-down.
    pub fn on_tick(&mut self, cfg: &Config, now: Tick) -> BreakerChange {
        match self.next_change(cfg) {
            Some(at) if at <= now => {
                *self = FleetBreaker::HalfOpen {
                    probe: None,
                    window_start: now,
                    failing: Vec::new(),
                };
                BreakerChange::Changed
            }
            _ => BreakerChange::None,
        }
    }

    /// Apps counted as failing in the current window (none while open).
    #[must_use]
    pub fn failing(&self) -> &[AppId] {
        match self {
            FleetBreaker::Closed { failing, .. } | FleetBreaker::HalfOpen { failing, .. } => {
                failing
            }
            FleetBreaker::Open { .. } => &[],
        }
    }
}
