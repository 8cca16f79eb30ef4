//! The host agent: runs the instances the manager launched, only while it
//! holds an unexpired lease for each, and reports its inventory.
//!
//! Sans-IO like the manager. Its clock is its own: leases are measured from
//! the agent's send time of the request that a grant answers, so they end
//! before the manager's view of them, whatever the network delay.

use crate::config::{Config, Mutation, limits};
use crate::ids::{Generation, HostId, Incarnation, InstanceId, SlotId, Term, Tick};
use crate::message::{
    AgentReport, ExitOutcome, Exited, ManagerReply, PROTOCOL_VERSION, RunPhase, Running,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One instance on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Local {
    /// Booting, up, or being killed.
    pub phase: RunPhase,
    /// Agent time at which its lease ends; killed then (self-fencing).
    pub lease_until: Tick,
}

/// The instances on one host, sorted by id: a flat `Vec` (a host holds at
/// most [`limits::AGENT_INSTANCES_MAX`], typically about a hundred, and every
/// reply walks them in order). Reads like the `BTreeMap` it replaces:
/// `get`, `iter`, `keys`, `values`, `len`; it serializes, hashes,
/// compares and prints exactly as that map did.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Instances {
    entries: Vec<(InstanceId, Local)>,
}

impl Instances {
    /// How many.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// None at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, id: &InstanceId) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(id))
    }

    /// The instance `id`, if on this host.
    #[must_use]
    pub fn get(&self, id: &InstanceId) -> Option<&Local> {
        self.position(id)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, l)| l)
    }

    fn get_mut(&mut self, id: &InstanceId) -> Option<&mut Local> {
        self.position(id)
            .ok()
            .and_then(|i| self.entries.get_mut(i))
            .map(|(_, l)| l)
    }

    /// Whether `id` is on this host.
    #[must_use]
    pub fn contains_key(&self, id: &InstanceId) -> bool {
        self.position(id).is_ok()
    }

    /// In id order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&InstanceId, &Local)> + ExactSizeIterator {
        self.entries.iter().map(|(k, l)| (k, l))
    }

    /// The ids, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &InstanceId> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The instances, in id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Local> + ExactSizeIterator {
        self.entries.iter().map(|(_, l)| l)
    }

    /// The entries as a sorted slice.
    #[must_use]
    pub fn as_slice(&self) -> &[(InstanceId, Local)] {
        &self.entries
    }

    fn insert(&mut self, id: InstanceId, local: Local) {
        match self.position(&id) {
            Ok(i) => {
                if let Some(e) = self.entries.get_mut(i) {
                    e.1 = local;
                }
            }
            Err(i) => self.entries.insert(i, (id, local)),
        }
    }

    fn remove(&mut self, id: &InstanceId) -> Option<Local> {
        let i = self.position(id).ok()?;
        Some(self.entries.remove(i).1)
    }
}

impl<'a> IntoIterator for &'a Instances {
    type Item = (&'a InstanceId, &'a Local);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (InstanceId, Local)>,
        fn(&'a (InstanceId, Local)) -> (&'a InstanceId, &'a Local),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, l)| (k, l))
    }
}

impl fmt::Debug for Instances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Instances {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<InstanceId, Local>::deserialize(d)?;
        Ok(Instances {
            entries: map.into_iter().collect(),
        })
    }
}

/// An input to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "input")]
pub enum AgentInput {
    /// Time passed: fence expired leases, report when due.
    Tick,
    /// A reply from the manager arrived.
    ReplyReceived(ManagerReply),
    /// A process finished booting.
    ProcessBooted {
        /// The instance.
        instance: InstanceId,
    },
    /// A process exited, on its own or because it was killed.
    ProcessExited {
        /// The instance.
        instance: InstanceId,
    },
}

