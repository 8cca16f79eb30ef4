//! The model checker's verbs: `check`, `explore`, `mutations` and
//! `show-preset`, with the summary table and the progress lines they print.

use crate::error::CliError;
use clap::ValueEnum;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tally_core::Mutation;
use tally_explorer::{ExploreOptions, Explorer};
use tally_model::ModelConfig;
use tally_model::config::{Preset, preset};
use tally_verification::check::{
    CheckOptions, CheckProgress, ConfigReport, Outcome, Progress, Search, Summary, check_config,
    summarize,
};
use tally_verification::properties::Kind;

/// The named presets.
#[derive(Clone, Copy, ValueEnum)]
pub enum PresetName {
    /// Seconds: one singleton, two hosts, a few faults.
    Smoke,
    /// Three hosts, clock + web=2, every fault class on across its configurations.
    Ci,
    /// Larger fault budgets and horizon, for a nightly run.
    Deep,
}

impl PresetName {
    fn name(self) -> &'static str {
        match self {
            PresetName::Smoke => "smoke",
            PresetName::Ci => "ci",
            PresetName::Deep => "deep",
        }
    }
}

/// What to check or explore: a preset, a file, mutations.
#[derive(clap::Args)]
pub struct Target {
    /// A named preset (a set of configurations, each checked exhaustively).
    /// Default: `ci`, or with one --mutation and no preset, that mutation's
    /// small hunting configuration.
    #[arg(long, value_enum, conflicts_with = "config")]
    preset: Option<PresetName>,
    /// A configuration file: TOML, or JSON holding one configuration or an
    /// array of them as `tally show-preset` prints (see examples/model.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Switch on a mutation that re-creates a 2012 bug or an unsafe shortcut
    /// (repeatable; `tally mutations` lists them).
    #[arg(long = "mutation", value_name = "NAME")]
    mutations: Vec<String>,
}

/// `tally check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    target: Target,
    /// Checker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Breadth-first search without symmetry: slower, but every
    /// counterexample found is a shortest one. The default is the
    /// exhaustive proof: depth-first with host symmetry reduction.
    #[arg(long)]
    bfs: bool,
    /// Skip the L1 convergence graph check.
    #[arg(long)]
    no_liveness: bool,
    /// Write each counterexample as a JSON trace into this directory.
    #[arg(long, value_name = "DIR")]
    trace_out: Option<PathBuf>,
}

/// `tally explore`.
#[derive(clap::Args)]
pub struct ExploreArgs {
    #[command(flatten)]
    target: Target,
    /// Which configuration of the preset (0-based).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// A JSON trace written by `tally check --trace-out`, opened first
    /// (repeatable). Without --preset, --config or --mutation, the
    /// configuration served is the trace's.
    #[arg(long = "trace", value_name = "FILE")]
    traces: Vec<PathBuf>,
    /// A directory of traces (`tally check --trace-out DIR`), listed and
    /// read as they are asked for.
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
}

/// `tally mutations`.
#[derive(clap::Args)]
pub struct MutationsArgs {}

/// `tally show-preset`.
#[derive(clap::Args)]
pub struct ShowPresetArgs {
    /// The preset.
    #[arg(value_enum)]
    preset: PresetName,
}

/// The configurations `target` names, its mutations switched on.
fn load(target: &Target) -> Result<Preset, CliError> {
    let mut p = match &target.config {
        Some(path) => {
            let configs = ModelConfig::load_many(path)?;
            Preset {
                name: path.display().to_string(),
                configs,
                complete: false,
            }
        }
        None => match (target.preset, target.mutations.as_slice()) {
            (None, [one]) => {
                let m = Mutation::from_name(one)?;
                let c = tally_verification::mutations::hunt_config(m);
                return Ok(Preset {
                    name: c.name.clone(),
                    configs: vec![c],
                    complete: false,
                });
            }
            (p, _) => preset(p.unwrap_or(PresetName::Ci).name())?,
        },
    };
    for name in &target.mutations {
        let m = Mutation::from_name(name)?;
        p.name = format!("{}+{}", p.name, m.name());
        p.configs = p
            .configs
            .into_iter()
            .map(|c| {
                let mut c = c.with_mutation(m);
                c.name = format!("{}+{}", c.name, m.name());
                c
            })
            .collect();
    }
    Ok(p)
}

