//! Identifier and time newtypes shared by every machine.
//!
//! Ids are never bare integers: a `HostId` cannot be passed where a
//! `Generation` is expected, and the compiler says so.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point on one machine's own monotonic clock, in ticks.
///
/// The core never reads a clock: every `step` receives `now` from its shell.
/// Ticks of different machines are not comparable; only durations measured on
/// one clock are (see DESIGN.md, "Leases").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Tick(pub u64);

impl Tick {
    /// This tick plus `ticks`, saturating at the end of time.
    #[must_use]
    pub fn plus(self, ticks: u64) -> Tick {
        Tick(self.0.saturating_add(ticks))
    }

    /// Ticks from `earlier` to `self`, zero if `earlier` is later.
    #[must_use]
    pub fn since(self, earlier: Tick) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A fencing token: grows strictly per slot and is handed to the dyno.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Generation(pub u32);

impl Generation {
    /// The generation after this one, or `None` at the maximum.
    #[must_use]
    pub fn next(self) -> Option<Generation> {
        self.0.checked_add(1).map(Generation)
    }
}

/// One host (one agent).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct HostId(pub u16);

/// A process type of the formation, an index into `Config::process_types`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TypeId(pub u16);

/// An app: a set of process types sharing a retry budget and a breaker
/// (DESIGN.md, "Apps are isolated"). Dense, in the order each app's first
/// process type appears in `Config::process_types`; see `Config::type_apps`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct AppId(pub u16);

impl AppId {
    /// The index into per-app vectors.
    #[must_use]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One position of the formation: `(process type, index)`, e.g. `clock.1`.
// Ordered as the tuple (process type, index), compared as one packed
// integer: slot and instance comparisons are the core's hottest path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlotId {
    /// The process type this slot belongs to.
    pub process_type: TypeId,
    /// Zero-based index within the type; shown one-based as `web.1`.
    pub index: u16,
}

/// One launch of a slot: `(slot, generation)`.
// Ordered as the tuple (slot, generation), compared as one packed integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceId {
    /// The slot launched.
    pub slot: SlotId,
    /// The fencing token of this launch.
    pub generation: Generation,
}

impl SlotId {
    /// The order key: process type, then index.
    fn key(self) -> u32 {
        (u32::from(self.process_type.0) << 16) | u32::from(self.index)
    }
}

impl Ord for SlotId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for SlotId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl InstanceId {
    /// The order key: slot, then generation.
    fn key(self) -> u64 {
        (u64::from(self.slot.key()) << 32) | u64::from(self.generation.0)
    }
}

impl Ord for InstanceId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for InstanceId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One life of an agent: a crashed host comes back with the next incarnation.
///
/// The incarnation is the one thing an agent persists; every grant and launch
/// names the incarnation whose request it answers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Incarnation(pub u32);

/// A leader's term: the store's revision at which it created the leader
/// key (DESIGN.md, "More than one manager"), so strictly increasing across
/// elections. `Term(0)` is the sole manager of a local journal, which never
/// has a store.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Term(pub u64);

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "term {}", self.0)
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host{}", self.0)
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type{}.{}",
            self.process_type.0,
            u32::from(self.index) + 1
        )
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.slot, self.generation)
    }
}
