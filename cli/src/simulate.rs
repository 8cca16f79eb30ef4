//! `tally simulate`: the simulator's runs, with a progress line on stderr,
//! the comparison table on stdout, and the outputs written.

use crate::error::CliError;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tally_sim::output::alert_name;
use tally_sim::report::recovery_explanations;
use tally_sim::simulate::{Plan, SimulateOptions, tally_unsafe};
use tally_sim::{Policy, Progress, Report, Scenario};

/// How often the progress line is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// `tally simulate`.
#[derive(clap::Args)]
pub struct SimulateArgs {
    /// A built-in scenario (incident-2012, host-crash-wave, partition,
    /// crash-loop, noisy-neighbour) or a path to a scenario TOML file.
    scenario: String,
    /// Policy to run (repeatable; default: the scenario's, naive-2012 and
    /// tally unless it names others). naive-2012: the 2012 manager;
    /// fleet-wide: Tally with one budget and breaker for the fleet (as
    /// before apps were isolated); tally: per-app budgets and breakers;
    /// tally-no-bad-apps: tally without the events that break some apps,
    /// the baseline of the healthy apps' relaunch delays.
    #[arg(long = "policy", value_name = "NAME")]
    policies: Vec<String>,
    /// Seed (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Write summary.json, CSV/JSON series and SVG plots here.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Override the fleet size: hosts.
    #[arg(long, requires_all = ["apps", "dynos"])]
    hosts: Option<u32>,
    /// Override the fleet size: apps.
    #[arg(long)]
    apps: Option<u32>,
    /// Override the fleet size: dynos.
    #[arg(long)]
    dynos: Option<u64>,
    /// Override the simulated length, in hours.
    #[arg(long)]
    hours: Option<f64>,
}

