//! The fence: a small process between an agent and each dyno that enforces
//! the dyno's lease even when the agent cannot.
//!
//! The core's agent kills an instance when its lease runs out. A frozen agent
//! (SIGSTOP, a swapped-out or wedged process: "alive but unheard") cannot,
//! and its dynos would outlive the lease the manager waits out, which is the
//! 2012 phantom. So each dyno runs under a fence that is told the lease's end
//! and kills the dyno's process group at that moment on its own clock (the
//! same machine's `CLOCK_BOOTTIME` the agent measured the lease on). It also
//! kills the dyno when the agent goes away (its stdin closes), since nobody
//! would then renew the lease. Dying early is always safe.
//!
//! Protocol on stdin, one line each: `lease NS` (the lease ends when
//! `CLOCK_BOOTTIME` reads NS nanoseconds: an absolute time, so no delay in
//! the pipe or in this process's scheduling can stretch it), `stop` (kill
//! now, with the grace). The dyno does not start before the first `lease`
//! line, nor at all if that lease has already ended. On stdout: `pid PGID`
//! once the dyno's process group exists, `ready` once the readiness
//! condition holds, `exited STATUS` once the group is gone. An agent takes
//! only `exited` as proof of death; if the fence dies without saying it, the
//! agent kills the group itself ([`kill_orphaned_group`]).
//!
//! **The kill is complete by the lease end plus the grace**, in absolute
//! `CLOCK_BOOTTIME` terms, whatever happened to the fence meanwhile. A fence
//! that wakes at its lease end (within [`SLACK`]) sends SIGTERM to the group
//! and SIGKILL at `end + grace`; one that wakes later (it, or its whole host,
//! was frozen or suspended) sends SIGKILL at once, without SIGTERM or grace.
//! A `stop` gives the grace from now, but never past `end + grace`. A closed
//! stdin (the agent is gone) means SIGKILL at once.
//!
//! One process runs beside every dyno, so this one is small: one thread,
//! which sleeps in `poll(2)` on stdin, a `signalfd` for SIGCHLD and a
//! `timerfd` on `CLOCK_BOOTTIME` set at the next moment due (so it wakes at
//! a lease end even across a suspend), and polls only while it waits for
//! readiness; next to no allocation.
//!
//! The dyno starts through `tally-fence --exec-dyno` ([`exec_dyno`]), which
//! sets `PR_SET_PDEATHSIG` in it: a fence that dies takes its dyno's leader
//! with it, even when its agent died at the same moment.
//!
//! Known limit: a dyno that leaves its process group (`setsid`, `setpgid`)
//! escapes the group kill; a cgroup per dyno would close that.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::time::ClockId as Clock;
use nix::time::clock_gettime;
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fmt::Arguments;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How often readiness is probed until it holds.
const POLL: Duration = Duration::from_millis(20);

/// How late past the lease end a fence may wake and still give the grace
/// (SIGTERM, then SIGKILL at `end + grace`); any later, it was frozen, and
/// it sends SIGKILL at once. Covers one readiness probe (10 ms) and
/// scheduling.
pub const SLACK: Duration = Duration::from_millis(50);

/// The grace between SIGTERM and SIGKILL when `--grace-ms` is not given.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(500);

/// The longest control line kept; longer lines are ignored.
const LINE_MAX: usize = 64;

/// The command line, for error messages.
pub const USAGE: &str = "usage: tally-fence --ready port|file|started [--port N] [--ready-file PATH] [--grace-ms N] -- COMMAND [ARG...]";

/// How the fence knows the dyno finished booting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// It accepts TCP connections on 127.0.0.1 at `--port`.
    Port,
    /// It created the file `--ready-file`.
    File,
    /// As soon as it has started.
    Started,
}

impl Ready {
    /// `port`, `file` or `started`.
    #[must_use]
    pub fn parse(word: &str) -> Option<Ready> {
        match word {
            "port" => Some(Ready::Port),
            "file" => Some(Ready::File),
            "started" => Some(Ready::Started),
            _ => None,
        }
    }
}

/// The fence's options (its command line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Readiness condition.
    pub ready: Ready,
    /// Port for [`Ready::Port`].
    pub port: Option<u16>,
    /// File for [`Ready::File`].
    pub ready_file: Option<PathBuf>,
    /// Grace between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The dyno's command line.
    pub argv: Vec<OsString>,
}

