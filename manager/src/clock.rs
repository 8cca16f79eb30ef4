//! The clocks the shell reads (the core never reads one).

/// Nanoseconds of `CLOCK_BOOTTIME`: one clock for an agent and its fences
/// (so a lease end can cross the pipe as an absolute time), monotonic, and
/// counting time suspended, so a resumed host fences what expired meanwhile.
/// The fence's own reading, so that the two cannot disagree.
pub use tally_fence::boottime_ns;