/// Something worth counting that changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "note")]
pub enum AgentNote {
    /// A reply for another incarnation, or from the future: leases and
    /// launches in it were ignored.
    StaleReply,
    /// A launch at or below the slot's highest generation was refused.
    StaleLaunch {
        /// The instance.
        instance: InstanceId,
    },
    /// A launch whose first lease was too short to boot was refused.
    LeaseTooShort {
        /// The instance.
        instance: InstanceId,
    },
    /// A lease ran out: the instance is being killed.
    SelfFenced {
        /// The instance.
        instance: InstanceId,
    },
    /// A launch was refused because the agent is at its instance limit.
    AtCapacity,
    /// A message for another host.
    Misrouted,
    /// A reply from a leader of a lower term than one already heard: a
    /// deposed leader's; nothing in it was done.
    StaleTerm {
        /// The reply's term.
        term: Term,
    },
}

/// What the agent asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "effect")]
pub enum AgentEffect {
    /// Start the process, with `TALLY_GENERATION` set to its generation.
    StartProcess {
        /// The instance.
        instance: InstanceId,
    },
    /// Kill the process (grace period, then SIGKILL); report the exit back.
    KillProcess {
        /// The instance.
        instance: InstanceId,
    },
    /// Send a report to the manager.
    Send(AgentReport),
    /// Count this.
    Note(AgentNote),
}

/// The agent of one host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Agent {
    host: HostId,
    incarnation: Incarnation,
    next_report_at: Tick,
    instances: Instances,
    /// Highest generation seen per slot: launches at or below are refused.
    highest: BTreeMap<SlotId, Generation>,
    exits: Vec<Exited>,
    /// The highest leader term heard: replies of a lower term are refused
    /// (DESIGN.md, HA rule 4). Forgotten on a crash, as the generations
    /// are: the incarnation already refuses every older reply.
    term: Term,
}

impl Agent {
    /// A fresh agent: a new host, or a crashed one back with the next
    /// incarnation (the one thing it persisted). It remembers no generation,
    /// which is safe because every launch must answer a request of this
    /// incarnation.
    #[must_use]
    pub fn new(host: HostId, incarnation: Incarnation, now: Tick) -> Agent {
        Agent {
            host,
            incarnation,
            next_report_at: now,
            instances: Instances::default(),
            highest: BTreeMap::new(),
            exits: Vec::new(),
            term: Term(0),
        }
    }

    /// Applies one input at `now` (agent clock). Total: every input is a fact.
    pub fn step(&mut self, cfg: &Config, now: Tick, input: AgentInput, out: &mut Vec<AgentEffect>) {
        match input {
            AgentInput::Tick => self.on_tick(cfg, now, out),
            AgentInput::ReplyReceived(reply) => self.on_reply(cfg, now, &reply, out),
            AgentInput::ProcessBooted { instance } => {
                if let Some(l) = self.instances.get_mut(&instance) {
                    if l.phase == RunPhase::Booting {
                        l.phase = RunPhase::Up;
                    }
                }
            }
            AgentInput::ProcessExited { instance } => {
                if let Some(l) = self.instances.remove(&instance) {
                    let outcome = match l.phase {
                        RunPhase::Booting => ExitOutcome::BootFailed,
                        RunPhase::Up => ExitOutcome::Crashed,
                        RunPhase::Killing => ExitOutcome::Killed,
                    };
                    self.push_exit(instance, outcome);
                }
            }
        }
        debug_assert!(
            !cfg.mutations.is_empty() || crate::invariants::check_agent(self, cfg).is_ok(),
            "agent invariant broken: {:?}",
            crate::invariants::check_agent(self, cfg)
        );
    }

    /// This agent's host.
    #[must_use]
    pub fn host(&self) -> HostId {
        self.host
    }

    /// This agent's incarnation.
    #[must_use]
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The highest leader term this agent has heard.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Instances on this host.
    #[must_use]
    pub fn instances(&self) -> &Instances {
        &self.instances
    }

