//! The catalogue of mutations: the property each must break, and the
//! configuration in which the checker finds its shortest counterexample.

use tally_core::Mutation;

/// The properties a mutation is expected to break (any one suffices).
#[must_use]
pub fn expected(m: Mutation) -> &'static [&'static str] {
    match m {
        Mutation::TimeoutFreesSlot => &["S1 singleton", "S2 no phantom"],
        Mutation::UnboundedRetries => &["S3 launch bound"],
        Mutation::NoSelfFencing => &["S1 singleton", "S2 no phantom"],
        Mutation::TrustLateMessages => &["S1 singleton", "S2 no phantom"],
        Mutation::RefuseOnlyOlder => &["S1 singleton", "S2 no phantom"],
        Mutation::StopWithoutTombstone => &["S1 singleton", "S2 no phantom"],
        Mutation::AbsenceConfirmsDeath => &["S1 singleton", "S2 no phantom"],
        Mutation::LeaseFromReceipt => &["S1 singleton", "S2 no phantom"],
        Mutation::JournalForgetsGenerations => &["S6 fencing tokens unique"],
        Mutation::BudgetNotJournaled => &["S3 launch bound"],
        Mutation::ExpiryIgnoresDrift => &["S1 singleton", "S2 no phantom"],
        Mutation::HostWideRenewal => &["L1 convergence"],
        Mutation::BreakerProbeOnly => &["L1 convergence"],
        Mutation::ProbeNotJournaled => &["S3 launch bound"],
        Mutation::RefillOnRevive => &["S3 launch bound"],
        // In ground truth the model's instantaneous kills hide the double
        // boot (a stop precedes the launch in the same reply); the ledger's
        // admission invariant, counted by the shipped rule, catches it.
        Mutation::AdmissionCountsLaunching => &["S4 admission", "core invariants"],
        Mutation::BreakerNeverHalfOpens => &["L1 convergence"],
        Mutation::MarginIgnoresKill => &["S1 singleton", "S2 no phantom"],
        Mutation::FleetWideBudget => &["S7 apps isolated", "S3 launch bound"],
        Mutation::BreakerCountsOneApp => &["S7 apps isolated"],
        Mutation::UnfencedAppend => &["S1 singleton", "S2 no phantom", "S6 fencing tokens unique"],
        Mutation::UnguardedLeader
        | Mutation::TakeoverTrustsLedger
        | Mutation::GuardFromAppend
        | Mutation::GuardIgnoresDrift => &["S1 singleton", "S2 no phantom"],
    }
}

use tally_core::{TypeId, UserCommand};
use tally_model::config::{
    FaultBudget, ModelConfig, ScriptedCommand, model_core, timed_kills, two_apps, with_store,
};

