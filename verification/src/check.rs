//! Running a check: stateright for the safety and reachability properties,
//! the graph check for L1, with progress reports ([`CheckProgress`]), and the verdict across a
//! preset's configurations ([`summarize`]).

use crate::graph::GraphLog;
use crate::liveness;
use crate::properties::{Kind, L1, PROPERTIES, PropertyDef};
use crate::search::SearchModel;
use crate::trace;
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
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

/// How far a check has got: what a progress line shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CheckProgress {
    /// The stateright search, every two seconds.
    Search {
        /// States generated.
        states: usize,
        /// Unique states.
        unique: usize,
        /// Deepest path explored.
        depth: usize,
        /// Seconds since the search started.
        seconds: f64,
    },
    /// L1 is being decided over the graph the search recorded.
    Liveness {
        /// States in the graph.
        states: usize,
    },
}

/// A progress callback: the configuration's name and how far its check has
/// got, called from the checking thread.
pub type ProgressFn = dyn Fn(&str, CheckProgress) + Send + Sync;

/// Told how far a check has got ([`ProgressFn`]).
#[derive(Clone)]
pub struct Progress(pub Arc<ProgressFn>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
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
    /// Also decide L1, over the graph the search records as it goes.
    pub liveness: bool,
    /// Stop as soon as any of these properties has a discovery.
    pub stop_at: Option<BTreeSet<&'static str>>,
    /// Told how far the check has got; nothing when `None`.
    pub progress: Option<Progress>,
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
            progress: None,
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
    /// L1's recovery bound and the longest recovery seen, when L1 was checked.
    pub recovery: Option<Recovery>,
    /// Every property's result.
    pub results: Vec<PropertyResult>,
    /// Traces written.
    pub traces: Vec<PathBuf>,
}

/// How long recoveries took, against the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// `T(cfg)`.
    pub bound: u64,
    /// The most ticks after `calm_at` at which some reachable calm state
    /// was still unconverged (so some behaviour took that long, and none
    /// longer); `None` when every calm state was converged.
    pub longest_seen: Option<u64>,
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
    /// L1 asked over a horizon that ends before the recovery bound: the
    /// horizon would cut recoveries short and call that a liveness bug.
    #[error(
        "{name}: the horizon ({horizon}) ends before calm_at ({calm_at}) + T ({bound}), the recovery bound the core derives from this configuration's timing: set horizon >= {deadline}, or pass --no-liveness to check safety only"
    )]
    HorizonBeforeRecovery {
        /// The configuration.
        name: String,
        /// Its horizon.
        horizon: u64,
        /// When its faults stop.
        calm_at: u64,
        /// `T(cfg)`.
        bound: u64,
        /// `calm_at + T`.
        deadline: u64,
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
    if opts.liveness && cfg.horizon < cfg.recovery_deadline() {
        return Err(CheckError::HorizonBeforeRecovery {
            name: cfg.name.clone(),
            horizon: cfg.horizon,
            calm_at: cfg.calm_at,
            bound: cfg.core.recovery_bound_ticks(),
            deadline: cfg.recovery_deadline(),
        });
    }
    if opts.symmetry && !crate::symmetry::usable(cfg) {
        return Err(CheckError::SymmetryBroken);
    }
    // The depth-first search decides L1 as it goes (see `engine`); the
    // breadth-first one records the graph for `liveness::decide`. Symmetry
    // is applied by the model (each state it returns is its
    // representative), so that graph is the quotient graph.
    let graph = (opts.liveness && opts.search == Search::Bfs).then(|| Arc::new(GraphLog::new()));
    let model = SearchModel::new(inner, opts.symmetry, graph.clone());
    let started = Instant::now();
    let report = match opts.search {
        Search::Dfs => explore(cfg, &model, opts, started),
        Search::Bfs => {
            let mut builder = model.clone().checker().threads(opts.threads.max(1));
            if let Some(stop) = &opts.stop_at {
                builder = builder.finish_when(HasDiscoveries::AnyOf(stop.clone()));
            }
            collect(cfg, builder.spawn_bfs(), opts, started)
        }
    };
    let mut report = report;
    if let Some(graph) = &graph {
        let t = Instant::now();
        // stateright stops expanding states once every property has a
        // discovery, and a run stopped at a discovery is cut short: then the
        // graph is not the whole reachable graph.
        let everything_found = report.results.iter().all(|r| {
            matches!(
                r.verdict,
                Verdict::Counterexample { .. } | Verdict::Reachable
            )
        });
        let complete = opts.stop_at.is_none() && !everything_found;
        let outcome = liveness::decide(&model, graph, complete);
        if let Some(Progress(progress)) = &opts.progress {
            progress(
                &cfg.name,
                CheckProgress::Liveness {
                    states: outcome.states,
                },
            );
        }
        report.liveness_seconds = t.elapsed().as_secs_f64();
        report.liveness_states = Some(outcome.states);
        report.recovery = Some(Recovery {
            bound: cfg.core.recovery_bound_ticks(),
            longest_seen: model.longest_recovery_seen(),
        });
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

/// The depth-first proof search ([`crate::engine`]), its discoveries
/// already replayed as real behaviours.
fn explore(
    cfg: &ModelConfig,
    model: &SearchModel,
    opts: &CheckOptions,
    started: Instant,
) -> ConfigReport {
    let tell = |states: usize, unique: usize, depth: usize| {
        if let Some(Progress(progress)) = &opts.progress {
            progress(
                &cfg.name,
                CheckProgress::Search {
                    states,
                    unique,
                    depth,
                    seconds: started.elapsed().as_secs_f64(),
                },
            );
        }
    };
    let out = crate::engine::explore(
        model,
        opts.threads,
        opts.liveness,
        opts.stop_at.as_ref(),
        &tell,
    );
    let seconds = started.elapsed().as_secs_f64();
    let decided = !out.stopped_early;
    let mut results: Vec<PropertyResult> = PROPERTIES
        .iter()
        .zip(out.found)
        .map(|(p, found)| result(p, found, decided))
        .collect();
    let mut recovery = None;
    if let Some(l) = out.liveness {
        // Every behaviour ends converged (the engine's L1); within T is
        // `L1 recovery bound`, an always-property checked with the others.
        let verdict = match &l.stuck {
            Some(path) => Verdict::Counterexample {
                steps: path.len().saturating_sub(1),
            },
            None if out.stopped_early || !l.acyclic || !l.calm_seen => Verdict::Undecided,
            None => Verdict::Holds,
        };
        results.push(PropertyResult {
            name: L1,
            kind: Kind::Liveness,
            verdict,
            path: l.stuck,
        });
        recovery = Some(Recovery {
            bound: cfg.core.recovery_bound_ticks(),
            longest_seen: model.longest_recovery_seen(),
        });
    }
    ConfigReport {
        name: cfg.name.clone(),
        unique_states: out.unique,
        total_states: out.total,
        max_depth: out.max_depth,
        seconds,
        liveness_seconds: 0.0,
        liveness_states: None,
        recovery,
        results,
        traces: Vec::new(),
    }
}

/// A property's result from its discovery (a path to the state that
/// breaks or reaches it), in a search that expanded every state when
/// `decided`.
fn result(
    p: &PropertyDef,
    found: Option<Vec<(World, Option<Action>)>>,
    decided: bool,
) -> PropertyResult {
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
}

fn collect<C: Checker<SearchModel>>(
    cfg: &ModelConfig,
    checker: C,
    opts: &CheckOptions,
    started: Instant,
) -> ConfigReport {
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(50));
        let Some(Progress(progress)) = &opts.progress else {
            continue;
        };
        if last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            let seconds = started.elapsed().as_secs_f64();
            let unique = checker.unique_state_count();
            let states = checker.state_count();
            progress(
                &cfg.name,
                CheckProgress::Search {
                    states,
                    unique,
                    depth: checker.max_depth(),
                    seconds,
                },
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
            let found: Option<Vec<(World, Option<Action>)>> = discoveries.get(p.name).map(|path| {
                let steps = path.clone().into_vec();
                steps.into_iter().map(|(s, a)| (s.world, a)).collect()
            });
            result(p, found, decided)
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
        recovery: None,
        results,
        traces: Vec::new(),
    }
}

/// A property's verdict across a preset's configurations: one row of the
/// summary table `tally check` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An `always` or L1 held in every configuration.
    Holds,
    /// Counterexamples: each configuration's name and the steps of its
    /// counterexample.
    Counterexamples(Vec<(String, usize)>),
    /// A `sometimes` reached in some configuration.
    Reachable,
    /// A `sometimes` reached in none; `required`: the preset claims full
    /// coverage, so the property passes vacuously and the check fails.
    NotReached {
        /// Whether this fails the check.
        required: bool,
    },
    /// Not decided in some configuration (fails the check for an `always`
    /// or L1, not for a `sometimes`).
    Undecided,
}

