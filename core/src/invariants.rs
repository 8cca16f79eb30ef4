//! Invariants of each machine, one definition each.
//!
//! Unit tests, proptest, the simulator, the model checker's `always`
//! properties and a `debug_assert!` at the end of every `step` all call these.

use crate::agent::Agent;
use crate::config::Config;
use crate::ids::{AppId, Generation, HostId, InstanceId, SlotId};
use crate::journal::StopReason;
use crate::manager::{Manager, Phase};
use crate::message::RunPhase;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A broken invariant: always a bug in Tally, never bad input.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum Violation {
    /// The durable and volatile halves of the ledger disagree.
    #[error("ledger halves disagree about {instance}")]
    LedgerHalvesDisagree {
        /// The instance.
        instance: InstanceId,
    },
    /// A derived index differs from its recomputation.
    #[error("derived index `{index}` is out of date")]
    IndexStale {
        /// Which index.
        index: &'static str,
    },
    /// An instance above its slot's high-water generation.
    #[error("{instance} is above its slot's high water {high_water:?}")]
    AboveHighWater {
        /// The instance.
        instance: InstanceId,
        /// The slot's high water.
        high_water: Option<Generation>,
    },
    /// A singleton slot with two instances in the ledger.
    #[error("singleton slot {slot} has {count} instances in the ledger")]
    SingletonTwice {
        /// The slot.
        slot: SlotId,
        /// How many.
        count: usize,
    },
    /// More unconfirmed boots on a host than `K`.
    #[error("{host} has {boots} unconfirmed boots, admission allows {max}")]
    AdmissionExceeded {
        /// The host.
        host: HostId,
        /// Unconfirmed boots.
        boots: usize,
        /// `K`.
        max: u16,
    },
    /// Tokens outside `[0, B]`.
    #[error("app {app:?}'s budget holds {tokens_milli} milli-tokens, above capacity {capacity}")]
    BudgetOverCapacity {
        /// The app.
        app: AppId,
        /// Tokens held.
        tokens_milli: u32,
        /// `B`.
        capacity: u32,
    },
    /// Not one budget and one breaker per app, or the fleet breaker counts
    /// an app twice or past its threshold.
    #[error(
        "{budgets} budgets and {breakers} breakers for {apps} apps, fleet breaker failing {failing:?}"
    )]
    AppsOutOfStep {
        /// Apps configured.
        apps: usize,
        /// Budgets held.
        budgets: usize,
        /// Breakers held.
        breakers: usize,
        /// Apps the fleet breaker counts.
        failing: Vec<AppId>,
    },
    /// The payable types the launch loop jumps by are not what the budgets
    /// and breakers say.
    #[error("the manager's payable types are stale")]
    PayableTypesStale,
    /// A user stop survives lockdown.
    #[error("lockdown is on but {instance} is stopping at a user's request")]
    UserStopUnderLockdown {
        /// The instance.
        instance: InstanceId,
    },
    /// An agent runs a generation above what it recorded as highest.
    #[error("agent runs {instance} above its highest generation")]
    AgentAboveHighest {
        /// The instance.
        instance: InstanceId,
    },
    /// An agent holds more than its limits.
    #[error("agent holds {count} entries of `{what}`, above the limit")]
    AgentOverLimit {
        /// Which collection.
        what: &'static str,
        /// How many.
        count: usize,
    },
}

/// Every invariant of the manager, first violation first.
pub fn check_manager(m: &Manager, cfg: &Config) -> Result<(), Violation> {
    ledger_consistent(m, cfg)?;
    generations_below_high_water(m)?;
    singleton_at_most_one_in_ledger(m, cfg)?;
    admission_within_k(m, cfg)?;
    budget_within_capacity(m, cfg)?;
    lockdown_holds_no_user_stop(m)
}

/// The two halves of the ledger name the same instances on the same hosts,
/// and every derived index equals its recomputation (one check, owned by
/// the ledger).
pub fn ledger_consistent(m: &Manager, cfg: &Config) -> Result<(), Violation> {
    m.check_ledger(cfg)
}

/// Generations grow strictly per slot: no instance above its slot's high
/// water, so the next launch always gets a fresh one.
pub fn generations_below_high_water(m: &Manager) -> Result<(), Violation> {
    // Both in slot order: one walk instead of a lookup per instance.
    let mut marks = m.durable().high_water.iter().peekable();
    for id in m.durable().instances.keys() {
        while marks.next_if(|(s, _)| **s < id.slot).is_some() {}
        let high_water = marks
            .peek()
            .filter(|(s, _)| **s == id.slot)
            .map(|(_, g)| **g);
        if high_water.is_none_or(|h| id.generation > h) {
            return Err(Violation::AboveHighWater {
                instance: *id,
                high_water,
            });
        }
    }
    Ok(())
}

