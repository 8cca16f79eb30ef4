//! One scenario under several policies, side by side: what `tally simulate`
//! runs. The `tally` binary fills [`SimulateOptions`] from its arguments,
//! makes a [`Plan`], runs it with its own progress line, then draws the
//! table and writes the outputs ([`crate::write_outputs`]).

use crate::error::SimError;
use crate::policy::Policy;
use crate::report::Report;
use crate::scenario::Scenario;
use crate::world::Progress;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateOptions {
    /// A built-in scenario name (`incident-2012`) or a path to a TOML file.
    pub scenario: String,
    /// Policies to compare; empty means all of them.
    pub policies: Vec<Policy>,
    /// Seed; the scenario's when `None`.
    pub seed: Option<u64>,
    /// Override the fleet: `(hosts, apps, dynos)`.
    pub fleet: Option<(u32, u32, u64)>,
    /// Override the simulated length, hours.
    pub duration_h: Option<f64>,
}

impl SimulateOptions {
    /// Options for a scenario with every default.
    #[must_use]
    pub fn new(scenario: &str) -> SimulateOptions {
        SimulateOptions {
            scenario: scenario.to_owned(),
            policies: Vec::new(),
            seed: None,
            fleet: None,
            duration_h: None,
        }
    }

    /// Checks the options that would make an empty or endless run.
    ///
    /// # Errors
    /// [`SimError::InvalidArgument`], naming the option.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |message: String| Err(SimError::InvalidArgument { message });
        if let Some((hosts, apps, dynos)) = self.fleet {
            if hosts == 0 {
                return bad("hosts must be at least 1".into());
            }
            if apps == 0 {
                return bad("apps must be at least 1".into());
            }
            if dynos == 0 {
                return bad("dynos must be at least 1".into());
            }
        }
        if let Some(h) = self.duration_h {
            if !h.is_finite() || h <= 0.0 {
                return bad(format!(
                    "hours must be a positive finite number of hours, not {h}"
                ));
            }
        }
        Ok(())
    }
}

/// The runs to make: the scenario with its overrides, the seed, the
/// policies.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The scenario, fleet and length overridden.
    pub scenario: Scenario,
    /// The seed of every run.
    pub seed: u64,
    /// One run per policy, in this order.
    pub policies: Vec<Policy>,
}

impl Plan {
    /// Validates the options and loads the scenario.
    ///
    /// # Errors
    /// An option out of range, or a scenario that cannot be read.
    pub fn new(opts: &SimulateOptions) -> Result<Plan, SimError> {
        opts.validate()?;
        let mut scenario = Scenario::load(&opts.scenario)?;
        if let Some((hosts, apps, dynos)) = opts.fleet {
            scenario = scenario.with_fleet(hosts, apps, dynos);
        }
        if let Some(h) = opts.duration_h {
            scenario.duration_h = h;
        }
        let seed = opts.seed.unwrap_or(scenario.seed);
        let policies = if opts.policies.is_empty() {
            scenario.policies.clone()
        } else {
            opts.policies.clone()
        };
        Ok(Plan {
            scenario,
            seed,
            policies,
        })
    }

    /// Runs the scenario under each policy, one report per policy in order.
    /// `progress(i, policy)` makes the progress callback of run `i`.
    ///
    /// One thread per policy when there are cores for them: the runs are
    /// independent and each is deterministic, so this changes only the wall
    /// time (and makes the callbacks run at the same time).
    ///
    /// # Errors
    /// The first run the core's configuration refuses.
    pub fn run<P>(
        &self,
        mut progress: impl FnMut(usize, Policy) -> P,
    ) -> Result<Vec<Report>, SimError>
    where
        P: FnMut(Progress) + Send,
    {
        let parallel = self.policies.len() > 1
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let runs: Vec<(Policy, P)> = self
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, progress(i, *p)))
            .collect();
        let run_one = |policy: Policy, mut progress: P| {
            crate::run(&self.scenario, policy, self.seed, &mut progress)
        };
        let results: Vec<Result<Report, SimError>> = if parallel {
            std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .into_iter()
                    .map(|(p, progress)| {
                        let run_one = &run_one;
                        scope.spawn(move || run_one(p, progress))
                    })
                    .collect();
                handles
                    .into_iter()
                    // A panic in a run is re-raised here, as if it ran inline.
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        } else {
            runs.into_iter()
                .map(|(p, progress)| run_one(p, progress))
                .collect()
        };
        results.into_iter().collect()
    }
}

/// Whether any `tally` run broke a safety property the simulator observes
/// (`tally simulate` then exits 2).
#[must_use]
pub fn tally_unsafe(reports: &[Report]) -> bool {
    reports
        .iter()
        .any(|r| r.policy == Policy::Tally && !r.safety_kept())
}
