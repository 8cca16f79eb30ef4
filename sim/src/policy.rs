//! The policies compared on one scenario: the same core, configured as the
//! 2012 dyno manager (`naive-2012`) or as shipped (`tally`).

use crate::error::SimError;
use serde::{Deserialize, Serialize};
use tally_core::{Config, Mutation};

/// How the manager is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The 2012 behaviour: a boot timeout frees the slot, retries are
    /// unbounded, and the breaker never trips.
    Naive2012,
    /// Tally's defaults: no mutation.
    Tally,
}

impl Policy {
    /// Both policies, the baseline first.
    pub const ALL: [Policy; 2] = [Policy::Naive2012, Policy::Tally];

    /// The policy's name on the command line and in outputs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Policy::Naive2012 => "naive-2012",
            Policy::Tally => "tally",
        }
    }

    /// Parses a policy name.
    pub fn from_name(name: &str) -> Result<Policy, SimError> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| SimError::UnknownPolicy {
                name: name.to_owned(),
            })
    }

    /// Applies the policy to a scenario's core configuration.
    #[must_use]
    pub fn configure(self, mut cfg: Config) -> Config {
        match self {
            Policy::Tally => cfg,
            Policy::Naive2012 => {
                cfg.mutations = cfg
                    .mutations
                    .with(Mutation::TimeoutFreesSlot)
                    .with(Mutation::UnboundedRetries);
                // No breaker: a threshold no window can reach.
                cfg.breaker.failure_threshold = u16::MAX;
                cfg
            }
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
