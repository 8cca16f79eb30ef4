//! Small-fleet simulation tests: `incident-2012` under both policies shows
//! the 2012 feedback loop and Tally's recovery; every built-in scenario
//! keeps Tally's safety; same seed, same run.

use tally_sim::{Policy, Report, Scenario, run};

/// A built-in scenario on a small fleet, told `factor` times faster.
fn small(name: &str, hosts: u32, apps: u32, dynos: u64, factor: f64) -> Scenario {
    match Scenario::load(name) {
        Ok(s) => s.with_fleet(hosts, apps, dynos).compressed(factor),
        Err(e) => unreachable!("built-in scenario {name}: {e}"),
    }
}

fn check(scenario: &Scenario, policy: Policy) -> Report {
    match run(scenario, policy, scenario.seed, &mut |_| {}) {
        Ok(r) => r,
        Err(e) => unreachable!("built-in scenarios are valid: {e}"),
    }
}

#[test]
fn incident_2012_naive_loops_and_tally_recovers() {
    // 20 hosts and 2,000 dynos over the full 24 hours: 100 dynos a host is
    // dense enough for the 2012 loop to outlive its trigger (at 50 a host,
    // naive-2012 recovers after about an hour).
    let scenario = small("incident-2012", 20, 40, 2000, 1.0);
    let naive = check(&scenario, Policy::Naive2012);
    let tally = check(&scenario, Policy::Tally);
    let table = format!("{:#?}\n{:#?}", naive.summary, tally.summary);
    let (n, t) = (&naive.summary, &tally.summary);

    // naive-2012: the retry feedback loop outlives its trigger.
    assert!(n.recover_s.is_none(), "naive recovered\n{table}");
    let late = |r: &Report| {
        let from = r.summary.trigger_end_s.unwrap_or(0.0) + 3600.0;
        let rates: Vec<f64> = r
            .series
            .iter()
            .filter(|s| s.t_s > from)
            .map(|s| s.launch_rate)
            .collect();
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    };
    let (n_late, t_late) = (late(&naive), late(&tally));
    assert!(
        n_late > 10.0 * t_late.max(0.01),
        "late launch rate {n_late} vs {t_late}\n{table}"
    );
    assert!(
        n.boot_p50_last_hour_ms == 0.0 || n.boot_p50_last_hour_ms > 60_000.0,
        "{table}"
    );
    assert!(n.singleton_overlaps > 0, "{table}");
    assert!(n.phantoms_total > 0, "{table}");
    assert!(n.launches_total > n.launch_bound_final, "{table}");

    // tally: within the formula, no overlap, no phantom, back in bounded time.
    assert_eq!(t.launch_bound_exceeded_steps, 0, "{table}");
    assert!(t.launches_total <= t.launch_bound_final, "{table}");
    assert_eq!(t.singleton_overlaps, 0, "{table}");
    assert_eq!(t.phantoms_total, 0, "{table}");
    assert_eq!(t.invariant_violations, 0, "{table}");
    assert!(t.recover_s.is_some_and(|s| s <= 1800.0), "{table}");
    assert!(
        t.timeouts_total > 0 && t.breaker_trips > 0,
        "the trigger bit\n{table}"
    );

    // The drift detector fires after the +2 s shift and before any timeout.
    assert!(t.alert_delay_s.is_some_and(|d| d > 0.0), "{table}");
    assert!(t.alert_lead_s.is_some_and(|l| l > 0.0), "{table}");
}

#[test]
fn every_builtin_scenario_keeps_tally_safe() {
    for name in ["host-crash-wave", "partition", "crash-loop"] {
        let scenario = small(name, 20, 40, 1000, 2.0);
        let r = check(&scenario, Policy::Tally);
        let table = format!("{:#?}", r.summary);
        assert!(r.safety_kept(), "{name}\n{table}");
        assert!(
            r.summary.recover_s.is_some(),
            "{name} never recovered\n{table}"
        );
    }
}

#[test]
fn same_seed_same_run_bit_for_bit() {
    let scenario = small("incident-2012", 8, 8, 200, 12.0);
    let key = |r: &Report| {
        let v = (&r.summary, &r.series, &r.detector);
        serde_json::to_string(&v).unwrap_or_default()
    };
    let a = check(&scenario, Policy::Naive2012);
    let b = check(&scenario, Policy::Naive2012);
    assert_eq!(key(&a), key(&b));
    assert!(!a.series.is_empty());
    let c = match run(&scenario, Policy::Naive2012, scenario.seed + 1, &mut |_| {}) {
        Ok(r) => r,
        Err(e) => unreachable!("{e}"),
    };
    assert_ne!(key(&a), key(&c), "the seed matters");
}

#[test]
fn noisy_neighbours_do_not_slow_the_healthy_apps_under_per_app_budgets() {
    // 20 hosts, 40 apps, 2,000 dynos, 24 h: app0's release never boots and
    // app1 crash-loops from 2 h on.
    let scenario = small("noisy-neighbour", 20, 40, 2000, 1.0);
    let [naive, fleet, tally, baseline] = [
        Policy::Naive2012,
        Policy::FleetWide,
        Policy::Tally,
        Policy::TallyNoBadApps,
    ]
    .map(|p| check(&scenario, p));
    let table = format!(
        "{:#?}\n{:#?}\n{:#?}",
        fleet.summary, tally.summary, baseline.summary
    );
    let (f, t, b) = (&fleet.summary, &tally.summary, &baseline.summary);
    assert!(
        t.relaunches_measured > 100 && b.relaunches_measured > 100,
        "{table}"
    );
    // Per-app budgets: the healthy apps' relaunch delays within 10% of a
    // fleet without the bad apps, every crash relaunched.
    let within = |x: f64, base: f64| (x - base).abs() <= 0.1 * base;
    assert!(
        within(t.relaunch_delay_p50_s, b.relaunch_delay_p50_s),
        "{table}"
    );
    assert!(
        within(t.relaunch_delay_p99_s, b.relaunch_delay_p99_s),
        "{table}"
    );
    assert_eq!(t.relaunches_pending, 0, "{table}");
    // One broken app trips its own breaker, never the fleet's.
    assert_eq!(t.fleet_breaker_trips, 0, "{table}");
    assert!(t.app_breaker_trips > 0, "{table}");
    assert_eq!(t.apps_over_bound, 0, "{table}");
    assert!(t.troubled_launches <= t.troubled_launch_bound, "{table}");
    assert!(tally.safety_kept(), "{table}");
    // The fleet-wide budget and breaker: the bad apps hold everyone back.
    assert!(f.fleet_breaker_trips > 0, "{table}");
    assert!(
        f.relaunch_delay_p99_s > 2.0 * b.relaunch_delay_p99_s,
        "{table}"
    );
    // The 2012 manager relaunches the bad apps without bound.
    assert!(naive.summary.apps_over_bound > 0, "{:#?}", naive.summary);
}
