//! The properties Tally's model checker proves, each defined once, over
//! ground truth and the core's invariant functions.

use std::collections::BTreeMap;
use tally_core::{AppId, SlotId, TypeId, invariants, launch_bound};
use tally_model::world::witness;
use tally_model::{ModelConfig, World};

/// Whether a property must hold everywhere, somewhere, or eventually.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Holds in every reachable state.
    Always,
    /// Holds in some reachable state (non-vacuity).
    Sometimes,
    /// From every calm state, convergence is inevitable (own graph check).
    Liveness,
}

/// One property: a name and a predicate over a state.
#[derive(Clone, Copy)]
pub struct PropertyDef {
    /// The name shown in reports (stable: tests and traces use it).
    pub name: &'static str,
    /// What it guards.
    pub kind: Kind,
    /// The predicate.
    pub holds: fn(&ModelConfig, &World) -> bool,
    /// One line for the report and the Explorer.
    pub explanation: &'static str,
}

/// S1: at most one process (booting or up) per singleton slot, anywhere.
pub fn s1_singleton(cfg: &ModelConfig, w: &World) -> bool {
    let mut seen: Vec<SlotId> = Vec::new();
    for p in &w.processes {
        if cfg.core.is_singleton(p.instance.slot.process_type) {
            if seen.contains(&p.instance.slot) {
                return false;
            }
            seen.push(p.instance.slot);
        }
    }
    true
}

/// S2: every running process is in the ledger, not stopped, on the host the
/// ledger names.
pub fn s2_no_phantom(_cfg: &ModelConfig, w: &World) -> bool {
    w.processes
        .iter()
        .all(|p| w.manager.host_of(p.instance) == Some(p.host))
}

/// S3: launches never exceed the core's launch bound, for the fleet and
/// for each app.
pub fn s3_launch_bound(cfg: &ModelConfig, w: &World) -> bool {
    let fleet = u64::from(w.ghost.launches) <= launch_bound(&cfg.core, w.launch_bound_inputs(cfg));
    fleet
        && (0..w.manager.app_count()).zip(&w.ghost.apps).all(|(a, g)| {
            let app = AppId(u16::try_from(a).unwrap_or(u16::MAX));
            let inputs = w.launch_bound_inputs_of_app(cfg, app);
            u64::from(g.launches) <= launch_bound(&cfg.core, inputs)
        })
}

/// S7: apps are isolated (DESIGN.md, "Apps are isolated"). A relaunch of
/// an app is refused by the budget only once that app itself has spent
/// `B` relaunches (its bucket started full and only its own relaunches
/// take tokens from it), and the fleet breaker trips only when at least two
/// apps have had a boot failure within the last window: no app is held
/// back by another's failures alone.
pub fn s7_apps_isolated(cfg: &ModelConfig, w: &World) -> bool {
    let g = &w.ghost;
    let capacity = u16::try_from(cfg.core.budget.capacity).unwrap_or(u16::MAX);
    let refusals_earned = g
        .apps
        .iter()
        .enumerate()
        .all(|(a, app)| g.refused_apps & (1 << a) == 0 || app.relaunches >= capacity);
    let window = cfg.core.breaker.window_ticks;
    let recent = g
        .last_failure
        .iter()
        .filter(|t| t.is_some_and(|t| w.now.since(t) < window))
        .count();
    let spread = g.last & witness::FLEET_BREAKER_TRIPPED == 0 || recent >= 2;
    refusals_earned && spread
}

/// S4: no host has more than `K` processes booting, in ground truth.
pub fn s4_admission(cfg: &ModelConfig, w: &World) -> bool {
    let mut per_host: BTreeMap<u16, u16> = BTreeMap::new();
    for p in w.processes.iter().filter(|p| p.booting_since.is_some()) {
        *per_host.entry(p.host.0).or_default() += 1;
    }
    per_host
        .values()
        .all(|n| *n <= cfg.core.boots_in_flight_max)
}

/// S5: while lockdown is on, no instance is stopping at a user's request.
pub fn s5_lockdown(_cfg: &ModelConfig, w: &World) -> bool {
    invariants::lockdown_holds_no_user_stop(&w.manager).is_ok()
}

/// S6: fencing tokens are unique: no launch reuses a generation of its slot.
pub fn s6_fencing_tokens_unique(_cfg: &ModelConfig, w: &World) -> bool {
    !w.ghost.generation_reused
}

/// Every invariant of the core's manager and agents.
pub fn core_invariants(cfg: &ModelConfig, w: &World) -> bool {
    invariants::check_manager(&w.manager, &cfg.core).is_ok()
        && w.hosts
            .iter()
            .all(|h| invariants::check_agent(&h.agent, &cfg.core).is_ok())
}

