//! Writing runs to disk: `summary.json`, one `series-<policy>.csv` and
//! `.json` per run, and three SVG charts with every policy on one chart.

use crate::error::SimError;
use crate::report::Report;
use crate::svg::{Chart, Line, Marker};
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
        "t_s,launch_rate,boots,boot_p50_ms,boot_p99_ms,timeouts,alive,running,desired,phantoms,singleton_overlaps,ledger,disk_queue_max,breaker,tokens,cusum\n",
    );
    for r in &report.series {
        let _ = writeln!(
            s,
            "{},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{:.3},{:.3}",
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
            r.cusum
        );
    }
    s
}

fn markers(reports: &[Report]) -> Vec<Marker> {
    let mut m = Vec::new();
    let Some(first) = reports.first() else {
        return m;
    };
    let h = |s: f64| s / 3600.0;
    if let Some(d) = first.summary.drift_start_s {
        m.push(Marker {
            x: h(d),
            label: "drift starts".into(),
        });
    }
    for r in reports {
        if let Some(a) = r.summary.alert_s {
            m.push(Marker {
                x: h(a),
                label: format!("drift alert ({})", r.policy),
            });
        }
    }
    if let Some(t) = first.summary.trigger_end_s {
        m.push(Marker {
            x: h(t),
            label: "trigger removed".into(),
        });
    }
    m
}

fn chart<'a>(
    reports: &'a [Report],
    title: &str,
    y_label: &str,
    lines: impl Fn(&'a Report, &'a str) -> Vec<Line<'a>>,
) -> String {
    let mut all = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let color = COLORS.get(i % COLORS.len()).copied().unwrap_or("black");
        all.extend(lines(r, color));
    }
    let scenario = reports.first().map_or("", |r| r.scenario.as_str());
    Chart {
        title: format!("{scenario}: {title}"),
        x_label: "simulated hours".into(),
        y_label: y_label.into(),
        lines: all,
        markers: markers(reports),
    }
    .render()
}

fn points(r: &Report, f: impl Fn(&crate::report::Sample) -> f64) -> Vec<(f64, f64)> {
    r.series.iter().map(|s| (s.t_s / 3600.0, f(s))).collect()
}

/// Like `points`, with a gap (NaN) where no boot completed in the interval.
fn boot_points(r: &Report, f: impl Fn(&crate::report::Sample) -> f64) -> Vec<(f64, f64)> {
    points(r, |s| if s.boots == 0 { f64::NAN } else { f(s) })
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
    let launch = chart(reports, "launch rate", "launches per second", |r, c| {
        vec![Line {
            label: r.policy.to_string(),
            color: c,
            dashed: false,
            points: points(r, |s| s.launch_rate),
        }]
    });
    write(dir, "launch_rate.svg", &launch)?;
    let boot = chart(reports, "boot time", "seconds", |r, c| {
        vec![
            Line {
                label: format!("{} p50", r.policy),
                color: c,
                dashed: false,
                points: boot_points(r, |s| s.boot_p50_ms / 1000.0),
            },
            Line {
                label: format!("{} p99", r.policy),
                color: c,
                dashed: true,
                points: boot_points(r, |s| s.boot_p99_ms / 1000.0),
            },
        ]
    });
    write(dir, "boot_time.svg", &boot)?;
    let running = chart(reports, "dynos running vs desired", "dynos", |r, c| {
        let mut v = vec![Line {
            label: format!("{} running", r.policy),
            color: c,
            dashed: false,
            points: points(r, |s| s.running as f64),
        }];
        if r.series.iter().any(|s| s.phantoms > 0) {
            v.push(Line {
                label: format!("{} phantoms", r.policy),
                color: c,
                dashed: true,
                points: points(r, |s| s.phantoms as f64),
            });
        }
        if std::ptr::eq(r, reports.first().unwrap_or(r)) {
            v.push(Line {
                label: "desired".into(),
                color: "#000",
                dashed: true,
                points: points(r, |s| s.desired as f64),
            });
        }
        v
    });
    write(dir, "running_vs_desired.svg", &running)?;
    Ok(())
}
