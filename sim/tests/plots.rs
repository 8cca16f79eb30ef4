//! The plots and the summary tell the incident on their own (issue 17):
//! an alert is drawn only where the detector fired, named as what it is
//! (a false alarm in a scenario without drift); the trigger is marked; the
//! boot-time plot has its timeout line; phantoms have their own panel; the
//! running axis shows the dip; every chart says what the scenario does;
//! and a slower recovery is explained from the run.

use std::path::{Path, PathBuf};
use tally_sim::report::recovery_explanations;
use tally_sim::{Policy, Report, Scenario, run, write_outputs};

fn scenario(name: &str, hosts: u32, apps: u32, dynos: u64) -> Scenario {
    match Scenario::load(name) {
        Ok(s) => s.with_fleet(hosts, apps, dynos),
        Err(e) => unreachable!("built-in scenario {name}: {e}"),
    }
}

fn runs(sc: &Scenario) -> Vec<Report> {
    [Policy::Naive2012, Policy::Tally]
        .into_iter()
        .map(|p| match run(sc, p, sc.seed, &mut |_| {}) {
            Ok(r) => r,
            Err(e) => unreachable!("built-in scenarios are valid: {e}"),
        })
        .collect()
}

/// Writes the outputs under a fresh temporary directory; returns it.
fn outputs(reports: &[Report], tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tally-plots-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = write_outputs(&dir, reports) {
        unreachable!("writing {}: {e}", dir.display());
    }
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

const CHARTS: [&str; 3] = ["launch_rate.svg", "boot_time.svg", "running_vs_desired.svg"];

#[test]
fn host_crash_wave_reports_its_false_alarm_and_marks_the_trigger() {
    let sc = scenario("host-crash-wave", 20, 200, 2000);
    let reports = runs(&sc);
    let table: Vec<_> = reports.iter().map(|r| &r.summary).collect();
    // The mass relaunch after a host crash slows boots: the detector fires
    // in a scenario without drift. A false alarm, reported as one.
    assert!(
        reports
            .iter()
            .any(|r| r.summary.alert_s.is_some() && r.summary.false_alarm),
        "{table:#?}"
    );
    for r in &reports {
        assert_eq!(r.summary.alert_delay_s, None, "no drift, no delay");
        assert_eq!(r.summary.false_alarm, r.summary.alert_s.is_some());
        assert!(r.summary.trigger_start_s.is_some_and(|s| s == 3.0 * 3600.0));
    }
    let dir = outputs(&reports, "hcw");
    for name in CHARTS {
        let svg = read(&dir, name);
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
            "{name}"
        );
        assert!(!svg.contains("drift alert"), "{name} names a drift alert");
        assert!(svg.contains("false alarm"), "{name} hides the false alarm");
        // The trigger, shaded and named, and its removal.
        assert!(svg.contains(r#"class="band""#), "{name}");
        assert!(
            svg.contains("trigger: host crashes, two waves, 3.00 h to 3.67 h"),
            "{name}"
        );
        assert!(svg.contains("trigger removed"), "{name}");
        // What the scenario does, under the title.
        assert!(svg.contains(r#"class="subtitle""#), "{name}");
        assert!(svg.contains("two waves of host crashes"), "{name}");
        assert!(!svg.contains("NaN"), "{name}");
    }
    let boot = read(&dir, "boot_time.svg");
    assert!(
        boot.contains(r#"class="threshold""#),
        "no boot-timeout line"
    );
    assert!(boot.contains("boot timeout 60 s"));
    let running = read(&dir, "running_vs_desired.svg");
    // Phantoms on their own axis; running on an axis that shows the dip.
    assert_eq!(running.matches(r#"class="y-label""#).count(), 3);
    assert!(running.contains(">phantoms</text>"));
    assert!(
        running.contains("dynos (axis from "),
        "the axis starts at 0"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_incident_alert_is_a_drift_alert() {
    // The README's fleet: the +2 s shift is caught, after it.
    let sc = scenario("incident-2012", 20, 200, 2000);
    let reports = runs(&sc);
    let dir = outputs(&reports, "incident");
    for r in &reports {
        assert!(r.summary.alert_s.is_some(), "{:#?}", r.summary);
        assert!(!r.summary.false_alarm, "{:#?}", r.summary);
        assert!(r.summary.alert_delay_s.is_some_and(|d| d > 0.0));
    }
    for name in CHARTS {
        let svg = read(&dir, name);
        assert!(svg.contains("drift alert (naive-2012, tally)"), "{name}");
        assert!(!svg.contains("false alarm"), "{name}");
    }
    let svg = read(&dir, "boot_time.svg");
    assert!(svg.contains("trigger: fsync slowdown under daytime load"));
    assert!(svg.contains("boot-time drift starts"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_slower_recovery_is_explained_from_the_run() {
    // One app in ten crash-loops for two hours: tally's per-app budgets
    // run dry and hold its relaunches back after the loop ends, while the
    // 2012 manager relaunches without bound.
    let sc = scenario("crash-loop", 20, 200, 2000);
    let reports = runs(&sc);
    let (naive, tally) = match reports.as_slice() {
        [n, t] => (&n.summary, &t.summary),
        _ => unreachable!("two runs"),
    };
    let table = format!("{naive:#?}\n{tally:#?}");
    let (Some(n), Some(t)) = (naive.recover_s, tally.recover_s) else {
        unreachable!("both recover\n{table}");
    };
    assert!(t > n, "{table}");
    // What held tally's missing dynos, counted from the run.
    let held = &tally.held_in_recovery;
    assert!(
        held.budget > 0 && tally.retries_refused_in_recovery > 0,
        "{table}"
    );
    assert_eq!(
        naive.held_in_recovery.budget, 0,
        "unbounded retries\n{table}"
    );
    let lines = recovery_explanations(&reports);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = lines.first().map_or("", String::as_str);
    assert!(line.starts_with("why tally recovers"), "{line}");
    let top = held.ranked().first().map_or("", |(_, _, words)| *words);
    assert!(line.contains(&format!("mostly on {top}")), "{line}");
    assert!(line.contains("relaunches refused"), "{line}");
}
