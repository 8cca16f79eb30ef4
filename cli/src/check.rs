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
use tally_verification::hunt::{self, HuntOptions};
use tally_verification::properties::{Kind, L1};

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
    /// (repeatable; `tally mutations` lists them). With `check`, a hunt: see
    /// `tally check --help`.
    #[arg(long = "mutation", value_name = "NAME")]
    mutations: Vec<String>,
}

/// `tally check`.
///
/// With --mutation it is a hunt: a breadth-first search on one thread that
/// checks every state as it is generated and stops at the first that breaks
/// a property the mutation is expected to break (`tally mutations`), so its
/// counterexample is a shortest one. It prints the step at which the
/// property breaks (the trace's `broken_at`), writes that trace with
/// --trace-out (it ends there), and exits 1. Without --preset or --config
/// the hunt runs in the mutation's small hunting configuration; with them,
/// in each configuration in turn, stopping at the first that refutes it
/// (shortest within that configuration). A mutation that breaks only L1
/// needs the whole state space and the L1 check over its graph (still
/// BFS, one thread). --threads and --bfs do not apply to a hunt.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    target: Target,
    /// Checker threads [default: 2]. A hunt (--mutation) always runs on one
    /// thread: that is what makes its counterexample a shortest one.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: Option<u16>,
    /// Breadth-first search without symmetry: slower, but every
    /// counterexample found is a shortest one. The default is the
    /// exhaustive proof: depth-first with host symmetry reduction.
    #[arg(long)]
    bfs: bool,
    /// Skip L1 (convergence within the recovery bound T once faults stop),
    /// and with it the rule that the horizon reach calm_at + T.
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
pub struct MutationsArgs {
    /// Hunt every mutation in this preset's configurations and print, for
    /// each, whether the preset refutes it, where and in how many steps. The
    /// search is the proof's (depth-first, host symmetry, --threads
    /// threads), stopped at the first break of an expected property: it
    /// answers "does the preset catch it", and its step counts are not
    /// shortest (see --shortest). A mutation the preset does not refute
    /// costs a full proof of every configuration.
    #[arg(long, value_enum, value_name = "PRESET")]
    against: Option<PresetName>,
    /// With --against: hunt as `tally check --mutation M --preset P` does
    /// instead (breadth-first, one thread per hunt: a shortest
    /// counterexample per configuration, at about six times the states and
    /// memory).
    #[arg(long, requires = "against")]
    shortest: bool,
    /// With --against (not --shortest): threads of each hunt.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64), requires = "against")]
    threads: u16,
    /// With --against --shortest: give up on a configuration after this
    /// many unique states without a counterexample (safety hunts only; an
    /// L1 hunt always searches everything). The row then says "not within".
    #[arg(long, value_name = "N", requires = "shortest")]
    max_states: Option<usize>,
    /// With --against: hunts run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64), requires = "against")]
    jobs: u16,
    /// With --against: only these mutations (repeatable; default all).
    #[arg(long = "only", value_name = "NAME", requires = "against")]
    only: Vec<String>,
}

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
    if !args.target.mutations.is_empty() {
        return hunt(args);
    }
    let threads = args.threads.unwrap_or(2);
    let preset = load(&args.target)?;
    let bfs = args.bfs;
    let symmetry = !bfs
        && preset
            .configs
            .iter()
            .all(tally_verification::symmetry::usable);
    let opts = CheckOptions {
        threads: usize::from(threads),
        search: if bfs { Search::Bfs } else { Search::Dfs },
        symmetry,
        liveness: !args.no_liveness,
        stop_at: None,
        progress: Some(Progress(Arc::new(progress_line))),
        trace_out: args.trace_out.clone(),
    };
    eprintln!(
        "tally check: preset {} ({} configuration(s)), {} thread(s), {}{}",
        preset.name,
        preset.configs.len(),
        threads,
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

/// `tally check --mutation ...`: a hunt in each configuration of the
/// target in turn, until one refutes the mutations (see [`CheckArgs`]).
fn hunt(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let mutations = args
        .target
        .mutations
        .iter()
        .map(|m| Mutation::from_name(m))
        .collect::<Result<Vec<_>, _>>()?;
    let preset = load(&args.target)?;
    let expected = hunt::hunted(&mutations);
    let liveness_only = expected.iter().all(|p| *p == L1);
    if liveness_only && args.no_liveness {
        return Err(CliError::Hunt(format!(
            "--no-liveness: {} breaks only {L1}, which a hunt finds with the L1 check",
            args.target.mutations.join(", ")
        )));
    }
    if args.threads.is_some_and(|t| t != 1) {
        eprintln!(
            "tally check: --threads ignored: a hunt runs on one thread, so that its counterexample is a shortest one"
        );
    }
    eprintln!(
        "tally check: hunting {} in {} ({} configuration(s)), BFS, 1 thread, {}",
        args.target.mutations.join(" + "),
        preset.name,
        preset.configs.len(),
        if liveness_only {
            format!("whole state space, then the {L1} check")
        } else {
            format!(
                "stops at the first state that breaks {}",
                expected
                    .iter()
                    .filter(|p| **p != L1)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        }
    );
    let opts = HuntOptions {
        progress: Some(Progress(Arc::new(progress_line))),
        max_states: None,
        proof: false,
        threads: 1,
    };
    println!();
    let mut found = None;
    for cfg in &preset.configs {
        eprintln!("hunting in {} ...", cfg.name);
        let h = hunt::hunt_all(&mutations, cfg, &opts)?;
        println!(
            "{:<28} {:>10} unique {:>11} total  depth {:>3}  {:>7.2}s  {}",
            h.config.name,
            h.unique_states,
            h.total_states,
            h.max_depth,
            h.seconds,
            match &h.refutation {
                Some(r) => format!("{} broken", r.property),
                None => "not refuted".to_string(),
            }
        );
        if h.refutation.is_some() {
            found = Some(h);
            break;
        }
    }
    println!();
    let name = args.target.mutations.join(" + ");
    let Some(h) = found else {
        println!(
            "NOT REFUTED: {name}: no state breaks {} in any configuration",
            expected.join(" or ")
        );
        return Ok(ExitCode::SUCCESS);
    };
    let Some(r) = &h.refutation else {
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "REFUTED: {name}: {} broken in {} steps in {} (shortest in that configuration)",
        r.property, r.steps, h.config.name
    );
    if let Some(dir) = &args.trace_out {
        if let Some(file) = h.write_trace(dir)? {
            println!("trace written: {}", file.display());
        }
    }
    Ok(ExitCode::from(1))
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
    if reports.iter().any(|r| r.recovery.is_some()) {
        let _ = writeln!(
            s,
            "\nrecovery after the faults stop (ticks): longest seen / the bound T(cfg) that L1 proves"
        );
        for r in reports {
            if let Some(rec) = r.recovery {
                let seen = rec
                    .longest_seen
                    .map_or_else(|| "0".to_string(), |t| t.to_string());
                let _ = writeln!(s, "  {:<28} {seen:>3} / {}", r.name, rec.bound);
            }
        }
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
    // With traces alone (files or a directory), each is served with its own
    // configuration: none is loaded (the default preset would head the
    // trace list with an unrelated `ci`).
    let chosen = target.preset.is_some()
        || target.config.is_some()
        || !target.mutations.is_empty()
        || (args.traces.is_empty() && args.trace_dir.is_none());
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

/// `tally mutations`: each mutation and the properties it must break; with
/// `--against`, whether a preset refutes each.
pub fn mutations(args: &MutationsArgs) -> Result<ExitCode, CliError> {
    if let Some(p) = args.against {
        return against(args, p);
    }
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

/// One row of `tally mutations --against`.
struct AgainstRow {
    mutation: Mutation,
    /// Per configuration hunted: its name, and the hunt.
    hunts: Vec<hunt::Hunt>,
    seconds: f64,
}

/// `tally mutations --against PRESET`: each mutation hunted in the preset's
/// configurations ([`hunt::hunt_preset`]), then the table.
fn against(args: &MutationsArgs, name: PresetName) -> Result<ExitCode, CliError> {
    let p = preset(name.name())?;
    let chosen: Vec<Mutation> = if args.only.is_empty() {
        Mutation::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|m| Mutation::from_name(m))
            .collect::<Result<_, _>>()?
    };
    let jobs = usize::from(args.jobs).min(chosen.len()).max(1);
    eprintln!(
        "tally mutations --against {}: {} mutation(s) x {} configuration(s), {}, {jobs} at once{}",
        p.name,
        chosen.len(),
        p.configs.len(),
        if args.shortest {
            "BFS, 1 thread per hunt (shortest)".to_string()
        } else {
            format!(
                "DFS with symmetry, {} thread(s) per hunt (not shortest)",
                args.threads
            )
        },
        args.max_states
            .map(|n| format!(", at most {n} unique states per configuration"))
            .unwrap_or_default()
    );
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let rows: std::sync::Mutex<Vec<Option<Result<AgainstRow, CliError>>>> =
        std::sync::Mutex::new((0..chosen.len()).map(|_| None).collect());
    // Progress every 30 s per hunt: a full search takes minutes.
    let progress = |config: &str, progress: CheckProgress| {
        static LAST: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());
        if let CheckProgress::Search { seconds, .. } = progress {
            let Ok(mut last) = LAST.lock() else { return };
            match last.iter_mut().find(|(c, _)| c == config) {
                Some((_, t)) if seconds - *t < 30.0 => return,
                Some((_, t)) => *t = seconds,
                None => last.push((config.to_string(), seconds)),
            }
        }
        progress_line(config, progress);
    };
    let opts = HuntOptions {
        progress: Some(Progress(Arc::new(progress))),
        max_states: args.max_states,
        proof: !args.shortest,
        threads: usize::from(args.threads),
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&m) = chosen.get(i) else { break };
                    let configs: Vec<ModelConfig> = p
                        .configs
                        .iter()
                        .map(|c| {
                            let mut c = c.clone();
                            c.name = format!("{}+{}", c.name, m.name());
                            c
                        })
                        .collect();
                    let t = std::time::Instant::now();
                    let result = hunt::hunt_preset(m, &configs, &opts, |h| {
                        eprintln!("  {} in {}: {}", m.name(), h.config.name, cell(h));
                    })
                    .map(|hunts| AgainstRow {
                        mutation: m,
                        hunts,
                        seconds: t.elapsed().as_secs_f64(),
                    })
                    .map_err(CliError::from);
                    if let Some(slot) = rows.lock().ok().as_mut().and_then(|r| r.get_mut(i)) {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    let rows = rows.into_inner().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<28} {:<32} {:<34} {:>5} {:>8} {:>11}",
        "mutation", "expected", "refuted by", "steps", "seconds", "states"
    );
    let _ = writeln!(out, "{}", "-".repeat(123));
    let mut gaps = Vec::new();
    for row in rows.into_iter().flatten() {
        let row = row?;
        let states: usize = row.hunts.iter().map(|h| h.unique_states).sum();
        let last = row.hunts.last();
        let (by, steps) = match last.and_then(|h| h.refutation.as_ref().map(|r| (h, r))) {
            Some((h, r)) => (
                format!(
                    "{} ({})",
                    h.config
                        .name
                        .trim_end_matches(&format!("+{}", row.mutation.name())),
                    short(r.property)
                ),
                r.steps.to_string(),
            ),
            None => {
                gaps.push(row.mutation);
                let all = row.hunts.iter().all(|h| h.complete);
                (
                    if all {
                        "NOT REFUTED".to_string()
                    } else {
                        "NOT REFUTED within the limit".to_string()
                    },
                    "-".to_string(),
                )
            }
        };
        let _ = writeln!(
            out,
            "{:<28} {:<32} {:<34} {:>5} {:>8.1} {:>11}",
            row.mutation.name(),
            tally_verification::mutations::expected(row.mutation)
                .iter()
                .map(|p| short(p))
                .collect::<Vec<_>>()
                .join(", "),
            by,
            steps,
            row.seconds,
            states
        );
    }
    let _ = writeln!(
        out,
        "\n{} of {} mutations refuted by {}; {:.0} s in all",
        chosen.len() - gaps.len(),
        chosen.len(),
        p.name,
        started.elapsed().as_secs_f64()
    );
    if !gaps.is_empty() {
        let _ = writeln!(
            out,
            "not refuted (gaps in the preset): {}",
            gaps.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        );
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// One hunt's outcome, for a progress line.
fn cell(h: &hunt::Hunt) -> String {
    match &h.refutation {
        Some(r) => format!(
            "{} broken in {} steps ({} states, {:.1}s)",
            r.property, r.steps, h.unique_states, h.seconds
        ),
        None if h.complete => format!(
            "not refuted ({} states, {:.1}s)",
            h.unique_states, h.seconds
        ),
        None => format!(
            "not refuted within {} states ({:.1}s)",
            h.unique_states, h.seconds
        ),
    }
}

/// `S1 singleton` as `S1`; other names whole.
fn short(property: &str) -> &str {
    match property.split_once(' ') {
        Some((id, _)) if id.len() == 2 && id.starts_with(['S', 'L']) => id,
        _ => property,
    }
}
