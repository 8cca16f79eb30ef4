//! The fence: a small process between an agent and each dyno that enforces
//! the dyno's lease even when the agent cannot.
//!
//! The core's agent kills an instance when its lease runs out. A frozen agent
//! (SIGSTOP, a swapped-out or wedged process: "alive but unheard") cannot,
//! and its dynos would outlive the lease the manager waits out, which is the
//! 2012 phantom. So each dyno runs under a fence that is told the lease's end
//! and kills the dyno's process group at that moment on its own clock (the
//! same machine's monotonic clock the agent measured the lease on). It also
//! kills the dyno when the agent goes away (its stdin closes), since nobody
//! would then renew the lease. Dying early is always safe.
//!
//! Protocol on stdin, one line each: `lease NS` (the lease ends when
//! `CLOCK_BOOTTIME` reads NS nanoseconds: an absolute time, so no delay in
//! the pipe or in this process's scheduling can stretch it), `stop` (kill
//! now). The dyno does not start before the first `lease` line. On stdout:
//! `pid PGID` once the dyno's process group exists, `ready` once the
//! readiness condition holds, `exited STATUS` once the group is gone. An
//! agent takes only `exited` as proof of death; if the fence dies without
//! saying it, the agent kills the group itself.
//!
//! Known limit: a dyno that leaves its process group (`setsid`) escapes the
//! kill; a cgroup per dyno would close that.

use crate::clock::boottime_ns;
use crate::settings::Readiness;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(20);

/// What the fence is told.
enum Control {
    /// The lease ends at this `CLOCK_BOOTTIME` reading.
    Lease(u64),
    Stop,
    Gone,
}

/// The fence's options (from `tally fence`).
#[derive(Clone, Debug)]
pub struct FenceOptions {
    /// Readiness condition.
    pub ready: Readiness,
    /// Port for `Readiness::Port`.
    pub port: Option<u16>,
    /// File for `Readiness::File`.
    pub ready_file: Option<PathBuf>,
    /// Grace between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The command line.
    pub argv: Vec<String>,
}

/// Splits a Procfile command into argv: directly when it is plain words,
/// through `sh -c` when it needs a shell (expansions, pipes, redirections).
#[must_use]
pub fn argv_of(command: &str) -> Vec<String> {
    const SHELL: &[char] = &[
        '$', '|', '&', ';', '<', '>', '(', ')', '`', '\\', '"', '\'', '*', '?', '[', ']', '#', '~',
        '=', '%', '{', '}', '\n',
    ];
    if command.contains(SHELL) {
        vec!["/bin/sh".into(), "-c".into(), command.into()]
    } else {
        command.split_whitespace().map(str::to_string).collect()
    }
}

/// Runs the fence until the dyno has exited; returns the exit code to use.
pub fn run(opts: &FenceOptions) -> i32 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let msg = match line.split_once(' ') {
                Some(("lease", ns)) => match ns.trim().parse::<u64>() {
                    Ok(ns) => Control::Lease(ns),
                    Err(_) => continue,
                },
                _ if line.trim() == "stop" => Control::Stop,
                _ => continue,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        let _ = tx.send(Control::Gone);
    });
    // No lease, no dyno.
    let mut deadline = match rx.recv() {
        Ok(Control::Lease(ns)) => ns,
        _ => {
            say("exited never-started");
            return 0;
        }
    };
    let Some((program, args)) = opts.argv.split_first() else {
        say("exited empty-command");
        return 1;
    };
    let stderr = std::io::stderr();
    let out = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let err = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "tally fence: cannot start {program}: {e}"
            );
            say("exited spawn-failed");
            return 1;
        }
    };
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    say(&format!("pid {pgid}"));
    let mut ready_said = false;
    loop {
        // The deadline first: nothing below may delay a kill that is due.
        let now = boottime_ns();
        if now >= deadline {
            kill_group(&mut child, pgid, opts.grace);
            say("exited fenced");
            return 0;
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Reap whatever the dyno left in its group.
            let _ = killpg(pgid, Signal::SIGKILL);
            say(&format!("exited {status}"));
            return 0;
        }
        if !ready_said && is_ready(opts) {
            ready_said = true;
            say("ready");
        }
        let left = Duration::from_nanos(deadline.saturating_sub(boottime_ns()));
        match rx.recv_timeout(POLL.min(left)) {
            Ok(Control::Lease(ns)) => deadline = ns,
            Ok(Control::Stop) => {
                kill_group(&mut child, pgid, opts.grace);
                say("exited stopped");
                return 0;
            }
            Ok(Control::Gone) | Err(RecvTimeoutError::Disconnected) => {
                // The agent is gone: nobody will renew, so end it now.
                kill_group(&mut child, pgid, Duration::ZERO);
                say("exited agent-gone");
                return 0;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn is_ready(opts: &FenceOptions) -> bool {
    match opts.ready {
        Readiness::Started => true,
        Readiness::File => opts.ready_file.as_ref().is_some_and(|f| f.exists()),
        Readiness::Port => opts.port.is_some_and(|p| {
            TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, p)),
                Duration::from_millis(10),
            )
            .is_ok()
        }),
    }
}

/// SIGTERM to the group, SIGKILL after the grace, and wait for the dyno.
fn kill_group(child: &mut Child, pgid: Pid, grace: Duration) {
    if !grace.is_zero() {
        let _ = killpg(pgid, Signal::SIGTERM);
        let until = Instant::now().checked_add(grace);
        while until.is_some_and(|u| Instant::now() < u) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}

/// Kills a process group a fence left behind and waits until it is gone
/// (the agent's fallback when a fence dies without saying `exited`).
pub fn kill_orphaned_group(pgid: i32) {
    let pgid = Pid::from_raw(pgid);
    if pgid.as_raw() <= 1 {
        return;
    }
    // SIGKILL cannot be ignored; a group is gone once signalling it fails.
    while killpg(pgid, Signal::SIGKILL).is_ok() {
        std::thread::sleep(Duration::from_millis(10));
    }
}
