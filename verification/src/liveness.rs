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
pub fn check(
    model: &TallyModel,
    state_limit: usize,
    mut progress: impl FnMut(usize),
) -> LivenessOutcome {
    let cfg = &model.cfg;
    let mut index: HashMap<u64, u32> = HashMap::new();
    let mut parent: Vec<(u32, Option<Action>)> = Vec::new();
    let mut calm: Vec<bool> = Vec::new();
    let mut good: Vec<bool> = Vec::new();
    let mut succ: Vec<Vec<u32>> = Vec::new();
    let mut queue: VecDeque<(u32, World)> = VecDeque::new();
    let mut truncated = false;
    for w in model.init_states() {
        let id = u32::try_from(parent.len()).unwrap_or(u32::MAX);
        if let Entry::Vacant(e) = index.entry(fingerprint(&w)) {
            e.insert(id);
            parent.push((id, None));
            calm.push(w.is_calm(cfg));
            good.push(converged(cfg, &w));
            succ.push(Vec::new());
            queue.push_back((id, w));
        }
    }
    let mut actions = Vec::new();
    let mut edges = 0usize;
    while let Some((id, w)) = queue.pop_front() {
        actions.clear();
        model.actions(&w, &mut actions);
        let mut out = Vec::with_capacity(actions.len());
        for a in actions.iter().copied() {
            let Some(next) = model.next_state(&w, a) else {
                continue;
            };
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
        if parent.len() % 100_000 == 0 {
            progress(parent.len());
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
        // Extend to the end of one behaviour: every successor of a state that
        // cannot converge cannot converge either.
        let mut tail = Vec::new();
        let mut at = b;
        while let Some(next) = succ.get(at).and_then(|s| s.first()) {
            let next = *next as usize;
            if let Some((_, Some(a))) = parent.get(next).filter(|(p, _)| *p as usize == at) {
                tail.push(*a);
            } else {
                tail.push(action_between(model, &parent, at, next));
            }
            at = next;
        }
        let mut path = replay(model, &parent, b);
        extend(model, &mut path, &tail);
        path
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

/// Rebuilds the path to state `target` by replaying the recorded actions.
fn replay(
    model: &TallyModel,
    parent: &[(u32, Option<Action>)],
    target: usize,
) -> Vec<(World, Option<Action>)> {
    let mut actions = Vec::new();
    let mut at = target;
    while let Some((p, Some(a))) = parent.get(at) {
        actions.push(*a);
        at = *p as usize;
    }
    actions.reverse();
    let mut path = Vec::new();
    let Some(mut w) = model.init_states().into_iter().next() else {
        return path;
    };
    for a in actions {
        let Some(next) = model.next_state(&w, a) else {
            break;
        };
        path.push((w, Some(a)));
        w = next;
    }
    path.push((w, None));
    path
}

/// The action that leads from state `from` to state `to` (re-derived).
fn action_between(
    model: &TallyModel,
    parent: &[(u32, Option<Action>)],
    from: usize,
    to: usize,
) -> Action {
    let path = replay(model, parent, from);
    let target = replay(model, parent, to);
    let (Some((w, _)), Some((t, _))) = (path.last(), target.last()) else {
        return Action::Tick;
    };
    let mut actions = Vec::new();
    model.actions(w, &mut actions);
    actions
        .into_iter()
        .find(|a| model.next_state(w, *a).as_ref() == Some(t))
        .unwrap_or(Action::Tick)
}

fn extend(model: &TallyModel, path: &mut Vec<(World, Option<Action>)>, tail: &[Action]) {
    for a in tail {
        let Some((w, last)) = path.last_mut() else {
            return;
        };
        let Some(next) = model.next_state(w, *a) else {
            return;
        };
        *last = Some(*a);
        path.push((next, None));
    }
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