/// L1's goal: exactly one process per desired slot, up, and nothing else,
/// for every app but the broken ones (whose boots never succeed).
pub fn converged(cfg: &ModelConfig, w: &World) -> bool {
    let mut want = 0usize;
    for t in 0..cfg.core.process_types.len() {
        let process_type = TypeId(u16::try_from(t).unwrap_or(u16::MAX));
        if !cfg.is_broken(process_type) {
            want += usize::from(w.manager.desired(process_type));
        }
    }
    let healthy = |p: &&tally_model::world::Process| !cfg.is_broken(p.instance.slot.process_type);
    if w.processes.iter().filter(healthy).count() != want {
        return false;
    }
    let mut seen: Vec<SlotId> = Vec::with_capacity(want);
    for p in w.processes.iter().filter(healthy) {
        let slot = p.instance.slot;
        if p.booting_since.is_some()
            || slot.index >= w.manager.desired(slot.process_type)
            || seen.contains(&slot)
        {
            return false;
        }
        seen.push(slot);
    }
    true
}

/// L1's bound: no calm state more than `T(cfg)` ticks after the faults
/// stopped is unconverged (`ModelConfig::recovery_deadline`). With the
/// horizon at or past that deadline (`check` refuses shorter ones), the
/// graph check's "every behaviour ends converged" and this together say
/// "every behaviour converges within `T`, and stays converged".
pub fn l1_recovery_bound(cfg: &ModelConfig, w: &World) -> bool {
    !w.is_calm(cfg) || w.now.0 <= cfg.recovery_deadline() || converged(cfg, w)
}

macro_rules! witnessed {
    ($name:ident, $bit:expr) => {
        /// A `sometimes` witness: the last action caused this event.
        pub fn $name(_cfg: &ModelConfig, w: &World) -> bool {
            w.ghost.last & $bit != 0
        }
    };
}

witnessed!(saw_boot_timeout, witness::BOOT_TIMED_OUT);
witnessed!(saw_replacement_after_expiry, witness::REPLACED_AFTER_EXPIRY);
witnessed!(saw_phantom_reaped, witness::PHANTOM_REAPED);
witnessed!(saw_retry_refused, witness::RETRY_REFUSED);
witnessed!(saw_breaker_trip, witness::BREAKER_TRIPPED);
witnessed!(saw_fleet_breaker_trip, witness::FLEET_BREAKER_TRIPPED);
witnessed!(saw_lockdown_refusal, witness::LOCKDOWN_REFUSED);
witnessed!(saw_self_fencing, witness::SELF_FENCED);
witnessed!(saw_stale_launch_refused, witness::STALE_LAUNCH_REFUSED);
witnessed!(saw_relaunch, witness::RELAUNCHED);
witnessed!(saw_probe_spent, witness::PROBE_SPENT);
witnessed!(saw_reap_in_lockdown, witness::PHANTOM_REAPED_IN_LOCKDOWN);
witnessed!(saw_timeout_in_lockdown, witness::BOOT_TIMED_OUT_IN_LOCKDOWN);
witnessed!(saw_fencing_in_lockdown, witness::SELF_FENCED_IN_LOCKDOWN);
witnessed!(saw_takeover, witness::TAKEOVER);
witnessed!(saw_deposed, witness::DEPOSED);
witnessed!(saw_outside_guard, witness::OUTSIDE_GUARD);
witnessed!(saw_stale_term_refused, witness::STALE_TERM_REFUSED);

/// Name of the liveness property.
pub const L1: &str = "L1 convergence";

/// Name of L1's recovery bound, checked on every state.
pub const L1_BOUND: &str = "L1 recovery bound";

