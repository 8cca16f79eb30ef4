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
    /// Relaunches refused for want of a token in the interval.
    #[serde(default)]
    pub retries_refused: u64,
    /// Desired dynos not running now, by what holds each back.
    #[serde(default)]
    pub held: Held,
}

/// Desired dynos not running, by what holds each one back: a vacant slot
/// by the first of the core's launch conditions it fails (in the order
/// the core checks them: the fleet breaker, the slot's backoff, its app's
/// breaker, its bucket), or launchable and waiting for a report from a host
/// with room; an occupied slot whose dyno is not up yet. In a [`Sample`],
/// dynos now; in [`Summary::held_in_recovery`], dyno-seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// Vacant, the fleet breaker open.
    pub fleet_breaker: u64,
    /// Vacant, the slot's backoff not ended.
    pub backoff: u64,
    /// Vacant, its app's breaker open (or its probe out).
    pub app_breaker: u64,
    /// Vacant, its app's bucket empty (no token, no probe credit).
    pub budget: u64,
    /// Vacant and launchable: waiting for a report from a host with room
    /// (at most `K` boots in flight per host).
    pub placement: u64,
    /// Occupied but not up: booting, or lost and awaiting lease expiry.
    pub not_up: u64,
}

impl Held {
    /// Each reason with its count, short name and words, in the core's
    /// order.
    #[must_use]
    pub fn reasons(&self) -> [(u64, &'static str, &'static str); 6] {
        [
            (self.fleet_breaker, "fleet breaker", "the fleet breaker"),
            (self.backoff, "backoff", "backoff"),
            (self.app_breaker, "app breakers", "their apps' breakers"),
            (self.budget, "budget", "the retry budget"),
            (
                self.placement,
                "placement",
                "a report from a host with room for a boot",
            ),
            (
                self.not_up,
                "booting",
                "their boots (or a lost host's lease)",
            ),
        ]
    }

    /// The total.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|(n, _, _)| *n).sum()
    }

    /// The reasons with a share of the total, largest first (ties in the
    /// core's order), as `(share, short name, words)`.
    #[must_use]
    pub fn ranked(&self) -> Vec<(f64, &'static str, &'static str)> {
        let total = self.total();
        if total == 0 {
            return Vec::new();
        }
        let mut v: Vec<(u64, &'static str, &'static str)> = self
            .reasons()
            .into_iter()
            .filter(|(n, _, _)| *n > 0)
            .collect();
        v.sort_by_key(|(n, _, _)| std::cmp::Reverse(*n));
        v.into_iter()
            .map(|(n, short, long)| (n as f64 / total as f64, short, long))
            .collect()
    }

    /// Adds `other` times `weight`.
    pub fn add(&mut self, other: &Held, weight: u64) {
        self.fleet_breaker += other.fleet_breaker * weight;
        self.backoff += other.backoff * weight;
        self.app_breaker += other.app_breaker * weight;
        self.budget += other.budget * weight;
        self.placement += other.placement * weight;
        self.not_up += other.not_up * weight;
    }
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
    /// When the trigger started, seconds.
    #[serde(default)]
    pub trigger_start_s: Option<f64>,
    /// Time from the trigger's end to running >= desired, seconds.
    pub recover_s: Option<f64>,
    /// When boot times first drifted, seconds.
    pub drift_start_s: Option<f64>,
    /// When the drift detector alerted, seconds.
    pub alert_s: Option<f64>,
    /// The alert came with no drift to find (the scenario has none, or it
    /// came before the drift started): a false alarm, raised by slow
    /// boots of another cause (a mass relaunch).
    #[serde(default)]
    pub false_alarm: bool,
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
    /// Of which from the trigger's start to the recovery (or the end).
    #[serde(default)]
    pub retries_refused_in_recovery: u64,
    /// Dyno-seconds of desired dynos not running, by what held them, from
    /// the trigger's start to the recovery (or the end).
    #[serde(default)]
    pub held_in_recovery: Held,
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
    /// What the scenario does, in one line.
    #[serde(default)]
    pub description: String,
    /// What the trigger is, when the scenario has one.
    #[serde(default)]
    pub trigger: Option<String>,
    /// The warm-up (the formation scaled up app by app), hours.
    #[serde(default)]
    pub warmup_h: f64,
    /// The core's boot timeout, seconds.
    #[serde(default)]
    pub boot_timeout_s: f64,
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

/// `1,234`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What held a run's missing dynos from the trigger's start to its
/// recovery: `the retry budget (50% of 17,700 dyno-seconds; 3,403
/// relaunches refused), then backoff (32%) and ...`; `None` when nothing
/// was missing.
#[must_use]
pub fn held_words(r: &Report) -> Option<String> {
    let h = &r.summary.held_in_recovery;
    let ranked = h.ranked();
    let ((top, _, words), rest) = ranked.split_first()?;
    let refused = r.summary.retries_refused_in_recovery;
    let refused = if refused > 0 {
        format!("; {} relaunches refused", thousands(refused))
    } else {
        String::new()
    };
    let mut s = format!(
        "{words} ({:.0}% of {} dyno-seconds{refused})",
        100.0 * top,
        thousands(h.total())
    );
    let rest: Vec<String> = rest
        .iter()
        .filter(|(share, _, _)| *share >= 0.05)
        .map(|(share, _, words)| format!("{words} ({:.0}%)", 100.0 * share))
        .collect();
    if !rest.is_empty() {
        s.push_str(", then ");
        s.push_str(&rest.join(", "));
    }
    Some(s)
}

/// Why runs of one scenario recover at different speeds, computed from
/// the runs: one line per run that recovers later than the fastest (or
/// never), naming what held its missing dynos (see [`Held`]) against what
/// held the fastest run's. Nothing when every run recovers alike.
#[must_use]
pub fn recovery_explanations(reports: &[Report]) -> Vec<String> {
    let fastest = reports
        .iter()
        .filter_map(|r| r.summary.recover_s.map(|s| (s, r)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let mut lines = Vec::new();
    for r in reports {
        let Some(why) = held_words(r) else {
            continue;
        };
        let line = match (r.summary.recover_s, fastest) {
            (Some(s), Some((f, fr))) if s > f => {
                let theirs = held_words(fr)
                    .map(|w| format!("; {}'s waited on {w}", fr.policy))
                    .unwrap_or_default();
                format!(
                    "why {} recovers {:.0} s later than {} ({:.0} s against {:.0} s after the trigger ends): from the trigger's start to its recovery, its missing dynos waited mostly on {why}{theirs}",
                    r.policy,
                    s - f,
                    fr.policy,
                    s,
                    f
                )
            }
            (None, Some((f, fr))) => format!(
                "why {} does not recover by the end ({} recovers {:.0} s after the trigger ends): from the trigger's start, its missing dynos waited mostly on {why}",
                r.policy, fr.policy, f
            ),
            (None, None) if r.summary.trigger_end_s.is_some() => format!(
                "why {} does not recover by the end: from the trigger's start, its missing dynos waited mostly on {why}",
                r.policy
            ),
            _ => continue,
        };
        lines.push(line);
    }
    lines
}
