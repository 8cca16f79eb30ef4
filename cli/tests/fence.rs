//! The `tally-fence` binary with real processes and signals: a lease that
//! ended before the dyno started, a fence frozen (SIGSTOP) past its lease
//! end, a fence awake at it, a `stop`, and an agent gone. The dyno ignores
//! SIGTERM, so only a SIGKILL ends it and the timing shows which came when.
//! Every wait is bounded; a fence and its dyno's group are killed when a
//! test ends, passed or not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use nix::sys::signal::{Signal, kill, killpg};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const FENCE: &str = env!("CARGO_BIN_EXE_tally-fence");

/// Ignores SIGTERM (and so does its `sleep`, which inherits that); ready
/// once it does (a SIGTERM before the `trap` would end it).
const STUBBORN: &str = r#"trap "" TERM; touch "$READY"; sleep 30"#;

fn boottime_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_BOOTTIME).unwrap();
    u64::try_from(t.tv_sec()).unwrap() * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap()
}

fn ms(ns: u64) -> Duration {
    Duration::from_millis(ns / 1_000_000)
}

struct Fence {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    pgid: Option<i32>,
    ready_file: PathBuf,
}

impl Fence {
    /// A fence with this grace around `sh -c SCRIPT`, told `lease NS`.
    fn start(grace_ms: u64, script: &str, lease_ns: u64) -> Fence {
        let mut fence = Fence::spawn(grace_ms, script);
        fence.send(&format!("lease {lease_ns}"));
        fence
    }

