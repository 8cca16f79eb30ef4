//! Host symmetry reduction for the DFS search.
//!
//! Hosts start identical and the core treats host ids only as names (it
//! places on the reporting host and never orders hosts to decide anything),
//! so relabelling the hosts of a state maps its behaviours one-to-one onto
//! the relabelled state's. The representative sorts hosts by a fingerprint
//! of everything attached to them (agent, clock lag, partition, processes,
//! ledger entries, messages), each taken with the host's own id erased, and
//! renames them in that order. Hosts with equal fingerprints are either
//! identical (any order gives the same state) or a hash collision (the state
//! is then merely less reduced): sound either way, since the representative
//! is always a relabelling of the state itself.
//!
//! The search does not relabel states: it fingerprints each state's class
//! directly ([`orbit_fingerprint`]): everything that belongs to one host is
//! hashed into that host's signature with the host's id left out, the
//! signatures are sorted, and they are hashed with everything that belongs
//! to no host. Nothing refers to two hosts (instances name no host; a
//! message, process, ledger entry or agent names only its own), so two
//! states have equal fingerprints exactly when one is a relabelling of the
//! other, up to hash collisions, as with any fingerprint. [`representative`]
//! relabels explicitly; the tests use it to check that the two agree.
//!
//! A scripted command that names a host breaks the symmetry; `usable` says so.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tally_core::Manager;
use tally_core::journal::DurableInstance;
use tally_core::message::{AgentReport, ManagerReply};
use tally_core::{HostId, Message};
use tally_model::Process;
use tally_model::config::ScriptedCommand;
use tally_model::world::{Ghost, HostState};
use tally_model::{ModelConfig, World};

/// Whether host symmetry holds for `cfg`: no scripted command names a host.
#[must_use]
pub fn usable(cfg: &ModelConfig) -> bool {
    !cfg.script.iter().any(|c| {
        matches!(
            c,
            ScriptedCommand::Operator {
                command: tally_core::OperatorCommand::PauseLaunches { host: Some(_) }
                    | tally_core::OperatorCommand::ResumeLaunches { host: Some(_) }
            }
        )
    })
}

fn signature(w: &World, h: HostId) -> u64 {
    let mut s = crate::graph::hasher();
    if let Some(hs) = w.hosts.get(usize::from(h.0)) {
        hs.agent.hash_without_host(&mut s);
        hs.lag.hash(&mut s);
        hs.partitioned.hash(&mut s);
    }
    for p in w.processes.iter().filter(|p| p.host == h) {
        (p.instance, p.booting_since, p.killed_at).hash(&mut s);
    }
    for (id, d, l) in w.manager.ledger_on(h) {
        (id, d.boot_seen_done, d.stop, l).hash(&mut s);
    }
    for m in w.network.iter().filter(|m| m.host() == h) {
        hash_without_host(m, &mut s);
    }
    s.finish()
}

/// The fingerprint of `w`'s class under host relabelling (see the module's
/// documentation), its two low bits clear like `graph::fingerprint`'s.
///
/// The manager's and each host's parts are hashed once per shared copy:
/// successors share the parts a step did not change (`World` keeps them
/// behind `Arc`s), and a per-thread memo keyed by that sharing finds them.
#[must_use]
pub fn orbit_fingerprint(w: &World) -> u64 {
    MEMO.with(|m| match m.try_borrow_mut() {
        Ok(mut memo) => memo.fingerprint(w),
        // Only if this were reentered: correct, just without the memo.
        Err(_) => Memo::default().fingerprint(w),
    })
}

/// What one manager contributes: a hash of all that belongs to no host,
/// and per host a hash of its instances (durable and ledger) and pause.
struct ManagerPart {
    hostless: u64,
    per_host: Vec<u64>,
    /// Some instance or pause names a host the world does not have.
    strays: bool,
}

/// Values computed from shared parts, kept with the `Arc`s they were
/// computed from (so a pointer seen again is the same unchanged value), in
/// `N` direct-mapped slots chosen by the pointer.
struct Shared<T, V, const N: usize> {
    slots: Vec<Option<(Arc<T>, V)>>,
}

impl<T, V, const N: usize> Default for Shared<T, V, N> {
    fn default() -> Self {
        Shared { slots: Vec::new() }
    }
}

impl<T, V: Clone, const N: usize> Shared<T, V, N> {
    /// The value for `key`, from its slot if `fresh` accepts it there, else
    /// computed by `make` and kept.
    fn get(&mut self, key: &Arc<T>, fresh: impl Fn(&V) -> bool, make: impl FnOnce() -> V) -> V {
        if self.slots.is_empty() {
            self.slots.resize_with(N, || None);
        }
        // Allocations are at least 16-byte aligned: skip the low bits.
        let i = ((Arc::as_ptr(key) as usize) >> 4).wrapping_mul(0x9E37_79B9) >> 8 & (N - 1);
        if let Some(Some((k, v))) = self.slots.get(i) {
            if Arc::ptr_eq(k, key) && fresh(v) {
                return v.clone();
            }
        }
        let v = make();
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some((Arc::clone(key), v.clone()));
        }
        v
    }
}

