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
//! A scripted command that names a host breaks the symmetry; `usable` says so.

use std::hash::{Hash, Hasher};
use tally_core::message::{AgentReport, ManagerReply};
use tally_core::{HostId, Message};
use tally_model::config::ScriptedCommand;
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
    for (id, d, l) in w.manager.ledger().filter(|(_, d, _)| d.host == h) {
        (id, d.boot_seen_done, d.stop, l).hash(&mut s);
    }
    for m in w.network.iter().filter(|m| m.host() == h) {
        hash_without_host(m, &mut s);
    }
    s.finish()
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
        }) => (version, incarnation, request_sent_at, renew, launch, stop).hash(s),
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
    w.manager.rename_hosts(rename);
    let mut old_hosts: Vec<Option<_>> =
        std::mem::take(&mut w.hosts).into_iter().map(Some).collect();
    w.hosts = order
        .iter()
        .filter_map(|(_, old)| old_hosts.get_mut(*old).and_then(Option::take))
        .collect();
    for (i, hs) in w.hosts.iter_mut().enumerate() {
        hs.agent
            .rename_host(HostId(u16::try_from(i).unwrap_or(u16::MAX)));
    }
    for p in &mut w.processes {
        p.host = rename(p.host);
    }
    w.processes.sort_unstable();
    for m in &mut w.network {
        let h = rename(m.host());
        set_host(m, h);
    }
    w.network.sort_unstable();
    w
}
