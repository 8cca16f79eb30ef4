//! Writing runs to disk: `summary.json`, one `series-<policy>.csv` and
//! `.json` per run, and three SVG charts with every policy on one chart.

use crate::error::SimError;
use crate::report::Report;
use crate::svg::{Band, Chart, HLine, Line, Marker, Panel};
use std::fmt::Write as _;
use std::path::Path;

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];

fn write(dir: &Path, name: &str, text: &str) -> Result<(), SimError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| SimError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The time series as CSV, one row per sample.
#[must_use]
pub fn series_csv(report: &Report) -> String {
    let mut s = String::from(
        "t_s,launch_rate,boots,boot_p50_ms,boot_p99_ms,timeouts,alive,running,desired,phantoms,singleton_overlaps,ledger,disk_queue_max,breaker,tokens,cusum,retries_refused,held_fleet_breaker,held_backoff,held_app_breaker,held_budget,held_placement,held_not_up\n",
    );
    for r in &report.series {
        let h = &r.held;
        let _ = writeln!(
            s,
            "{},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{}",
            r.t_s,
            r.launch_rate,
            r.boots,
            r.boot_p50_ms,
            r.boot_p99_ms,
            r.timeouts,
            r.alive,
            r.running,
            r.desired,
            r.phantoms,
            r.singleton_overlaps,
            r.ledger,
            r.disk_queue_max,
            r.breaker,
            r.tokens,
            r.cusum,
            r.retries_refused,
            h.fleet_breaker,
            h.backoff,
            h.app_breaker,
            h.budget,
            h.placement,
            h.not_up
        );
    }
    s
}

/// What a run's boot-time alert was: `drift alert` when it came at or
/// after the scenario's drift, `false alarm` when the scenario has no
/// drift or the alert came before it.
#[must_use]
pub fn alert_name(r: &Report) -> Option<&'static str> {
    r.summary.alert_s?;
    Some(if r.summary.false_alarm {
        "false alarm"
    } else {
        "drift alert"
    })
}

/// The marks every chart of the runs carries: the warm-up and the
/// trigger as bands, the drift's start, each alert (named as what it is)
/// and the trigger's removal as markers.
fn marks(reports: &[Report]) -> (Vec<Band>, Vec<Marker>) {
    let (mut bands, mut markers) = (Vec::new(), Vec::new());
    let Some(first) = reports.first() else {
        return (bands, markers);
    };
    let h = |s: f64| s / 3600.0;
    let end_h = h(first.duration_s);
    if first.warmup_h > 0.0 {
        bands.push(Band {
            x0: 0.0,
            x1: first.warmup_h,
            label: "warm-up: the formation scaled up".into(),
            color: "#d9d9d9",
        });
    }
    if let Some(start) = first.summary.trigger_start_s {
        let what = first.trigger.as_deref().unwrap_or("trigger");
        let (x1, label) = match first.summary.trigger_end_s {
            Some(e) => (
                h(e),
                format!("trigger: {what}, {:.2} h to {:.2} h", h(start), h(e)),
            ),
            None => (
                end_h,
                format!("trigger: {what}, from {:.2} h, never removed", h(start)),
            ),
        };
        bands.push(Band {
            x0: h(start),
            x1,
            label,
            color: "#f6c77a",
        });
    }
    if let Some(d) = first.summary.drift_start_s {
        markers.push(Marker {
            x: h(d),
            label: "boot-time drift starts".into(),
            color: "#555",
        });
    }
    // One marker per alert time and kind, naming the runs that raised it.
    let mut alerts: Vec<(f64, &'static str, Vec<&str>)> = Vec::new();
    for r in reports {
        let (Some(a), Some(kind)) = (r.summary.alert_s, alert_name(r)) else {
            continue;
        };
        match alerts.iter_mut().find(|(t, k, _)| *t == a && *k == kind) {
            Some((_, _, who)) => who.push(r.policy.name()),
            None => alerts.push((a, kind, vec![r.policy.name()])),
        }
    }
    for (a, kind, who) in alerts {
        let (label, color) = if kind == "false alarm" {
            (
                format!(
                    "false alarm: boot-time alert, no drift in this scenario ({})",
                    who.join(", ")
                ),
                "#8e44ad",
            )
        } else {
            (format!("drift alert ({})", who.join(", ")), "#1a7f37")
        };
        markers.push(Marker {
            x: h(a),
            label,
            color,
        });
    }
    if let Some(t) = first.summary.trigger_end_s {
        markers.push(Marker {
            x: h(t),
            label: "trigger removed".into(),
            color: "#8a5a00",
        });
    }
    (bands, markers)
}

fn chart<'a>(reports: &'a [Report], title: &str, panels: Vec<Panel<'a>>) -> String {
    let first = reports.first();
    let scenario = first.map_or("", |r| r.scenario.as_str());
    let subtitle = first.map_or(String::new(), |r| {
        format!(
            "{} ({} hosts, {} dynos, seed {})",
            r.description, r.hosts, r.dynos, r.seed
        )
    });
    let (bands, markers) = marks(reports);
    Chart {
        title: format!("{scenario}: {title}"),
        subtitle,
        x_label: "simulated hours".into(),
        panels,
        markers,
        bands,
    }
    .render()
}

