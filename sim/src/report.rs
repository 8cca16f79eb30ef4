//! What a run produces: the summary figures, the time series, and the
//! performance counters (the only non-deterministic part, kept apart).

use crate::detector::Detector;
use crate::policy::Policy;
use serde::{Deserialize, Serialize};

/// One row of the time series, taken every `sample_ms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Simulated time, seconds.
    pub t_s: f64,
    /// Launches decided by the manager in the interval, per second.
    pub launch_rate: f64,
    /// Boots completed in the interval.
    pub boots: u64,
    /// Boot time of those boots, ms: median.
    pub boot_p50_ms: f64,
    /// Boot time of those boots, ms: 99th percentile.
    pub boot_p99_ms: f64,
    /// Boot timeouts in the interval.
    pub timeouts: u64,
    /// Processes alive in ground truth (booting, up or being killed).
    pub alive: u64,
    /// Processes up in ground truth and in the ledger.
    pub running: u64,
    /// Desired count over the whole formation.
    pub desired: u64,
    /// Processes alive in ground truth but not in the ledger.
    pub phantoms: u64,
    /// Singleton slots with two processes alive at once, now.
    pub singleton_overlaps: u64,
    /// Ledger entries.
    pub ledger: u64,
    /// Disk jobs queued on the busiest host.
    pub disk_queue_max: u64,
    /// The fleet breaker: 0 closed, 1 half-open, 2 open.
    pub breaker: u8,
    /// Apps whose own breaker is open or half-open.
    #[serde(default)]
    pub apps_held: u64,
    /// Whole tokens in the retry budgets, every app's together.
    pub tokens: f64,
    /// The detector's CUSUM statistic.
    pub cusum: f64,
}

/// The figures the issue asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Peak launch rate over the samples, per second.
    pub launch_rate_peak: f64,
    /// Peak launch rate after the trigger ended, per second.
    pub launch_rate_peak_after_trigger: f64,
    /// Launches decided by the manager.
    pub launches_total: u64,
    /// `tally_core::launch_bound` at the end of the run.
    pub launch_bound_final: u64,
    /// Manager steps after which launches exceeded the bound.
    pub launch_bound_exceeded_steps: u64,
    /// Largest excess over the bound seen.
    pub launch_bound_excess_max: u64,
    /// First launches granted by formation changes (`F`).
    pub first_launches: u64,
    /// First successful boots (`S`).
    pub successful_boots: u64,
    /// Boots completed (ground truth).
    pub boots_total: u64,
    /// Boot time over the run, ms.
    pub boot_p50_ms: f64,
    /// Boot time over the run, ms.
    pub boot_p99_ms: f64,
    /// Boot time over the last hour, ms; 0 when `boots_last_hour` is 0.
    pub boot_p50_last_hour_ms: f64,
    /// Boots completed in the last hour.
    #[serde(default)]
    pub boots_last_hour: u64,
    /// Boot timeouts.
    pub timeouts_total: u64,
    /// Dynos up and in the ledger at the end.
    pub running_final: u64,
    /// Desired count at the end.
    pub desired_final: u64,
    /// Most phantom processes at once.
    pub phantoms_max: u64,
    /// Processes that were phantoms at some point.
    pub phantoms_total: u64,
    /// Times a singleton slot had a second process alive.
    pub singleton_overlaps: u64,
    /// Total time singleton slots spent with two processes alive, seconds.
    pub singleton_overlap_s: f64,
    /// When the trigger ended, seconds.
    pub trigger_end_s: Option<f64>,
    /// Time from the trigger's end to running >= desired, seconds.
    pub recover_s: Option<f64>,
    /// When boot times first drifted, seconds.
    pub drift_start_s: Option<f64>,
    /// When the drift detector alerted, seconds.
    pub alert_s: Option<f64>,
    /// Time from the drift to the alert, seconds.
    pub alert_delay_s: Option<f64>,
    /// Time from the alert to the first boot timeout, seconds.
    pub alert_lead_s: Option<f64>,
    /// First boot timeout after the warm-up, seconds.
    pub first_timeout_s: Option<f64>,
    /// Automatic breaker trips, the apps' and the fleet's.
    pub breaker_trips: u64,
    /// Of which the fleet breaker's.
    #[serde(default)]
    pub fleet_breaker_trips: u64,
    /// Of which the apps' own breakers'.
    #[serde(default)]
    pub app_breaker_trips: u64,
    /// Boots that failed (a bad release).
    #[serde(default)]
    pub boot_failures: u64,
    /// Healthy apps' dyno crashes (those that `relaunch_delay_*`
    /// measure).
    #[serde(default)]
    pub relaunches_measured: u64,
    /// Of those, crashes whose slot had not booted again by the end
    /// (counted in the delays with their wait so far).
    #[serde(default)]
    pub relaunches_pending: u64,
    /// Healthy apps: a dyno's crash to its slot's next boot, median, s.
    #[serde(default)]
    pub relaunch_delay_p50_s: f64,
    /// Healthy apps: a dyno's crash to its slot's next boot, 99th
    /// percentile, s.
    #[serde(default)]
    pub relaunch_delay_p99_s: f64,
    /// Apps whose launches exceeded their own bound at the end (S3 per
    /// app; 0 for `tally`).
    #[serde(default)]
    pub apps_over_bound: u64,
    /// Launches of the apps some event breaks, at the end.
    #[serde(default)]
    pub troubled_launches: u64,
    /// Their bounds, together.
    #[serde(default)]
    pub troubled_launch_bound: u64,
    /// First trip, seconds.
    pub first_trip_s: Option<f64>,
    /// Phantoms reaped by the manager.
    pub phantoms_reaped: u64,
    /// Relaunches refused for want of a token.
    pub retries_refused: u64,
    /// Leases that expired.
    pub leases_expired: u64,
    /// Instances agents fenced themselves.
    pub self_fenced: u64,
    /// Dyno crashes after boot.
    pub crashes: u64,
    /// Messages dropped by partitions or down hosts.
    pub messages_dropped: u64,
    /// Invariant violations seen by `tally_core::invariants` (must be 0).
    pub invariant_violations: u64,
    /// The first violation, if any.
    pub first_violation: Option<String>,
}

