//! The proof's search: depth-first on every thread over a shared set of
//! fingerprints, each with its parent's, so a path to any state is rebuilt
//! by replay instead of being carried with every pending state.
//!
//! What it saves over stateright's DFS, measured on the `ci` preset (see
//! BENCHMARKS.md): no copy of the path (a `Vec` of action indices as deep
//! as the state) per generated state; no lock per property per state (a
//! property already decided is not evaluated again); one lock per inserted
//! fingerprint on one of many shards; and no graph for L1.
//!
//! L1 needs no graph here. The search checks, on every edge it generates,
//! that the model's progress measure (`World::progress`) strictly
//! increases: then the state graph has no cycle, so every behaviour is
//! finite and ends in a state with no successor. It also checks that every
//! such end state that is calm is converged. Together: every behaviour
//! from every calm state ends converged, which is L1. That it comes within
//! `T` is the property `L1 recovery bound`, checked on every state with the
//! others (no calm state past `calm_at + T` unconverged); every end state
//! lies at the horizon, which is at least `calm_at + T`, so a horizon of
//! exactly `calm_at + T` makes the two one check. An edge that does not
//! increase the measure leaves L1 undecided (nothing is assumed).
//!
//! Threads share work by donation: a busy thread keeps a pool stocked with
//! the older half of its stack (the shallower states, whose subtrees are
//! larger), and gives again at once when it sees a thread waiting. The
//! search ends when every thread waits and the pool is empty, or when a
//! property asked for in `stop_at` is decided.

use crate::graph::{CALM, CONVERGED, FingerprintMap};
use crate::properties::{Kind, PROPERTIES};
use crate::search::{SearchModel, Stamped};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tally_model::{Action, World};

/// A state's parent in the visited set when it is an initial state
/// (fingerprints have their two low bits clear, so no state has this one).
const ROOT: u64 = 1;

/// Shards of the visited set: enough that two threads rarely meet on one.
const SHARDS: usize = 64;

/// States a thread expands between looks at the shared counters.
const BATCH: usize = 64;

type Parents = FingerprintMap<u64>;

/// One shard, alone on its cache lines: two threads locking neighbouring
/// shards must not bounce one line between them.
#[repr(align(128))]
struct Shard(Mutex<Parents>);

/// Every state found, by fingerprint, with its parent's fingerprint.
struct Visited {
    shards: Vec<Shard>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a search thread panicked; its data is still a
    // valid set of fingerprints.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Visited {
    fn new() -> Visited {
        Visited {
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(Parents::default())))
                .collect(),
        }
    }

    fn shard(&self, fp: u64) -> Option<&Mutex<Parents>> {
        // Bits the table itself does not index by (it uses the low ones
        // for the bucket and the top seven for its tags).
        self.shards.get((fp >> 32) as usize % SHARDS).map(|s| &s.0)
    }

    /// Inserts `fp` with `parent`; whether it is new.
    fn insert(&self, fp: u64, parent: u64) -> bool {
        self.shard(fp).is_some_and(|s| {
            let mut s = lock(s);
            match s.entry(fp) {
                std::collections::hash_map::Entry::Occupied(_) => false,
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(parent);
                    true
                }
            }
        })
    }

    fn parent(&self, fp: u64) -> Option<u64> {
        self.shard(fp).and_then(|s| lock(s).get(&fp).copied())
    }
}

/// A behaviour: each state with the action taken from it (none at the end).
pub type Behaviour = Vec<(World, Option<Action>)>;

/// A pending state and its depth.
type Job = (Stamped, u32);

/// Work given away, and who waits for it.
struct Pool {
    stacks: Vec<Vec<Job>>,
    waiting: usize,
    finished: bool,
}