impl Options {
    /// Parses the fence's arguments (without the program name): `--ready
    /// port|file|started [--port N] [--ready-file PATH] [--grace-ms N] --
    /// COMMAND [ARG...]`; a flag's value follows it or is joined by `=`.
    ///
    /// # Errors
    /// An unknown flag, a missing or malformed value, no `--ready`, or no
    /// command after `--`.
    pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, String> {
        let mut args = args.into_iter();
        let (mut ready, mut port, mut ready_file, mut grace) = (None, None, None, DEFAULT_GRACE);
        while let Some(arg) = args.next() {
            if arg == "--" {
                let argv: Vec<OsString> = args.collect();
                if argv.is_empty() {
                    return Err("no command after --".into());
                }
                let ready = ready.ok_or("--ready is required")?;
                return Ok(Options {
                    ready,
                    port,
                    ready_file,
                    grace,
                    argv,
                });
            }
            let arg = arg
                .into_string()
                .map_err(|a| format!("unexpected argument {}", a.to_string_lossy()))?;
            let (flag, mut joined) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(OsString::from(value))),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                joined
                    .take()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag {
                "--ready" => {
                    let word = value()?;
                    ready = Some(word.to_str().and_then(Ready::parse).ok_or_else(|| {
                        format!(
                            "--ready {}: expected port, file or started",
                            word.to_string_lossy()
                        )
                    })?);
                }
                "--port" => port = Some(number(flag, &value()?)?),
                "--ready-file" => ready_file = Some(PathBuf::from(value()?)),
                "--grace-ms" => grace = Duration::from_millis(number(flag, &value()?)?),
                _ => return Err(format!("unexpected argument {arg}")),
            }
        }
        Err("missing -- COMMAND".into())
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &std::ffi::OsStr) -> Result<T, String> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{flag} {}: not a number", value.to_string_lossy()))
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

/// Nanoseconds of `CLOCK_BOOTTIME`: one clock for an agent and its fences
/// (so a lease end can cross the pipe as an absolute time), monotonic, and
/// counting time suspended, so a resumed host fences what expired meanwhile.
#[must_use]
pub fn boottime_ns() -> u64 {
    clock_gettime(Clock::CLOCK_BOOTTIME).map_or(0, |t| {
        u64::try_from(t.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
    })
}

/// What the fence is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    /// The lease ends at this `CLOCK_BOOTTIME` reading.
    Lease(u64),
    Stop,
}

/// One control line.
fn control(line: &[u8]) -> Option<Control> {
    let line = std::str::from_utf8(line).ok()?.trim();
    if line == "stop" {
        return Some(Control::Stop);
    }
    let ns = line.strip_prefix("lease ")?;
    ns.trim().parse().ok().map(Control::Lease)
}

/// Stdin, read without a thread or an allocation: bytes read, cut into
/// control lines on demand.
struct Input {
    chunk: [u8; 256],
    start: usize,
    end: usize,
    line: [u8; LINE_MAX],
    len: usize,
    overlong: bool,
    eof: bool,
}

impl Input {
    fn new() -> Input {
        Input {
            chunk: [0; 256],
            start: 0,
            end: 0,
            line: [0; LINE_MAX],
            len: 0,
            overlong: false,
            eof: false,
        }
    }

    /// Reads once (blocks unless `poll` said it is readable); call only
    /// once [`Input::next`] returned `None`.
    fn fill(&mut self, fd: impl AsFd) {
        match nix::unistd::read(fd, &mut self.chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => (self.start, self.end) = (0, n),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.eof = true,
        }
    }

    /// The next control in what was read (a last line without its newline
    /// counts once the input has ended).
    fn next(&mut self) -> Option<Control> {
        while self.start < self.end {
            let byte = self.chunk.get(self.start).copied().unwrap_or(b'\n');
            self.start += 1;
            if byte == b'\n' {
                if let Some(c) = self.take_line() {
                    return Some(c);
                }
            } else if let Some(slot) = self.line.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            } else {
                self.overlong = true;
            }
        }
        if self.eof { self.take_line() } else { None }
    }

    fn take_line(&mut self) -> Option<Control> {
        let line = if self.overlong {
            None
        } else {
            self.line.get(..self.len).and_then(control)
        };
        (self.len, self.overlong) = (0, false);
        line
    }
}

