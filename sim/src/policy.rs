//! The policies compared on one scenario: the same core, configured as the
//! 2012 dyno manager (`naive-2012`), as shipped before apps were isolated
//! (`fleet-wide`), or as shipped (`tally`); and `tally-no-bad-apps`, the
//! baseline of a noisy-neighbour comparison.

use crate::error::SimError;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use tally_core::{Config, Mutation};

/// How the manager is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The 2012 behaviour: a boot timeout frees the slot, retries are
    /// unbounded, and no breaker ever trips.
    #[serde(rename = "naive-2012", alias = "naive2012")]
    Naive2012,
    /// Tally before apps were isolated: one bucket and one probe credit for
    /// the fleet (`budget_capacity`, the cool-down scaled by
    /// `probe_cooldown_ref_dynos`), and a fleet breaker that counts every
    /// boot failure against `breaker_failure_threshold`. The core's
    /// switches `fleet-wide-budget` and `breaker-counts-one-app`.
    FleetWide,
    /// Tally's defaults: per-app budgets and breakers, a fleet breaker over
    /// distinct failing apps. No mutation.
    Tally,
    /// `tally` on the same fleet without the events that break some apps
    /// (bad releases, crash loops): what the healthy apps' relaunch delays
    /// are compared against.
    TallyNoBadApps,
}

impl Policy {
    /// Every policy, the baseline first.
    pub const ALL: [Policy; 4] = [
        Policy::Naive2012,
        Policy::FleetWide,
        Policy::Tally,
        Policy::TallyNoBadApps,
    ];

    /// What `tally simulate` runs when no policy is named: the 2012
    /// baseline and Tally.
    pub const DEFAULT: [Policy; 2] = [Policy::Naive2012, Policy::Tally];

    /// The policy's name on the command line and in outputs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Policy::Naive2012 => "naive-2012",
            Policy::FleetWide => "fleet-wide",
            Policy::Tally => "tally",
            Policy::TallyNoBadApps => "tally-no-bad-apps",
        }
    }

    /// Parses a policy name.
    pub fn from_name(name: &str) -> Result<Policy, SimError> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| SimError::UnknownPolicy {
                name: name.to_owned(),
                valid: Policy::ALL.map(Policy::name).join(", "),
            })
    }

    /// Whether the run leaves out the events that break some apps.
    #[must_use]
    pub fn without_bad_apps(self) -> bool {
        self == Policy::TallyNoBadApps
    }

    /// The core configuration of `scenario` under this policy.
    #[must_use]
    pub fn configure(self, scenario: &Scenario) -> Config {
        let mut cfg = scenario.core_config();
        match self {
            Policy::Tally | Policy::TallyNoBadApps => {}
            Policy::FleetWide => {
                cfg.mutations = cfg
                    .mutations
                    .with(Mutation::FleetWideBudget)
                    .with(Mutation::BreakerCountsOneApp);
                cfg.budget.capacity = scenario.core.budget_capacity;
                cfg.budget.probe_cooldown_ticks = scenario.fleet_wide_probe_cooldown_ticks();
                cfg.breaker.failure_threshold = scenario.core.breaker_failure_threshold;
            }
            Policy::Naive2012 => {
                cfg.mutations = cfg
                    .mutations
                    .with(Mutation::TimeoutFreesSlot)
                    .with(Mutation::UnboundedRetries);
                // No breaker: thresholds no window can reach.
                cfg.breaker.failure_threshold = u16::MAX;
                cfg.breaker.fleet_app_share_milli = u32::MAX;
            }
        }
        cfg
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
