//! More than one manager (DESIGN.md, "More than one manager"): the store
//! that holds the leader key and the journal, and the state of each
//! manager process. Used when the core's configuration has `leadership`.
//!
//! The store is etcd as `../shared/ETCD.md` describes it, reduced to what
//! the rules rely on: a leader key created with a lease at a new revision
//! (the term), kept alive by the holder, gone once the lease lapses
//! (measured in real time by the store); an append that commits only while
//! the key has the appender's term (unless `unfenced-append`); a
//! linearizable read of the whole journal after a takeover.
//!
//! Two manager processes, 0 and 1. The one that took the key last runs the
//! core in `World::manager` (the *leader*, whose ledger the properties
//! read); the other is a standby, or runs a *zombie*: an old leader's core
//! that does not yet know it was deposed (it learns at its next keep-alive
//! or append). A manager may pause (not scheduled while time passes, as
//! under a GC pause or SIGSTOP), also between processing an input and
//! sending its effects, and its clock may drift like an agent's.

use serde::Serialize;
use std::sync::Arc;
use tally_core::{Durable, Effect, Manager, Term, Tick};

/// A manager process: 0 or 1.
pub type ManagerIdx = u8;

/// The store and the manager processes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ha {
    /// The latest term the store handed out (its revision counter).
    pub term: Term,
    /// The process holding the live leader key, if any.
    pub holder: Option<ManagerIdx>,
    /// Real time at which the key lapses unless kept alive.
    pub key_until: Tick,
    /// The journal in the store when it differs from the durable state of
    /// `World::manager` (that core is ahead of the store while its effects
    /// wait behind a pause, or a zombie appended without the fence);
    /// `None` when they are equal, so equal states stay equal.
    pub journal: Option<Arc<Durable>>,
    /// The process whose core is `World::manager`.
    pub leader: ManagerIdx,
    /// Whether that process still runs it (false once it crashed or found
    /// itself deposed: `World::manager` then keeps its last state).
    pub leader_running: bool,
    /// The other process's core, when it is a deposed leader that does not
    /// know it yet.
    pub zombie: Option<Arc<Manager>>,
    /// Each process's scheduling and clock.
    pub procs: [Proc; 2],
}

/// What the environment does to one manager process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Proc {
    /// Not scheduled: it takes no input and keeps nothing alive.
    pub paused: bool,
    /// Its keep-alive stream is broken: the store hears no keep-alive from
    /// it and it hears nothing back, while it goes on acting.
    pub cut: bool,
    /// Ticks its clock is behind real time (drift).
    pub lag: u8,
    /// Effects of an input it processed just before it paused: they reach
    /// the store and the agents when it resumes (appends fenced then).
    pub pending: Option<Arc<Vec<Effect>>>,
}

impl Ha {
    /// Process 0 leads from the start, in term 1, kept alive from tick 0.
    #[must_use]
    pub fn initial(lease_ticks: u64) -> Ha {
        Ha {
            term: Term(1),
            holder: Some(0),
            key_until: Tick(lease_ticks),
            journal: None,
            leader: 0,
            leader_running: true,
            zombie: None,
            procs: [Proc::default(), Proc::default()],
        }
    }

    /// The other process.
    #[must_use]
    pub fn other(p: ManagerIdx) -> ManagerIdx {
        1 - p.min(1)
    }

    /// The process's scheduling and clock.
    #[must_use]
    pub fn proc(&self, p: ManagerIdx) -> &Proc {
        let [zero, one] = &self.procs;
        if p == 0 { zero } else { one }
    }

    /// The same, to change.
    pub fn proc_mut(&mut self, p: ManagerIdx) -> &mut Proc {
        let [zero, one] = &mut self.procs;
        if p == 0 { zero } else { one }
    }

    /// Whether `p` runs a core (the leader's or a zombie's).
    #[must_use]
    pub fn runs_core(&self, p: ManagerIdx) -> bool {
        if p == self.leader {
            self.leader_running
        } else {
            self.zombie.is_some()
        }
    }

    /// Whether `p` may take an input now: it runs a core and is not paused.
    #[must_use]
    pub fn schedulable(&self, p: ManagerIdx) -> bool {
        self.runs_core(p) && !self.proc(p).paused
    }

    /// Whether `p` is a standby that may campaign: no core, not paused.
    #[must_use]
    pub fn standby(&self, p: ManagerIdx) -> bool {
        !self.runs_core(p) && !self.proc(p).paused
    }

    /// Paused processes and broken keep-alive streams (each counts as a
    /// fault until it ends).
    #[must_use]
    pub fn disturbed(&self) -> usize {
        self.procs
            .iter()
            .map(|p| usize::from(p.paused) + usize::from(p.cut))
            .sum()
    }
}