/// The per-thread memo of the fingerprint's parts, and scratch space.
#[derive(Default)]
struct Memo {
    managers: Shared<Manager, Arc<ManagerPart>, 64>,
    hosts: Shared<HostState, u64, 256>,
    messages: Shared<Message, u64, 1024>,
    locals: Vec<u64>,
    sig: Vec<ahash::AHasher>,
    counts: Vec<[u32; 2]>,
    sigs: Vec<u64>,
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::default();
}

impl Memo {
    fn manager(&mut self, m: &Arc<Manager>, n: usize) -> Arc<ManagerPart> {
        // The part depends on the host count too.
        self.managers.get(
            m,
            |part| part.per_host.len() == n,
            || Arc::new(manager_part(m, n)),
        )
    }

    fn host(&mut self, h: &Arc<HostState>) -> u64 {
        self.hosts.get(
            h,
            |_| true,
            || {
                let mut s = crate::graph::hasher();
                h.agent.hash_without_host(&mut s);
                h.lag.hash(&mut s);
                h.partitioned.hash(&mut s);
                s.finish()
            },
        )
    }

    fn message(&mut self, m: &Arc<Message>) -> u64 {
        self.messages.get(
            m,
            |_| true,
            || {
                let mut s = crate::graph::hasher();
                hash_without_host(m, &mut s);
                s.finish()
            },
        )
    }

    fn fingerprint(&mut self, w: &World) -> u64 {
        let n = w.hosts.len();
        // With a store, the zombie's ledger and the store's journal name
        // hosts too: such states are fingerprinted whole (no reduction).
        if w.ha.is_some() {
            return crate::graph::fingerprint(w);
        }
        let manager = self.manager(&w.manager, n);
        // Nothing the model builds names a host it lacks; if something did,
        // the signatures could not hold it: fingerprint that state whole.
        let stray = |h: HostId| usize::from(h.0) >= n;
        if manager.strays
            || w.processes.iter().any(|p| stray(p.host))
            || w.network.iter().any(|m| stray(m.host()))
        {
            return crate::graph::fingerprint(w);
        }
        let mut locals = std::mem::take(&mut self.locals);
        locals.clear();
        for h in &w.hosts {
            locals.push(self.host(h));
        }
        self.sig.clear();
        self.sig.extend((0..n).map(|_| crate::graph::hasher()));
        // Items per host in each section, hashed last so that sections
        // cannot run into each other.
        self.counts.clear();
        self.counts.resize(n, [0; 2]);
        for ((s, local), shared) in self.sig.iter_mut().zip(&locals).zip(&manager.per_host) {
            (local, shared).hash(s);
        }
        self.locals = locals;
        for p in &w.processes {
            let Process {
                host,
                instance,
                booting_since,
                killed_at,
            } = *p;
            if let Some(s) = at(&mut self.sig, &mut self.counts, host, 0) {
                (instance, booting_since, killed_at).hash(s);
            }
        }
        for m in &w.network {
            let v = self.message(m);
            if let Some(s) = at(&mut self.sig, &mut self.counts, m.host(), 1) {
                v.hash(s);
            }
        }
        self.sigs.clear();
        self.sigs
            .extend(self.sig.iter_mut().zip(&self.counts).map(|(s, c)| {
                c.hash(s);
                s.finish()
            }));
        self.sigs.sort_unstable();
        let mut out = crate::graph::hasher();
        // Destructured, so that a new field cannot be left out silently.
        let World {
            now,
            manager: _,
            ha: _,
            hosts: _,
            processes: _,
            network: _,
            faults_left,
            script_next,
            ghost,
        } = w;
        let Ghost {
            launches,
            boots,
            apps,
            last_failure,
            refused_apps,
            launched_high_water,
            generation_reused,
            expired_slots,
            last,
        } = ghost;
        (now, faults_left, script_next).hash(&mut out);
        (
            launches,
            boots,
            apps,
            last_failure,
            refused_apps,
            launched_high_water,
            generation_reused,
            expired_slots,
            last,
        )
            .hash(&mut out);
        manager.hostless.hash(&mut out);
        self.sigs.hash(&mut out);
        out.finish() & !3
    }
}