/// The small configuration in which the checker refutes `m`: the fewest
/// hosts and faults that still reach its counterexample, so that BFS finds
/// a shortest one in seconds.
#[must_use]
pub fn hunt_config(m: Mutation) -> ModelConfig {
    let mut c = ModelConfig {
        name: format!("hunt-{}", m.name()),
        core: model_core(1, 0),
        hosts: 2,
        horizon: 12,
        calm_at: 6,
        network_capacity: 2,
        faults: FaultBudget::default(),
        script: Vec::new(),
        broken_apps: Vec::new(),
    };
    let f = &mut c.faults;
    match m {
        Mutation::TimeoutFreesSlot => f.slow_boots = true,
        Mutation::UnboundedRetries | Mutation::BudgetNotJournaled | Mutation::ProbeNotJournaled => {
            // A long cool-down keeps the probe term P at zero.
            c.core.budget.probe_cooldown_ticks = 50;
            c.core.breaker.failure_threshold = 10;
            f.boot_failure = 3;
            if m != Mutation::UnboundedRetries {
                f.boot_failure = 2;
                f.manager_restart = 1;
            }
        }
        Mutation::NoSelfFencing => f.host_partition = 1,
        Mutation::TrustLateMessages | Mutation::RefuseOnlyOlder => {
            f.boot_failure = 1;
            f.message_duplication = 1;
        }
        Mutation::StopWithoutTombstone => {
            c.script = vec![ScriptedCommand::User {
                command: UserCommand::Restart {
                    process_type: Some(TypeId(0)),
                },
            }];
        }
        Mutation::AbsenceConfirmsDeath | Mutation::LeaseFromReceipt => {
            c.hosts = 2;
        }
        Mutation::JournalForgetsGenerations => {
            f.boot_failure = 1;
            f.manager_restart = 1;
        }
        Mutation::ExpiryIgnoresDrift => {
            f.host_partition = 1;
            f.clock_stall = 1;
        }
        Mutation::HostWideRenewal => {
            // The crash must follow the manager's view of the boot, and the
            // lost report must be the one carrying the exit.
            c.calm_at = 6;
            c.horizon = 18;
            c.hosts = 1;
            f.dyno_crash = 1;
            f.message_loss = 1;
        }
        Mutation::BreakerProbeOnly => {
            c.calm_at = 8;
            c.horizon = 20;
            c.hosts = 1;
            f.dyno_crash = 2;
        }
        Mutation::RefillOnRevive => {
            c.core.budget.probe_cooldown_ticks = 50;
            c.core.breaker.failure_threshold = 10;
            c.calm_at = 9;
            c.hosts = 1;
            f.boot_failure = 1;
            f.manager_restart = 1;
            f.dyno_crash = 1;
        }
        Mutation::AdmissionCountsLaunching => {
            // A restart turns a slow boot `Unknown`; a report older than the
            // launch then leaves it uncounted.
            c.core = model_core(1, 1);
            c.hosts = 1;
            f.slow_boots = true;
            f.manager_restart = 1;
            f.clock_stall = 1;
            f.message_loss = 1;
        }
        Mutation::BreakerNeverHalfOpens => {
            c.calm_at = 5;
            f.boot_failure = 2;
            // L1 is decided only up to the recovery bound.
            c.horizon = c.recovery_deadline();
        }
        Mutation::FleetWideBudget | Mutation::BreakerCountsOneApp => {
            // The broken app drains the shared bucket, or trips the fleet
            // breaker alone; the healthy singleton crashes and needs a
            // relaunch.
            let two = two_apps();
            c.core = two.core;
            c.broken_apps = two.broken_apps;
            c.core.budget.probe_cooldown_ticks = 50;
            f.dyno_crash = 1;
        }
        Mutation::MarginIgnoresKill => {
            // Kills take a tick, and a stalled clock fences a tick late:
            // the kill ends after an expiry that left out the margin.
            timed_kills(&mut c.core);
            f.host_partition = 1;
            f.clock_stall = 1;
        }
        // Two managers on a store: a paused old leader's launch, processed
        // before its store lease ran out, is appended after the standby took
        // over and launched the same slot.
        Mutation::UnfencedAppend => {
            with_store(&mut c.core, 5);
            f.manager_pause = 1;
        }
        // The old leader's keep-alive stream breaks while it goes on acting
        // (its appends still commit): the key lapses, the standby takes
        // over, and the old leader's renewals reach the agent that has not
        // yet heard the new term. One host: S2 breaks when the new leader
        // expires the lease the old one kept renewing.
        Mutation::UnguardedLeader | Mutation::TakeoverTrustsLedger => {
            keepalive_cut_on_one_host(&mut c, 3, 10);
        }
        Mutation::GuardFromAppend => {
            keepalive_cut_on_one_host(&mut c, 5, 11);
            c.faults.clock_stall = 1;
        }
        // And the old leader's clock runs slow (two ticks over the store
        // lease), the agent's by one.
        Mutation::GuardIgnoresDrift => {
            keepalive_cut_on_one_host(&mut c, 5, 11);
            c.faults.clock_stall = 3;
        }
    }
    c.with_mutation(m)
}

/// Two managers on a store of lease `store_lease` over one host with room
/// for one message, faults until `calm` (the horizon too): the leader's
/// keep-alive stream may break once.
fn keepalive_cut_on_one_host(c: &mut ModelConfig, store_lease: u64, calm: u64) {
    with_store(&mut c.core, store_lease);
    c.hosts = 1;
    c.network_capacity = 1;
    c.calm_at = calm;
    c.horizon = calm;
    c.faults.keepalive_cut = 1;
}

/// Whether `m` breaks L1 (needs the graph check) rather than a safety property.
#[must_use]
pub fn breaks_liveness(m: Mutation) -> bool {
    expected(m).contains(&crate::properties::L1)
}
