//! L1, convergence, checked over the explored state graph.
//!
//! stateright's `eventually` is unsound on paths that end in a cycle and
//! loses path history where paths merge, so L1 is checked here instead: the
//! whole reachable graph is built (states by fingerprint, edges by index),
//! then
//!
//! 1. the graph must be acyclic (time only moves forward to the horizon and
//!    every other action consumes a message, a boot or a fault), so every
//!    behaviour is a finite path ending in a state with no successor;
//! 2. every *calm* state (faults stopped, see `World::is_calm`) must reach a
//!    converged state, computed by backward reachability from converged states.
//!
//! Together: no calm state can end its behaviour unconverged, so every
//! behaviour that becomes calm converges (and a behaviour that converges and
//! then diverges is caught at its unconverged end). The fairness assumed is
//! the model's: once calm, messages are delivered, partitions heal and due
//! boots complete before time advances.

use crate::properties::converged;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use tally_model::{Action, TallyModel, World};

/// The outcome of the liveness check.
#[derive(Debug)]
pub struct LivenessOutcome {
    /// States explored.
    pub states: usize,
    /// Edges explored.
    pub edges: usize,
    /// Calm states.
    pub calm_states: usize,
    /// A shortest path to a calm state from which no converged state is
    /// reachable, if any.
    pub counterexample: Option<Vec<(World, Option<Action>)>>,
    /// The graph has a cycle (the acyclicity assumption failed).
    pub cyclic: bool,
    /// Exploration stopped at the state limit.
    pub truncated: bool,
}

fn fingerprint(w: &World) -> u64 {
    let mut h = DefaultHasher::new();
    w.hash(&mut h);
    h.finish()
}

/// Explores `model` breadth-first (at most `state_limit` states) and checks L1.
///
/// With `symmetry`, states are stored by their host-symmetry representative:
/// the quotient graph is bisimilar to the full one for the symmetric
/// predicates used here (calm, converged), and acyclic exactly when it is.
pub fn check(
    model: &TallyModel,
    state_limit: usize,
    symmetry: bool,
    mut progress: impl FnMut(usize),
) -> LivenessOutcome {
    let cfg = &model.cfg;
    let canon = |w: World| {
        if symmetry {
            crate::symmetry::representative(&w)
        } else {
            w
        }
    };
    let mut fps: Vec<u64> = Vec::new();
    let mut index: HashMap<u64, u32> = HashMap::new();
    let mut parent: Vec<(u32, Option<Action>)> = Vec::new();
    let mut calm: Vec<bool> = Vec::new();
    let mut good: Vec<bool> = Vec::new();
    let mut succ: Vec<Vec<u32>> = Vec::new();
    let mut queue: VecDeque<(u32, World)> = VecDeque::new();
    let mut truncated = false;
    for w in model.init_states() {
        let w = canon(w);
        let id = u32::try_from(parent.len()).unwrap_or(u32::MAX);
        let fp = fingerprint(&w);
        if let Entry::Vacant(e) = index.entry(fp) {
            e.insert(id);
            fps.push(fp);
            parent.push((id, None));
            calm.push(w.is_calm(cfg));
            good.push(converged(cfg, &w));
            succ.push(Vec::new());
            queue.push_back((id, w));
        }
    }
    let mut actions = Vec::new();
    let mut edges = 0usize;
    let mut reported = 0usize;
    while let Some((id, w)) = queue.pop_front() {
        actions.clear();
        model.actions(&w, &mut actions);
        let mut out = Vec::with_capacity(actions.len());
        for a in actions.iter().copied() {
            let Some(next) = model.next_state(&w, a) else {
                continue;
            };
            let next = canon(next);
            let fp = fingerprint(&next);
            let nid = match index.entry(fp) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    if parent.len() >= state_limit {
                        truncated = true;
                        continue;
                    }
                    let nid = u32::try_from(parent.len()).unwrap_or(u32::MAX);
                    e.insert(nid);
                    fps.push(fp);
                    parent.push((id, Some(a)));
                    calm.push(next.is_calm(cfg));
                    good.push(converged(cfg, &next));
                    succ.push(Vec::new());
                    queue.push_back((nid, next));
                    nid
                }
            };
            out.push(nid);
        }
        edges += out.len();
        if let Some(s) = succ.get_mut(id as usize) {
            *s = out;
        }
        if parent.len() >= reported + 200_000 {
            reported = parent.len();
            progress(reported);
        }
    }
    let n = parent.len();
    let cyclic = has_cycle(&succ);
    // Backward reachability from converged states.
    let mut pred: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (from, outs) in succ.iter().enumerate() {
        for to in outs {
            if let Some(p) = pred.get_mut(*to as usize) {
                p.push(u32::try_from(from).unwrap_or(u32::MAX));
            }
        }
    }
    let mut reaches = good.clone();
    let mut stack: Vec<u32> = (0..n)
        .filter(|i| good.get(*i).copied().unwrap_or(false))
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    while let Some(s) = stack.pop() {
        for p in pred.get(s as usize).into_iter().flatten() {
            if let Some(r) = reaches.get_mut(*p as usize) {
                if !*r {
                    *r = true;
                    stack.push(*p);
                }
            }
        }
    }
    // States are numbered in BFS order: the first bad one is a shortest.
    let bad = (0..n).find(|i| {
        calm.get(*i).copied().unwrap_or(false) && !reaches.get(*i).copied().unwrap_or(true)
    });
    let counterexample = bad.map(|b| {
        // The nodes from the initial state to `b`, then on to the end of one
        // behaviour: every successor of a state that cannot converge cannot
        // converge either.
        let mut nodes = Vec::new();
        let mut at = b;
        while let Some((p, Some(_))) = parent.get(at) {
            nodes.push(at);
            at = *p as usize;
        }
        nodes.reverse();
        let mut at = b;
        while let Some(next) = succ.get(at).and_then(|s| s.first()) {
            at = *next as usize;
            nodes.push(at);
        }
        realize(model, &canon, &fps, &nodes)
    });
    LivenessOutcome {
        states: n,
        edges,
        calm_states: calm.iter().filter(|c| **c).count(),
        counterexample,
        cyclic,
        truncated,
    }
}

