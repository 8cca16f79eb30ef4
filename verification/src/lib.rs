//! # tally-verification
//!
//! The properties Tally's model checker proves ([`properties`]), the
//! stateright model they are attached to ([`checked`]), the L1 graph check
//! ([`liveness`]), the catalogue of mutations the checker must refute
//! ([`mutations`]), counterexample traces ([`trace`]) and the runner behind
//! the `tally` command ([`check`]). The browser Explorer of counterexamples
//! is the `tally-explorer` crate; the summary table is drawn by `tally`.

pub mod check;
pub mod checked;
pub mod liveness;
pub mod mutations;
pub mod properties;
pub mod symmetry;
pub mod trace;