/// Every safety and reachability property, in report order.
pub const PROPERTIES: &[PropertyDef] = &[
    PropertyDef {
        name: "S1 singleton",
        kind: Kind::Always,
        holds: s1_singleton,
        explanation: "two processes of one singleton slot run at once",
    },
    PropertyDef {
        name: "S2 no phantom",
        kind: Kind::Always,
        holds: s2_no_phantom,
        explanation: "a process runs that the ledger does not hold on that host",
    },
    PropertyDef {
        name: "S3 launch bound",
        kind: Kind::Always,
        holds: s3_launch_bound,
        explanation: "launches exceed F + B + r*S + P (an app's, or the fleet's: F + n*B + r*S + n*P)",
    },
    PropertyDef {
        name: "S4 admission",
        kind: Kind::Always,
        holds: s4_admission,
        explanation: "a host has more than K processes booting",
    },
    PropertyDef {
        name: "S5 lockdown",
        kind: Kind::Always,
        holds: s5_lockdown,
        explanation: "a user's stop is in force while lockdown is on",
    },
    PropertyDef {
        name: "S6 fencing tokens unique",
        kind: Kind::Always,
        holds: s6_fencing_tokens_unique,
        explanation: "a launch reused a generation of its slot",
    },
    PropertyDef {
        name: "S7 apps isolated",
        kind: Kind::Always,
        holds: s7_apps_isolated,
        explanation: "an app's relaunch was refused, or the fleet breaker tripped, because of another app's failures",
    },
    PropertyDef {
        name: "core invariants",
        kind: Kind::Always,
        holds: core_invariants,
        explanation: "a check_invariants function of the core failed",
    },
    PropertyDef {
        name: L1_BOUND,
        kind: Kind::Always,
        holds: l1_recovery_bound,
        explanation: "a slot is still not converged T(cfg) ticks after the faults stopped",
    },
    PropertyDef {
        name: "sometimes boot timeout",
        kind: Kind::Sometimes,
        holds: saw_boot_timeout,
        explanation: "a boot outlasts its timeout",
    },
    PropertyDef {
        name: "sometimes replaced after lease expiry",
        kind: Kind::Sometimes,
        holds: saw_replacement_after_expiry,
        explanation: "a lease expires and the slot is relaunched",
    },
    PropertyDef {
        name: "sometimes phantom reaped",
        kind: Kind::Sometimes,
        holds: saw_phantom_reaped,
        explanation: "an unknown running instance is told to stop",
    },
    PropertyDef {
        name: "sometimes retry refused by budget",
        kind: Kind::Sometimes,
        holds: saw_retry_refused,
        explanation: "a relaunch is refused: no token, no probe",
    },
    PropertyDef {
        name: "sometimes breaker opens",
        kind: Kind::Sometimes,
        holds: saw_breaker_trip,
        explanation: "the breaker trips on boot failures",
    },
    PropertyDef {
        name: "sometimes fleet breaker opens",
        kind: Kind::Sometimes,
        holds: saw_fleet_breaker_trip,
        explanation: "the fleet breaker trips on boot failures of two apps",
    },
    PropertyDef {
        name: "sometimes lockdown refuses a command",
        kind: Kind::Sometimes,
        holds: saw_lockdown_refusal,
        explanation: "a restart is refused under lockdown",
    },
    PropertyDef {
        name: "sometimes self-fencing",
        kind: Kind::Sometimes,
        holds: saw_self_fencing,
        explanation: "an agent kills an instance whose lease ran out",
    },
    PropertyDef {
        name: "sometimes stale launch refused",
        kind: Kind::Sometimes,
        holds: saw_stale_launch_refused,
        explanation: "an agent refuses a launch at or below its highest generation",
    },
    PropertyDef {
        name: "sometimes relaunch",
        kind: Kind::Sometimes,
        holds: saw_relaunch,
        explanation: "a relaunch paid by the budget is sent",
    },
    PropertyDef {
        name: "sometimes probe credit spent",
        kind: Kind::Sometimes,
        holds: saw_probe_spent,
        explanation: "a relaunch is paid by the cool-down's probe credit",
    },
    PropertyDef {
        name: "sometimes phantom reaped in lockdown",
        kind: Kind::Sometimes,
        holds: saw_reap_in_lockdown,
        explanation: "safety actions go on under lockdown: phantom reaping",
    },
    PropertyDef {
        name: "sometimes boot timeout in lockdown",
        kind: Kind::Sometimes,
        holds: saw_timeout_in_lockdown,
        explanation: "safety actions go on under lockdown: boot timeout",
    },
    PropertyDef {
        name: "sometimes self-fencing in lockdown",
        kind: Kind::Sometimes,
        holds: saw_fencing_in_lockdown,
        explanation: "safety actions go on under lockdown: self-fencing",
    },
    PropertyDef {
        name: "sometimes failover",
        kind: Kind::Sometimes,
        holds: saw_takeover,
        explanation: "with a store, a standby takes the leader key and recovers from the journal",
    },
    PropertyDef {
        name: "sometimes deposed leader steps down",
        kind: Kind::Sometimes,
        holds: saw_deposed,
        explanation: "an old leader's append or keep-alive fails and it stops acting",
    },
    PropertyDef {
        name: "sometimes input dropped outside the guard",
        kind: Kind::Sometimes,
        holds: saw_outside_guard,
        explanation: "a leader whose guard lapsed drops an input instead of acting on it",
    },
    PropertyDef {
        name: "sometimes stale term refused",
        kind: Kind::Sometimes,
        holds: saw_stale_term_refused,
        explanation: "an agent refuses a reply from a lower term than one it heard",
    },
];

/// Looks a property up by name.
#[must_use]
pub fn find(name: &str) -> Option<&'static PropertyDef> {
    PROPERTIES.iter().find(|p| p.name == name)
}

/// How many properties there are: stateright wants one `fn` per property,
/// in arrays of this length (`checked::conditions!`).
pub const PROPERTY_COUNT: usize = 27;
const _: () = assert!(PROPERTIES.len() == PROPERTY_COUNT);
