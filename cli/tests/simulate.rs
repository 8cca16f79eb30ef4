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
