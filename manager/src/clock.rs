//! The clocks the shell reads (the core never reads one).

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds of `CLOCK_BOOTTIME`: one clock for an agent and its fences
/// (so a lease end can cross the pipe as an absolute time), monotonic, and
/// counting time suspended, so a resumed host fences what expired meanwhile.
#[must_use]
pub fn boottime_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME).map_or(0, |t| {
        u64::try_from(t.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
    })
}