/// A real (not relabelled) path through the graph nodes `nodes`: at each
/// step, the action whose successor has the next node's fingerprint.
fn realize(
    model: &TallyModel,
    canon: &dyn Fn(World) -> World,
    fps: &[u64],
    nodes: &[usize],
) -> Vec<(World, Option<Action>)> {
    let mut path = Vec::new();
    let Some(mut w) = model.init_states().into_iter().next() else {
        return path;
    };
    let mut actions = Vec::new();
    for node in nodes {
        let Some(want) = fps.get(*node) else { break };
        actions.clear();
        model.actions(&w, &mut actions);
        let step = actions.iter().find_map(|a| {
            let next = model.next_state(&w, *a)?;
            (fingerprint(&canon(next.clone())) == *want).then_some((*a, next))
        });
        let Some((a, next)) = step else { break };
        path.push((w, Some(a)));
        w = next;
    }
    path.push((w, None));
    path
}

/// Kahn's algorithm: whether some nodes are left on a cycle.
fn has_cycle(succ: &[Vec<u32>]) -> bool {
    let mut indegree = vec![0u32; succ.len()];
    for outs in succ {
        for to in outs {
            if let Some(d) = indegree.get_mut(*to as usize) {
                *d += 1;
            }
        }
    }
    let mut ready: Vec<usize> = (0..succ.len())
        .filter(|i| indegree.get(*i) == Some(&0))
        .collect();
    let mut done = 0usize;
    while let Some(i) = ready.pop() {
        done += 1;
        for to in succ.get(i).into_iter().flatten() {
            if let Some(d) = indegree.get_mut(*to as usize) {
                *d -= 1;
                if *d == 0 {
                    ready.push(*to as usize);
                }
            }
        }
    }
    done != succ.len()
}
