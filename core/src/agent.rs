//! The host agent: runs the instances the manager launched, only while it
//! holds an unexpired lease for each, and reports its inventory.
//!
//! Sans-IO like the manager. Its clock is its own: leases are measured from
//! the agent's send time of the request that a grant answers, so they end
//! before the manager's view of them, whatever the network delay.

use crate::config::{Config, Mutation, limits};
use crate::ids::{Generation, HostId, Incarnation, InstanceId, SlotId, Tick};
use crate::message::{
    AgentReport, ExitOutcome, Exited, ManagerReply, PROTOCOL_VERSION, RunPhase, Running,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One instance on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Local {
    /// Booting, up, or being killed.
    pub phase: RunPhase,
    /// Agent time at which its lease ends; killed then (self-fencing).
    pub lease_until: Tick,
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
    instances: BTreeMap<InstanceId, Local>,
    /// Highest generation seen per slot: launches at or below are refused.
    highest: BTreeMap<SlotId, Generation>,
    exits: Vec<Exited>,
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
            instances: BTreeMap::new(),
            highest: BTreeMap::new(),
            exits: Vec::new(),
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

    /// Instances on this host.
    #[must_use]
    pub fn instances(&self) -> &BTreeMap<InstanceId, Local> {
        &self.instances
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
            let expired: Vec<InstanceId> = self
                .instances
                .iter()
                .filter(|(_, l)| l.phase != RunPhase::Killing && l.lease_until <= now)
                .map(|(id, _)| *id)
                .collect();
            for instance in expired {
                out.push(AgentEffect::Note(AgentNote::SelfFenced { instance }));
                self.kill(instance, out);
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
            let mut mine = self.instances.iter_mut().peekable();
            for instance in &reply.renew {
                while mine.next_if(|(id, _)| *id < instance).is_some() {}
                if let Some((_, l)) = mine.next_if(|(id, _)| *id == instance) {
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
}
