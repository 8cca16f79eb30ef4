//! A host: the core's agent, driven by one event loop, starting dynos under
//! fences and talking to the manager over the link.
//!
//! Every input (timer, manager reply, boot, exit) goes through one channel
//! to one thread that owns the core agent, so inputs are applied one at a
//! time and effects are carried out in the order the core produced them.

use crate::clock::boottime_ns;
use crate::settings::{Deployment, Readiness};
use crate::wire::{DynoExit, DynoFacts, DynoProcess, Frame, LINK_VERSION, read_frame, write_frame};
use nix::fcntl::{FcntlArg, FdFlag, Flock, FlockArg, fcntl};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally_core::{
    Agent, AgentEffect, AgentInput, AgentNote, HostId, Incarnation, InstanceId, Message, Tick,
};
use thiserror::Error;

/// Why a host stopped.
#[derive(Debug, Error)]
pub enum HostError {
    /// Its data dir failed.
    #[error("host data dir {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manager refused it.
    #[error("the manager refused this agent: {0}")]
    Refused(String),
    /// The incarnation counter is unreadable.
    #[error(
        "{0}: not an incarnation number; restore it or remove it only once no dyno of this host runs"
    )]
    BadIncarnation(PathBuf),
    /// The data dir cannot be trusted.
    #[error("{0}")]
    DataDir(String),
    /// The machine identity file is not one.
    #[error(
        "{0}: not a machine id (hex); restore it, or remove it only once no dyno of this machine runs"
    )]
    BadMachineId(PathBuf),
    /// The manager's deployment changed under it.
    #[error(
        "the manager's deployment changed since this agent started; restart the agent so that it starts from a clean slate"
    )]
    DeploymentChanged,
}

/// How to run one host.
#[derive(Clone, Debug)]
pub struct HostOptions {
    /// The managers' agent addresses: one manager, or every manager of a
    /// highly available group (the agent follows the leader among them).
    pub managers: Vec<SocketAddr>,
    /// This host's id.
    pub host: HostId,
    /// Where the incarnation counter, dyno logs and ready files live.
    pub data_dir: PathBuf,
    /// How to start a fence: `tally-fence` beside `tally`, or `tally fence`.
    pub fence_exe: crate::fence::FenceExe,
    /// The manager's agent token.
    pub token: String,
}

enum Event {
    Welcome(Box<Deployment>),
    Refused(String),
    Reply(tally_core::ManagerReply),
    Booted(InstanceId),
    /// The fence said the dyno's process id.
    Pid,
    /// The dyno is gone; the fence's `exited` word, if it said one.
    Exited(InstanceId, Option<String>),
}

type Link = Arc<Mutex<Option<TcpStream>>>;

/// One running dyno, as the shell knows it.
struct Dyno {
    control: ChildStdin,
    lease_sent: Tick,
    /// The lease end last told to the fence, `CLOCK_BOOTTIME` ns (0: none).
    lease_end_ns: u64,
    /// The fence's grace, ns.
    grace_ns: u64,
    /// The dyno's process group, once the fence has said it (0 before).
    pgid: Arc<AtomicI32>,
    /// Whether the agent has had to kill the group itself.
    backstopped: bool,
    /// The port given in `$PORT`.
    port: u16,
}

/// How long past a lease end plus the grace the agent waits for its fence's
/// `exited` before it kills the dyno's group itself (a fence wedged on its
/// own: stopped, frozen, swapped out). Well inside the margin, which covers
/// the grace plus three ticks plus 100 ms.
const BACKSTOP_SLACK_NS: u64 = 50_000_000;

/// Bumps and returns this host's incarnation, fsynced, so that a restarted
/// agent never reuses one (the manager ties every grant to it).
///
/// # Errors
/// The counter file cannot be read or written.
pub fn next_incarnation(dir: &Path) -> Result<Incarnation, HostError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HostError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join("incarnation");
    let current = match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse::<u32>()
            .map_err(|_| HostError::BadIncarnation(path.clone()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io(&path)(e)),
    };
    let next = current.saturating_add(1);
    let tmp = dir.join("incarnation.tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(format!("{next}\n").as_bytes())
        .map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(Incarnation(next))
}

