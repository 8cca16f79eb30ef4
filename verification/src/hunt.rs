//! A hunt: the shortest counterexample to the properties a mutation is
//! expected to break ([`crate::mutations::expected`]), in one configuration
//! or in the first configuration of a list that has one.
//!
//! One function, [`hunt`], serves `tally check --mutation`, `tally
//! mutations --against`, the Explorer's `/hunt/<mutation>` and the pinned
//! lengths of `tests/mutations.rs`, so they all report the same thing.
//!
//! - A safety property (S1–S6, core invariants): a breadth-first search of
//!   its own, one thread, level by level, that checks the expected properties
//!   on each state as it is generated and stops at the first that breaks
//!   one. Every shorter path was generated before it, so the counterexample
//!   is a shortest one, and it ends at the state that breaks the property.
//!   (stateright's BFS is not used here: it overwrites a property's discovery
//!   with every later violating state it visits before it notices the stop,
//!   and with more threads it does not visit states in order of depth.)
//! - L1 (a mutation that breaks only convergence): the whole state space is
//!   needed, so it is [`check_config`] with L1 on, breadth-first, one thread,
//!   and the L1 counterexample it returns.
//!
//! The length reported, [`Refutation::steps`], is the trace's `broken_at`
//! (the index of the first state that breaks the property; the last state
//! for L1), and the path ends there.

use crate::check::{
    CheckError, CheckOptions, CheckProgress, Progress, Search, Verdict, check_config,
};
use crate::checked::CheckedModel;
use crate::mutations::expected;
use crate::properties::{self, L1, PropertyDef};
use crate::trace;
use stateright::Model;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tally_core::Mutation;
use tally_model::{Action, ModelConfig, TallyModel, World};

/// How to hunt.
#[derive(Clone, Debug, Default)]
pub struct HuntOptions {
    /// Told how far the search has got (about every two seconds).
    pub progress: Option<Progress>,
    /// Give up on a configuration once this many unique states are known
    /// without a counterexample (safety hunts only; an L1 hunt always
    /// searches the whole state space). `None`: no limit.
    pub max_states: Option<usize>,
    /// Search as the proof does instead (depth-first, host symmetry where
    /// usable, on `threads` threads): whether the configuration refutes the
    /// mutation at all, in a sixth of the states and memory of a
    /// breadth-first search, but its counterexample is not a shortest one.
    pub proof: bool,
    /// Threads of a `proof` hunt (at least one).
    pub threads: usize,
}

/// A counterexample found by a hunt.
#[derive(Clone, Debug)]
pub struct Refutation {
    /// The property broken (one of the mutation's expected properties).
    pub property: &'static str,
    /// The step at which it breaks: the trace's `broken_at`, and the number
    /// of actions on `path`.
    pub steps: usize,
    /// The behaviour, from the initial state to the state that breaks the
    /// property (for L1: to the end of the behaviour).
    pub path: Vec<(World, Option<Action>)>,
}

/// The result of hunting in one configuration.
#[derive(Clone, Debug)]
pub struct Hunt {
    /// The configuration searched, mutations on.
    pub config: ModelConfig,
    /// The properties hunted.
    pub expected: Vec<&'static str>,
    /// The counterexample, if one was found.
    pub refutation: Option<Refutation>,
    /// Unique states found.
    pub unique_states: usize,
    /// States generated.
    pub total_states: usize,
    /// Deepest level reached (steps from the initial state).
    pub max_depth: usize,
    /// Wall time.
    pub seconds: f64,
    /// Without a refutation: whether every reachable state was searched
    /// (false when `max_states` cut the search short).
    pub complete: bool,
}

impl Hunt {
    /// Writes the counterexample as a JSON trace into `dir` (nothing
    /// without one). Its `broken_at` is `steps`.
    pub fn write_trace(&self, dir: &Path) -> Result<Option<PathBuf>, CheckError> {
        let Some(r) = &self.refutation else {
            return Ok(None);
        };
        trace::write(dir, &self.config, r.property, &r.path)
            .map(Some)
            .map_err(|(path, source)| CheckError::Trace { path, source })
    }
}

/// The properties a hunt for `mutations` stops at: every one's expected
/// properties, in order, each once.
#[must_use]
pub fn hunted(mutations: &[Mutation]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for m in mutations {
        for p in expected(*m) {
            if !out.contains(p) {
                out.push(p);
            }
        }
    }
    out
}

