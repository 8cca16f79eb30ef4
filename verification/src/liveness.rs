//! L1, convergence, decided over the state graph the safety search
//! recorded (see `graph`, `search`): no second exploration.
//!
//! stateright's `eventually` is unsound on paths that end in a cycle and
//! loses path history where paths merge, so L1 is decided here instead,
//! over the whole reachable graph (states by fingerprint, under host
//! symmetry when the search used it):
//!
//! 1. the graph must be acyclic (time only moves forward to the horizon and
//!    every other action consumes a message, a boot or a fault), so every
//!    behaviour is a finite path ending in a state with no successor;
//! 2. every *calm* state (faults stopped, see `World::is_calm`) must reach a
//!    converged state, computed by one backward pass from converged states.
//!
//! Together: no calm state can end its behaviour unconverged, so every
//! behaviour that becomes calm converges (and a behaviour that converges and
//! then diverges is caught at its unconverged end). The fairness assumed is
//! the model's: once calm, messages are delivered, partitions heal and due
//! boots complete before time advances. The quotient graph under host
//! symmetry is bisimilar to the full one for these symmetric predicates,
//! and acyclic exactly when it is.

use crate::graph::{CALM, CONVERGED, Edge, FingerprintMap, GraphLog};
use crate::search::SearchModel;
use std::collections::VecDeque;
use tally_model::{Action, World};

/// The outcome of the liveness check.
#[derive(Debug)]
pub struct LivenessOutcome {
    /// States in the graph.
    pub states: usize,
    /// Edges in the graph.
    pub edges: usize,
    /// Calm states.
    pub calm_states: usize,
    /// A shortest path to a calm state from which no converged state is
    /// reachable, then on to the end of one behaviour, if any.
    pub counterexample: Option<Vec<(World, Option<Action>)>>,
    /// The graph has a cycle (the acyclicity assumption failed).
    pub cyclic: bool,
    /// The search did not expand every state: nothing is decided.
    pub truncated: bool,
}

/// The recorded graph, numbered: `fps[id]`, `marks[id]`, and edges as
/// compressed rows (`succ` from `out[id]..out[id + 1]`).
struct Graph {
    fps: Vec<u64>,
    marks: Vec<u8>,
    roots: Vec<u32>,
    out: Vec<u32>,
    succ: Vec<u32>,
}

/// Decides L1 over what `log` recorded during a search of `model` that
/// expanded every reachable state (`complete`).
pub fn decide(model: &SearchModel, log: &GraphLog, complete: bool) -> LivenessOutcome {
    let g = build(log);
    let n = g.fps.len();
    let cyclic = has_cycle(&g);
    let reaches = backward_from_converged(&g);
    let calm = |i: usize| g.marks.get(i).is_some_and(|m| m & CALM != 0);
    let bad = |i: usize| calm(i) && !reaches.get(i).copied().unwrap_or(true);
    let (order, parent) = breadth_first(&g);
    // In breadth-first order, the first bad state has a shortest path.
    let counterexample = order
        .iter()
        .map(|i| *i as usize)
        .find(|i| bad(*i))
        .map(|b| {
            let mut nodes = Vec::new();
            let mut at = b;
            while let Some(p) = parent.get(at).copied().flatten() {
                nodes.push(at);
                at = p as usize;
            }
            nodes.reverse();
            // On to the end of one behaviour: every successor of a state that
            // cannot converge cannot converge either.
            // (At most n steps: on a cyclic graph the walk could go round.)
            let mut at = b;
            while let Some(next) = row(&g, at).first() {
                if nodes.len() > n {
                    break;
                }
                at = *next as usize;
                nodes.push(at);
            }
            let want: Vec<u64> = nodes
                .iter()
                .filter_map(|i| g.fps.get(*i).copied())
                .collect();
            realize(model, &want)
        });
    LivenessOutcome {
        states: n,
        edges: g.succ.len(),
        calm_states: (0..n).filter(|i| calm(*i)).count(),
        counterexample,
        cyclic,
        truncated: !complete,
    }
}

fn build(log: &GraphLog) -> Graph {
    let (root_fps, edges) = log.take();
    let mut fps: Vec<u64> = Vec::new();
    let mut marks: Vec<u8> = Vec::new();
    let (mut roots, src, dst) = {
        let total: usize = edges.iter().map(Vec::len).sum();
        let mut index: FingerprintMap<u32> =
            FingerprintMap::with_capacity_and_hasher(total / 2 + 1, Default::default());
        let mut intern = |fp: u64, m: u8, fps: &mut Vec<u64>, marks: &mut Vec<u8>| -> u32 {
            *index.entry(fp).or_insert_with(|| {
                fps.push(fp);
                marks.push(m);
                u32::try_from(fps.len() - 1).unwrap_or(u32::MAX)
            })
        };
        let roots: Vec<u32> = root_fps
            .iter()
            .map(|(fp, m)| intern(*fp, *m, &mut fps, &mut marks))
            .collect();
        // Every source was generated (a root or some edge's target), so the
        // targets are numbered first and each source is then found.
        let dst: Vec<u32> = edges
            .iter()
            .flatten()
            .map(|e| intern(e.to(), e.marks(), &mut fps, &mut marks))
            .collect();
        let src: Vec<u32> = edges
            .iter()
            .flatten()
            .map(|e: &Edge| intern(e.from, 0, &mut fps, &mut marks))
            .collect();
        (roots, src, dst)
    };
    drop(edges);
    roots.sort_unstable();
    roots.dedup();
    let (out, succ) = rows(fps.len(), &src, &dst);
    Graph {
        fps,
        marks,
        roots,
        out,
        succ,
    }
}

