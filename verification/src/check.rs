//! Running a check: stateright for the safety and reachability properties,
//! the graph check for L1, with progress lines and a summary table.

use crate::checked::CheckedModel;
use crate::liveness;
use crate::properties::{Kind, L1, PROPERTIES};
use crate::trace;
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tally_model::{Action, ModelConfig, ModelConfigError, TallyModel, World};

/// Search order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Depth-first, with symmetry reduction when asked: the exhaustive proof.
    Dfs,
    /// Breadth-first: shortest counterexamples.
    Bfs,
}

/// How to run a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Checker threads.
    pub threads: usize,
    /// Search order.
    pub search: Search,
    /// Apply host symmetry reduction (DFS only).
    pub symmetry: bool,
    /// Also run the L1 graph check.
    pub liveness: bool,
    /// Stop as soon as any of these properties has a discovery.
    pub stop_at: Option<BTreeSet<&'static str>>,
    /// Print progress lines on stderr.
    pub progress: bool,
    /// Largest graph the L1 check builds.
    pub liveness_state_limit: usize,
    /// Write counterexample traces here.
    pub trace_out: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: 1,
            search: Search::Bfs,
            symmetry: false,
            liveness: true,
            stop_at: None,
            progress: false,
            liveness_state_limit: 20_000_000,
            trace_out: None,
        }
    }
}

/// The verdict on one property.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// An `always` or L1 held over every reachable state.
    Holds,
    /// A counterexample was found, of this many steps.
    Counterexample {
        /// Actions in the counterexample.
        steps: usize,
    },
    /// A `sometimes` was reached.
    Reachable,
    /// A `sometimes` was not reached in this configuration.
    NotReached,
    /// Not decided: the search stopped early.
    Undecided,
}

/// One property's result.
#[derive(Clone, Debug)]
pub struct PropertyResult {
    /// Name.
    pub name: &'static str,
    /// Kind.
    pub kind: Kind,
    /// Verdict.
    pub verdict: Verdict,
    /// The counterexample or witness path.
    pub path: Option<Vec<(World, Option<Action>)>>,
}

/// The result of checking one configuration.
#[derive(Clone, Debug)]
pub struct ConfigReport {
    /// The configuration's name.
    pub name: String,
    /// Unique states (stateright).
    pub unique_states: usize,
    /// Total states generated (stateright).
    pub total_states: usize,
    /// Deepest path explored.
    pub max_depth: usize,
    /// Wall time of the stateright search.
    pub seconds: f64,
    /// States in the L1 graph, if checked.
    pub liveness_states: Option<usize>,
    /// Wall time of the L1 check.
    pub liveness_seconds: f64,
    /// Every property's result.
    pub results: Vec<PropertyResult>,
    /// Traces written.
    pub traces: Vec<PathBuf>,
}

impl ConfigReport {
    /// Whether every `always` and L1 holds (or was not decided).
    #[must_use]
    pub fn safe(&self) -> bool {
        !self
            .results
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Counterexample { .. }))
    }

    /// The result for `name`.
    #[must_use]
    pub fn result(&self, name: &str) -> Option<&PropertyResult> {
        self.results.iter().find(|r| r.name == name)
    }
}

/// An error running a check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ModelConfigError),
    /// A trace could not be written.
    #[error("cannot write trace {path}: {source}")]
    Trace {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration's script names a host.
    #[error(
        "hosts are not interchangeable in this configuration (its script names a host): drop --symmetry"
    )]
    SymmetryBroken,
    /// Symmetry asked with BFS.
    #[error(
        "symmetry reduction is only applied by the DFS search (stateright ignores it in BFS): drop --bfs or --symmetry"
    )]
    SymmetryNeedsDfs,
}

/// Checks one configuration.
pub fn check_config(cfg: &ModelConfig, opts: &CheckOptions) -> Result<ConfigReport, CheckError> {
    if opts.symmetry && opts.search == Search::Bfs {
        return Err(CheckError::SymmetryNeedsDfs);
    }
    let inner = TallyModel::new(cfg.clone())?;
    let model = CheckedModel::new(inner.clone());
    let mut builder = model.checker().threads(opts.threads.max(1));
    if let Some(stop) = &opts.stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(stop.clone()));
    }
    if opts.symmetry {
        if !crate::symmetry::usable(cfg) {
            return Err(CheckError::SymmetryBroken);
        }
        builder = builder.symmetry_fn(crate::symmetry::representative);
    }
    let started = Instant::now();
    let mut report = match opts.search {
        Search::Dfs => collect(cfg, builder.spawn_dfs(), opts, started),
        Search::Bfs => collect(cfg, builder.spawn_bfs(), opts, started),
    };
    if opts.liveness {
        let t = Instant::now();
        let name = cfg.name.clone();
        let progress = opts.progress;
        let outcome = liveness::check(&inner, opts.liveness_state_limit, opts.symmetry, |n| {
            if progress {
                eprintln!("  [{name}] L1 graph: {n} states");
            }
        });
        report.liveness_seconds = t.elapsed().as_secs_f64();
        report.liveness_states = Some(outcome.states);
        let verdict = if let Some(path) = &outcome.counterexample {
            Verdict::Counterexample {
                steps: path.len().saturating_sub(1),
            }
        } else if outcome.truncated || outcome.cyclic || outcome.calm_states == 0 {
            // No calm state means L1 would hold vacuously: not a proof.
            Verdict::Undecided
        } else {
            Verdict::Holds
        };
        report.results.push(PropertyResult {
            name: L1,
            kind: Kind::Liveness,
            verdict,
            path: outcome.counterexample,
        });
    }
    if let Some(dir) = &opts.trace_out {
        for r in &report.results {
            if let (Verdict::Counterexample { .. }, Some(path)) = (&r.verdict, &r.path) {
                let file = trace::write(dir, cfg, r.name, path)
                    .map_err(|(path, source)| CheckError::Trace { path, source })?;
                report.traces.push(file);
            }
        }
    }
    Ok(report)
}

