//! # tally-sim
//!
//! A deterministic discrete-event fleet simulator (issue 6) that runs the
//! real core, unchanged: one [`tally_core::Manager`] for the fleet and one
//! [`tally_core::Agent`] per simulated host, driven only through their
//! `step` functions, against hosts whose disks slow down under concurrent
//! boots, dynos that crash, a network with latency and partitions, and a
//! timeline of conditions read from a scenario file.
//!
//! ## Entry points
//!
//! - [`run`]: one scenario, one [`Policy`], one seed, to a [`Report`].
//! - [`write_outputs`]: JSON summary, CSV/JSON time series and SVG charts.
//! - [`simulate::Plan`]: a scenario under several policies side by side,
//!   as `tally simulate` runs it (the binary draws the progress and table).
//!
//! ## Determinism
//!
//! Same scenario, policy and seed, same report, bit for bit (except the
//! wall-clock [`report::Perf`] counters): one event queue ordered by
//! `(time, sequence)`, one seeded splitmix64 stream, and hash maps with a
//! fixed hasher that are never iterated where order matters.
//!
//! ## Time
//!
//! The simulated clock counts milliseconds; the core's ticks are
//! [`scenario::TICK_MS`] = 100 ms, so every `Config.timing` value in a
//! scenario is written in ms and rounded up to whole ticks.
//!
//! Architecture invariant: the simulator contains no transition of the
//! core. Ground truth (which processes run where), physics and observation
//! live here; every decision lives in `tally-core`.

pub mod detector;
pub mod error;
pub mod output;
pub mod policy;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod simulate;
pub mod svg;
mod world;

pub use error::SimError;
pub use output::write_outputs;
pub use policy::Policy;
pub use report::{Report, Sample, Summary};
pub use scenario::Scenario;
pub use world::Progress;

/// Runs `scenario` under `policy` with `seed`, calling `progress` once per
/// sample. Fails only on a scenario the core's configuration refuses.
pub fn run(
    scenario: &Scenario,
    policy: Policy,
    seed: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, SimError> {
    Ok(world::World::new(scenario, policy, seed)?.run(progress))
}
