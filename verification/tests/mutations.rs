//! Every mutation (the 2012 bugs and DESIGN.md's unsafe shortcuts) is
//! refuted: BFS finds a shortest counterexample to a property it breaks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use tally_core::Mutation;
use tally_verification::check::{CheckOptions, Search, Verdict, check_config};
use tally_verification::mutations::{breaks_liveness, expected, hunt_config};

fn refute(m: Mutation) -> (String, usize) {
    let cfg = hunt_config(m);
    let liveness = breaks_liveness(m);
    let stop: BTreeSet<&'static str> = expected(m)
        .iter()
        .copied()
        .filter(|p| *p != tally_verification::properties::L1)
        .collect();
    let opts = CheckOptions {
        threads: 1,
        search: Search::Bfs,
        liveness,
        stop_at: if liveness { None } else { Some(stop) },
        ..CheckOptions::default()
    };
    let report = check_config(&cfg, &opts).unwrap();
    for name in expected(m) {
        if let Some(r) = report.result(name) {
            if let Verdict::Counterexample { steps } = r.verdict {
                return (name.to_string(), steps);
            }
        }
    }
    panic!(
        "{m}: no counterexample to any of {:?}; verdicts: {:?}",
        expected(m),
        report
            .results
            .iter()
            .map(|r| (r.name, r.verdict.clone()))
            .collect::<Vec<_>>()
    );
}

/// Single-threaded BFS visits states in order of depth, so the first
/// counterexample it reports is a shortest one; its length is pinned so that
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
    7
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
    8
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
    8
);
refuted!(
    breaker_never_half_opens_is_refuted,
    Mutation::BreakerNeverHalfOpens,
    49
);