/// The first run's lines are wider, so that a later run drawn over the
/// same values leaves them visible.
fn width(i: usize) -> f64 {
    if i == 0 { 3.0 } else { 1.5 }
}

fn color(i: usize) -> &'static str {
    COLORS.get(i % COLORS.len()).copied().unwrap_or("black")
}

/// The line of the `i`-th policy: its colour and width.
fn policy_line(i: usize, label: String, dashed: bool, points: Vec<(f64, f64)>) -> Line<'static> {
    Line {
        label,
        color: color(i),
        dashed,
        width: width(i),
        points,
    }
}

fn points(r: &Report, f: impl Fn(&crate::report::Sample) -> f64) -> Vec<(f64, f64)> {
    r.series.iter().map(|s| (s.t_s / 3600.0, f(s))).collect()
}

/// Like `points`, with no value (NaN) where no boot completed in the
/// interval.
fn boot_points(r: &Report, f: impl Fn(&crate::report::Sample) -> f64) -> Vec<(f64, f64)> {
    points(r, |s| if s.boots == 0 { f64::NAN } else { f(s) })
}

/// Samples per minute of a run's series (1 at the scenarios' 60 s).
fn per_minute(r: &Report) -> f64 {
    match r.series.as_slice() {
        [a, b, ..] if b.t_s > a.t_s => 60.0 / (b.t_s - a.t_s),
        _ => 1.0,
    }
}

/// The longest gap a line goes on across: 2% of the run, at least ten
/// samples.
fn bridge(r: &Report) -> f64 {
    let sample_h = match r.series.as_slice() {
        [a, b, ..] => (b.t_s - a.t_s) / 3600.0,
        _ => 0.0,
    };
    (r.duration_s / 3600.0 * 0.02).max(10.0 * sample_h)
}

fn panel<'a>(y_label: &str, weight: f64, lines: Vec<Line<'a>>) -> Panel<'a> {
    Panel {
        y_label: y_label.into(),
        lines,
        hlines: Vec::new(),
        y_from_data_after: None,
        bridge: f64::INFINITY,
        weight,
    }
}

/// The launch rate, and the relaunches the budget refused.
fn launch_chart(reports: &[Report]) -> String {
    let mut rate = Vec::new();
    let mut refused = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        rate.push(policy_line(
            i,
            r.policy.to_string(),
            false,
            points(r, |s| s.launch_rate),
        ));
        let k = per_minute(r);
        refused.push(policy_line(
            i,
            format!("{}: relaunches refused, no token", r.policy),
            false,
            points(r, |s| s.retries_refused as f64 * k),
        ));
    }
    let mut panels = vec![panel("launches per second", 2.0, rate)];
    if reports.iter().any(|r| r.summary.retries_refused > 0) {
        panels.push(panel("refused /min", 1.0, refused));
    }
    chart(reports, "launch rate", panels)
}

