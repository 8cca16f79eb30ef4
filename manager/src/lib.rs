//! # tally-manager
//!
//! Tally's core embedded in a real process manager: a manager process that
//! journals to disk and serves an HTTP API, and host agents that run dynos
//! as OS processes under a lease-enforcing fence.
//!
//! ```text
//!   tally ps/scale/... ──HTTP+token──▶ api ─┐
//!   agent link (TCP, one per host) ─────────┼─▶ shell::Shared ─▶ core Manager
//!   timer (every tick) ─────────────────────┘        │ journal (fsync) first
//!                                                    ▼
//!   host: core Agent ─▶ tally-fence ─▶ dyno (process group), killed at lease end
//! ```
//!
//! Every decision is the core's `step`; this crate only carries inputs in
//! and effects out. The one module where threads share state is [`shell`],
//! checked with `loom` (`manager/tests/loom.rs`).

pub mod api;
pub mod client;
pub mod clock;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod fence;
#[cfg(feature = "etcd")]
pub mod ha;
pub mod host;
pub mod journal;
pub mod logs;
pub mod machine;
pub mod process;
pub mod server;
pub mod settings;
pub mod shell;
pub mod strict_json;
pub mod wire;