/// Wall-clock counters: they vary from run to run, the rest does not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Perf {
    /// Events processed.
    pub events: u64,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Events per wall second.
    pub events_per_s: f64,
    /// Wall time inside `Manager::step` for `Tick`, seconds.
    pub manager_tick_s: f64,
    /// `Manager::step` calls with `Tick`.
    pub manager_ticks: u64,
    /// Wall time inside `Manager::step` for reports, seconds.
    pub manager_report_s: f64,
    /// `Manager::step` calls with a report.
    pub manager_reports: u64,
    /// Instances listed in those reports.
    pub report_instances: u64,
    /// Wall time inside `Manager::step` for user commands, seconds.
    pub manager_user_s: f64,
    /// Wall time inside `Agent::step`, seconds.
    pub agent_s: f64,
    /// `Agent::step` calls.
    pub agent_steps: u64,
    /// Wall time in invariant checks, seconds.
    pub invariants_s: f64,
}

/// Everything one run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The policy.
    pub policy: Policy,
    /// The seed.
    pub seed: u64,
    /// Hosts simulated.
    pub hosts: u32,
    /// Desired dynos at full formation.
    pub dynos: u64,
    /// Simulated length, seconds.
    pub duration_s: f64,
    /// Summary figures.
    pub summary: Summary,
    /// The drift detector's final state.
    pub detector: Detector,
    /// Time series.
    pub series: Vec<Sample>,
    /// Wall-clock counters.
    pub perf: Perf,
}

impl Report {
    /// Whether the run kept every safety property the simulator observes.
    #[must_use]
    pub fn safety_kept(&self) -> bool {
        let s = &self.summary;
        let per_app = self.policy != Policy::Tally && self.policy != Policy::TallyNoBadApps
            || s.apps_over_bound == 0;
        s.launch_bound_exceeded_steps == 0
            && per_app
            && s.phantoms_total == 0
            && s.singleton_overlaps == 0
            && s.invariant_violations == 0
    }
}

/// The `q` quantile (0..=1) of `v`, sorting it; 0 when empty.
pub fn quantile(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let idx = ((v.len() - 1) as f64 * q).round() as usize;
    v.get(idx.min(v.len() - 1)).map_or(0.0, |x| f64::from(*x))
}
