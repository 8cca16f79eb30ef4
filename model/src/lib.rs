//! # tally-model
//!
//! A [`stateright`] model that drives Tally's core, unchanged, under a
//! hostile environment, with ground truth of which processes run.
//!
//! ## What the model assumes
//!
//! - **Time** is discrete with a bounded horizon (`ModelConfig::horizon`).
//!   The manager's clock is real time (with a store, each manager's may
//!   stall too); each agent's clock may stall, falling behind by at most
//!   the configured drift per lease (`clock_stall`).
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
//! - **Kills** take up to `kill_ticks`: a killed process runs on (and
//!   counts for every property) until it exits, at the latest when real time
//!   reaches its kill time plus `kill_ticks`, before any machine steps at
//!   that instant. With `kill_ticks = 0` (most presets) the exit is at once;
//!   `ci-timed-kills` and `margin-ignores-kill` exercise rule 7.
//! - **More than one manager** (when the core's configuration has
//!   `leadership`; see [`ha`]): two manager processes and a store that
//!   holds the leader key (a new term per election, kept alive once per
//!   tick by its holder, lapsing `leadership.lease_ticks` after the last
//!   keep-alive, in real time) and the journal (appends fenced by the
//!   term; a takeover reads it whole). Process 0 leads from tick 0. Faults,
//!   within the budget: a manager pauses (`manager_pause`; not scheduled
//!   while time passes, and possibly between processing a report and
//!   sending its effects, which then wait in the process), crashes
//!   (`manager_restart`; it comes back as a standby), loses its keep-alive
//!   stream while it goes on acting (`keepalive_cut`; its appends still
//!   go through), and its clock drifts (`clock_stall`, at most the drift
//!   over one store lease). A report reaches whichever running manager
//!   its agent found; a standby takes the key as soon as it is free (after
//!   calm, before time passes). Keep-alives and takeovers are instantaneous
//!   (a keep-alive's send time is when the store hears it), which the
//!   guard's `margin` would otherwise cover. Such states are fingerprinted
//!   whole: no host symmetry.
//! - **Recovery**: L1 is decided over a horizon of at least
//!   `calm_at + T(cfg)` (`Config::recovery_bound_ticks`).
//! - **No cycles**: every action strictly increases `World::progress`
//!   (time, faults spent, commands run, messages consumed, boots and kills
//!   completed), so every behaviour ends, at the horizon; the checker
//!   verifies this on every edge and then decides L1 as "every behaviour
//!   from a calm state ends converged".
//!
//! Symmetry: hosts start identical and the core treats host ids only as
//! names (placement is "the reporting host", no id is compared by order), so
//! permuting hosts maps behaviours to behaviours. The environment keeps it
//! so: the network's capacity is per host, agents step in host order only
//! within one atomic tick (their effects commute), and a scripted command
//! that names a host turns symmetry off. `tally_verification::symmetry`
//! fingerprints a state's class under host relabelling for the proof's
//! search. The manager, each host and each message sit behind an `Arc`,
//! so a step copies only what it changes.

pub mod config;
pub mod ha;
pub mod model;
pub mod world;

pub use config::{FaultBudget, ModelConfig, ModelConfigError, Preset, ScriptedCommand};
pub use model::TallyModel;
pub use world::{Action, Process, World};