    /// The earliest agent time at which a `Tick` can change anything: the
    /// next report, or the first lease to run out of an instance not
    /// already being killed. Ticks before it are no-ops.
    #[must_use]
    pub fn next_wake(&self) -> Tick {
        self.instances
            .values()
            .filter(|l| l.phase != RunPhase::Killing)
            .fold(self.next_report_at, |m, l| m.min(l.lease_until))
    }

    /// Highest generation seen for `slot`.
    #[must_use]
    pub fn highest(&self, slot: SlotId) -> Option<Generation> {
        self.highest.get(&slot).copied()
    }

    /// Exit notices waiting for the next report.
    #[must_use]
    pub fn pending_exits(&self) -> &[Exited] {
        &self.exits
    }

    /// When the next report is due.
    #[must_use]
    pub fn next_report_at(&self) -> Tick {
        self.next_report_at
    }

    fn push_exit(&mut self, instance: InstanceId, outcome: ExitOutcome) {
        // Bounded: past the limit the oldest notice is dropped, which is safe
        // (the manager then waits for lease expiry instead).
        if self.exits.len() >= limits::AGENT_EXITS_MAX {
            self.exits.remove(0);
        }
        self.exits.push(Exited { instance, outcome });
    }

    fn kill(&mut self, instance: InstanceId, out: &mut Vec<AgentEffect>) {
        if let Some(l) = self.instances.get_mut(&instance) {
            if l.phase != RunPhase::Killing {
                l.phase = RunPhase::Killing;
                out.push(AgentEffect::KillProcess { instance });
            }
        }
    }

    fn on_tick(&mut self, cfg: &Config, now: Tick, out: &mut Vec<AgentEffect>) {
        if !cfg.mutations.has(Mutation::NoSelfFencing) {
            // One pass in id order: note, then kill, for each expired lease.
            for (instance, l) in &mut self.instances.entries {
                if l.phase != RunPhase::Killing && l.lease_until <= now {
                    out.push(AgentEffect::Note(AgentNote::SelfFenced {
                        instance: *instance,
                    }));
                    l.phase = RunPhase::Killing;
                    out.push(AgentEffect::KillProcess {
                        instance: *instance,
                    });
                }
            }
        }
        if now >= self.next_report_at {
            self.next_report_at = now.plus(cfg.timing.report_interval_ticks);
            out.push(AgentEffect::Send(self.report(now)));
        }
    }

    /// The report this agent would send now (and forget its exit notices).
    fn report(&mut self, now: Tick) -> AgentReport {
        let running = self
            .instances
            .iter()
            .take(limits::REPORT_INSTANCES_MAX)
            .map(|(id, l)| Running {
                instance: *id,
                phase: l.phase,
            })
            .collect();
        AgentReport {
            version: PROTOCOL_VERSION,
            host: self.host,
            incarnation: self.incarnation,
            sent_at: now,
            running,
            exited: std::mem::take(&mut self.exits),
        }
    }

    fn on_reply(
        &mut self,
        cfg: &Config,
        now: Tick,
        reply: &ManagerReply,
        out: &mut Vec<AgentEffect>,
    ) {
        if reply.host != self.host || reply.version != PROTOCOL_VERSION {
            out.push(AgentEffect::Note(AgentNote::Misrouted));
            return;
        }
        if reply.term < self.term {
            out.push(AgentEffect::Note(AgentNote::StaleTerm { term: reply.term }));
            return;
        }
        self.term = reply.term;
        for instance in &reply.stop {
            self.on_stop(cfg, *instance, out);
        }
        // Rule 4: only a reply to a request of this incarnation, sent no
        // later than now, may renew or start anything.
        let answers_mine = reply.incarnation == self.incarnation && reply.request_sent_at <= now;
        if !answers_mine {
            out.push(AgentEffect::Note(AgentNote::StaleReply));
            return;
        }
        let lease_until = reply.request_sent_at.plus(cfg.timing.lease_ticks);
        let renew = |l: &mut Local| {
            if l.phase != RunPhase::Killing {
                l.lease_until = l.lease_until.max(lease_until);
            }
        };
        if reply.renew.is_sorted() {
            // One walk over both sorted lists (the manager sends it sorted).
            let mut mine = self.instances.entries.iter_mut().peekable();
            for instance in &reply.renew {
                while mine.next_if(|(id, _)| id < instance).is_some() {}
                if let Some((_, l)) = mine.next_if(|(id, _)| id == instance) {
                    renew(l);
                }
            }
        } else {
            for instance in &reply.renew {
                if let Some(l) = self.instances.get_mut(instance) {
                    renew(l);
                }
            }
        }
        for instance in &reply.launch {
            self.on_launch(cfg, now, *instance, lease_until, out);
        }
    }

