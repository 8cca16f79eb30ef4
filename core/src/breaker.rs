//! The automatic breaker over boot failures and timeouts.
//!
//! It guards what the manager sends: while open, no launch at all leaves the
//! manager; after a cool-down it half-opens and lets a single probe through.

use crate::config::{Config, Mutation};
use crate::ids::{InstanceId, Tick};
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
            Breaker::Open {
                since,
                manual: false,
            } if !cfg.mutations.has(Mutation::BreakerNeverHalfOpens) => {
                Some(since.plus(cfg.breaker.cooldown_ticks))
            }
            _ => None,
        }
    }

    /// Half-opens an automatically opened breaker after its cool-down.
    pub fn on_tick(&mut self, cfg: &Config, now: Tick) -> BreakerChange {
        if let Breaker::Open {
            since,
            manual: false,
        } = *self
        {
            let cooled = now.since(since) >= cfg.breaker.cooldown_ticks;
            if cooled && !cfg.mutations.has(Mutation::BreakerNeverHalfOpens) {
                *self = Breaker::HalfOpen { probe: None };
                return BreakerChange::Changed;
            }
        }
        BreakerChange::None
    }
}
