//! The manager's public vocabulary: its inputs, effects, notes, alerts,
//! refusals, and the phases of an instance's life.

use crate::ids::{AppId, HostId, InstanceId, SlotId, Tick, TypeId};
use crate::journal::{DurableInstance, JournalRecord, StopReason};
use crate::message::{AgentReport, ManagerReply};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The manager's view of an instance's life (DESIGN.md, "Ledger lifecycle").
///
/// `Stopped` is the absence from the ledger of an instance at or below its
/// slot's high water: see [`Manager::phase`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Launch sent; not yet reported up.
    Launching,
    /// Reported up.
    Up,
    /// Asked to stop; still alive until proven dead.
    Stopping(StopReason),
    /// Host silent, or the manager restarted since it last heard.
    Unknown,
    /// Proven dead; no longer in the ledger.
    Stopped,
}

/// What the manager knows of an instance and forgets on restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Liveness {
    /// Launching (with its boot deadline), up, or unknown.
    pub view: LiveView,
    /// Manager time after which the instance's lease has certainly expired.
    pub lease_deadline: Tick,
}

/// Liveness apart from any stop request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveView {
    /// Not yet up; timed out at `boot_deadline`.
    Launching {
        /// When the boot times out.
        boot_deadline: Tick,
    },
    /// Reported up.
    Up,
    /// Not heard of lately.
    Unknown,
}

/// Per-slot relaunch spacing; volatile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Backoff {
    /// Consecutive failures.
    pub attempts: u8,
    /// No relaunch before this time.
    pub not_before: Tick,
}

/// A user's command on app management.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum UserCommand {
    /// Set the desired count of a type (`heroku ps:scale web=4`).
    Scale {
        /// The type.
        process_type: TypeId,
        /// The new count.
        count: u16,
    },
    /// Replace the running instances of one type, or of all.
    Restart {
        /// The type, or `None` for every type.
        process_type: Option<TypeId>,
    },
    /// Replace the instance of one slot (`heroku ps:restart web.1`; also
    /// `ps:stop web.1`, which on Heroku stops a dyno that the formation
    /// then replaces).
    RestartDyno {
        /// The slot.
        slot: SlotId,
    },
    /// A new release: replace every instance.
    Deploy,
}

/// An operator's flow control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "command")]
pub enum OperatorCommand {
    /// Lockdown on or off.
    Lockdown {
        /// On.
        on: bool,
    },
    /// Open the fleet breaker by hand: no app launches.
    BreakerOpen,
    /// Close the fleet breaker by hand.
    BreakerClose,
    /// Pause launches on one host, or everywhere.
    PauseLaunches {
        /// The host, or `None` for all.
        host: Option<HostId>,
    },
    /// Resume launches on one host, or everywhere.
    ResumeLaunches {
        /// The host, or `None` for all.
        host: Option<HostId>,
    },
}

/// One input to the manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "input")]
pub enum ManagerInput {
    /// Time passed: check boot timeouts, leases, probe credit, breaker.
    Tick,
    /// An agent's report (inventory and lease request) arrived.
    ReportReceived(AgentReport),
    /// A user's command.
    User(UserCommand),
    /// An operator's command.
    Operator(OperatorCommand),
    /// The store answered a keep-alive (or the campaign) that this manager
    /// sent at `sent_at` on its own clock: its guard runs from there
    /// (DESIGN.md, HA rule 2).
    LeadershipConfirmed {
        /// The request's send time, on the manager's clock.
        sent_at: Tick,
    },
    /// An append or a keep-alive found the leader key gone or another's:
    /// this manager never acts again (HA rule 1).
    LeadershipLost,
}

/// Whether the manager may act (DESIGN.md, "More than one manager").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "leadership")]
pub enum Leadership {
    /// No store: the one manager of a local journal always leads.
    Sole,
    /// Leading: confirmed by the store answering a request sent at
    /// `sent_at` (manager clock); acts within the guard from there.
    Confirmed {
        /// The confirmed request's send time.
        sent_at: Tick,
    },
    /// Never confirmed: recovered with a store but not yet elected.
    Unconfirmed,
    /// An append or keep-alive failed: deposed for good.
    Deposed,
}

/// An alert for the operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "alert")]
pub enum Alert {
    /// An app's breaker opened on its own: that app's boots are failing.
    BreakerTripped {
        /// The app.
        app: AppId,
    },
    /// The fleet breaker opened on its own: boots of many apps are failing,
    /// a shared cause; no app launches until it half-opens.
    FleetBreakerTripped,
    /// An agent runs an instance above its slot's high-water generation:
    /// the journal lost records. The high water was raised (journaled)
    /// before any launch of the slot, and the instance is reaped.
    GenerationAboveHighWater {
        /// The instance reported.
        instance: InstanceId,
    },
}