/// `tally check`: every configuration of the target, the summary table,
/// exit 1 when a property fails.
pub fn check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let preset = load(&args.target)?;
    // A mutation run hunts a counterexample: BFS finds a shortest one.
    let bfs = args.bfs || !args.target.mutations.is_empty();
    let symmetry = !bfs
        && preset
            .configs
            .iter()
            .all(tally_verification::symmetry::usable);
    let opts = CheckOptions {
        threads: usize::from(args.threads),
        search: if bfs { Search::Bfs } else { Search::Dfs },
        symmetry,
        liveness: !args.no_liveness,
        stop_at: None,
        progress: Some(Progress(Arc::new(progress_line))),
        trace_out: args.trace_out.clone(),
        ..CheckOptions::default()
    };
    eprintln!(
        "tally check: preset {} ({} configuration(s)), {} thread(s), {}{}",
        preset.name,
        preset.configs.len(),
        args.threads,
        if bfs { "BFS" } else { "DFS" },
        if symmetry { " with symmetry" } else { "" }
    );
    let mut reports = Vec::new();
    for cfg in &preset.configs {
        eprintln!("checking {} ...", cfg.name);
        reports.push(check_config(cfg, &opts)?);
    }
    let summary = summarize(&reports, preset.complete);
    std::io::stdout().write_all(table(&reports, &summary).as_bytes())?;
    for r in &reports {
        for t in &r.traces {
            println!("trace written: {}", t.display());
        }
    }
    println!();
    if summary.ok {
        println!("all properties hold; every sometimes is reachable");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("CHECK FAILED: see the table above");
        Ok(ExitCode::from(1))
    }
}

/// A progress line on stderr.
fn progress_line(config: &str, progress: CheckProgress) {
    match progress {
        CheckProgress::Search {
            states,
            unique,
            depth,
            seconds,
        } => eprintln!(
            "  [{config}] states {states} unique {unique} depth {depth} ({:.0} states/s)",
            unique as f64 / seconds.max(1e-9)
        ),
        CheckProgress::Liveness { states } => {
            eprintln!("  [{config}] L1 graph: {states} states");
        }
    }
}

/// The summary table: one line per configuration, then one row per
/// property with its verdict across them.
fn table(reports: &[ConfigReport], summary: &Summary) -> String {
    let mut s = String::from("\n");
    for r in reports {
        let _ = writeln!(
            s,
            "{:<28} {:>10} unique {:>11} total  depth {:>3}  {:>7.2}s  {:>9.0} states/s{}",
            r.name,
            r.unique_states,
            r.total_states,
            r.max_depth,
            r.seconds,
            r.unique_states as f64 / r.seconds.max(1e-9),
            r.liveness_states
                .map(|n| format!("  | L1 graph {n} states {:.2}s", r.liveness_seconds))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{:<40} {:<10} result", "property", "kind");
    let _ = writeln!(s, "{}", "-".repeat(78));
    for row in &summary.rows {
        let text = match &row.outcome {
            Outcome::Holds => "holds".to_string(),
            Outcome::Counterexamples(found) => {
                let found: Vec<String> = found
                    .iter()
                    .map(|(c, steps)| format!("{c} ({steps} steps)"))
                    .collect();
                format!("COUNTEREXAMPLE FOUND in {}", found.join(", "))
            }
            Outcome::Reachable => "reachable".to_string(),
            Outcome::NotReached { required: true } => "NOT REACHED (vacuous)".to_string(),
            Outcome::NotReached { required: false } => {
                "not reached in this configuration".to_string()
            }
            Outcome::Undecided => "undecided".to_string(),
        };
        let kind = match row.kind {
            Kind::Always => "always",
            Kind::Sometimes => "sometimes",
            Kind::Liveness => "liveness",
        };
        let _ = writeln!(s, "{:<40} {kind:<10} {text}", row.name);
    }
    s
}

/// `tally explore`: serves until the process ends.
pub fn explore(args: &ExploreArgs) -> Result<ExitCode, CliError> {
    let target = &args.target;
    let chosen = target.preset.is_some()
        || target.config.is_some()
        || !target.mutations.is_empty()
        || args.traces.is_empty();
    let config = if chosen {
        let preset = load(target)?;
        let cfg = preset
            .configs
            .get(args.index)
            .cloned()
            .ok_or_else(|| CliError::Index {
                index: args.index,
                preset: preset.name.clone(),
                configs: preset.configs.len(),
            })?;
        Some(cfg)
    } else {
        None
    };
    let opts = ExploreOptions {
        config,
        traces: args.traces.clone(),
        trace_dir: args.trace_dir.clone(),
    };
    let explorer = Explorer::bind(("127.0.0.1", args.port), opts)?;
    eprintln!(
        "Tally Explorer on {} (Ctrl-C to stop)\nstateright's Explorer: {}",
        explorer.start_url(),
        explorer.explorer_url()
    );
    explorer.run();
    Ok(ExitCode::SUCCESS)
}

/// `tally mutations`: each mutation and the properties it must break.
pub fn mutations(_: &MutationsArgs) -> Result<ExitCode, CliError> {
    for m in Mutation::ALL {
        let expected: BTreeSet<&str> = tally_verification::mutations::expected(m)
            .iter()
            .copied()
            .collect();
        println!(
            "{:<30} breaks {}",
            m.name(),
            expected.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `tally show-preset`: the preset's configurations as JSON.
pub fn show_preset(args: &ShowPresetArgs) -> Result<ExitCode, CliError> {
    let p = preset(args.preset.name())?;
    let json = serde_json::to_string_pretty(&p.configs)?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