/// Hunts a counterexample to what `m` is expected to break in `cfg` (with
/// `m` switched on).
pub fn hunt(m: Mutation, cfg: &ModelConfig, opts: &HuntOptions) -> Result<Hunt, CheckError> {
    hunt_all(&[m], cfg, opts)
}

/// [`hunt`] with several mutations on at once: a counterexample to any
/// property one of them is expected to break.
pub fn hunt_all(
    mutations: &[Mutation],
    cfg: &ModelConfig,
    opts: &HuntOptions,
) -> Result<Hunt, CheckError> {
    let mut cfg = cfg.clone();
    for m in mutations {
        cfg = cfg.with_mutation(*m);
    }
    let expected = hunted(mutations);
    let safety: Vec<&'static PropertyDef> = expected
        .iter()
        .filter_map(|name| properties::find(name))
        .filter(|p| p.kind == properties::Kind::Always)
        .collect();
    if opts.proof {
        proof_hunt(cfg, expected, opts)
    } else if safety.is_empty() && expected.contains(&L1) {
        liveness_hunt(cfg, expected, opts)
    } else {
        safety_hunt(cfg, expected, &safety, opts)
    }
}

/// [`hunt`] in each configuration in turn, stopping at the first that
/// refutes `m`; `each` is told each configuration's result as it ends.
pub fn hunt_preset(
    m: Mutation,
    configs: &[ModelConfig],
    opts: &HuntOptions,
    mut each: impl FnMut(&Hunt),
) -> Result<Vec<Hunt>, CheckError> {
    let mut out = Vec::new();
    for cfg in configs {
        let h = hunt(m, cfg, opts)?;
        each(&h);
        let refuted = h.refutation.is_some();
        out.push(h);
        if refuted {
            break;
        }
    }
    Ok(out)
}

/// L1: the whole state space, then the graph check (`check_config`).
fn liveness_hunt(
    cfg: ModelConfig,
    expected: Vec<&'static str>,
    opts: &HuntOptions,
) -> Result<Hunt, CheckError> {
    let check = CheckOptions {
        threads: 1,
        search: Search::Bfs,
        symmetry: false,
        liveness: true,
        stop_at: None,
        progress: opts.progress.clone(),
        trace_out: None,
    };
    checked_hunt(cfg, expected, &check)
}

/// As the proof searches: DFS with symmetry where usable, stopped at the
/// first discovery of an expected safety property, or (for L1) the whole
/// graph and the L1 decision. Not shortest.
fn proof_hunt(
    cfg: ModelConfig,
    expected: Vec<&'static str>,
    opts: &HuntOptions,
) -> Result<Hunt, CheckError> {
    let liveness = expected.contains(&L1);
    let safety: std::collections::BTreeSet<&'static str> =
        expected.iter().filter(|p| **p != L1).copied().collect();
    let check = CheckOptions {
        threads: opts.threads.max(1),
        search: Search::Dfs,
        symmetry: crate::symmetry::usable(&cfg),
        liveness,
        // L1 needs the whole graph: no stop then.
        stop_at: (!liveness).then_some(safety),
        progress: opts.progress.clone(),
        trace_out: None,
    };
    checked_hunt(cfg, expected, &check)
}

/// A hunt through `check_config`: the first expected property it refutes.
fn checked_hunt(
    cfg: ModelConfig,
    expected: Vec<&'static str>,
    check: &CheckOptions,
) -> Result<Hunt, CheckError> {
    let report = check_config(&cfg, check)?;
    let refutation = expected.iter().find_map(|name| {
        let r = report.result(name)?;
        match (&r.verdict, &r.path) {
            (Verdict::Counterexample { .. }, Some(path)) => {
                Some(refutation(&cfg, name, path.clone()))
            }
            _ => None,
        }
    });
    // A search stops early only at a discovery: without one it went
    // through every state; L1 is decided unless the graph was cut.
    let complete = refutation.is_some()
        || !check.liveness
        || report
            .result(L1)
            .is_some_and(|r| r.verdict != Verdict::Undecided);
    Ok(Hunt {
        config: cfg,
        expected,
        refutation,
        unique_states: report.unique_states,
        total_states: report.total_states,
        max_depth: report.max_depth,
        seconds: report.seconds + report.liveness_seconds,
        complete,
    })
}