fn say(line: Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// The group is being killed: SIGTERM sent (unless due at once), SIGKILL at
/// `kill_at`.
#[derive(Clone, Copy)]
struct Kill {
    kill_at: u64,
    why: &'static str,
}

fn signal_group(pgid: Pid, signal: Signal) {
    // Never our own group (0) or init's.
    if pgid.as_raw() > 1 {
        let _ = killpg(pgid, signal);
    }
}

/// SIGTERM now unless the SIGKILL is already due.
fn begin_kill(pgid: Pid, kill_at: u64, now: u64, why: &'static str) -> Kill {
    if kill_at > now {
        signal_group(pgid, Signal::SIGTERM);
    }
    Kill { kill_at, why }
}

/// SIGKILL to the group, reap the dyno, say why.
fn finish(child: &mut Child, pgid: Pid, why: &str) -> i32 {
    signal_group(pgid, Signal::SIGKILL);
    let _ = child.wait();
    say(format_args!("exited {why}"));
    0
}

/// Whether the dyno has exited, leaving it unreaped: its zombie keeps its
/// process group id from being reused until the group has been killed.
fn has_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => false,
        // Anything else, even "no such child": it is gone.
        _ => true,
    }
}

fn is_ready(opts: &Options) -> bool {
    match opts.ready {
        Ready::Started => true,
        Ready::File => opts.ready_file.as_ref().is_some_and(|f| f.exists()),
        Ready::Port => opts.port.is_some_and(|p| {
            TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, p)),
                Duration::from_millis(10),
            )
            .is_ok()
        }),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs the fence until the dyno has exited; returns the exit code to use.
pub fn run(opts: &Options) -> i32 {
    let stdin = std::io::stdin();
    let mut input = Input::new();
    // No lease, no dyno.
    let mut deadline = loop {
        match input.next() {
            Some(Control::Lease(ns)) => break ns,
            Some(Control::Stop) => {
                say(format_args!("exited never-started"));
                return 0;
            }
            None if input.eof => {
                say(format_args!("exited never-started"));
                return 0;
            }
            None => input.fill(&stdin),
        }
    };
    let Some((program, args)) = opts.argv.split_first() else {
        say(format_args!("exited empty-command"));
        return 1;
    };
    if boottime_ns() >= deadline {
        // Ended already (the agent was slow): not even started.
        say(format_args!("exited fenced"));
        return 0;
    }
    // SIGCHLD is read from a signalfd, so it must not be delivered; the
    // dyno starts with an empty mask all the same (std resets it).
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    let fds = sigchld.thread_block().and_then(|()| {
        let exits = SignalFd::with_flags(&sigchld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_BOOTTIME,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        Ok((exits, timer))
    });
    let Ok((exits, timer)) = fds else {
        say(format_args!("exited fence-failed"));
        return 1;
    };
    let stderr = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_or_else(|_| Stdio::null(), Stdio::from)
    };
    // Through `tally-fence --exec-dyno FENCE_PID -- ARGV` when this is the
    // `tally-fence` binary: the dyno then dies with its fence even if both
    // the fence and its agent are killed at once (`pkill -9 tally`).
    let fence_pid = std::process::id().to_string();
    let guard = std::env::current_exe()
        .ok()
        .filter(|exe| exe.file_name().is_some_and(|n| n == "tally-fence"));
    let mut command = match &guard {
        Some(exe) => {
            let mut c = Command::new(exe);
            c.arg(EXEC_DYNO)
                .arg(&fence_pid)
                .arg("--")
                .arg(program)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    };
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(stderr())
        .stderr(stderr())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "tally-fence: cannot start {}: {e}",
                program.to_string_lossy()
            );
            say(format_args!("exited spawn-failed"));
            return 1;
        }
    };
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    say(format_args!("pid {pgid}"));
    let grace = nanos(opts.grace);
    let (mut ready_said, mut kill, mut armed) = (false, None::<Kill>, None::<u64>);
    loop {
        // A SIGKILL that is due first: nothing below may delay it.
        let now = boottime_ns();
        if let Some(k) = kill {
            if now >= k.kill_at {
                return finish(&mut child, pgid, k.why);
            }
        }
        if kill.is_none() && now >= deadline {
            let hard = deadline.saturating_add(grace);
            if now >= hard || now > deadline.saturating_add(nanos(SLACK)) {
                // Woken late (frozen, suspended): no grace left to give.
                return finish(&mut child, pgid, "fenced");
            }
            kill = Some(begin_kill(pgid, hard, now, "fenced"));
        }
        if has_exited(pgid) {
            // Whatever the dyno left in its group goes with it.
            signal_group(pgid, Signal::SIGKILL);
            let status = child.wait();
            match (kill, status) {
                (Some(k), _) => say(format_args!("exited {}", k.why)),
                (None, Ok(status)) => say(format_args!("exited {status}")),
                (None, Err(_)) => say(format_args!("exited unknown")),
            }
            return 0;
        }
        if kill.is_none() && !ready_said && is_ready(opts) {
            ready_said = true;
            say(format_args!("ready"));
        }
        let due = kill.map_or(deadline, |k| k.kill_at);
        if armed != Some(due) {
            let at = TimeSpec::from(Duration::from_nanos(due));
            if timer
                .set(
                    Expiration::OneShot(at),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                )
                .is_err()
            {
                // Cannot keep time: dying early is safe.
                return finish(&mut child, pgid, "fence-failed");
            }
            armed = Some(due);
        }
        let probing = kill.is_none() && !ready_said;
        let timeout = if probing {
            PollTimeout::try_from(POLL).unwrap_or(PollTimeout::ZERO)
        } else {
            PollTimeout::NONE
        };
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(exits.as_fd(), PollFlags::POLLIN),
            PollFd::new(timer.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(POLL),
        }
        let [from_agent, exited, rang] = fds.map(|fd| fd.revents().is_some_and(|r| !r.is_empty()));
        if rang {
            let _ = nix::unistd::read(&timer, &mut [0; 8]);
            armed = None;
        }
        if exited {
            while let Ok(Some(_)) = exits.read_signal() {}
        }
        if from_agent {
            input.fill(&stdin);
            while let Some(c) = input.next() {
                match (c, kill) {
                    (Control::Lease(ns), None) => deadline = ns,
                    (Control::Stop, None) => {
                        let now = boottime_ns();
                        let kill_at = now.min(deadline).saturating_add(grace);
                        kill = Some(begin_kill(pgid, kill_at, now, "stopped"));
                    }
                    // Once killing, nothing brings the dyno back.
                    (_, Some(_)) => {}
                }
            }
            if input.eof {
                // The agent is gone: nobody will renew, so end it now.
                return finish(&mut child, pgid, "agent-gone");
            }
        }
    }
}