    /// A fence with this grace around `sh -c SCRIPT`, told nothing yet;
    /// ready once the script touches `$READY` if it names it, else started.
    fn spawn(grace_ms: u64, script: &str) -> Fence {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let ready_file = std::env::temp_dir().join(format!(
            "tally-fence-test-{}-{}.ready",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let ready = if script.contains("$READY") {
            "file"
        } else {
            "started"
        };
        let mut child = Command::new(FENCE)
            .args(["--ready", ready, "--ready-file"])
            .arg(&ready_file)
            .args(["--grace-ms", &grace_ms.to_string()])
            .args(["--", "/bin/sh", "-c", script])
            .env("READY", &ready_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Fence {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            pgid: None,
            ready_file,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (at most `within`) for a line starting with `prefix`.
    fn expect(&mut self, prefix: &str, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "no `{prefix}` within {within:?}; the fence said {:?}",
                    self.seen
                );
            };
            self.seen.push(line.clone());
            if let Some(p) = line.strip_prefix("pid ") {
                self.pgid = p.trim().parse().ok();
            }
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Waits for the dyno to run, returning its process group.
    fn running(&mut self) -> i32 {
        self.expect("ready", Duration::from_secs(5));
        self.pgid.expect("pid before ready")
    }

    /// The fence's exit code, once it has said `exited`.
    fn exit_code(&mut self) -> Option<i32> {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the fence said exited but did not exit");
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Only a group the fence has not said gone (its id may be reused).
        let exited = self.seen.iter().any(|l| l.starts_with("exited"));
        if let Some(pgid) = self.pgid.filter(|&p| p > 1 && !exited) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

/// Live (not zombie) processes of a group, from /proc.
fn live_members(pgid: i32) -> Vec<i32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold anything but ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            live.push(pid);
        }
    }
    live
}

/// The group has no live process left (SIGKILLed processes may take a
/// moment to be gone); bounded.
fn assert_group_gone(pgid: i32) {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let live = live_members(pgid);
        if live.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "group {pgid} still runs after the fence said exited: {live:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_lease_already_over_is_fenced_at_once_without_grace() {
    let lease = boottime_ns().saturating_sub(1_000_000_000);
    let t0 = Instant::now();
    let mut fence = Fence::start(5000, STUBBORN, lease);
    fence.expect("exited fenced", Duration::from_secs(2));
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    // Not even started: nothing to kill, no group to leave behind.
    assert_eq!(fence.pgid, None, "{:?}", fence.seen);
    assert_eq!(fence.exit_code(), Some(0));
}

#[test]
fn a_fence_frozen_past_its_lease_end_kills_at_once_when_it_wakes() {
    let lease = boottime_ns() + 300_000_000;
    let mut fence = Fence::start(5000, STUBBORN, lease);
    let pgid = fence.running();
    let pid = Pid::from_raw(i32::try_from(fence.child.id()).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    // Resumed well past the lease end (and its slack), well within the grace.
    while boottime_ns() < lease + 400_000_000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let resumed = boottime_ns();
    kill(pid, Signal::SIGCONT).unwrap();
    fence.expect("exited fenced", Duration::from_secs(3));
    let after = ms(boottime_ns() - resumed);
    // A SIGTERM and the grace would have taken 5 s (the dyno ignores it).
    assert!(
        after < Duration::from_millis(1000),
        "killed {after:?} after resuming"
    );
    assert_group_gone(pgid);
    assert_eq!(fence.exit_code(), Some(0));
}

#[test]
fn a_fence_awake_at_its_lease_end_gives_the_grace_then_kills() {
    let grace_ns = 400_000_000;
    let lease = boottime_ns() + 300_000_000;
    let mut fence = Fence::start(400, STUBBORN, lease);
    let pgid = fence.running();
    fence.expect("exited fenced", Duration::from_secs(5));
    let at = boottime_ns();
    // SIGTERM at the lease end, ignored; SIGKILL at end + grace, absolute.
    assert!(
        at >= lease + grace_ns,
        "exited {:?} before the grace ended",
        ms(lease + grace_ns - at)
    );
    assert!(
        at < lease + grace_ns + 1_000_000_000,
        "exited {:?} after end + grace",
        ms(at - lease - grace_ns)
    );
    assert_group_gone(pgid);
}

#[test]
fn stop_gives_the_grace_from_now() {
    // A dyno that ignores SIGTERM: killed once the grace from the stop ends.
    let lease = boottime_ns() + 60_000_000_000;
    let mut fence = Fence::start(300, STUBBORN, lease);
    let pgid = fence.running();
    let t0 = Instant::now();
    fence.send("stop");
    fence.expect("exited stopped", Duration::from_secs(3));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(2000),
        "took {took:?}"
    );
    assert_group_gone(pgid);
    // One that honours it: gone long before a 5 s grace.
    let mut fence = Fence::start(5000, "sleep 30", lease);
    let pgid = fence.running();
    let t0 = Instant::now();
    fence.send("stop");
    fence.expect("exited stopped", Duration::from_secs(3));
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    assert_group_gone(pgid);
}

#[test]
fn an_agent_gone_means_sigkill_at_once() {
    let lease = boottime_ns() + 60_000_000_000;
    let mut fence = Fence::start(5000, STUBBORN, lease);
    let pgid = fence.running();
    let t0 = Instant::now();
    drop(fence.stdin.take());
    fence.expect("exited agent-gone", Duration::from_secs(3));
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    assert_group_gone(pgid);
}

#[test]
fn no_lease_no_dyno_and_a_dyno_exit_is_reported() {
    let mut fence = Fence::start(100, "exit 3", 0);
    // `lease 0` has ended: never started.
    fence.expect("exited fenced", Duration::from_secs(2));
    let lease = boottime_ns() + 60_000_000_000;
    let mut fence = Fence::start(100, "exit 3", lease);
    let line = fence.expect("exited", Duration::from_secs(3));
    assert_eq!(line, "exited exit status: 3");
    let mut fence = Fence::spawn(100, "exit 3");
    fence.send("stop");
    fence.expect("exited never-started", Duration::from_secs(2));
    let mut fence = Fence::spawn(100, "exit 3");
    drop(fence.stdin.take());
    fence.expect("exited never-started", Duration::from_secs(2));
    assert_eq!(fence.pgid, None);
}

#[test]
fn a_dyno_dies_with_its_fence_even_when_nobody_else_is_left_to_kill_it() {
    // `pkill -9 tally`: the fence is SIGKILLed (and its agent with it, so
    // nobody runs the agent's fallback). The dyno's leader was started with
    // PR_SET_PDEATHSIG, so the kernel kills it with its fence.
    let lease = boottime_ns() + 60_000_000_000;
    let mut fence = Fence::start(5000, STUBBORN, lease);
    let pgid = fence.running();
    let leader = u32::try_from(pgid).unwrap();
    fence.child.kill().unwrap();
    fence.child.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let state = std::fs::read_to_string(format!("/proc/{leader}/stat")).unwrap_or_default();
        let gone = state
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|s| s == "Z" || s == "X");
        if gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the dyno outlived its fence");
}

#[test]
fn an_orphaned_group_of_zombies_counts_as_gone() {
    // A group whose only member exited and is never reaped (as under an
    // agent running as PID 1 that does not reap): the agent's fallback
    // must not wait on it for ever.
    use std::os::unix::process::CommandExt;
    let mut zombie = Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = i32::try_from(zombie.id()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tally_manager::fence::kill_orphaned_group(pgid);
        let _ = tx.send(());
    });
    let done = rx.recv_timeout(Duration::from_secs(5));
    let _ = zombie.wait();
    assert!(done.is_ok(), "kill_orphaned_group waited on a zombie");
}
