//! Every mutation (the 2012 bugs and DESIGN.md's unsafe shortcuts) is
//! refuted: BFS finds a shortest counterexample to a property it breaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use tally_core::Mutation;
use tally_verification::hunt::{HuntOptions, hunt};
use tally_verification::mutations::{expected, hunt_config};

/// `tally check --mutation M` does exactly this (`hunt`); the lengths below
/// are pinned again, through the binary, in `cli/tests/hunts.rs`.
fn refute(m: Mutation) -> (String, usize) {
    let h = hunt(m, &hunt_config(m), &HuntOptions::default()).unwrap();
    let Some(r) = h.refutation else {
        panic!(
            "{m}: no counterexample to any of {:?} in {} unique states",
            expected(m),
            h.unique_states
        );
    };
    assert!(expected(m).contains(&r.property));
    // The path ends where the property breaks, and that is its length.
    assert_eq!(
        r.path.len(),
        r.steps + 1,
        "{m}: the path runs past the break"
    );
    (r.property.to_string(), r.steps)
}

/// The hunt's BFS checks every state as it is generated, level by level, so
/// the first counterexample it reports is a shortest one; its length is pinned so that
/// a change of the model or the core that lengthens (or shortens) it is seen.
macro_rules! refuted {
    ($test:ident, $m:expr, $steps:expr) => {
        #[test]
        fn $test() {
            let (property, steps) = refute($m);
            println!("{}: {property} broken in {steps} steps", $m);
            assert_eq!(
                steps, $steps,
                "{}: shortest counterexample length changed",
                $m
            );
        }
    };
}

refuted!(timeout_frees_slot_is_refuted, Mutation::TimeoutFreesSlot, 9);
refuted!(unbounded_retries_is_refuted, Mutation::UnboundedRetries, 12);
refuted!(no_self_fencing_is_refuted, Mutation::NoSelfFencing, 9);
refuted!(
    trust_late_messages_is_refuted,
    Mutation::TrustLateMessages,
    4
);
refuted!(refuse_only_older_is_refuted, Mutation::RefuseOnlyOlder, 8);
refuted!(
    stop_without_tombstone_is_refuted,
    Mutation::StopWithoutTombstone,
    11
);
refuted!(
    absence_confirms_death_is_refuted,
    Mutation::AbsenceConfirmsDeath,
    6
);
refuted!(lease_from_receipt_is_refuted, Mutation::LeaseFromReceipt, 8);
refuted!(
    journal_forgets_generations_is_refuted,
    Mutation::JournalForgetsGenerations,
    20
);
refuted!(
    budget_not_journaled_is_refuted,
    Mutation::BudgetNotJournaled,
    13
);
refuted!(
    expiry_ignores_drift_is_refuted,
    Mutation::ExpiryIgnoresDrift,
    8
);
refuted!(host_wide_renewal_is_refuted, Mutation::HostWideRenewal, 37);
refuted!(
    breaker_probe_only_is_refuted,
    Mutation::BreakerProbeOnly,
    36
);
refuted!(
    probe_not_journaled_is_refuted,
    Mutation::ProbeNotJournaled,
    12
);
refuted!(refill_on_revive_is_refuted, Mutation::RefillOnRevive, 20);
refuted!(
    admission_counts_launching_is_refuted,
    Mutation::AdmissionCountsLaunching,
    6
);
refuted!(
    breaker_never_half_opens_is_refuted,
    Mutation::BreakerNeverHalfOpens,
    54
);
refuted!(
    margin_ignores_kill_is_refuted,
    Mutation::MarginIgnoresKill,
    9
);
refuted!(fleet_wide_budget_is_refuted, Mutation::FleetWideBudget, 11);
refuted!(
    breaker_counts_one_app_is_refuted,
    Mutation::BreakerCountsOneApp,
    13
);
refuted!(unfenced_append_is_refuted, Mutation::UnfencedAppend, 10);
refuted!(unguarded_leader_is_refuted, Mutation::UnguardedLeader, 21);
refuted!(
    takeover_trusts_ledger_is_refuted,
    Mutation::TakeoverTrustsLedger,
    9
);
refuted!(guard_from_append_is_refuted, Mutation::GuardFromAppend, 20);
refuted!(
    guard_ignores_drift_is_refuted,
    Mutation::GuardIgnoresDrift,
    20
);

/// A refutation means something only if the same configuration holds
/// without the mutation: every hunting configuration, unmutated, is proved
/// (every `always`, and L1 where the mutation breaks L1), so each
/// counterexample above is the mutation's. (A safety hunt's configuration
/// may be too short for recovery: a long probe cool-down, say.)
#[test]
fn every_hunting_configuration_holds_without_its_mutation() {
    use tally_verification::check::{CheckOptions, Search, check_config};
    for m in Mutation::ALL {
        let mut cfg = hunt_config(m);
        cfg.core.mutations = tally_core::Mutations::NONE;
        let opts = CheckOptions {
            threads: 2,
            search: Search::Dfs,
            symmetry: tally_verification::symmetry::usable(&cfg),
            liveness: tally_verification::mutations::breaks_liveness(m),
            ..CheckOptions::default()
        };
        let report = check_config(&cfg, &opts).unwrap();
        assert!(
            report.safe(),
            "{}: fails without the mutation: {:?}",
            cfg.name,
            report.results
        );
    }
}

/// The recovery bound is not vacuous: past `calm_at + T` it catches, as a
/// safety violation found by BFS, a breaker that never half-opens.
#[test]
fn the_recovery_bound_catches_a_breaker_that_never_half_opens() {
    use tally_verification::check::{CheckOptions, Verdict, check_config};
    use tally_verification::properties::L1_BOUND;
    let mut cfg = hunt_config(Mutation::BreakerNeverHalfOpens);
    cfg.horizon = cfg.recovery_deadline() + 2;
    let opts = CheckOptions {
        liveness: false,
        ..CheckOptions::default()
    };
    let report = check_config(&cfg, &opts).unwrap();
    let r = report.result(L1_BOUND).unwrap();
    assert!(
        matches!(r.verdict, Verdict::Counterexample { .. }),
        "{:?}",
        r.verdict
    );
    let path = r.path.as_ref().unwrap();
    let last = &path.last().unwrap().0;
    assert!(last.now.0 > cfg.recovery_deadline());
}
