//! `tally simulate` through the binary: the noisy-neighbour comparison on a
//! small fleet prints the healthy apps' relaunch delays and writes its
//! outputs; a policy that does not exist is refused with the valid ones.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::process::Command;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");

#[test]
fn noisy_neighbour_on_a_small_fleet_through_the_binary() {
    let out_dir = std::env::temp_dir().join(format!("tally-sim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let out = Command::new(TALLY)
        .args([
            "simulate",
            "noisy-neighbour",
            "--hosts",
            "20",
            "--apps",
            "40",
            "--dynos",
            "2000",
            "--policy",
            "tally",
            "--policy",
            "tally-no-bad-apps",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("healthy relaunch delay p50 / p99 s"))
        .unwrap_or_else(|| panic!("no relaunch delay row:\n{stdout}"));
    // Two columns, `p50 / p99` each, within 10% of each other.
    let numbers: Vec<f64> = row
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 4, "{row}");
    for (tally, baseline) in [(numbers[0], numbers[2]), (numbers[1], numbers[3])] {
        assert!((tally - baseline).abs() <= 0.1 * baseline, "{row}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary.as_array().unwrap().len(), 2);
    assert!(out_dir.join("series-tally-no-bad-apps.csv").exists());
    let _ = std::fs::remove_dir_all(&out_dir);

    let out = Command::new(TALLY)
        .args(["simulate", "noisy-neighbour", "--policy", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("naive-2012, fleet-wide, tally, tally-no-bad-apps"),
        "{err}"
    );
}

fn simulate(args: &[&str]) -> String {
    let out = Command::new(TALLY)
        .arg("simulate")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_output_says_what_the_scenario_does_names_a_false_alarm_and_explains_a_slow_recovery() {
    let out_dir = std::env::temp_dir().join(format!("tally-sim-hcw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let fleet = ["--hosts", "20", "--apps", "200", "--dynos", "2000"];
    let mut args = vec!["host-crash-wave"];
    args.extend(fleet);
    args.push("--out");
    let dir = out_dir.to_string_lossy().into_owned();
    args.push(&dir);
    let stdout = simulate(&args);
    // One line saying what the scenario does, one naming its trigger.
    assert!(
        stdout.starts_with("host-crash-wave: two waves of host crashes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("trigger: host crashes, two waves, from 3.00 h to 3.67 h"),
        "{stdout}"
    );
    // The detector fires at the mass relaunch, with no drift to find: the
    // table says false alarm, and so do the plots; none says drift alert.
    let alert = stdout
        .lines()
        .find(|l| l.starts_with("boot-time alert at h"))
        .unwrap_or_else(|| panic!("no alert row:\n{stdout}"));
    assert!(alert.contains("false alarm"), "{alert}");
    assert!(!alert.contains("drift alert"), "{alert}");
    for name in ["launch_rate.svg", "boot_time.svg", "running_vs_desired.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(name)).unwrap();
        assert!(svg.contains("false alarm"), "{name}");
        assert!(!svg.contains("drift alert"), "{name}");
        assert!(svg.contains("trigger removed"), "{name}");
    }
    assert!(
        std::fs::read_to_string(out_dir.join("boot_time.svg"))
            .unwrap()
            .contains("boot timeout 60 s")
    );
    let _ = std::fs::remove_dir_all(&out_dir);

    // crash-loop: tally recovers later than naive-2012, and the output
    // says what held it back, counted from the run.
    let mut args = vec!["crash-loop"];
    args.extend(fleet);
    let stdout = simulate(&args);
    let why = stdout
        .lines()
        .find(|l| l.starts_with("why tally recovers"))
        .unwrap_or_else(|| panic!("no explanation:\n{stdout}"));
    assert!(why.contains("later than naive-2012"), "{why}");
    assert!(why.contains("relaunches refused"), "{why}");
    let held = stdout
        .lines()
        .find(|l| l.starts_with("held in recovery (main reason)"))
        .unwrap_or_else(|| panic!("no held row:\n{stdout}"));
    assert!(held.contains('%'), "{held}");
}
