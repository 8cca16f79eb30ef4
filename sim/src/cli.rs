//! The `tally simulate SCENARIO` verb, without clap: the `tally` binary
//! parses its arguments into [`SimulateArgs`] and calls [`simulate`], which
//! prints a progress line on stderr and a summary table on stdout.

use crate::error::SimError;
use crate::policy::Policy;
use crate::report::Report;
use crate::scenario::Scenario;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the progress line is printed when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Arguments of `tally simulate`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateArgs {
    /// A built-in scenario name (`incident-2012`) or a path to a TOML file.
    pub scenario: String,
    /// Policies to compare; empty means all of them.
    pub policies: Vec<Policy>,
    /// Seed; the scenario's when `None`.
    pub seed: Option<u64>,
    /// Directory for the outputs; none written when `None`.
    pub out_dir: Option<PathBuf>,
    /// Override the fleet: `(hosts, apps, dynos)`.
    pub fleet: Option<(u32, u32, u64)>,
    /// Override the simulated length, hours.
    pub duration_h: Option<f64>,
    /// No progress line.
    pub quiet: bool,
}

impl SimulateArgs {
    /// Arguments for a scenario with every default.
    #[must_use]
    pub fn new(scenario: &str) -> SimulateArgs {
        SimulateArgs {
            scenario: scenario.to_owned(),
            policies: Vec::new(),
            seed: None,
            out_dir: None,
            fleet: None,
            duration_h: None,
            quiet: false,
        }
    }

    /// Checks the arguments that would make an empty or endless run.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |message: String| Err(SimError::InvalidArgument { message });
        if let Some((hosts, apps, dynos)) = self.fleet {
            if hosts == 0 {
                return bad("hosts must be at least 1".into());
            }
            if apps == 0 {
                return bad("apps must be at least 1".into());
            }
            if dynos == 0 {
                return bad("dynos must be at least 1".into());
            }
        }
        if let Some(h) = self.duration_h {
            if !h.is_finite() || h <= 0.0 {
                return bad(format!(
                    "hours must be a positive finite number of hours, not {h}"
                ));
            }
        }
        Ok(())
    }
}

/// What `simulate` produced.
#[derive(Clone, Debug)]
pub struct SimulateOutcome {
    /// 0 when every `tally` run kept its safety properties, 2 otherwise.
    pub exit_code: u8,
    /// The runs, one per policy.
    pub reports: Vec<Report>,
}

/// Runs the scenario under each policy, prints the table, writes outputs.
pub fn simulate(args: SimulateArgs) -> Result<SimulateOutcome, SimError> {
    args.validate()?;
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some((hosts, apps, dynos)) = args.fleet {
        scenario = scenario.with_fleet(hosts, apps, dynos);
    }
    if let Some(h) = args.duration_h {
        scenario.duration_h = h;
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    let policies = if args.policies.is_empty() {
        Policy::ALL.to_vec()
    } else {
        args.policies.clone()
    };
    let terminal = std::io::stderr().is_terminal();
    // One thread per policy when there are cores for them: the runs are
    // independent and each is deterministic, so this changes only the wall
    // time. The latest progress of every run shares one status line.
    let status = std::sync::Mutex::new(vec![String::new(); policies.len()]);
    let parallel =
        policies.len() > 1 && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    let run_one = |slot: usize, policy: Policy| {
        let mut last_plain: Option<Instant> = None;
        let mut progress = |p: crate::Progress| {
            if args.quiet {
                return;
            }
            let line = format!(
                "{} {policy}: {:5.1}% of {:.1} h, {} events, ledger {}",
                scenario.name,
                100.0 * p.now_ms as f64 / p.end_ms.max(1) as f64,
                p.end_ms as f64 / 3.6e6,
                p.events,
                p.ledger
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
        };
        crate::run(&scenario, policy, seed, &mut progress)
    };
    let results: Vec<Result<Report, SimError>> = if parallel {
        std::thread::scope(|scope| {
            let handles: Vec<_> = policies
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let run_one = &run_one;
                    scope.spawn(move || run_one(i, *p))
                })
                .collect();
            handles
                .into_iter()
                // A panic in a run is re-raised here, as if it ran inline.
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    } else {
        policies
            .iter()
            .enumerate()
            .map(|(i, p)| run_one(i, *p))
            .collect()
    };
    if !args.quiet && terminal {
        eprintln!();
    }
    let reports = results
        .into_iter()
        .collect::<Result<Vec<Report>, SimError>>()?;
    print!("{}", table(&reports));
    if let Some(dir) = &args.out_dir {
        crate::write_outputs(dir, &reports)?;
        println!("outputs written to {}", dir.display());
    }
    let unsafe_tally = reports
        .iter()
        .any(|r| r.policy == Policy::Tally && !safety_kept(r));
    Ok(SimulateOutcome {
        exit_code: if unsafe_tally { 2 } else { 0 },
        reports,
    })
}

/// Whether a run kept every safety property the simulator observes.
#[must_use]
pub fn safety_kept(r: &Report) -> bool {
    let s = &r.summary;
    s.launch_bound_exceeded_steps == 0
        && s.phantoms_total == 0
        && s.singleton_overlaps == 0
        && s.invariant_violations == 0
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
}

/// The summary table, one column per run.
#[must_use]
pub fn table(reports: &[Report]) -> String {
    type Row = (&'static str, fn(&Report) -> String);
    let rows: [Row; 22] = [
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
        ("drift alert delay s", |r| opt(r.summary.alert_delay_s)),
        ("alert lead before 1st timeout s", |r| {
            opt(r.summary.alert_lead_s)
        }),
        ("breaker trips", |r| r.summary.breaker_trips.to_string()),
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
