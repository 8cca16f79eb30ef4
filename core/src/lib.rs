//! # tally-core
//!
//! Tally's pure state machines: the [`Manager`] (the ledger of every dyno
//! instance that may still be alive) and the [`Agent`] (one per host).
//!
//! ## The sans-IO contract
//!
//! Both machines are driven by their shell through one entry point each:
//! `step(&mut self, cfg, now, input, out)`. The core
//!
//! - never reads a clock: `now` is an argument, on the stepping machine's own
//!   monotonic clock (a shell that passes an earlier `now` only delays
//!   timeouts, it breaks no invariant);
//! - never performs I/O, sleeps, spawns threads or draws randomness (backoff
//!   jitter comes from a seed held in the state);
//! - never panics on any input: a refused user command is a typed
//!   [`Rejected`] error and leaves the state unchanged; a fact from the world
//!   (a report, an exit, a late or duplicated message) is applied or is a
//!   counted no-op ([`Note`], [`AgentNote`]);
//! - appends [`Effect`]s / [`AgentEffect`]s that the shell performs in order.
//!   A [`Effect::Persist`] must be durable before any later effect.
//!
//! Invariants are public functions in [`invariants`], checked after every
//! step in debug builds and reused by the model checker.
//!
//! ```
//! use tally_core::{Config, Manager, ManagerInput, Tick, UserCommand, TypeId};
//! let cfg = Config::example();
//! let mut out = Vec::new();
//! let mut manager = Manager::new(&cfg, Tick(0), &mut out).unwrap();
//! // Scaling a singleton above one is refused, and changes nothing.
//! let before = manager.clone();
//! let err = manager.step(&cfg, Tick(1), ManagerInput::User(UserCommand::Scale {
//!     process_type: TypeId(0), count: 2 }), &mut out).unwrap_err();
//! assert!(err.to_string().contains("singleton"));
//! assert_eq!(manager, before);
//! ```

pub mod agent;
pub mod breaker;
pub mod budget;
pub mod config;
pub mod ids;
pub mod invariants;
pub mod journal;
pub mod manager;
pub mod message;

pub use agent::{Agent, AgentEffect, AgentInput, AgentNote, Instances};
pub use breaker::{Breaker, FleetBreaker};
pub use budget::{
    Budget, LaunchBoundInputs, launch_bound, launch_bound_closed, launch_bound_inputs,
};
pub use config::{Config, ConfigError, Mutation, Mutations, ProcessKind};
pub use ids::{AppId, Generation, HostId, Incarnation, InstanceId, SlotId, Term, Tick, TypeId};
pub use invariants::Violation;
pub use journal::{Counters, Durable, JournalRecord, StopReason, TypeCounters};
pub use manager::{
    Alert, Effect, Leadership, LiveView, Manager, ManagerInput, Note, OperatorCommand, Phase,
    Rejected, UserCommand, append_admitted,
};
pub use message::{AgentReport, ExitOutcome, ManagerReply, Message, RunPhase};