/// One row of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// The property.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its verdict across the configurations.
    pub outcome: Outcome,
}

/// The verdict on a preset: one row per property checked, and whether the
/// check passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// One row per property that some configuration checked, in the order
    /// of [`PROPERTIES`] then L1.
    pub rows: Vec<SummaryRow>,
    /// Every `always` and L1 holds and, when required, every `sometimes`
    /// is reached.
    pub ok: bool,
}

/// The verdict across a preset's reports: one row per property, and
/// whether the check passes.
///
/// With `require_reachable`, a `sometimes` reached in no configuration fails
/// the check (the preset claims full coverage); otherwise it is reported only.
#[must_use]
pub fn summarize(reports: &[ConfigReport], require_reachable: bool) -> Summary {
    let mut names: Vec<(&'static str, Kind)> =
        PROPERTIES.iter().map(|p| (p.name, p.kind)).collect();
    names.push((L1, Kind::Liveness));
    let mut ok = true;
    let mut rows = Vec::new();
    for (name, kind) in names {
        let verdicts: Vec<(&str, &Verdict)> = reports
            .iter()
            .filter_map(|r| r.result(name).map(|x| (r.name.as_str(), &x.verdict)))
            .collect();
        if verdicts.is_empty() {
            continue;
        }
        let broken: Vec<(String, usize)> = verdicts
            .iter()
            .filter_map(|(c, v)| match v {
                Verdict::Counterexample { steps } => Some(((*c).to_string(), *steps)),
                _ => None,
            })
            .collect();
        let outcome = match kind {
            Kind::Sometimes => {
                if verdicts.iter().any(|(_, v)| **v == Verdict::Reachable) {
                    Outcome::Reachable
                } else if verdicts.iter().all(|(_, v)| **v == Verdict::NotReached) {
                    if require_reachable {
                        ok = false;
                    }
                    Outcome::NotReached {
                        required: require_reachable,
                    }
                } else {
                    Outcome::Undecided
                }
            }
            Kind::Always | Kind::Liveness => {
                if !broken.is_empty() {
                    ok = false;
                    Outcome::Counterexamples(broken)
                } else if verdicts.iter().all(|(_, v)| **v == Verdict::Holds) {
                    Outcome::Holds
                } else {
                    ok = false;
                    Outcome::Undecided
                }
            }
        };
        rows.push(SummaryRow {
            name,
            kind,
            outcome,
        });
    }
    Summary { rows, ok }
}