/// Boot times against the timeout, and the boots that timed out.
fn boot_chart(reports: &[Report]) -> String {
    let mut times = Vec::new();
    let mut timeouts = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        times.push(policy_line(
            i,
            format!("{} p50", r.policy),
            false,
            boot_points(r, |s| s.boot_p50_ms / 1000.0),
        ));
        times.push(policy_line(
            i,
            format!("{} p99", r.policy),
            true,
            boot_points(r, |s| s.boot_p99_ms / 1000.0),
        ));
        let k = per_minute(r);
        timeouts.push(policy_line(
            i,
            format!("{}: boots given up (timed out)", r.policy),
            false,
            points(r, |s| s.timeouts as f64 * k),
        ));
    }
    let first = reports.first();
    let mut top = panel("boot time, seconds", 2.0, times);
    top.bridge = first.map_or(0.0, bridge);
    if let Some(t) = first.map(|r| r.boot_timeout_s).filter(|t| *t > 0.0) {
        top.hlines.push(HLine {
            y: t,
            label: format!("boot timeout {t:.0} s: slower boots are given up"),
        });
    }
    let panels = vec![top, panel("timeouts /min", 1.0, timeouts)];
    chart(reports, "boot time", panels)
}

/// Running against desired (its range from the data after the warm-up, so
/// a dip shows), phantoms on their own axis, and the missing dynos the
/// budget, backoff or a breaker held back.
fn running_chart(reports: &[Report]) -> String {
    let mut running = Vec::new();
    let mut phantoms = Vec::new();
    let mut held = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        running.push(policy_line(
            i,
            format!("{} running", r.policy),
            false,
            points(r, |s| s.running as f64),
        ));
        phantoms.push(policy_line(
            i,
            format!("{}: alive in ground truth, not in the ledger", r.policy),
            false,
            points(r, |s| s.phantoms as f64),
        ));
        held.push(policy_line(
            i,
            format!(
                "{}: vacant slots held by the budget, backoff or a breaker",
                r.policy
            ),
            false,
            points(r, |s| {
                let h = &s.held;
                (h.fleet_breaker + h.backoff + h.app_breaker + h.budget) as f64
            }),
        ));
    }
    if let Some(r) = reports.first() {
        running.push(Line {
            label: "desired".into(),
            color: "#000",
            dashed: true,
            width: 1.5,
            points: points(r, |s| s.desired as f64),
        });
    }
    let mut top = panel("dynos", 2.0, running);
    top.y_from_data_after = Some(reports.first().map_or(0.0, |r| r.warmup_h));
    let panels = vec![
        top,
        panel("phantoms", 1.0, phantoms),
        panel("held back", 1.0, held),
    ];
    chart(reports, "dynos running vs desired", panels)
}

/// Writes every output of `reports` (runs of one scenario) under `dir`.
pub fn write_outputs(dir: &Path, reports: &[Report]) -> Result<(), SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let summaries: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "scenario": r.scenario, "policy": r.policy, "seed": r.seed,
                "hosts": r.hosts, "dynos": r.dynos, "duration_s": r.duration_s,
                "summary": r.summary, "detector": r.detector, "perf": r.perf,
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&summaries).unwrap_or_default();
    write(dir, "summary.json", &text)?;
    for r in reports {
        write(dir, &format!("series-{}.csv", r.policy), &series_csv(r))?;
        let json = serde_json::to_string(&r.series).unwrap_or_default();
        write(dir, &format!("series-{}.json", r.policy), &json)?;
    }
    write(dir, "launch_rate.svg", &launch_chart(reports))?;
    write(dir, "boot_time.svg", &boot_chart(reports))?;
    write(dir, "running_vs_desired.svg", &running_chart(reports))?;
    Ok(())
}