fn collect<C: Checker<CheckedModel>>(
    cfg: &ModelConfig,
    checker: C,
    opts: &CheckOptions,
    started: Instant,
) -> ConfigReport {
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        if opts.progress && last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let unique = checker.unique_state_count();
            eprintln!(
                "  [{}] states {} unique {} depth {} ({:.0} states/s)",
                cfg.name,
                checker.state_count(),
                unique,
                checker.max_depth(),
                unique as f64 / secs.max(1e-9)
            );
        }
    }
    let checker = checker.join();
    let seconds = started.elapsed().as_secs_f64();
    let discoveries = checker.discoveries();
    let decided = opts.stop_at.is_none();
    let results = PROPERTIES
        .iter()
        .map(|p| {
            let found = discoveries.get(p.name).map(|path| path.clone().into_vec());
            let verdict = match (p.kind, &found) {
                (Kind::Sometimes, Some(_)) => Verdict::Reachable,
                (Kind::Sometimes, None) if decided => Verdict::NotReached,
                (_, Some(path)) => Verdict::Counterexample {
                    steps: path.len().saturating_sub(1),
                },
                (_, None) if decided => Verdict::Holds,
                (_, None) => Verdict::Undecided,
            };
            PropertyResult {
                name: p.name,
                kind: p.kind,
                verdict,
                path: found,
            }
        })
        .collect();
    ConfigReport {
        name: cfg.name.clone(),
        unique_states: checker.unique_state_count(),
        total_states: checker.state_count(),
        max_depth: checker.max_depth(),
        seconds,
        liveness_states: None,
        liveness_seconds: 0.0,
        results,
        traces: Vec::new(),
    }
}

/// Prints the summary table of a preset's reports: one row per property,
/// one column per configuration, and a verdict across them.
///
/// With `require_reachable`, a `sometimes` reached in no configuration fails
/// the check (the preset claims full coverage); otherwise it is reported only.
pub fn print_summary(
    out: &mut impl Write,
    reports: &[ConfigReport],
    require_reachable: bool,
) -> std::io::Result<bool> {
    writeln!(out)?;
    for r in reports {
        writeln!(
            out,
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
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<40} {:<10} result", "property", "kind")?;
    writeln!(out, "{}", "-".repeat(78))?;
    let mut names: Vec<(&'static str, Kind)> =
        PROPERTIES.iter().map(|p| (p.name, p.kind)).collect();
    names.push((L1, Kind::Liveness));
    let mut ok = true;
    for (name, kind) in names {
        let verdicts: Vec<(&str, &Verdict)> = reports
            .iter()
            .filter_map(|r| r.result(name).map(|x| (r.name.as_str(), &x.verdict)))
            .collect();
        if verdicts.is_empty() {
            continue;
        }
        let broken: Vec<String> = verdicts
            .iter()
            .filter_map(|(c, v)| match v {
                Verdict::Counterexample { steps } => Some(format!("{c} ({steps} steps)")),
                _ => None,
            })
            .collect();
        let text = match kind {
            Kind::Sometimes => {
                if verdicts.iter().any(|(_, v)| **v == Verdict::Reachable) {
                    "reachable".to_string()
                } else if verdicts.iter().all(|(_, v)| **v == Verdict::NotReached) {
                    if require_reachable {
                        ok = false;
                        "NOT REACHED (vacuous)".to_string()
                    } else {
                        "not reached in this configuration".to_string()
                    }
                } else {
                    "undecided".to_string()
                }
            }
            Kind::Always | Kind::Liveness => {
                if !broken.is_empty() {
                    ok = false;
                    format!("COUNTEREXAMPLE FOUND in {}", broken.join(", "))
                } else if verdicts.iter().all(|(_, v)| **v == Verdict::Holds) {
                    "holds".to_string()
                } else {
                    ok = false;
                    "undecided".to_string()
                }
            }
        };
        let kind = match kind {
            Kind::Always => "always",
            Kind::Sometimes => "sometimes",
            Kind::Liveness => "liveness",
        };
        writeln!(out, "{name:<40} {kind:<10} {text}")?;
    }
    Ok(ok)
}