/// Something worth counting that changed no rule: the evidence for the
/// checker's `sometimes` properties and the shell's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "note")]
pub enum Note {
    /// A report from an unsupported protocol version was dropped.
    ReportVersionMismatch,
    /// An exit for an instance no longer in the ledger (late or duplicated).
    StaleExit,
    /// An unknown running instance was told to stop.
    PhantomReaped {
        /// The instance.
        instance: InstanceId,
    },
    /// A boot outlasted its timeout.
    BootTimedOut {
        /// The instance.
        instance: InstanceId,
    },
    /// A lease expired: the instance is proven dead.
    LeaseExpired {
        /// The instance.
        instance: InstanceId,
    },
    /// A relaunch was refused: no token and no probe credit in the
    /// bucket of the slot's app. Noted once per app and report.
    RetryRefused {
        /// The slot.
        slot: SlotId,
    },
    /// A boot failure or timeout was counted by the breakers.
    BootFailureCounted {
        /// The instance.
        instance: InstanceId,
    },
    /// An instance booted for the first time.
    BootSucceeded {
        /// The instance.
        instance: InstanceId,
    },
    /// A user command was refused because of lockdown.
    LockdownRefused,
    /// A relaunch was paid by the probe credit.
    ProbeSpent,
    /// An input arrived outside the leadership guard (or after the
    /// manager was deposed): nothing was done.
    NotLeading,
    /// An instance left the ledger (`InstanceStopped` was journaled): where
    /// it ran, so a shell can say so without mirroring placement.
    InstanceStopped {
        /// The instance.
        instance: InstanceId,
        /// The host it was placed on.
        host: HostId,
    },
}

/// What the manager asks its shell to do, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum Effect {
    /// Make this record durable before performing any later effect.
    Persist(JournalRecord),
    /// Send a reply to an agent.
    Send(ManagerReply),
    /// Raise an alert.
    Alert(Alert),
    /// Count this.
    Note(Note),
}

/// The kind of user command refused by lockdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    /// Scale down.
    ScaleDown,
    /// Restart.
    Restart,
    /// Deploy.
    Deploy,
}

impl std::fmt::Display for CommandKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommandKind::ScaleDown => "scale down",
            CommandKind::Restart => "restart",
            CommandKind::Deploy => "deploy",
        })
    }
}

/// A user's request the manager refuses; the state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Rejected {
    /// No such process type.
    #[error("unknown process type {process_type:?}: it is not in the configuration")]
    UnknownProcessType {
        /// The id given.
        process_type: TypeId,
    },
    /// A count over the configured maximum.
    #[error("cannot scale type {process_type:?} to {requested}: the configured maximum is {max}")]
    ScaleAboveMax {
        /// The type.
        process_type: TypeId,
        /// The count asked for.
        requested: u16,
        /// The maximum.
        max: u16,
    },
    /// A singleton scaled above one.
    #[error(
        "cannot scale singleton type {process_type:?} to {requested}: a singleton runs at most 1"
    )]
    SingletonAboveOne {
        /// The type.
        process_type: TypeId,
        /// The count asked for.
        requested: u16,
    },
    /// A slot the formation does not have.
    #[error("no dyno {slot:?}: the formation runs {desired} of its type")]
    NoSuchDyno {
        /// The slot given.
        slot: SlotId,
        /// The type's desired count.
        desired: u16,
    },
    /// This manager does not lead now (a standby, a deposed leader, or a
    /// leader whose guard lapsed).
    #[error(
        "this manager does not lead now (standby, deposed, or its leadership is unconfirmed): send the command to the leader"
    )]
    NotLeading,
    /// Lockdown is on.
    #[error(
        "{command} refused: app management is locked down; an operator must turn lockdown off first"
    )]
    LockedDown {
        /// What was refused.
        command: CommandKind,
    },
}

/// The combined phase of one ledger entry.
#[must_use]
pub fn phase_of(d: &DurableInstance, l: &Liveness) -> Phase {
    match (d.stop, l.view) {
        (Some(reason), _) => Phase::Stopping(reason),
        (None, LiveView::Launching { .. }) => Phase::Launching,
        (None, LiveView::Up) => Phase::Up,
        (None, LiveView::Unknown) => Phase::Unknown,
    }
}