/// The first argument of `tally-fence` when it runs as the dyno's first
/// step (see [`exec_dyno`]).
pub const EXEC_DYNO: &str = "--exec-dyno";

/// The dyno's first step, in the dyno's own process: asks the kernel to
/// SIGKILL it when its fence dies (`PR_SET_PDEATHSIG`, kept across `exec`),
/// checks that the fence had not already died, then becomes the dyno. Only
/// returns on failure, with the exit code to use.
pub fn exec_dyno(args: &[OsString]) -> i32 {
    use std::os::unix::ffi::OsStringExt;
    let (Some(fence), Some(dash)) = (args.first(), args.get(1)) else {
        return 127;
    };
    if dash != "--" {
        return 127;
    }
    let argv: Vec<std::ffi::CString> = args
        .iter()
        .skip(2)
        .filter_map(|a| std::ffi::CString::new(a.clone().into_vec()).ok())
        .collect();
    let Some(program) = argv.first() else {
        return 127;
    };
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return 127;
    }
    // The fence may have died before the request above: nobody guards us.
    let parent = nix::unistd::getppid().as_raw().to_string();
    if fence.to_str() != Some(parent.as_str()) {
        return 127;
    }
    let err = nix::unistd::execvp(program, &argv).err();
    let _ = writeln!(
        std::io::stderr(),
        "tally-fence: cannot start {}: {}",
        program.to_string_lossy(),
        err.map_or_else(String::new, |e| e.to_string())
    );
    127
}

