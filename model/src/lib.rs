//! # tally-model
//!
//! A [`stateright`] model that drives Tally's core, unchanged, under a
//! hostile environment, with ground truth of which processes run.
//!
//! ## What the model assumes
//!
//! - **Time** is discrete with a bounded horizon (`ModelConfig::horizon`).
//!   The manager's clock is real time; each agent's clock may stall, falling
//!   behind by at most the configured drift per lease (`clock_stall`).
//! - **Network**: any message in flight may be delivered next (reordering),
//!   delayed while time passes, lost or duplicated (within the fault budget);
//!   a send beyond `network_capacity` messages in flight to and from its host
//!   is lost too (before calm only).
//! - **Faults** strike only before `calm_at` and within the per-run
//!   `FaultBudget`: host crashes (processes die; the agent restarts with the
//!   next incarnation and nothing else), partitions (processes live on,
//!   unheard), manager restarts (from the compacted journal), failed boots,
//!   crashes after boot, slow boots (outlasting the timeout).
//! - **Fairness after calm** (used by the liveness check only): once
//!   `now >= calm_at`, time advances only when every message has been
//!   delivered, every partition healed, every scripted command issued and
//!   every due boot completed.
//! - **Kills** are instantaneous: an agent fences in the tick its lease ends,
//!   before the manager's tick of the same instant, so the model's margin may
//!   be zero; real deployments set `margin_ticks >= kill_ticks`.
//!
//! Symmetry: hosts start identical and the core treats host ids only as
//! names (placement is "the reporting host", no id is compared by order), so
//! permuting hosts maps behaviours to behaviours. The environment keeps it
//! so: the network's capacity is per host, agents step in host order only
//! within one atomic tick (their effects commute), and a scripted command
//! that names a host turns symmetry off. `tally_verification::symmetry`
//! sorts hosts into a canonical order for `spawn_dfs` and the L1 graph.

pub mod config;
pub mod model;
pub mod world;

pub use config::{FaultBudget, ModelConfig, ModelConfigError, Preset, ScriptedCommand};
pub use model::TallyModel;
pub use world::{Action, Process, World};