/// `tally simulate`: runs the scenario under each policy, prints the table,
/// writes the outputs; exit 2 when a `tally` run broke a safety property.
pub fn simulate(args: &SimulateArgs) -> Result<ExitCode, CliError> {
    let policies = args
        .policies
        .iter()
        .map(|p| Policy::from_name(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut opts = SimulateOptions::new(&args.scenario);
    opts.policies = policies;
    opts.seed = args.seed;
    opts.duration_h = args.hours;
    if let (Some(h), Some(a), Some(d)) = (args.hosts, args.apps, args.dynos) {
        opts.fleet = Some((h, a, d));
    }
    let plan = Plan::new(&opts)?;
    let terminal = std::io::stderr().is_terminal();
    // The latest progress of every run shares one status line.
    let status = Mutex::new(vec![String::new(); plan.policies.len()]);
    let name = &plan.scenario.name;
    let reports = plan.run(|slot, policy| {
        let status = &status;
        let mut last_plain: Option<Instant> = None;
        let started = Instant::now();
        move |p: Progress| {
            let done = p.now_ms as f64 / p.end_ms.max(1) as f64;
            let line = format!(
                "{name} {policy}: {:5.1}% of {:.1} h, {} events, ledger {}{}",
                100.0 * done,
                p.end_ms as f64 / 3.6e6,
                p.events,
                p.ledger,
                eta(started.elapsed(), done)
            );
            if terminal {
                let Ok(mut lines) = status.lock() else {
                    return;
                };
                if let Some(l) = lines.get_mut(slot) {
                    *l = line;
                }
                let shown: Vec<&str> = lines
                    .iter()
                    .filter(|l| !l.is_empty())
                    .map(String::as_str)
                    .collect();
                eprint!("\r{}   ", shown.join(" | "));
                let _ = std::io::stderr().flush();
            } else if last_plain.is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY) {
                last_plain = Some(Instant::now());
                eprintln!("{line}");
            }
        }
    });
    if terminal {
        eprintln!();
    }
    let reports = reports?;
    print!("{}", scenario_line(&plan.scenario));
    print!("{}", table(&reports));
    for line in recovery_explanations(&reports) {
        println!("{line}");
    }
    if let Some(dir) = &args.out {
        tally_sim::write_outputs(dir, &reports)?;
        println!("outputs written to {}", dir.display());
    }
    Ok(ExitCode::from(if tally_unsafe(&reports) { 2 } else { 0 }))
}

/// `, ETA 4m10s` from the wall time so far and the share done (nothing
/// before 1%: too early to say).
fn eta(elapsed: Duration, done: f64) -> String {
    if !(0.01..1.0).contains(&done) {
        return String::new();
    }
    let left = elapsed.as_secs_f64() * (1.0 - done) / done;
    let s = left.round() as u64;
    if s >= 60 {
        format!(", ETA {}m{:02}s", s / 60, s % 60)
    } else {
        format!(", ETA {s}s")
    }
}

/// What the scenario does, in one line, and its trigger.
fn scenario_line(scenario: &Scenario) -> String {
    let mut s = format!("{}: {}\n", scenario.name, scenario.description);
    if let Some(t) = scenario.trigger_window() {
        let end = t
            .end_h
            .map_or_else(|| "never removed".to_owned(), |e| format!("to {e:.2} h"));
        let _ = writeln!(s, "trigger: {}, from {:.2} h {end}", t.label, t.start_h);
    }
    s
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
}

/// The summary table, one column per run.
fn table(reports: &[Report]) -> String {
    type Row = (&'static str, fn(&Report) -> String);
    let rows: [Row; 29] = [
        ("launch rate peak /s", |r| {
            format!("{:.1}", r.summary.launch_rate_peak)
        }),
        ("launch rate peak after trigger /s", |r| {
            format!("{:.1}", r.summary.launch_rate_peak_after_trigger)
        }),
        ("launches total", |r| r.summary.launches_total.to_string()),
        ("launch bound (launch_bound)", |r| {
            r.summary.launch_bound_final.to_string()
        }),
        ("steps over the bound", |r| {
            r.summary.launch_bound_exceeded_steps.to_string()
        }),
        ("boot p50 / p99 s", |r| {
            format!(
                "{:.1} / {:.1}",
                r.summary.boot_p50_ms / 1e3,
                r.summary.boot_p99_ms / 1e3
            )
        }),
        ("boot p50 last hour s", |r| {
            if r.summary.boots_last_hour == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}", r.summary.boot_p50_last_hour_ms / 1e3)
            }
        }),
        ("boot timeouts", |r| r.summary.timeouts_total.to_string()),
        ("running / desired at end", |r| {
            format!("{} / {}", r.summary.running_final, r.summary.desired_final)
        }),
        ("phantoms (total / max at once)", |r| {
            format!("{} / {}", r.summary.phantoms_total, r.summary.phantoms_max)
        }),
        ("singleton overlaps (count / s)", |r| {
            format!(
                "{} / {:.0}",
                r.summary.singleton_overlaps, r.summary.singleton_overlap_s
            )
        }),
        ("recovery after trigger s", |r| opt(r.summary.recover_s)),
        ("held in recovery (main reason)", |r| {
            r.summary.held_in_recovery.ranked().first().map_or_else(
                || "-".to_owned(),
                |(share, short, _)| format!("{short} {:.0}%", 100.0 * share),
            )
        }),
        ("boot-time alert at h", |r| {
            match (r.summary.alert_s, alert_name(r)) {
                (Some(a), Some(name)) => format!("{:.2} {name}", a / 3600.0),
                _ => "-".to_owned(),
            }
        }),
        ("drift alert delay s", |r| opt(r.summary.alert_delay_s)),
        ("alert lead before 1st timeout s", |r| {
            opt(r.summary.alert_lead_s)
        }),
        ("breaker trips (fleet / apps')", |r| {
            format!(
                "{} / {}",
                r.summary.fleet_breaker_trips, r.summary.app_breaker_trips
            )
        }),
        ("healthy relaunch delay p50 / p99 s", |r| {
            if r.summary.relaunches_measured == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{:.1} / {:.1}",
                    r.summary.relaunch_delay_p50_s, r.summary.relaunch_delay_p99_s
                )
            }
        }),
        ("healthy crashes / not relaunched at end", |r| {
            format!(
                "{} / {}",
                r.summary.relaunches_measured, r.summary.relaunches_pending
            )
        }),
        ("bad apps: launches / their bound", |r| {
            if r.summary.troubled_launch_bound == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{} / {}",
                    r.summary.troubled_launches, r.summary.troubled_launch_bound
                )
            }
        }),
        ("apps over their own bound", |r| {
            r.summary.apps_over_bound.to_string()
        }),
        ("boot failures", |r| r.summary.boot_failures.to_string()),
        ("retries refused", |r| r.summary.retries_refused.to_string()),
        ("phantoms reaped", |r| r.summary.phantoms_reaped.to_string()),
        ("leases expired / self-fenced", |r| {
            format!("{} / {}", r.summary.leases_expired, r.summary.self_fenced)
        }),
        ("crashes", |r| r.summary.crashes.to_string()),
        ("invariant violations", |r| {
            r.summary.invariant_violations.to_string()
        }),
        ("events / wall s", |r| {
            format!("{} / {:.1}", r.perf.events, r.perf.wall_s)
        }),
        ("events per second", |r| {
            format!("{:.0}", r.perf.events_per_s)
        }),
    ];
    let mut s = String::new();
    let title = reports.first().map_or("", |r| r.scenario.as_str());
    let _ = write!(s, "{title:<36}");
    for r in reports {
        let _ = write!(s, " {:>22}", r.policy.name());
    }
    s.push('\n');
    for (name, f) in rows {
        let _ = write!(s, "{name:<36}");
        for r in reports {
            let _ = write!(s, " {:>22}", f(r));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::eta;
    use std::time::Duration;

    #[test]
    fn eta_extrapolates_the_wall_time_so_far() {
        assert_eq!(eta(Duration::from_secs(60), 0.25), ", ETA 3m00s");
        assert_eq!(eta(Duration::from_secs(10), 0.5), ", ETA 10s");
        assert_eq!(eta(Duration::from_secs(1), 0.001), "", "too early");
        assert_eq!(eta(Duration::from_secs(1), 1.0), "", "done");
    }
}
