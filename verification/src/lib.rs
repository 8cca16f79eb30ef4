//! # tally-verification
//!
//! The properties Tally's model checker proves ([`properties`]), the
//! stateright model they are attached to ([`checked`]), the L1 graph check
//! ([`liveness`]), the catalogue of mutations the checker must refute
//! ([`mutations`]), counterexample traces ([`trace`]), the runner behind
//! the `tally` command ([`check`]) and the browser Explorer of counterexamples
//! ([`explorer`]).

pub mod check;
pub mod checked;
pub mod explorer;
pub mod liveness;
pub mod mutations;
pub mod properties;
pub mod symmetry;
pub mod trace;