struct Shared<'a> {
    model: &'a SearchModel,
    threads: usize,
    stop_at: Option<&'a BTreeSet<&'static str>>,
    visited: Visited,
    pool: Mutex<Pool>,
    wake: Condvar,
    /// Threads waiting for work (read without the lock, to decide to give).
    hungry: AtomicUsize,
    /// Stacks in the pool (read without the lock, to keep it stocked).
    pooled: AtomicUsize,
    stop: AtomicBool,
    /// Per property: 0, or the fingerprint (or-ed with 1) of the first
    /// state found that breaks it (always) or reaches it (sometimes).
    found: Vec<AtomicU64>,
    unique: AtomicUsize,
    total: AtomicUsize,
    depth: AtomicUsize,
    /// Decide L1 (see the module's documentation).
    liveness: bool,
    /// 0, or the fingerprint (or-ed with 1) of a calm, unconverged state
    /// without successors.
    stuck: AtomicU64,
    /// Some edge did not increase the progress measure.
    regress: AtomicBool,
    /// Some state was calm.
    calm_seen: AtomicBool,
}

/// L1 as the search decided it.
pub struct LivenessFound {
    /// A behaviour that ends calm and unconverged, if any.
    pub stuck: Option<Behaviour>,
    /// Every edge increased the progress measure: no cycle.
    pub acyclic: bool,
    /// Some state was calm (else L1 would hold vacuously).
    pub calm_seen: bool,
}

/// What a search found.
pub struct Explored {
    /// Unique states.
    pub unique: usize,
    /// States generated.
    pub total: usize,
    /// The deepest state's depth.
    pub max_depth: usize,
    /// Per entry of `PROPERTIES`: the path to the first state found that
    /// breaks it (always) or reaches it (sometimes), as a real behaviour.
    pub found: Vec<Option<Behaviour>>,
    /// The search stopped before expanding every state (a property in
    /// `stop_at` was decided, or every property was).
    pub stopped_early: bool,
    /// L1, when asked.
    pub liveness: Option<LivenessFound>,
}

/// Searches `model` on `threads` threads, checking every property of
/// `PROPERTIES` on every state (and L1 when `liveness`), and stopping as
/// soon as a property in `stop_at` is decided. `progress` is told the
/// states, unique states and depth so far about every two seconds.
pub fn explore(
    model: &SearchModel,
    threads: usize,
    liveness: bool,
    stop_at: Option<&BTreeSet<&'static str>>,
    progress: &dyn Fn(usize, usize, usize),
) -> Explored {
    let threads = threads.max(1);
    let shared = Shared {
        model,
        threads,
        stop_at,
        visited: Visited::new(),
        pool: Mutex::new(Pool {
            stacks: Vec::new(),
            waiting: 0,
            finished: false,
        }),
        wake: Condvar::new(),
        hungry: AtomicUsize::new(0),
        pooled: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        found: PROPERTIES.iter().map(|_| AtomicU64::new(0)).collect(),
        unique: AtomicUsize::new(0),
        total: AtomicUsize::new(0),
        depth: AtomicUsize::new(0),
        liveness,
        stuck: AtomicU64::new(0),
        regress: AtomicBool::new(false),
        calm_seen: AtomicBool::new(false),
    };
    let mut first: Vec<Job> = Vec::new();
    for s in model.roots() {
        // Counted as generated, as stateright counts them.
        shared.total.fetch_add(1, Ordering::Relaxed);
        if shared.visited.insert(s.fp, ROOT) {
            shared.unique.fetch_add(1, Ordering::Relaxed);
            first.push((s, 0));
        }
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let shared = &shared;
                let stack = if i == 0 {
                    std::mem::take(&mut first)
                } else {
                    Vec::new()
                };
                scope.spawn(move || {
                    // Whatever happens to this thread, the others must not
                    // wait for it (see `Abandon`).
                    let _abandon = Abandon(shared);
                    work(shared, stack);
                })
            })
            .collect();
        // This thread tells progress (which need not be `Sync`).
        let mut last = Instant::now();
        while !workers
            .iter()
            .all(std::thread::ScopedJoinHandle::is_finished)
        {
            std::thread::sleep(Duration::from_millis(20));
            if last.elapsed() >= Duration::from_secs(2) {
                last = Instant::now();
                progress(
                    shared.total.load(Ordering::Relaxed),
                    shared.unique.load(Ordering::Relaxed),
                    shared.depth.load(Ordering::Relaxed),
                );
            }
        }
        let mut panic = None;
        for w in workers {
            if let Err(payload) = w.join() {
                panic.get_or_insert(payload);
            }
        }
        // A search thread panicked (a bug the core asserts against): the
        // search is incomplete, and the check must fail as loudly.
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    });
    let found = shared
        .found
        .iter()
        .map(|f| {
            let fp = f.load(Ordering::Relaxed);
            (fp != 0).then(|| path_to(&shared, fp & !1))
        })
        .collect();
    let stuck = shared.stuck.load(Ordering::Relaxed);
    let liveness = liveness.then(|| LivenessFound {
        stuck: (stuck != 0).then(|| path_to(&shared, stuck & !1)),
        acyclic: !shared.regress.load(Ordering::Relaxed),
        calm_seen: shared.calm_seen.load(Ordering::Relaxed),
    });
    Explored {
        liveness,
        unique: shared.unique.load(Ordering::Relaxed),
        total: shared.total.load(Ordering::Relaxed),
        max_depth: shared.depth.load(Ordering::Relaxed),
        found,
        stopped_early: shared.stop.load(Ordering::Relaxed),
    }
}