/// Kills a process group a fence left behind and waits until it is gone
/// (the agent's fallback when a fence dies without saying `exited`).
pub fn kill_orphaned_group(pgid: i32) {
    let pgid = Pid::from_raw(pgid);
    if pgid.as_raw() <= 1 {
        return;
    }
    // SIGKILL cannot be ignored; a group is gone once signalling it fails,
    // or once every member left is a zombie nobody reaps (an agent running
    // as PID 1 in a container): those are dead, and waiting on them would
    // never end.
    while killpg(pgid, Signal::SIGKILL).is_ok() {
        if group_holds_only_zombies(pgid.as_raw()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether every process of group `pgid` is a zombie, read from /proc;
/// `false` when /proc cannot say (then the caller keeps waiting).
fn group_holds_only_zombies(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let (mut members, mut live) = (0, 0);
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold anything but ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, pgrp) = (fields.next(), fields.nth(1));
        if pgrp.and_then(|p| p.parse::<i32>().ok()) == Some(pgid) {
            members += 1;
            if state != Some("Z") && state != Some("X") {
                live += 1;
            }
        }
    }
    members > 0 && live == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_the_agents_command_line() {
        let opts = parse(&[
            "--ready",
            "port",
            "--port",
            "8080",
            "--ready-file",
            "/run/web.1.ready",
            "--grace-ms",
            "200",
            "--",
            "sh",
            "-c",
            "exec web --port=$PORT",
        ])
        .unwrap();
        assert_eq!(
            opts,
            Options {
                ready: Ready::Port,
                port: Some(8080),
                ready_file: Some(PathBuf::from("/run/web.1.ready")),
                grace: Duration::from_millis(200),
                argv: ["sh", "-c", "exec web --port=$PORT"]
                    .iter()
                    .map(OsString::from)
                    .collect(),
            }
        );
    }

    #[test]
    fn joined_values_defaults_and_flags_after_the_separator() {
        let opts = parse(&[
            "--ready=started",
            "--grace-ms=0",
            "--",
            "x",
            "--ready",
            "--",
        ])
        .unwrap();
        assert_eq!(opts.ready, Ready::Started);
        assert_eq!((opts.port, opts.ready_file), (None, None));
        assert_eq!(opts.grace, Duration::ZERO);
        assert_eq!(opts.argv, ["x", "--ready", "--"].map(OsString::from));
        let opts = parse(&["--ready", "file", "--", "x"]).unwrap();
        assert_eq!(opts.grace, DEFAULT_GRACE);
    }

    #[test]
    fn refuses_malformed_command_lines() {
        for (args, why) in [
            (&["--", "x"][..], "--ready is required"),
            (&["--ready", "started", "--"], "no command after --"),
            (&["--ready", "started", "x"], "unexpected argument x"),
            (&["--ready", "started"], "missing -- COMMAND"),
            (&["--ready", "soon", "--", "x"], "--ready soon: expected"),
            (&["--ready"], "--ready needs a value"),
            (
                &["--ready", "port", "--port", "99999", "--", "x"],
                "--port 99999: not a number",
            ),
            (
                &["--ready", "port", "--grace-ms=-1", "--", "x"],
                "--grace-ms -1: not a number",
            ),
            (
                &["--ready=port", "--bogus=1", "--", "x"],
                "unexpected argument --bogus=1",
            ),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.starts_with(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn plain_commands_split_shell_commands_go_through_sh() {
        assert_eq!(argv_of("  sleep   30 "), ["sleep", "30"]);
        assert_eq!(argv_of("bin/web"), ["bin/web"]);
        assert!(argv_of("").is_empty());
        for cmd in [
            "web --port=$PORT",
            "a | b",
            "a && b",
            "echo 'x y'",
            "ls *.rs",
            "a > log",
            "cd ~",
        ] {
            assert_eq!(argv_of(cmd), ["/bin/sh", "-c", cmd], "{cmd}");
        }
    }

    fn controls(input: &mut Input, bytes: &[u8]) -> Vec<Control> {
        input.chunk[..bytes.len()].copy_from_slice(bytes);
        (input.start, input.end) = (0, bytes.len());
        std::iter::from_fn(|| input.next()).collect()
    }

    #[test]
    fn control_lines_are_cut_across_reads_and_junk_is_ignored() {
        let mut input = Input::new();
        assert_eq!(
            controls(
                &mut input,
                b"lease 12\nstop\nlease x\nhello\n lease  7 \nlea"
            ),
            [Control::Lease(12), Control::Stop, Control::Lease(7)]
        );
        assert_eq!(controls(&mut input, b"se 9\n"), [Control::Lease(9)]);
        let long = [b'1'; 100];
        assert_eq!(controls(&mut input, b"lease "), []);
        assert_eq!(controls(&mut input, &long), []);
        assert_eq!(controls(&mut input, b"\nstop"), []);
        input.eof = true;
        assert_eq!(controls(&mut input, b""), [Control::Stop]);
        assert_eq!(input.next(), None);
    }

    #[test]
    fn the_clock_is_boottime_and_moves_forward() {
        let a = boottime_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = boottime_ns();
        assert!(a > 0 && b >= a + 2_000_000, "{a} {b}");
    }
}
