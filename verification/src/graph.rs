//! The state graph, recorded during the safety search itself, for L1.
//!
//! [`SearchModel`](crate::search::SearchModel) records every edge it
//! generates, as a pair of state fingerprints, with the `calm` and
//! `converged` marks of the edge's target: what `liveness::decide` needs,
//! and no second exploration. Each search thread writes to its own shard.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The state is calm (faults stopped).
pub const CALM: u8 = 1;
/// The state is converged.
pub const CONVERGED: u8 = 2;

/// One generated edge, 16 bytes: the source's fingerprint, and the
/// target's with its marks (`CALM`, `CONVERGED`) in the two low bits.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    /// The source state's fingerprint.
    pub from: u64,
    /// The target state's fingerprint, or-ed with its marks.
    pub to_marked: u64,
}

impl Edge {
    /// The target's fingerprint.
    #[must_use]
    pub fn to(&self) -> u64 {
        self.to_marked & !3
    }

    /// The target's marks.
    #[must_use]
    pub fn marks(&self) -> u8 {
        (self.to_marked & 3) as u8
    }
}

/// Shards of recorded edges, and the initial states.
#[derive(Debug, Default)]
pub struct GraphLog {
    shards: Vec<Mutex<Vec<Edge>>>,
    roots: Mutex<Vec<(u64, u8)>>,
}

const SHARDS: usize = 16;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, and the fingerprint of the state it expands.
    static THREAD: (usize, Cell<u64>) =
        (NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SHARDS, Cell::new(0));
}

/// The fingerprint of a state: aHash with fixed keys (what stateright
/// itself uses; stable within a build, several times faster than std's
/// SipHash on a world's many small fields), its two low bits clear: an
/// edge's target carries its marks there.
pub fn fingerprint<T: Hash>(value: &T) -> u64 {
    let mut h = hasher();
    value.hash(&mut h);
    h.finish() & !3
}

/// The hasher behind [`fingerprint`] (also the symmetry signatures').
#[must_use]
pub fn hasher() -> ahash::AHasher {
    use std::hash::BuildHasher;
    ahash::RandomState::with_seeds(
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    )
    .build_hasher()
}

impl GraphLog {
    /// An empty log.
    #[must_use]
    pub fn new() -> GraphLog {
        GraphLog {
            shards: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            roots: Mutex::new(Vec::new()),
        }
    }

    /// An initial state.
    pub fn root(&self, fp: u64, marks: u8) {
        if let Ok(mut r) = self.roots.lock() {
            r.push((fp, marks));
        }
    }

    /// The state this thread is about to expand: the source of the edges
    /// it records next (stateright asks a state's actions, then applies
    /// each, on one thread).
    pub fn expanding(fp: u64) {
        THREAD.with(|(_, current)| current.set(fp));
    }

    /// An edge from the state this thread expands to `to`.
    pub fn edge(&self, to: u64, marks: u8) {
        THREAD.with(|(shard, current)| {
            let edge = Edge {
                from: current.get(),
                to_marked: to | u64::from(marks & 3),
            };
            if let Some(Ok(mut v)) = self.shards.get(*shard).map(Mutex::lock) {
                v.push(edge);
            }
        });
    }

    /// Everything recorded: the roots, and the edges of every shard.
    #[must_use]
    pub fn take(&self) -> (Vec<(u64, u8)>, Vec<Vec<Edge>>) {
        let roots = self
            .roots
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        let mut edges = Vec::new();
        for s in &self.shards {
            if let Ok(mut v) = s.lock() {
                edges.push(std::mem::take(&mut *v));
            }
        }
        (roots, edges)
    }
}

/// Hashes a fingerprint by itself, its two always-clear low bits refilled
/// from higher ones (a hash table indexes by the low bits).
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n ^ (n >> 29);
    }
}

/// A map keyed by fingerprints, which are hashes already.
pub type FingerprintMap<V> =
    std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<FingerprintHasher>>;