/// The real behaviour from the initial state to the state `fp`.
fn path_to(shared: &Shared<'_>, fp: u64) -> Behaviour {
    let mut want = Vec::new();
    let mut at = fp;
    while let Some(parent) = shared.visited.parent(at) {
        if parent == ROOT || want.len() > shared.depth.load(Ordering::Relaxed) {
            break;
        }
        want.push(at);
        at = parent;
    }
    want.reverse();
    let path = crate::liveness::realize(shared.model, &want);
    if path.len() != want.len() + 1 {
        // Replay is deterministic, so this is a bug in the search: say so
        // rather than hand over a trace that ends elsewhere.
        eprintln!(
            "tally: warning: the replay of a path stopped after {} of {} steps; its trace is incomplete (please report this)",
            path.len().saturating_sub(1),
            want.len()
        );
    }
    path
}

/// Checks every undecided property on `s`; whether the search must stop.
fn check(shared: &Shared<'_>, s: &Stamped) -> bool {
    let cfg = shared.model.cfg();
    let mut stop = false;
    let mut all = true;
    for (p, found) in PROPERTIES.iter().zip(&shared.found) {
        if found.load(Ordering::Relaxed) != 0 {
            continue;
        }
        let holds = (p.holds)(cfg, &s.world);
        let hit = match p.kind {
            Kind::Always | Kind::Liveness => !holds,
            Kind::Sometimes => holds,
        };
        if !hit {
            all = false;
            continue;
        }
        let _ = found.compare_exchange(0, s.fp | 1, Ordering::Relaxed, Ordering::Relaxed);
        if shared.stop_at.is_some_and(|names| names.contains(p.name)) {
            stop = true;
        }
    }
    stop || all
}

/// Dropped when a search thread ends, normally or by a panic: if by a
/// panic, stops the search and wakes every waiting thread, which would
/// otherwise wait for the dead one forever.
struct Abandon<'a, 'b>(&'a Shared<'b>);

impl Drop for Abandon<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop.store(true, Ordering::Relaxed);
            lock(&self.0.pool).finished = true;
            self.0.wake.notify_all();
        }
    }
}