/// `m`'s part of the fingerprint of a world with `n` hosts.
fn manager_part(m: &Manager, n: usize) -> ManagerPart {
    let mut hostless = crate::graph::hasher();
    m.hash_without_hosts(&mut hostless);
    let mut sig: Vec<ahash::AHasher> = (0..n).map(|_| crate::graph::hasher()).collect();
    let mut counts: Vec<[u32; 2]> = vec![[0; 2]; n];
    for (id, d) in &m.durable().instances {
        let DurableInstance {
            host,
            boot_seen_done,
            stop,
        } = *d;
        if let Some(s) = at(&mut sig, &mut counts, host, 0) {
            (id, boot_seen_done, stop).hash(s);
        }
    }
    for (i, (s, c)) in sig.iter_mut().zip(&mut counts).enumerate() {
        let h = HostId(u16::try_from(i).unwrap_or(u16::MAX));
        for (id, d, l) in m.ledger_on(h) {
            let DurableInstance {
                host,
                boot_seen_done,
                stop,
            } = *d;
            // Whether the entry names its own list's host: only a broken
            // ledger's does not, and it must not look like a sound one.
            (id, boot_seen_done, stop, l, host == h).hash(s);
            c[1] += 1;
        }
        m.durable().paused_hosts.contains(&h).hash(s);
    }
    let stray = |h: &HostId| usize::from(h.0) >= n;
    let strays = m.durable().instances.values().any(|d| stray(&d.host))
        || m.durable().paused_hosts.iter().any(stray);
    ManagerPart {
        strays,
        hostless: hostless.finish(),
        per_host: sig
            .into_iter()
            .zip(&counts)
            .map(|(mut s, c)| {
                c.hash(&mut s);
                s.finish()
            })
            .collect(),
    }
}

/// Host `h`'s signature hasher, counting one more item of `section`.
fn at<'a, const N: usize>(
    sig: &'a mut [ahash::AHasher],
    counts: &mut [[u32; N]],
    h: HostId,
    section: usize,
) -> Option<&'a mut ahash::AHasher> {
    let i = usize::from(h.0);
    if let Some(c) = counts.get_mut(i).and_then(|c| c.get_mut(section)) {
        *c += 1;
    }
    sig.get_mut(i)
}

/// Hashes a message with its host id left out (destructured, so that a new
/// field cannot be forgotten).
fn hash_without_host<H: Hasher>(m: &Message, s: &mut H) {
    std::mem::discriminant(m).hash(s);
    match m {
        Message::Report(AgentReport {
            version,
            host: _,
            incarnation,
            sent_at,
            running,
            exited,
        }) => (version, incarnation, sent_at, running, exited).hash(s),
        Message::Reply(ManagerReply {
            version,
            host: _,
            incarnation,
            request_sent_at,
            renew,
            launch,
            stop,
            term,
        }) => (
            version,
            incarnation,
            request_sent_at,
            renew,
            launch,
            stop,
            term,
        )
            .hash(s),
    }
}

fn set_host(m: &mut Message, h: HostId) {
    match m {
        Message::Report(r) => r.host = h,
        Message::Reply(r) => r.host = h,
    }
}

/// The canonical representative of `w`'s class under host relabelling:
/// `w` itself when its hosts are already in canonical order (the common
/// case, and then nothing is cloned), else `w` relabelled in place.
#[must_use]
pub fn representative(mut w: World) -> World {
    if w.ha.is_some() {
        return w;
    }
    let n = w.hosts.len();
    let mut order: Vec<(u64, usize)> = (0..n)
        .map(|i| {
            (
                signature(&w, HostId(u16::try_from(i).unwrap_or(u16::MAX))),
                i,
            )
        })
        .collect();
    order.sort_unstable();
    if order.iter().enumerate().all(|(new, (_, old))| new == *old) {
        return w;
    }
    // new_of[old] = new position.
    let mut new_of = vec![0u16; n];
    for (new, (_, old)) in order.iter().enumerate() {
        if let Some(slot) = new_of.get_mut(*old) {
            *slot = u16::try_from(new).unwrap_or(u16::MAX);
        }
    }
    let rename = |h: HostId| HostId(new_of.get(usize::from(h.0)).copied().unwrap_or(h.0));
    std::sync::Arc::make_mut(&mut w.manager).rename_hosts(rename);
    let mut old_hosts: Vec<Option<_>> =
        std::mem::take(&mut w.hosts).into_iter().map(Some).collect();
    w.hosts = order
        .iter()
        .filter_map(|(_, old)| old_hosts.get_mut(*old).and_then(Option::take))
        .collect();
    for (i, hs) in w.hosts.iter_mut().enumerate() {
        std::sync::Arc::make_mut(hs)
            .agent
            .rename_host(HostId(u16::try_from(i).unwrap_or(u16::MAX)));
    }
    for p in &mut w.processes {
        p.host = rename(p.host);
    }
    w.processes.sort_unstable();
    for m in &mut w.network {
        let h = rename(m.host());
        set_host(std::sync::Arc::make_mut(m), h);
    }
    w.network.sort_unstable();
    w
}