/// This machine's identity as an agent data dir holds it (`machine-id`,
/// random, created once): the manager binds each host id to one machine.
///
/// # Errors
/// The file cannot be read or created.
pub fn machine_id(data_dir: &Path) -> Result<String, HostError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("machine-id");
    let io = |source| HostError::Io {
        path: data_dir.join("machine-id"),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(id.to_string());
        }
        return Err(HostError::BadMachineId(path));
    }
    // Written whole under a private name, then linked into place, which
    // fails if another thread or process got there first (`tally run`
    // starts its hosts at once): nobody ever reads a half-written id.
    let id = random_hex()?;
    let tmp = data_dir.join(format!("machine-id.{id}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            File::open(data_dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => machine_id(data_dir),
        Err(e) => Err(io(e)),
    }
}

/// 128 random bits, in hex.
fn random_hex() -> Result<String, HostError> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| HostError::Io {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Takes the host's lock, waiting while processes of an earlier agent of
/// this host live. The lock's descriptor is inherited by every fence and
/// dyno, so it is held until the last of them is gone: two agents of one
/// host would each confirm the other's dynos dead (they never started them).
fn lock_host(dir: &Path, host: HostId) -> Result<Flock<File>, HostError> {
    let io = |source| HostError::Io {
        path: dir.join("lock"),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(io)?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((file, _)) => {
            tracing::warn!(
                host = host.0,
                "another agent of this host, or dynos it started, still run; waiting for them to end"
            );
            Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| io(std::io::Error::from(e)))?
        }
    };
    // Inherited by fences and dynos (std opens files close-on-exec).
    fcntl(&*lock, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| io(std::io::Error::from(e)))?;
    Ok(lock)
}

/// Runs a host until `stop` is set or a fatal error.
///
/// # Errors
/// The data dir fails, or the manager refuses or changes the deployment.
pub fn run(opts: &HostOptions, stop: &Arc<AtomicBool>) -> Result<(), HostError> {
    crate::server::open_data_dir(&opts.data_dir).map_err(|e| HostError::DataDir(e.to_string()))?;
    let dir = opts.data_dir.join(format!("host-{}", opts.host.0));
    let _lock = lock_host(&dir, opts.host)?;
    let incarnation = next_incarnation(&dir)?;
    for sub in ["logs", "run"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|source| HostError::Io { path: p, source })?;
    }
    crate::logs::spawn_tailer(&dir, Arc::clone(stop)).map_err(|source| HostError::Io {
        path: dir.join(crate::logs::MERGED),
        source,
    })?;
    let (tx, rx) = mpsc::channel();
    let link: Link = Arc::new(Mutex::new(None));
    {
        let (tx, link, stop) = (tx.clone(), Arc::clone(&link), Arc::clone(stop));
        let hello = Frame::Hello {
            version: LINK_VERSION,
            host: opts.host,
            incarnation,
            machine: machine_id(&opts.data_dir)?,
            session: random_hex()?,
            token: opts.token.clone(),
        };
        let (addrs, host) = (opts.managers.clone(), opts.host);
        std::thread::Builder::new()
            .name(format!("link-{}", host.0))
            .spawn(move || link_loop(&addrs, host, &hello, &tx, &link, &stop))
            .map_err(|source| HostError::Io {
                path: dir.clone(),
                source,
            })?;
    }
    let managers: Vec<String> = opts.managers.iter().map(ToString::to_string).collect();
    tracing::info!(host = opts.host.0, incarnation = incarnation.0, managers = %managers.join(","), "agent started");
    let mut shell = Shell {
        opts: opts.clone(),
        dir,
        start_ns: boottime_ns(),
        tick_ms: 100,
        deployment: None,
        agent: None,
        dynos: BTreeMap::new(),
        exits: std::collections::VecDeque::new(),
        facts_unsent: false,
        tx,
        link,
        incarnation,
    };
    shell.event_loop(&rx, stop)
}

struct Shell {
    opts: HostOptions,
    dir: PathBuf,
    /// `CLOCK_BOOTTIME` at the agent's tick 0.
    start_ns: u64,
    tick_ms: u64,
    deployment: Option<Arc<Deployment>>,
    agent: Option<Agent>,
    dynos: BTreeMap<InstanceId, Dyno>,
    /// The latest exits, with their words.
    exits: std::collections::VecDeque<(InstanceId, String)>,
    /// Whether the manager lacks the latest [`DynoFacts`].
    facts_unsent: bool,
    tx: Sender<Event>,
    link: Link,
    incarnation: Incarnation,
}

impl Shell {
    /// The agent's clock: ticks since this agent started (floored, so a
    /// request's send time is never later than the real one).
    fn now(&self) -> Tick {
        Tick(boottime_ns().saturating_sub(self.start_ns) / self.tick_ns())
    }

