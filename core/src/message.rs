//! Messages between agents and the manager.
//!
//! The protocol is request-driven: an agent's periodic [`AgentReport`] is both
//! its inventory and its lease request, and the manager answers each one with
//! a [`ManagerReply`] that grants leases, launches and stops. Every grant and
//! launch names the request (incarnation and send time on the agent's clock)
//! that it answers, which is what lets an agent measure a lease from the
//! moment it asked (DESIGN.md, "Leases", and shortcut 4).

use crate::ids::{HostId, Incarnation, InstanceId, Term, Tick};
use serde::{Deserialize, Serialize};

/// Wire format version, carried by every message.
pub const PROTOCOL_VERSION: u16 = 1;

/// How far a running instance has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunPhase {
    /// Started, not yet reported ready.
    Booting,
    /// Booted and serving.
    Up,
    /// Being killed by its agent (stop or self-fencing).
    Killing,
}

/// How an instance ended, as its agent saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitOutcome {
    /// The process exited before it was up.
    BootFailed,
    /// The process exited after it was up.
    Crashed,
    /// The agent killed it (a stop, or its lease lapsed).
    Killed,
    /// The agent never started it (stopped first, or its launch was refused);
    /// a tombstone now keeps it from ever starting.
    NeverStarted,
}

impl ExitOutcome {
    /// In words, as the manager's log and `tally ps` say it.
    #[must_use]
    pub fn words(self) -> &'static str {
        match self {
            ExitOutcome::BootFailed => "failed to boot",
            ExitOutcome::Crashed => "crashed",
            ExitOutcome::Killed => "was stopped",
            ExitOutcome::NeverStarted => "never started",
        }
    }
}

/// One instance in an inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Running {
    /// The instance.
    pub instance: InstanceId,
    /// Its phase on the agent.
    pub phase: RunPhase,
}

/// One confirmed exit: the only proof of death besides lease expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Exited {
    /// The instance.
    pub instance: InstanceId,
    /// How it ended.
    pub outcome: ExitOutcome,
}

/// An agent's periodic inventory, which is also its lease request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentReport {
    /// Wire format version.
    pub version: u16,
    /// The reporting host.
    pub host: HostId,
    /// The agent's incarnation that sent it.
    pub incarnation: Incarnation,
    /// Send time on the agent's own clock: leases granted in reply run from here.
    pub sent_at: Tick,
    /// Every instance the agent runs, booting, up or being killed.
    pub running: Vec<Running>,
    /// Exits since the last report.
    pub exited: Vec<Exited>,
}

/// The manager's answer to one [`AgentReport`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ManagerReply {
    /// Wire format version.
    pub version: u16,
    /// The host addressed.
    pub host: HostId,
    /// The incarnation whose request this answers.
    pub incarnation: Incarnation,
    /// The answered request's send time, on the agent's clock.
    pub request_sent_at: Tick,
    /// Instances whose lease is renewed to `request_sent_at + duration`.
    pub renew: Vec<InstanceId>,
    /// Instances to start, each with a first lease from `request_sent_at`.
    pub launch: Vec<InstanceId>,
    /// Instances to stop (and tombstone, if never started).
    pub stop: Vec<InstanceId>,
    /// The replying leader's term: an agent refuses a reply of a lower
    /// term than the highest it has seen (DESIGN.md, HA rule 4).
    #[serde(default)]
    pub term: Term,
}

/// Anything that travels between the machines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Message {
    /// Agent to manager.
    Report(AgentReport),
    /// Manager to agent.
    Reply(ManagerReply),
}

impl Message {
    /// The host at the other end from the manager.
    #[must_use]
    pub fn host(&self) -> HostId {
        match self {
            Message::Report(r) => r.host,
            Message::Reply(r) => r.host,
        }
    }
}
