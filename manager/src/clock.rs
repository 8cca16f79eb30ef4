//! The clocks the shell reads (the core never reads one).

/// Nanoseconds of `CLOCK_BOOTTIME`: one clock for an agent and its fences
/// (so a lease end can cross the pipe as an absolute time), monotonic, and
/// counting time suspended, so a resumed host fences what expired meanwhile.
/// The fence's own reading, so that the two cannot disagree.
pub use tally_fence::boottime_ns;

use std::time::{Duration, Instant};

/// One moment read on both clocks: `Instant` (to sleep until, and to time
/// calls) and `CLOCK_BOOTTIME` (what the manager's ticks count, so that a
/// suspend of the whole machine counts as time passed: a leader suspended
/// past its store lease finds its guard lapsed when it resumes, as a
/// stopped one does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment {
    /// The monotonic reading.
    pub instant: Instant,
    /// The `CLOCK_BOOTTIME` reading, in nanoseconds.
    pub boot_ns: u64,
}

impl Moment {
    /// Now, on both clocks.
    #[must_use]
    pub fn now() -> Moment {
        Moment {
            instant: Instant::now(),
            boot_ns: boottime_ns(),
        }
    }

    /// Boot-clock time from `earlier` to this moment (zero if `earlier` is
    /// later).
    #[must_use]
    pub fn since(&self, earlier: &Moment) -> Duration {
        Duration::from_nanos(self.boot_ns.saturating_sub(earlier.boot_ns))
    }
}

impl PartialOrd for Moment {
    fn partial_cmp(&self, other: &Moment) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Moment {
    /// By the boot clock: the one the manager's ticks count.
    fn cmp(&self, other: &Moment) -> std::cmp::Ordering {
        self.boot_ns.cmp(&other.boot_ns)
    }
}
