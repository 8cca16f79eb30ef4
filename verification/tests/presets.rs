//! The presets prove every property with no mutation, and every
//! `sometimes` is reachable in at least one configuration of `ci`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use tally_verification::check::{
    CheckOptions, ConfigReport, Search, Verdict, check_config, summarize,
};

fn check_preset(name: &str) -> Vec<ConfigReport> {
    let preset = tally_model::config::preset(name).unwrap();
    // The exhaustive proof as `tally check` runs it: DFS with symmetry.
    let opts = CheckOptions {
        threads: 2,
        search: Search::Dfs,
        symmetry: true,
        ..CheckOptions::default()
    };
    preset
        .configs
        .iter()
        .map(|c| check_config(c, &opts).unwrap())
        .collect()
}

#[test]
fn smoke_preset_is_safe_and_converges() {
    let reports = check_preset("smoke");
    for r in &reports {
        assert!(
            r.safe(),
            "{}: {:?}",
            r.name,
            r.results
                .iter()
                .map(|x| (x.name, &x.verdict))
                .collect::<Vec<_>>()
        );
        assert_eq!(r.result("L1 convergence").unwrap().verdict, Verdict::Holds);
    }
}

#[test]
fn ci_preset_proves_every_property_and_reaches_every_sometimes() {
    let reports = check_preset("ci");
    let summary = summarize(&reports, true);
    let table = format!("{:#?}", summary.rows);
    println!("{table}");
    assert!(summary.ok, "{table}");
    // Pinned like smoke's: a refactor that moves them changed behaviour.
    let counts: Vec<(&str, usize, usize)> = reports
        .iter()
        .map(|r| (r.name.as_str(), r.unique_states, r.total_states))
        .collect();
    assert_eq!(
        counts,
        [
            ("ci-network-drift", 850_874, 2_263_128),
            ("ci-crashes-restarts", 3_494_583, 9_245_022),
            ("ci-dyno-faults-lockdown", 1_762_581, 5_561_066),
            ("ci-lockdown-reordering", 699_733, 2_049_046),
            ("ci-timed-kills", 3_958_627, 7_096_757),
            ("ci-messages-restart-partition", 1_106_863, 2_723_724),
            ("ci-restart-failures", 3_509_118, 8_435_485),
            ("ci-two-apps", 274_687, 421_751),
            ("ci-failover", 2_249_197, 8_064_377),
            ("ci-failover-keepalive", 1_574_330, 3_531_113),
            ("ci-failover-drift", 3_405_321, 8_152_620),
        ]
    );
    for r in &reports {
        assert!(r.safe(), "{}", r.name);
        assert_eq!(
            r.result("L1 convergence").unwrap().verdict,
            Verdict::Holds,
            "{}",
            r.name
        );
    }
}

/// The state counts of `smoke`, pinned: a refactor of the core or the model
/// that changes them changed behaviour (or the state's identity), and must
/// say why before the pins move.
#[test]
fn smoke_state_counts_are_pinned() {
    let reports = check_preset("smoke");
    let counts: Vec<(&str, usize, usize)> = reports
        .iter()
        .map(|r| (r.name.as_str(), r.unique_states, r.total_states))
        .collect();
    assert_eq!(counts, [("smoke", 1_463, 2_679)]);
}