/// No singleton slot with two instances that are not `Stopped` (rule 3).
pub fn singleton_at_most_one_in_ledger(m: &Manager, cfg: &Config) -> Result<(), Violation> {
    let mut last: Option<(SlotId, usize)> = None;
    for id in m.durable().instances.keys() {
        if !cfg.is_singleton(id.slot.process_type) {
            continue;
        }
        let count = match last {
            Some((slot, n)) if slot == id.slot => n + 1,
            _ => 1,
        };
        if count > 1 {
            return Err(Violation::SingletonTwice {
                slot: id.slot,
                count,
            });
        }
        last = Some((id.slot, count));
    }
    Ok(())
}

/// No host has more than `K` unconfirmed boots in the ledger.
pub fn admission_within_k(m: &Manager, cfg: &Config) -> Result<(), Violation> {
    let mut hosts: Vec<HostId> = m.durable().instances.values().map(|d| d.host).collect();
    hosts.sort_unstable();
    hosts.dedup();
    for host in hosts {
        let boots = m.boots_unconfirmed_shipped(host);
        if boots > usize::from(cfg.boots_in_flight_max) {
            return Err(Violation::AdmissionExceeded {
                host,
                boots,
                max: cfg.boots_in_flight_max,
            });
        }
    }
    Ok(())
}

/// Every app's tokens within `[0, B]`; one budget and one breaker per
/// app; the fleet breaker counts each app once, and fewer than trip it.
pub fn budget_within_capacity(m: &Manager, cfg: &Config) -> Result<(), Violation> {
    let d = m.durable();
    for (i, b) in d.budgets.iter().enumerate() {
        if !b.within_capacity(cfg) {
            return Err(Violation::BudgetOverCapacity {
                app: AppId(u16::try_from(i).unwrap_or(u16::MAX)),
                tokens_milli: b.tokens_milli,
                capacity: cfg.budget.capacity,
            });
        }
    }
    let apps = m.app_count();
    let failing = d.fleet_breaker.failing();
    // The mutation counts failures, so an app may appear more than once.
    let counted_once = cfg
        .mutations
        .has(crate::config::Mutation::BreakerCountsOneApp)
        || failing.is_sorted_by(|a, b| a < b);
    if d.budgets.len() != apps
        || d.breakers.len() != apps
        || !counted_once
        || failing.len() >= cfg.fleet_breaker_threshold_of(apps)
        || failing.iter().any(|a| a.index() >= apps)
    {
        return Err(Violation::AppsOutOfStep {
            apps,
            budgets: d.budgets.len(),
            breakers: d.breakers.len(),
            failing: failing.to_vec(),
        });
    }
    if !m.payable_fresh(cfg) {
        return Err(Violation::PayableTypesStale);
    }
    Ok(())
}

/// While lockdown is on, no instance is stopping at a user's request (S5).
pub fn lockdown_holds_no_user_stop(m: &Manager) -> Result<(), Violation> {
    if !m.lockdown() {
        return Ok(());
    }
    for (instance, _, _) in m.ledger() {
        if m.phase(instance) == Some(Phase::Stopping(StopReason::UserRequested)) {
            return Err(Violation::UserStopUnderLockdown { instance });
        }
    }
    Ok(())
}

/// Every invariant of an agent.
pub fn check_agent(a: &Agent, cfg: &Config) -> Result<(), Violation> {
    let trusting = cfg
        .mutations
        .has(crate::config::Mutation::TrustLateMessages);
    for (id, l) in a.instances() {
        let ok = a.highest(id.slot).is_some_and(|h| id.generation <= h);
        if !ok && !trusting {
            return Err(Violation::AgentAboveHighest { instance: *id });
        }
        let _ = l.phase == RunPhase::Killing;
    }
    if a.instances().len() > crate::config::limits::AGENT_INSTANCES_MAX {
        return Err(Violation::AgentOverLimit {
            what: "instances",
            count: a.instances().len(),
        });
    }
    if a.pending_exits().len() > crate::config::limits::AGENT_EXITS_MAX {
        return Err(Violation::AgentOverLimit {
            what: "exits",
            count: a.pending_exits().len(),
        });
    }
    Ok(())
}
