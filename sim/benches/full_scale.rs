//! The full-scale run: `incident-2012` with its 10,000 hosts and 1,000,000
//! dynos over 24 simulated hours, timed. `cargo bench -p tally-sim`.
//!
//! Environment: `SIM_SCENARIO` (default `incident-2012`), `SIM_POLICY`
//! (`tally`, `naive-2012` or `both`; default `tally`), `SIM_FLEET` as
//! `hosts,apps,dynos` to shrink it, `SIM_HOURS` to shorten it, `SIM_OUT` to
//! write the outputs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tally_sim::simulate::{Plan, SimulateOptions, tally_unsafe};
use tally_sim::{Policy, Progress, Report, SimError};

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let mut args =
        SimulateOptions::new(&env("SIM_SCENARIO").unwrap_or_else(|| "incident-2012".into()));
    args.policies = match env("SIM_POLICY").as_deref() {
        Some("both") => Policy::ALL.to_vec(),
        Some(name) => Policy::from_name(name).map(|p| vec![p]).unwrap_or_default(),
        None => vec![Policy::Tally],
    };
    args.fleet = env("SIM_FLEET").and_then(|f| {
        let v: Vec<u64> = f.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        match v.as_slice() {
            [h, a, d] => Some((u32::try_from(*h).ok()?, u32::try_from(*a).ok()?, *d)),
            _ => None,
        }
    });
    args.duration_h = env("SIM_HOURS").and_then(|h| h.parse().ok());
    let out_dir = env("SIM_OUT").map(PathBuf::from);
    match run(&args, out_dir) {
        Ok(reports) => {
            for r in &reports {
                let p = &r.perf;
                println!(
                    "{} {}: {} events in {:.1} s wall = {:.0} events/s; manager ticks {:.1} s ({} calls), reports {:.1} s ({} calls, {:.0} instances each), user {:.1} s; agents {:.1} s ({} steps); invariants {:.1} s",
                    r.scenario,
                    r.policy,
                    p.events,
                    p.wall_s,
                    p.events_per_s,
                    p.manager_tick_s,
                    p.manager_ticks,
                    p.manager_report_s,
                    p.manager_reports,
                    p.report_instances as f64 / p.manager_reports.max(1) as f64,
                    p.manager_user_s,
                    p.agent_s,
                    p.agent_steps,
                    p.invariants_s
                );
            }
            ExitCode::from(if tally_unsafe(&reports) { 2 } else { 0 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The runs, with a progress line every five seconds, and the outputs.
fn run(args: &SimulateOptions, out_dir: Option<PathBuf>) -> Result<Vec<Report>, SimError> {
    let plan = Plan::new(args)?;
    let name = &plan.scenario.name;
    let reports = plan.run(|_, policy| {
        let mut last: Option<Instant> = None;
        move |p: Progress| {
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                last = Some(Instant::now());
                eprintln!(
                    "{name} {policy}: {:5.1}% of {:.1} h, {} events",
                    100.0 * p.now_ms as f64 / p.end_ms.max(1) as f64,
                    p.end_ms as f64 / 3.6e6,
                    p.events
                );
            }
        }
    })?;
    if let Some(dir) = &out_dir {
        tally_sim::write_outputs(dir, &reports)?;
        println!("outputs written to {}", dir.display());
    }
    Ok(reports)
}