    fn tick_ns(&self) -> u64 {
        self.tick_ms.max(1).saturating_mul(1_000_000)
    }

    fn event_loop(&mut self, rx: &Receiver<Event>, stop: &AtomicBool) -> Result<(), HostError> {
        let mut out = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let wait = Duration::from_millis(self.tick_ms.max(1));
            let input = match rx.recv_timeout(wait) {
                Ok(Event::Welcome(d)) => {
                    // A new link: the manager there knows nothing yet.
                    self.facts_unsent = true;
                    match &self.deployment {
                        Some(known) if **known != *d => return Err(HostError::DeploymentChanged),
                        Some(_) => {}
                        None => {
                            self.tick_ms = d.tick_ms;
                            self.agent =
                                Some(Agent::new(self.opts.host, self.incarnation, self.now()));
                            self.deployment = Some(Arc::new(*d));
                        }
                    }
                    AgentInput::Tick
                }
                Ok(Event::Refused(why)) => return Err(HostError::Refused(why)),
                Ok(Event::Reply(r)) => AgentInput::ReplyReceived(r),
                Ok(Event::Booted(instance)) => AgentInput::ProcessBooted { instance },
                Ok(Event::Pid) => {
                    self.facts_unsent = true;
                    self.send_facts();
                    continue;
                }
                Ok(Event::Exited(instance, said)) => {
                    self.dynos.remove(&instance);
                    let words = said.as_deref().map_or_else(
                        || "its fence died without a word".to_owned(),
                        crate::wire::exit_status_words,
                    );
                    if self.exits.len() >= crate::wire::EXITS_KEPT {
                        self.exits.pop_front();
                    }
                    self.exits.push_back((instance, words));
                    // Before the core's report of the exit, so the manager
                    // has the words when it logs the exit (best effort: with
                    // no link now, the report may go first after a
                    // reconnect, and the log line lacks them).
                    self.facts_unsent = true;
                    self.send_facts();
                    AgentInput::ProcessExited { instance }
                }
                Err(RecvTimeoutError::Timeout) => AgentInput::Tick,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let now = self.now();
            let (Some(agent), Some(d)) = (self.agent.as_mut(), self.deployment.clone()) else {
                continue;
            };
            out.clear();
            agent.step(&d.config, now, input, &mut out);
            for effect in out.drain(..) {
                self.carry_out(&d, effect);
            }
            self.sync_leases();
            self.backstop();
            if self.facts_unsent {
                self.send_facts();
            }
        }
        Ok(())
    }

    /// Sends the dynos' processes and latest exits, if a link is up; kept
    /// for the next try otherwise.
    fn send_facts(&mut self) {
        let facts = DynoFacts {
            running: self
                .dynos
                .iter()
                .map(|(instance, d)| DynoProcess {
                    instance: *instance,
                    pid: u32::try_from(d.pgid.load(Ordering::SeqCst))
                        .ok()
                        .filter(|p| *p > 0),
                    port: d.port,
                })
                .collect(),
            exits: self
                .exits
                .iter()
                .map(|(instance, status)| DynoExit {
                    instance: *instance,
                    status: status.clone(),
                })
                .collect(),
        };
        if self.write(&Frame::Dynos(facts)) {
            self.facts_unsent = false;
        }
    }

    /// Writes a frame on the link; false if there is none or it failed (lost
    /// with the connection: the protocol allows it).
    fn write(&self, frame: &Frame) -> bool {
        let Ok(mut guard) = self.link.lock() else {
            return false;
        };
        let Some(stream) = guard.as_mut() else {
            return false;
        };
        if write_frame(stream, frame).is_ok() {
            return true;
        }
        *guard = None;
        false
    }

    fn carry_out(&mut self, d: &Deployment, effect: AgentEffect) {
        let host = self.opts.host.0;
        match effect {
            AgentEffect::StartProcess { instance } => {
                tracing::info!(
                    host,
                    slot = %d.slot_name(instance.slot),
                    generation = instance.generation.0,
                    "start"
                );
                if let Err(e) = self.start(d, instance) {
                    tracing::warn!(host, slot = %d.slot_name(instance.slot), generation = instance.generation.0, "cannot start: {e}");
                    let _ = self
                        .tx
                        .send(Event::Exited(instance, Some("spawn-failed".into())));
                }
            }
            AgentEffect::KillProcess { instance } => {
                tracing::info!(
                    host,
                    slot = %d.slot_name(instance.slot),
                    generation = instance.generation.0,
                    "kill"
                );
                if let Some(dyno) = self.dynos.get_mut(&instance) {
                    let _ = dyno.control.write_all(b"stop\n");
                    let _ = dyno.control.flush();
                }
            }
            AgentEffect::Send(report) => {
                self.write(&Frame::Core(Message::Report(report)));
            }
            AgentEffect::Note(note) => match note {
                AgentNote::SelfFenced { instance } => tracing::warn!(
                    host,
                    slot = %d.slot_name(instance.slot),
                    generation = instance.generation.0,
                    "lease ran out: self-fencing"
                ),
                other => tracing::debug!(host, "{other:?}"),
            },
        }
    }