/// `path` cut at the state where `property` first breaks, which is its length.
fn refutation(
    cfg: &ModelConfig,
    property: &'static str,
    mut path: Vec<(World, Option<Action>)>,
) -> Refutation {
    let steps = trace::broken_at(cfg, property, &path);
    path.truncate(steps + 1);
    if let Some(last) = path.last_mut() {
        last.1 = None;
    }
    Refutation {
        property,
        steps,
        path,
    }
}

type Parents = crate::graph::FingerprintMap<u64>;

fn fp(w: &World) -> u64 {
    crate::graph::fingerprint(w)
}

/// Breadth-first, level by level, each state checked as it is generated.
fn safety_hunt(
    cfg: ModelConfig,
    expected: Vec<&'static str>,
    safety: &[&'static PropertyDef],
    opts: &HuntOptions,
) -> Result<Hunt, CheckError> {
    let model = CheckedModel::new(TallyModel::new(cfg.clone())?);
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let broken = |w: &World| safety.iter().find(|p| !(p.holds)(&cfg, w)).map(|p| p.name);
    let mut parents = Parents::default();
    let mut level: Vec<World> = Vec::new();
    let mut total = 0usize;
    let mut found: Option<(&'static str, u64)> = None;
    for w in model.init_states() {
        total += 1;
        let f = fp(&w);
        if parents.insert(f, f).is_some() {
            continue;
        }
        if let Some(p) = broken(&w) {
            found = Some((p, f));
            break;
        }
        level.push(w);
    }
    let mut depth = 0usize;
    let mut cut_short = false;
    let mut actions = Vec::new();
    'search: while found.is_none() && !level.is_empty() {
        let mut next_level = Vec::new();
        for state in &level {
            let from = fp(state);
            model.actions(state, &mut actions);
            for action in actions.drain(..) {
                let Some(next) = model.next_state(state, action) else {
                    continue;
                };
                if !model.within_boundary(&next) {
                    continue;
                }
                total += 1;
                let f = fp(&next);
                if parents.contains_key(&f) {
                    continue;
                }
                parents.insert(f, from);
                if let Some(p) = broken(&next) {
                    found = Some((p, f));
                    depth += 1;
                    break 'search;
                }
                next_level.push(next);
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                if let Some(Progress(progress)) = &opts.progress {
                    progress(
                        &cfg.name,
                        CheckProgress::Search {
                            states: total,
                            unique: parents.len(),
                            depth: depth + 1,
                            seconds: started.elapsed().as_secs_f64(),
                        },
                    );
                }
            }
            if opts.max_states.is_some_and(|n| parents.len() >= n) {
                cut_short = true;
                break 'search;
            }
        }
        level = next_level;
        if !level.is_empty() {
            depth += 1;
        }
    }
    let refutation = found.map(|(property, f)| {
        let path = replay(&model, &parents, f);
        refutation(&cfg, property, path)
    });
    Ok(Hunt {
        expected,
        refutation,
        unique_states: parents.len(),
        total_states: total,
        max_depth: depth,
        seconds: started.elapsed().as_secs_f64(),
        complete: !cut_short,
        config: cfg,
    })
}

/// The path from an initial state to the state with fingerprint `last`,
/// replayed through the model (each step: the first action that reaches the
/// recorded successor).
fn replay(model: &CheckedModel, parents: &Parents, last: u64) -> Vec<(World, Option<Action>)> {
    let mut chain = vec![last];
    let mut at = last;
    while let Some(&p) = parents.get(&at) {
        if p == at {
            break;
        }
        chain.push(p);
        at = p;
    }
    chain.reverse();
    let first = chain.first().copied();
    let Some(mut state) = model
        .init_states()
        .into_iter()
        .find(|w| Some(fp(w)) == first)
    else {
        return Vec::new();
    };
    let mut path = Vec::with_capacity(chain.len());
    let mut actions = Vec::new();
    for want in chain.iter().skip(1) {
        model.actions(&state, &mut actions);
        let step = actions.drain(..).find_map(|a| {
            model
                .next_state(&state, a)
                .filter(|n| fp(n) == *want)
                .map(|n| (a, n))
        });
        let Some((action, next)) = step else {
            break;
        };
        path.push((state, Some(action)));
        state = next;
    }
    path.push((state, None));
    path
}
