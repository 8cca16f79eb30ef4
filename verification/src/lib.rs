//! # tally-verification
//!
//! The properties Tally's model checker proves ([`properties`]), the
//! stateright model they are attached to ([`checked`]), the L1 check over the
//! graph the search records ([`graph`], [`liveness`]), the catalogue of mutations the checker must refute
//! ([`mutations`]) and the hunt for each one's shortest counterexample
//! ([`hunt`]), counterexample traces ([`trace`]) and the runner behind
//! the `tally` command ([`check`]). The browser Explorer of counterexamples
//! is the `tally-explorer` crate; the summary table is drawn by `tally`.

pub mod check;
pub mod checked;
pub mod engine;
pub mod graph;
pub mod hunt;
pub mod liveness;
pub mod mutations;
pub mod properties;
pub mod search;
pub mod symmetry;
pub mod trace;