    /// Tells each fence its dyno's lease end whenever the core moved it.
    fn sync_leases(&mut self) {
        let Some(agent) = self.agent.as_ref() else {
            return;
        };
        let tick_ns = self.tick_ns();
        for (id, local) in agent.instances() {
            if let Some(dyno) = self.dynos.get_mut(id) {
                if dyno.lease_sent != local.lease_until {
                    dyno.lease_sent = local.lease_until;
                    // Absolute, on the clock the fence reads too.
                    let end = self
                        .start_ns
                        .saturating_add(local.lease_until.0.saturating_mul(tick_ns));
                    dyno.lease_end_ns = end;
                    // Non-blocking: a wedged fence must not stall the agent
                    // (the backstop kills what it no longer guards).
                    let _ = writeln!(dyno.control, "lease {end}");
                    let _ = dyno.control.flush();
                }
            }
        }
    }

    /// Kills, itself, the group of any dyno whose fence has not reported it
    /// gone by its lease end plus the grace: only the fence's `exited` proves
    /// death, and a fence that stopped running enforces nothing.
    fn backstop(&mut self) {
        let now = boottime_ns();
        for dyno in self.dynos.values_mut() {
            let due = dyno
                .lease_end_ns
                .saturating_add(dyno.grace_ns)
                .saturating_add(BACKSTOP_SLACK_NS);
            let pgid = dyno.pgid.load(Ordering::SeqCst);
            if dyno.lease_end_ns == 0 || now < due || pgid <= 1 {
                continue;
            }
            if !dyno.backstopped {
                dyno.backstopped = true;
                tracing::warn!(
                    host = self.opts.host.0,
                    pgid,
                    "a fence let its lease end pass: killing its dyno's group"
                );
            }
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn start(&mut self, d: &Deployment, instance: InstanceId) -> std::io::Result<()> {
        let spec = d
            .types
            .get(usize::from(instance.slot.process_type.0))
            .ok_or_else(|| std::io::Error::other("unknown process type"))?;
        let dyno_name = d.slot_name(instance.slot);
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let ready_file = self
            .dir
            .join("run")
            .join(format!("{dyno_name}-g{}.ready", instance.generation.0));
        let _ = std::fs::remove_file(&ready_file);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs").join(format!("{dyno_name}.log")))?;
        let grace_ms = d
            .config
            .timing
            .kill_ticks
            .saturating_sub(1)
            .saturating_mul(d.tick_ms);
        let ready = match spec.ready {
            Readiness::Port => "port",
            Readiness::File => "file",
            Readiness::Started => "started",
        };
        let mut cmd: Command = self.opts.fence_exe.command();
        cmd.arg("--ready")
            .arg(ready)
            .arg("--port")
            .arg(port.to_string())
            .arg("--ready-file")
            .arg(&ready_file)
            .arg("--grace-ms")
            .arg(grace_ms.to_string())
            .arg("--")
            .args(crate::fence::argv_of(&spec.command))
            // `.env` first: the variables below win over it.
            .envs(d.env_of(&spec.app).map(|(k, v)| (k, v)))
            .env("DYNO", d.dyno_var(instance.slot))
            .env("TALLY_APP", &spec.app)
            .env("PORT", port.to_string())
            .env("TALLY_GENERATION", instance.generation.0.to_string())
            .env("TALLY_READY_FILE", &ready_file)
            .env("TALLY_HOST", self.opts.host.0.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            // Its own group: a Ctrl-C meant for `tally run` must reach the
            // fence through the agent's exit, not kill the fence first.
            .process_group(0);
        if let Some(dir) = &spec.dir {
            cmd.current_dir(dir);
        }
        use std::os::unix::process::CommandExt;
        let mut child = cmd.spawn()?;
        let control = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no fence stdin"))?;
        nix::fcntl::fcntl(&control, FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(std::io::Error::from)?;
        let pgid_seen = Arc::new(AtomicI32::new(0));
        let pgid_shared = Arc::clone(&pgid_seen);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no fence stdout"))?;
        let tx = self.tx.clone();
        let dyno_name_owned = dyno_name.clone();
        std::thread::Builder::new()
            .name(format!("dyno-{dyno_name}"))
            .spawn(move || {
                let (mut pgid, mut exited) = (None, None);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line == "ready" {
                        let _ = tx.send(Event::Booted(instance));
                    } else if let Some(p) = line.strip_prefix("pid ") {
                        pgid = p.trim().parse::<i32>().ok();
                        pgid_shared.store(pgid.unwrap_or(0), Ordering::SeqCst);
                        let _ = tx.send(Event::Pid);
                    } else if let Some(why) = line.strip_prefix("exited") {
                        exited = Some(why.trim().to_owned());
                    }
                }
                let _ = child.wait();
                // Only the fence's word proves the dyno gone; a fence that
                // died without it may have left the dyno running.
                if exited.is_none() {
                    if let Some(pgid) = pgid {
                        tracing::warn!(%dyno_name_owned, pgid, "fence died; killing its dyno's group");
                        crate::fence::kill_orphaned_group(pgid);
                    }
                }
                let _ = tx.send(Event::Exited(instance, exited));
            })?;
        self.dynos.insert(
            instance,
            Dyno {
                control,
                lease_sent: Tick(0),
                lease_end_ns: 0,
                grace_ns: grace_ms.saturating_mul(1_000_000),
                pgid: pgid_seen,
                backstopped: false,
                port,
            },
        );
        Ok(())
    }
}

/// How long an agent waits for a manager's `Welcome` (or refusal) after
/// its hello: a stopped manager accepts connections but never answers.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a link may stay silent before the agent takes the manager for
/// gone and tries the next one: half a lease (at least three report
/// intervals and a second). The manager answers every report, and reports
/// go every report interval, so a leader that stopped (SIGSTOP, a hung
/// machine) or is out of its guard (cut off from its store) is left
/// whatever TCP says, and early enough to reach the new leader before the
/// leases it granted run out. (With a whole lease, the agents of a stopped
/// leader reached its successor 0.1 s after their dynos' leases ran out,
/// and every dyno was fenced although the takeover came in time.)
fn silence_limit(d: &Deployment) -> Duration {
    let t = &d.config.timing;
    let half_lease_ms = t.lease_ticks.saturating_mul(d.tick_ms) / 2;
    let reports_ms = t
        .report_interval_ticks
        .saturating_mul(d.tick_ms)
        .saturating_mul(3);
    Duration::from_millis(half_lease_ms.max(reports_ms).max(1_000))
}

/// Connects, says hello, and forwards the manager's frames, reconnecting
/// whenever the connection fails or falls silent. With several manager
/// addresses (a highly available group), it goes to the leader a standby
/// names, or else to the next address; while no manager leads it keeps
/// trying them all, and its dynos live on their leases meanwhile.
fn link_loop(
    addrs: &[SocketAddr],
    host: HostId,
    hello: &Frame,
    tx: &Sender<Event>,
    link: &Link,
    stop: &AtomicBool,
) {
    let mut next = 0usize;
    let mut redirect: Option<SocketAddr> = None;
    let mut announced = false;
    let mut last_refusal: Option<String> = None;
    // The manager this agent last left for silence, and until when it is
    // not tried again (nor followed to by a standby's redirect, which
    // names it until its store lease expires) while other addresses are
    // left: a stopped leader accepts connections and holds each for the
    // welcome timeout.
    let mut silent: Option<(SocketAddr, Instant)> = None;
    // Attempts that did not connect since the last link: a pause after as
    // many as there are addresses, however the attempts went (a standby's
    // redirect to a leader that is gone must not spin).
    let mut failures = 0usize;
    let failed = |failures: &mut usize| {
        *failures = failures.wrapping_add(1);
        if *failures % addrs.len().max(1) == 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Moves on to the next address.
    let advance = |next: &mut usize, failures: &mut usize| {
        *next = next.wrapping_add(1);
        failed(failures);
    };
    while !stop.load(Ordering::SeqCst) {
        let Some(addr) = redirect
            .take()
            .or_else(|| addrs.get(next % addrs.len().max(1)).copied())
        else {
            return;
        };
        if addrs.len() > 1
            && silent.is_some_and(|(left, until)| left == addr && Instant::now() < until)
        {
            advance(&mut next, &mut failures);
            continue;
        }
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            if !announced {
                tracing::info!(host = host.0, "manager at {addr} unreachable; retrying");
                announced = true;
            }
            advance(&mut next, &mut failures);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(WELCOME_TIMEOUT));
        if write_frame(&mut stream, hello).is_err() {
            advance(&mut next, &mut failures);
            continue;
        }
        let Ok(reader) = stream.try_clone() else {
            advance(&mut next, &mut failures);
            continue;
        };
        let mut reader: Box<dyn Read> = Box::new(BufReader::new(reader));
        let silence = match read_frame(&mut reader) {
            Ok(Frame::Welcome { deployment }) => {
                let silence = silence_limit(&deployment);
                if tx.send(Event::Welcome(Box::new(deployment))).is_err() {
                    return;
                }
                silence
            }
            Ok(Frame::NotLeader { why, leader }) => {
                let said = format!("manager at {addr}: {why}");
                if last_refusal.as_ref() != Some(&said) {
                    tracing::info!(host = host.0, "{said}");
                    last_refusal = Some(said);
                }
                failed(&mut failures);
                redirect = leader
                    .and_then(|l| l.parse::<SocketAddr>().ok())
                    .filter(|l| *l != addr);
                if let Some(l) = redirect {
                    // Try the leader, then go on from there in the list.
                    if let Some(i) = addrs.iter().position(|a| *a == l) {
                        next = i;
                    }
                } else {
                    next = next.wrapping_add(1);
                }
                continue;
            }
            Ok(Frame::Refused { why, retry: true }) => {
                tracing::warn!(host = host.0, "manager at {addr} says: {why}; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Ok(Frame::Refused { why, retry: false }) => {
                let _ = tx.send(Event::Refused(why));
                return;
            }
            _ => {
                advance(&mut next, &mut failures);
                continue;
            }
        };
        announced = false;
        failures = 0;
        last_refusal = None;
        let _ = stream.set_read_timeout(Some(silence));
        if let Ok(mut guard) = link.lock() {
            *guard = Some(stream);
        }
        tracing::info!(host = host.0, "connected to manager at {addr}");
        loop {
            match read_frame(&mut reader) {
                Ok(Frame::Core(Message::Reply(reply))) => {
                    if tx.send(Event::Reply(reply)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if let Ok(mut guard) = link.lock() {
            if let Some(s) = guard.take() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        tracing::warn!(
            host = host.0,
            "lost the manager at {addr} (closed, or silent for {silence:?}); reconnecting"
        );
        silent = Some((addr, Instant::now() + silence));
        if addrs.len() > 1 {
            advance(&mut next, &mut failures);
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;

    /// A standby that names a leader that is gone (its port closed): the
    /// agent goes there, fails, comes back to the standby, and so on; it
    /// must pause between rounds, not spin (it once made thousands of
    /// attempts a second).
    #[test]
    fn a_redirect_to_a_gone_leader_does_not_spin() {
        let standby = TcpListener::bind("127.0.0.1:0").unwrap();
        let standby_addr = standby.local_addr().unwrap();
        let gone = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let hellos = Arc::new(AtomicUsize::new(0));
        std::thread::spawn({
            let hellos = Arc::clone(&hellos);
            move || {
                for stream in standby.incoming() {
                    let Ok(mut s) = stream else { continue };
                    if read_frame(&mut s).is_ok() {
                        hellos.fetch_add(1, Ordering::SeqCst);
                        let _ = write_frame(
                            &mut s,
                            &Frame::NotLeader {
                                why: "not leader; leader is a".into(),
                                leader: Some(gone.to_string()),
                            },
                        );
                    }
                }
            }
        });
        let hello = Frame::Hello {
            version: LINK_VERSION,
            host: HostId(0),
            incarnation: tally_core::Incarnation(0),
            machine: "m".into(),
            session: "s".into(),
            token: "t".into(),
        };
        let (tx, _rx) = mpsc::channel();
        let link: Link = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let looping = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || link_loop(&[standby_addr, gone], HostId(0), &hello, &tx, &link, &stop)
        });
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
        looping.join().unwrap();
        let n = hellos.load(Ordering::SeqCst);
        // One standby hello and one refused connect per round, a round
        // every 200 ms at most: about ten in two seconds.
        assert!((2..=15).contains(&n), "{n} hellos to the standby in 2 s");
    }
}
