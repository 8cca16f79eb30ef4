//! `tally check` and `tally mutations --against` through the binary, as a
//! user types them: the README's proof (DFS with symmetry, L1 decided over
//! the graph the search recorded), a liveness counterexample found by that
//! same proof search, and a preset's table of refuted mutations and gaps.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use std::process::{Command, Output};
use tally_core::Mutation;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");

fn tally(args: &[&str]) -> (Output, String, String) {
    let out = Command::new(TALLY).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("check")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_proves_smoke_with_l1_decided_in_the_same_pass() {
    let (out, stdout, stderr) = tally(&["check", "--preset", "smoke"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("DFS with symmetry"), "{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("smoke "))
        .unwrap_or_else(|| panic!("no smoke row in:\n{stdout}"));
    // The counts pinned in verification/tests/presets.rs, and no L1 graph:
    // L1 is decided by the search itself.
    assert!(
        row.contains(" 1463 unique ") && row.contains(" 2679 total "),
        "{row}"
    );
    assert!(!row.contains("L1 graph"), "{row}");
    let l1 = stdout
        .lines()
        .find(|l| l.starts_with("L1 convergence"))
        .unwrap();
    assert!(l1.ends_with("holds"), "{l1}");
    assert!(stdout.contains("all properties hold"), "{stdout}");
}

/// L1 is not vacuous under the proof's own search: with a liveness bug on,
/// DFS with symmetry finds a behaviour that ends unconverged and
/// writes its trace.
#[test]
fn the_proof_search_refutes_a_liveness_bug_and_writes_its_trace() {
    let d = dir("liveness");
    let m = Mutation::BreakerNeverHalfOpens;
    let cfg = tally_verification::mutations::hunt_config(m).with_mutation(m);
    let file = d.join("config.json");
    std::fs::write(&file, serde_json::to_string(&cfg).unwrap()).unwrap();
    let traces = d.join("traces");
    let (out, stdout, stderr) = tally(&[
        "check",
        "--config",
        file.to_str().unwrap(),
        "--trace-out",
        traces.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("DFS with symmetry"), "{stderr}");
    let l1 = stdout
        .lines()
        .find(|l| l.starts_with("L1 convergence"))
        .unwrap();
    assert!(!l1.ends_with("holds"), "{l1}");
    let trace = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("l1"))
        .unwrap_or_else(|| panic!("no L1 trace in {}", traces.display()));
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let steps = t["steps"].as_array().unwrap();
    assert!(steps.len() > 1, "{trace:?}");
}

#[test]
fn mutations_against_a_preset_tells_refuted_from_gaps() {
    let (out, stdout, stderr) = tally(&[
        "mutations",
        "--against",
        "smoke",
        "--only",
        "timeout-frees-slot",
        "--only",
        "breaker-never-half-opens",
    ]);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let row = |m: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(m))
            .unwrap_or_else(|| panic!("no {m} row in:\n{stdout}"))
            .to_string()
    };
    // The proof's search is depth-first on two threads: whichever of the
    // two expected properties it meets first refutes the mutation.
    let refuted = row("timeout-frees-slot");
    assert!(
        refuted.contains("smoke (S1)") || refuted.contains("smoke (S2)"),
        "{stdout}"
    );
    assert!(
        row("breaker-never-half-opens").contains("NOT REFUTED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 of 2 mutations refuted by smoke")
            && stdout.contains("gaps in the preset): breaker-never-half-opens"),
        "{stdout}"
    );
}

/// A horizon that ends before `calm_at + T(cfg)` is refused when L1 is
/// checked (exit 2, a message naming the horizon needed), and accepted for
/// safety alone with --no-liveness.
#[test]
fn a_horizon_short_of_the_recovery_bound_is_refused() {
    let (out, stdout, _) = tally(&["show-preset", "smoke"]);
    assert_eq!(out.status.code(), Some(0));
    let mut cfgs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    cfgs[0]["horizon"] = serde_json::json!(12);
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("short-horizon.json");
    std::fs::write(&file, cfgs.to_string()).unwrap();
    let path = file.to_str().unwrap();
    let (out, _, stderr) = tally(&["check", "--config", path]);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the horizon (12) ends before calm_at (3) + T (12)")
            && stderr.contains("set horizon >= 15"),
        "{stderr}"
    );
    let (out, stdout, stderr) = tally(&["check", "--config", path, "--no-liveness"]);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
}

/// A configuration file missing a field points to a complete one to start
/// from.
#[test]
fn an_incomplete_configuration_points_to_a_template() {
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("incomplete.json");
    std::fs::write(&file, r#"{"hosts": 2}"#).unwrap();
    let (out, _, stderr) = tally(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("missing field `name`") && stderr.contains("tally show-preset smoke"),
        "{stderr}"
    );
}

/// `tally explore --trace-dir` on a directory that does not exist exits at
/// once with the reason, instead of serving an empty list.
#[test]
fn explore_refuses_a_missing_trace_dir_at_once() {
    let missing = dir("no-such-trace-dir").join("missing");
    let mut child = Command::new(TALLY)
        .args(["explore", "--trace-dir"])
        .arg(&missing)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            panic!("tally explore served a missing --trace-dir");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("not a directory"), "{err}");
}