/// Compressed rows of the edges `from[k] -> to[k]`.
fn rows(n: usize, from: &[u32], to: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut out = vec![0u32; n + 1];
    for f in from {
        if let Some(c) = out.get_mut(*f as usize + 1) {
            *c += 1;
        }
    }
    for i in 0..n {
        let prev = out.get(i).copied().unwrap_or(0);
        if let Some(c) = out.get_mut(i + 1) {
            *c += prev;
        }
    }
    let mut fill = out.clone();
    let mut succ = vec![0u32; to.len()];
    for (f, t) in from.iter().zip(to) {
        if let Some(at) = fill.get_mut(*f as usize) {
            if let Some(slot) = succ.get_mut(*at as usize) {
                *slot = *t;
            }
            *at += 1;
        }
    }
    (out, succ)
}

fn row(g: &Graph, i: usize) -> &[u32] {
    let lo = g.out.get(i).copied().unwrap_or(0) as usize;
    let hi = g.out.get(i + 1).copied().unwrap_or(0) as usize;
    g.succ.get(lo..hi).unwrap_or(&[])
}

/// Every state from which a converged state is reachable: one backward
/// pass over the reversed edges.
fn backward_from_converged(g: &Graph) -> Vec<bool> {
    let n = g.fps.len();
    let mut from = Vec::with_capacity(g.succ.len());
    let mut to = Vec::with_capacity(g.succ.len());
    for i in 0..n {
        for s in row(g, i) {
            from.push(*s);
            to.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
    let (pout, pred) = rows(n, &from, &to);
    drop((from, to));
    let mut reaches: Vec<bool> = g.marks.iter().map(|m| m & CONVERGED != 0).collect();
    let mut stack: Vec<u32> = (0..n)
        .filter(|i| reaches.get(*i).copied().unwrap_or(false))
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    while let Some(s) = stack.pop() {
        let lo = pout.get(s as usize).copied().unwrap_or(0) as usize;
        let hi = pout.get(s as usize + 1).copied().unwrap_or(0) as usize;
        for p in pred.get(lo..hi).unwrap_or(&[]) {
            if let Some(r) = reaches.get_mut(*p as usize) {
                if !*r {
                    *r = true;
                    stack.push(*p);
                }
            }
        }
    }
    reaches
}

/// The states in breadth-first order from the roots, and each one's
/// breadth-first parent.
fn breadth_first(g: &Graph) -> (Vec<u32>, Vec<Option<u32>>) {
    let n = g.fps.len();
    let mut parent: Vec<Option<u32>> = vec![None; n];
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut queue: VecDeque<u32> = VecDeque::new();
    for r in &g.roots {
        if let Some(s) = seen.get_mut(*r as usize) {
            *s = true;
            queue.push_back(*r);
        }
    }
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for s in row(g, i as usize) {
            if let Some(seen) = seen.get_mut(*s as usize) {
                if !*seen {
                    *seen = true;
                    if let Some(p) = parent.get_mut(*s as usize) {
                        *p = Some(i);
                    }
                    queue.push_back(*s);
                }
            }
        }
    }
    (order, parent)
}

/// A real (not relabelled) path from the initial state through states
/// whose fingerprints in `model`'s search (of their classes, under host
/// symmetry) are `want`, in order: at each step, the action whose
/// successor's is the next one.
pub fn realize(model: &SearchModel, want: &[u64]) -> Vec<(World, Option<Action>)> {
    let mut path = Vec::new();
    let Some(mut w) = model.inner().init_states().into_iter().next() else {
        return path;
    };
    let mut actions = Vec::new();
    for fp in want {
        actions.clear();
        model.inner().actions(&w, &mut actions);
        let step = actions.iter().find_map(|a| {
            let next = model.inner().next_state(&w, *a)?;
            (model.fingerprint(&next) == *fp).then_some((*a, next))
        });
        let Some((a, next)) = step else { break };
        path.push((w, Some(a)));
        w = next;
    }
    path.push((w, None));
    path
}

/// Kahn's algorithm: whether some states are left on a cycle.
fn has_cycle(g: &Graph) -> bool {
    let n = g.fps.len();
    let mut indegree = vec![0u32; n];
    for to in &g.succ {
        if let Some(d) = indegree.get_mut(*to as usize) {
            *d += 1;
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|i| indegree.get(*i) == Some(&0)).collect();
    let mut done = 0usize;
    while let Some(i) = ready.pop() {
        done += 1;
        for to in row(g, i) {
            if let Some(d) = indegree.get_mut(*to as usize) {
                *d -= 1;
                if *d == 0 {
                    ready.push(*to as usize);
                }
            }
        }
    }
    done != n
}