    fn on_stop(&mut self, cfg: &Config, instance: InstanceId, out: &mut Vec<AgentEffect>) {
        if self.instances.contains_key(&instance) {
            self.kill(instance, out);
            return;
        }
        // Shortcut 2: a stop leaves a tombstone before it is confirmed.
        if !cfg.mutations.has(Mutation::StopWithoutTombstone) {
            self.raise_highest(instance);
        }
        self.push_exit(instance, ExitOutcome::NeverStarted);
    }

    fn raise_highest(&mut self, instance: InstanceId) {
        let h = self.highest.entry(instance.slot).or_default();
        *h = (*h).max(instance.generation);
    }

    fn on_launch(
        &mut self,
        cfg: &Config,
        now: Tick,
        instance: InstanceId,
        lease_from_request: Tick,
        out: &mut Vec<AgentEffect>,
    ) {
        let highest = self.highest(instance.slot);
        let stale = if cfg.mutations.has(Mutation::TrustLateMessages) {
            false
        } else if cfg.mutations.has(Mutation::RefuseOnlyOlder) {
            highest.is_some_and(|h| instance.generation < h)
                || self.instances.contains_key(&instance)
        } else {
            // Shortcut 1: start a generation at most once.
            highest.is_some_and(|h| instance.generation <= h)
        };
        if stale {
            out.push(AgentEffect::Note(AgentNote::StaleLaunch { instance }));
            return;
        }
        if self.instances.len() >= limits::AGENT_INSTANCES_MAX {
            out.push(AgentEffect::Note(AgentNote::AtCapacity));
            return;
        }
        self.raise_highest(instance);
        let lease_until = if cfg.mutations.has(Mutation::LeaseFromReceipt) {
            now.plus(cfg.timing.lease_ticks)
        } else {
            lease_from_request
        };
        // The first renewal needs one report interval plus its round trip,
        // and the lease is fenced at the tick it ends, before that tick's
        // report: so strictly more than that must remain.
        if lease_until.since(now) <= cfg.first_lease_min_ticks() {
            out.push(AgentEffect::Note(AgentNote::LeaseTooShort { instance }));
            self.push_exit(instance, ExitOutcome::NeverStarted);
            return;
        }
        self.instances.insert(
            instance,
            Local {
                phase: RunPhase::Booting,
                lease_until,
            },
        );
        out.push(AgentEffect::StartProcess { instance });
    }
}

impl Agent {
    /// This agent under another host id (see `Manager::rename_hosts`).
    pub fn rename_host(&mut self, host: HostId) {
        self.host = host;
    }

    /// Hashes everything but the host id: what a checker's host symmetry
    /// compares hosts by, without cloning the agent to erase its name.
    pub fn hash_without_host<H: std::hash::Hasher>(&self, state: &mut H) {
        use std::hash::Hash;
        // Destructured, so that a new field cannot be left out silently.
        let Agent {
            host: _,
            incarnation,
            next_report_at,
            instances,
            highest,
            exits,
            term,
        } = self;
        (incarnation, next_report_at, instances, highest, exits, term).hash(state);
    }
}