fn work(shared: &Shared<'_>, mut stack: Vec<Job>) {
    let model = shared.model;
    let mut actions: Vec<Action> = Vec::new();
    let (mut unique, mut total, mut depth) = (0usize, 0usize, 0usize);
    let mut since = 0usize;
    loop {
        let Some((s, d)) = stack.pop() else {
            flush(shared, &mut unique, &mut total, depth);
            match wait_for_work(shared) {
                Some(more) => {
                    stack = more;
                    continue;
                }
                None => break,
            }
        };
        if check(shared, &s) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        depth = depth.max(d as usize);
        let marks = if shared.liveness {
            model.marks(&s.world)
        } else {
            0
        };
        if marks & CALM != 0 && !shared.calm_seen.load(Ordering::Relaxed) {
            shared.calm_seen.store(true, Ordering::Relaxed);
        }
        let rank = shared.liveness.then(|| s.world.progress());
        let mut successors = 0usize;
        actions.clear();
        model.inner().actions(&s.world, &mut actions);
        for a in actions.drain(..) {
            let Some((next, _)) = model.step(&s, a) else {
                continue;
            };
            successors += 1;
            if rank.is_some_and(|r| next.world.progress() <= r) {
                shared.regress.store(true, Ordering::Relaxed);
            }
            if shared.visited.insert(next.fp, s.fp) {
                unique += 1;
                stack.push((next, d + 1));
            }
        }
        total += successors;
        if successors == 0 && marks & (CALM | CONVERGED) == CALM {
            let _ =
                shared
                    .stuck
                    .compare_exchange(0, s.fp | 1, Ordering::Relaxed, Ordering::Relaxed);
            if shared
                .stop_at
                .is_some_and(|names| names.contains(crate::properties::L1))
            {
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
        since += 1;
        if since >= BATCH {
            since = 0;
            flush(shared, &mut unique, &mut total, depth);
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            // Give before anyone runs dry: a thread that waits for the
            // next batch boundary of another wastes its time.
            let hungry = shared.hungry.load(Ordering::Relaxed) > 0;
            let stocked = shared.pooled.load(Ordering::Relaxed) > 0;
            if (hungry && stack.len() >= 2) || (!stocked && stack.len() >= 4 * BATCH) {
                let give: Vec<Job> = stack.drain(..stack.len() / 2).collect();
                lock(&shared.pool).stacks.push(give);
                shared.pooled.fetch_add(1, Ordering::Relaxed);
                shared.wake.notify_one();
            }
        }
    }
    flush(shared, &mut unique, &mut total, depth);
    // Whoever stops wakes the others, so that none waits for work forever.
    let mut pool = lock(&shared.pool);
    if shared.stop.load(Ordering::Relaxed) {
        pool.finished = true;
    }
    drop(pool);
    shared.wake.notify_all();
}

fn flush(shared: &Shared<'_>, unique: &mut usize, total: &mut usize, depth: usize) {
    shared
        .unique
        .fetch_add(std::mem::take(unique), Ordering::Relaxed);
    shared
        .total
        .fetch_add(std::mem::take(total), Ordering::Relaxed);
    shared.depth.fetch_max(depth, Ordering::Relaxed);
}

/// Waits until some thread gives work (`Some`), or every thread waits with
/// nothing left to give, or the search stopped (`None`).
fn wait_for_work(shared: &Shared<'_>) -> Option<Vec<Job>> {
    let mut pool = lock(&shared.pool);
    pool.waiting += 1;
    shared.hungry.fetch_add(1, Ordering::Relaxed);
    let got = loop {
        if let Some(more) = pool.stacks.pop() {
            shared.pooled.fetch_sub(1, Ordering::Relaxed);
            break Some(more);
        }
        if pool.finished || pool.waiting == shared.threads || shared.stop.load(Ordering::Relaxed) {
            pool.finished = true;
            break None;
        }
        pool = shared
            .wake
            .wait(pool)
            .unwrap_or_else(PoisonError::into_inner);
    };
    pool.waiting -= 1;
    shared.hungry.fetch_sub(1, Ordering::Relaxed);
    if got.is_none() {
        drop(pool);
        shared.wake.notify_all();
    }
    got
}
