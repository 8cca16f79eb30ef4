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
//! Protocol on stdin, one line each: `lease MS` (the lease now ends MS
//! milliseconds from now), `stop` (kill now). The dyno does not start before
//! the first `lease` line. On stdout: `ready` once the readiness condition
//! holds, `exited STATUS` at the end.

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
    Lease(Duration),
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
                Some(("lease", ms)) => match ms.trim().parse::<u64>() {
                    Ok(ms) => Control::Lease(Duration::from_millis(ms)),
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
        Ok(Control::Lease(d)) => Instant::now() + d,
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
    let mut ready_said = false;
    loop {
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
        let now = Instant::now();
        if now >= deadline {
            kill_group(&mut child, pgid, opts.grace);
            say("exited fenced");
            return 0;
        }
        match rx.recv_timeout(POLL.min(deadline - now)) {
            Ok(Control::Lease(d)) => deadline = Instant::now() + d,
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
                Duration::from_millis(50),
            )
            .is_ok()
        }),
    }
}

/// SIGTERM to the group, SIGKILL after the grace, and wait for the dyno.
fn kill_group(child: &mut Child, pgid: Pid, grace: Duration) {
    if !grace.is_zero() {
        let _ = killpg(pgid, Signal::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}
