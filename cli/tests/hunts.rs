//! `tally check --mutation M` through the binary, for every mutation: it
//! exits 1, prints the step at which the property breaks, and writes a trace
//! whose `broken_at` is that step and which ends there. The lengths are the
//! ones `verification/tests/mutations.rs` pins for the library's `hunt`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::PathBuf;
use std::process::Command;

const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// Each mutation, the property its hunt breaks, and the shortest length.
const PINNED: &[(&str, &str, usize)] = &[
    ("timeout-frees-slot", "S2 no phantom", 9),
    ("unbounded-retries", "S3 launch bound", 12),
    ("no-self-fencing", "S2 no phantom", 9),
    ("trust-late-messages", "S1 singleton", 4),
    ("refuse-only-older", "S2 no phantom", 8),
    ("stop-without-tombstone", "S2 no phantom", 11),
    ("absence-confirms-death", "S2 no phantom", 6),
    ("lease-from-receipt", "S2 no phantom", 8),
    (
        "journal-forgets-generations",
        "S6 fencing tokens unique",
        20,
    ),
    ("budget-not-journaled", "S3 launch bound", 13),
    ("expiry-ignores-drift", "S2 no phantom", 8),
    ("host-wide-renewal", "L1 convergence", 37),
    ("breaker-probe-only", "L1 convergence", 36),
    ("probe-not-journaled", "S3 launch bound", 12),
    ("refill-on-revive", "S3 launch bound", 20),
    ("admission-counts-launching", "core invariants", 6),
    ("breaker-never-half-opens", "L1 convergence", 54),
    ("margin-ignores-kill", "S2 no phantom", 9),
    ("fleet-wide-budget", "S7 apps isolated", 11),
    ("breaker-counts-one-app", "S7 apps isolated", 13),
    ("unfenced-append", "S6 fencing tokens unique", 10),
    ("unguarded-leader", "S2 no phantom", 21),
    ("takeover-trusts-ledger", "S2 no phantom", 9),
    ("guard-from-append", "S2 no phantom", 20),
    ("guard-ignores-drift", "S2 no phantom", 20),
];

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("hunts")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `REFUTED: M: PROPERTY broken in N steps in CONFIG ...` and the trace's path.
fn parse(stdout: &str) -> (String, usize, PathBuf) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("REFUTED: "))
        .unwrap_or_else(|| panic!("no REFUTED line in:\n{stdout}"));
    let (_, rest) = line.split_once(": ").unwrap();
    let (_, rest) = rest.split_once(": ").unwrap();
    let (property, rest) = rest.split_once(" broken in ").unwrap();
    let steps: usize = rest.split_whitespace().next().unwrap().parse().unwrap();
    let trace = stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace written: "))
        .unwrap_or_else(|| panic!("no trace written in:\n{stdout}"));
    (property.to_string(), steps, PathBuf::from(trace))
}

#[test]
fn every_mutation_hunted_through_the_binary() {
    let list = Command::new(TALLY).arg("mutations").output().unwrap();
    let listed: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let pinned: Vec<&str> = PINNED.iter().map(|(m, _, _)| *m).collect();
    assert_eq!(
        {
            let mut l = listed.clone();
            l.sort();
            l
        },
        {
            let mut p: Vec<String> = pinned.iter().map(|m| (*m).to_string()).collect();
            p.sort();
            p
        },
        "every mutation `tally mutations` lists is pinned here, once"
    );
    let mut wrong = Vec::new();
    for (m, want_property, want_steps) in PINNED {
        let dir = out_dir(m);
        // --threads 2 must not change anything: a hunt runs on one thread.
        let out = Command::new(TALLY)
            .args(["check", "--mutation", m, "--threads", "2", "--trace-out"])
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{m}: exit status\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (property, steps, trace) = parse(&stdout);
        assert!(trace.starts_with(&dir), "{m}: trace outside --trace-out");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        assert_eq!(json["property"].as_str(), Some(property.as_str()), "{m}");
        assert_eq!(
            json["broken_at"].as_u64(),
            Some(steps as u64),
            "{m}: the printed length is the trace's broken_at"
        );
        assert_eq!(
            json["steps"].as_array().map(Vec::len),
            Some(steps + 1),
            "{m}: the trace ends where the property breaks"
        );
        println!("{m}: {property} broken in {steps} steps");
        if (property.as_str(), steps) != (*want_property, *want_steps) {
            wrong.push(format!(
                "{m}: {property} in {steps}, pinned {want_property} in {want_steps}"
            ));
        }
    }
    assert!(wrong.is_empty(), "lengths changed:\n{}", wrong.join("\n"));
}

#[test]
fn a_hunt_refuses_what_it_cannot_do() {
    let out = Command::new(TALLY)
        .args(["check", "--mutation", "breaker-probe-only", "--no-liveness"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("breaks only L1"));
}
