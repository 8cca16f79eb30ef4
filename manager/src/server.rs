//! The manager process: the data dir, the journal, the agent link, the
//! timer and the HTTP API, all feeding the one [`Shared`] core.

use crate::clock::Moment;
use crate::journal::{self, DirLock, FileJournal, Journal, JournalError, JournalOptions};
use crate::machine::ManagerMachine;
use crate::settings::Deployment;
use crate::shell::{Applied, Shared, ShellError};
use crate::wire::{
    Frame, HELLO_BYTES_MAX, LINK_VERSION, LINK_VERSION_OLDEST, read_frame, read_frame_limited,
    write_frame,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tally_core::{
    Durable, Effect, HostId, Incarnation, Manager, ManagerInput, Message, Rejected, Tick,
};
use thiserror::Error;

/// The manager's shared core.
pub type Core = Shared<ManagerMachine, Journal>;

/// Why the manager cannot start or had to stop.
#[derive(Debug, Error)]
pub enum ServerError {
    /// A data dir file.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The data dir was made for another deployment.
    #[error(
        "{0} was created for a different Procfile or tally.toml; a manager must keep its configuration for the life of its journal. Restore the original files; or stop every agent of the old deployment, wait one lease expiry of the old settings (their dynos must be gone), and start with a fresh --data-dir"
    )]
    DeploymentChanged(PathBuf),
    /// The data dir cannot be trusted.
    #[error("data dir {dir}: {why}; refusing to use it")]
    DataDir {
        /// The data dir.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The core refused the configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] tally_core::ConfigError),
    /// The journal failed while running.
    #[error("stopping: {0}")]
    Fatal(String),
    /// The etcd store (`tally run --store etcd://...`).
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    Store(#[from] crate::etcd::StoreError),
    /// The store holds another deployment's journal.
    #[error(
        "the etcd journal under {prefix} (at {endpoints}) was created for a different Procfile, tally.toml or store lease; every manager of a deployment must run the same ones. Start this manager with the files the others use; or give this deployment its own prefix (etcd://HOSTS/PREFIX)"
    )]
    StoreDeploymentChanged {
        /// The store's endpoints.
        endpoints: String,
        /// The key prefix.
        prefix: String,
    },
    /// The store lease leaves no room for a leadership guard.
    #[error(
        "--store-lease-s {lease_s} is too short for tick_ms = {tick_ms}: {source}. Give a longer --store-lease-s"
    )]
    StoreLease {
        /// The lease, seconds.
        lease_s: i64,
        /// The tick.
        tick_ms: u64,
        /// The core's refusal.
        source: tally_core::ConfigError,
    },
    /// The store's shared state is not what this tally writes.
    #[error("etcd key {key}: {why}; refusing to use it")]
    StoreMeta {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the data dir (or the etcd store) remembers besides the journal.
#[derive(Serialize, Deserialize)]
pub(crate) struct Meta {
    /// Tick 0, in Unix milliseconds: the manager's clock counts from here
    /// across restarts, so that journaled times stay meaningful.
    pub(crate) genesis_unix_ms: u64,
    pub(crate) deployment: Deployment,
}

/// Where the manager listens.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Data dir (journal, token, addresses).
    pub data_dir: PathBuf,
    /// The deployment.
    pub deployment: Deployment,
    /// Agent link address (port 0 picks one).
    pub agent_listen: SocketAddr,
    /// HTTP API address (port 0 picks one).
    pub api_listen: SocketAddr,
    /// Journal tuning.
    pub journal: JournalOptions,
}

/// A started manager.
pub struct Server {
    /// The core.
    pub core: Arc<Core>,
    /// The agent link's address.
    pub agent_addr: SocketAddr,
    /// The API's address.
    pub api_addr: SocketAddr,
    /// The bearer token file.
    pub token_path: PathBuf,
    /// The token (API and agent link).
    pub token: String,
    fatal: Arc<std::sync::Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The manager's clock in ticks since genesis: the wall clock read once at
/// start (so journaled times stay meaningful across restarts), then
/// `CLOCK_BOOTTIME`, so that a wall-clock step cannot expire every lease at
/// once (or freeze expiry), and a suspend of the whole machine counts as
/// time passed (as it does for the agents and their fences: a leader
/// suspended past its store lease resumes outside its guard).
#[derive(Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    start: Moment,
    tick_ms: u64,
}

impl Clock {
    /// Starts the clock for a journal that began at `genesis_unix_ms`.
    #[must_use]
    pub fn start(genesis_unix_ms: u64, tick_ms: u64) -> Clock {
        Clock {
            base_ms: unix_ms().saturating_sub(genesis_unix_ms),
            start: Moment::now(),
            tick_ms,
        }
    }

    fn ms_at(&self, at: &Moment) -> u64 {
        let ms = |ns: u64| ns / 1_000_000;
        if at.boot_ns >= self.start.boot_ns {
            self.base_ms
                .saturating_add(ms(at.boot_ns - self.start.boot_ns))
        } else {
            self.base_ms
                .saturating_sub(ms(self.start.boot_ns - at.boot_ns).saturating_add(1))
        }
    }

    /// The tick `at` falls in (floored; a moment before the clock started
    /// counts from its start backwards, never below tick 0).
    #[must_use]
    pub fn tick_of(&self, at: Moment) -> Tick {
        Tick(self.ms_at(&at) / self.tick_ms.max(1))
    }

    /// Now, in ticks (floored).
    #[must_use]
    pub fn now(&self) -> Tick {
        self.tick_of(Moment::now())
    }

    /// An instant at which [`Clock::now`] will read `t` or later unless the
    /// machine is suspended meanwhile (then later: a sleeper checks again);
    /// an instant already past for a tick already reached; `None` if it
    /// lies beyond what an `Instant` can hold.
    #[must_use]
    pub fn instant_of(&self, t: Tick) -> Option<Instant> {
        let now = Moment::now();
        let target = t.0.saturating_mul(self.tick_ms.max(1));
        let ahead = target.saturating_sub(self.ms_at(&now));
        now.instant.checked_add(Duration::from_millis(ahead))
    }
}

/// Writes `contents` to `path` atomically, with `mode`. The temporary file
/// is created new (never through a planted link) and renamed over `path`.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    // The rename itself must survive a power loss (meta.json above all).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Creates the data dir (0700), or checks that an existing one is a
/// directory of this user that nobody else can write: a token, a journal
/// or a lock in a directory others control is worth nothing.
pub(crate) fn open_data_dir(dir: &Path) -> Result<(), ServerError> {
    let refuse = |why: String| ServerError::DataDir {
        dir: dir.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
            Ok(())
        }
        Err(e) => Err(io(dir)(e)),
        Ok(m) if !m.is_dir() => Err(refuse(
            "not a directory (a symbolic link is refused too)".into(),
        )),
        Ok(m) => {
            let me = nix::unistd::geteuid().as_raw();
            if m.uid() != me {
                return Err(refuse(format!(
                    "owned by uid {}, not by this user (uid {me})",
                    m.uid()
                )));
            }
            if m.mode() & 0o022 != 0 {
                return Err(refuse(format!(
                    "writable by others (mode {:o}); `chmod 700` it if you trust its contents",
                    m.mode() & 0o777
                )));
            }
            Ok(())
        }
    }
}

/// The bearer token of a data dir this manager created: read when it is a
/// file of this user that only this user can read, otherwise a new one.
fn token(dir: &Path, created_here: bool) -> Result<(String, PathBuf), ServerError> {
    let path = dir.join("token");
    if created_here {
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            let me = nix::unistd::geteuid().as_raw();
            let t = std::fs::read_to_string(&path).unwrap_or_default();
            let t = t.trim().to_string();
            if m.is_file() && m.uid() == me && m.mode() & 0o077 == 0 && t.len() >= 32 {
                return Ok((t, path));
            }
            tracing::warn!(
                "{}: not a private file of this user; replaced by a new token (agents need the new one)",
                path.display()
            );
        }
    } else if path.exists() {
        tracing::warn!(
            "{}: a token this manager did not create; replaced by a new one",
            path.display()
        );
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io(Path::new("/dev/urandom")))?;
    let t: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_file(&path, format!("{t}\n").as_bytes(), 0o600)?;
    Ok((t, path))
}

fn read_meta(meta_path: &Path) -> Result<Meta, ServerError> {
    let bytes = std::fs::read(meta_path).map_err(io(meta_path))?;
    serde_json::from_slice(&bytes).map_err(|e| ServerError::Io {
        path: meta_path.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// The core and its journal, from the data dir: recovered when the data dir
/// was started before (its journal must be whole), new otherwise.
fn open_core(
    dir: &Path,
    deployment: &Deployment,
    lock: DirLock,
    journal_opts: JournalOptions,
) -> Result<(ManagerMachine, Journal, Clock, bool), ServerError> {
    let cfg = &deployment.config;
    let meta_path = dir.join("meta.json");
    if meta_path.exists() {
        let meta = read_meta(&meta_path)?;
        if !meta.deployment.same_core(deployment) {
            return Err(ServerError::DeploymentChanged(dir.to_path_buf()));
        }
        let clock = Clock::start(meta.genesis_unix_ms, deployment.tick_ms);
        let now = clock.now();
        let (mut journal, recovered) =
            FileJournal::open(lock, dir, cfg, Durable::genesis(cfg, now), journal_opts)?;
        let manager = Manager::recover(cfg, recovered.durable, now)?;
        journal.rebase(manager.durable().clone());
        tracing::info!(
            entries = recovered.entries_read,
            seq = recovered.seq,
            instances = manager.ledger_len(),
            "manager recovered from its journal; every instance is held for a full lease expiry"
        );
        let machine =
            ManagerMachine::new(Arc::new(deployment.clone()), manager, journal.counters());
        return Ok((machine, Journal::File(journal), clock, false));
    }
    // No meta.json: a data dir never started, or whose first start was cut
    // short before meta.json (written last). Parts of an unused journal
    // are removed; a journal that committed a step is refused.
    if journal::exists(dir) {
        journal::remove_unused(dir)?;
    }
    let genesis_unix_ms = unix_ms();
    let clock = Clock::start(genesis_unix_ms, deployment.tick_ms);
    // A new data dir cannot know whether dynos launched from a lost one
    // still run: wait one full lease expiry before the first launch, so
    // whatever an earlier manager granted has run out and been fenced.
    let hold_ms = cfg.lease_expiry_ticks().saturating_mul(deployment.tick_ms);
    tracing::info!(
        "new data dir {}: holding launches for one lease expiry ({hold_ms} ms), in case dynos of a lost data dir still run",
        dir.display()
    );
    std::thread::sleep(Duration::from_millis(hold_ms));
    let now = clock.now();
    let mut out = Vec::new();
    let manager = Manager::new(cfg, now, &mut out)?;
    let mut journal =
        FileJournal::create(lock, dir, cfg, Durable::genesis(cfg, now), journal_opts)?;
    journal.append(out.iter().filter_map(|e| match e {
        Effect::Persist(r) => Some(r),
        _ => None,
    }))?;
    journal.rebase(manager.durable().clone());
    let meta = Meta {
        genesis_unix_ms,
        deployment: deployment.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| ServerError::Io {
        path: meta_path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_file(&meta_path, &bytes, 0o600)?;
    tracing::info!("new manager: journal started in {}", dir.display());
    let machine = ManagerMachine::new(Arc::new(deployment.clone()), manager, journal.counters());
    Ok((machine, Journal::File(journal), clock, true))
}

/// The agent link's and the API's listeners, bound, with their addresses
/// written into the data dir (`agent.addr`, `api.addr`) for the verbs and
/// the agents.
pub(crate) struct Listeners {
    /// The agent link.
    pub(crate) agents: TcpListener,
    /// Its address.
    pub(crate) agent_addr: SocketAddr,
    /// The HTTP API.
    pub(crate) api: tiny_http::Server,
    /// Its address.
    pub(crate) api_addr: SocketAddr,
}

impl Listeners {
    /// Binds both (port 0 picks one) and writes their addresses.
    pub(crate) fn bind(
        dir: &Path,
        agent_listen: SocketAddr,
        api_listen: SocketAddr,
    ) -> Result<Listeners, ServerError> {
        let agents = TcpListener::bind(agent_listen).map_err(|source| ServerError::Io {
            path: PathBuf::from(format!("agent listener {agent_listen}")),
            source,
        })?;
        let agent_addr = agents.local_addr().map_err(io(dir))?;
        let api = tiny_http::Server::http(api_listen).map_err(|e| ServerError::Io {
            path: PathBuf::from(format!("API listener {api_listen}")),
            source: std::io::Error::other(e.to_string()),
        })?;
        let api_addr = api
            .server_addr()
            .to_ip()
            .ok_or_else(|| ServerError::Fatal("API listener has no IP address".into()))?;
        write_file(
            &dir.join("agent.addr"),
            agent_addr.to_string().as_bytes(),
            0o600,
        )?;
        write_file(
            &dir.join("api.addr"),
            api_addr.to_string().as_bytes(),
            0o600,
        )?;
        Ok(Listeners {
            agents,
            agent_addr,
            api,
            api_addr,
        })
    }
}

impl Server {
    /// Opens the data dir, recovers from the journal, and starts the agent
    /// link, the timer and the API.
    ///
    /// # Errors
    /// Data dir, journal or configuration problems; busy addresses.
    pub fn start(opts: ServerOptions) -> Result<Server, ServerError> {
        let dir = &opts.data_dir;
        opts.deployment.config.validate()?;
        open_data_dir(dir)?;
        let lock = DirLock::acquire(dir)?;
        let (machine, journal, clock, created) =
            open_core(dir, &opts.deployment, lock, opts.journal)?;
        let (token, token_path) = token(dir, !created)?;
        let bindings = HostBindings::load(dir)?;
        let now = clock.now();
        let core = Arc::new(Shared::new(machine, journal, now));
        let fatal = Arc::new(std::sync::Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));

        let Listeners {
            agents,
            agent_addr,
            api,
            api_addr,
        } = Listeners::bind(dir, opts.agent_listen, opts.api_listen)?;

        let server = Server {
            core: Arc::clone(&core),
            agent_addr,
            api_addr,
            token_path,
            token: token.clone(),
            fatal: Arc::clone(&fatal),
            stop: Arc::clone(&stop),
        };
        let link = Arc::new(LinkContext::new(
            Arc::clone(&core),
            clock,
            opts.deployment.clone(),
            token.clone(),
            Arc::clone(&fatal),
            bindings,
        ));
        spawn("agent-listener", {
            let link = Arc::clone(&link);
            move || accept_agents(&agents, &link)
        })?;
        spawn("timer", {
            let (core, fatal, stop) = (Arc::clone(&core), Arc::clone(&fatal), Arc::clone(&stop));
            let period = Duration::from_millis(opts.deployment.tick_ms);
            move || {
                if let Err(e) = run_timer(&core, clock, period, &stop) {
                    set_fatal(&fatal, &e);
                }
            }
        })?;
        let api = Arc::new(api);
        for worker in 0..4 {
            let (core, fatal, api, token, link) = (
                Arc::clone(&core),
                Arc::clone(&fatal),
                Arc::clone(&api),
                token.clone(),
                Arc::clone(&link),
            );
            spawn(&format!("api-{worker}"), move || {
                let known = move |h: HostId| link.host_known(h);
                crate::api::serve(&api, &core, clock, &token, &fatal, &known);
            })?;
        }
        Ok(server)
    }

    /// Blocks until the journal fails (the only way the manager stops by
    /// itself); the caller exits so that a restart recovers from the journal.
    #[must_use]
    pub fn wait(&self) -> ServerError {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Ok(guard) = self.fatal.lock() {
                if let Some(why) = guard.as_ref() {
                    return ServerError::Fatal(why.clone());
                }
            }
        }
    }

    /// Stops the timer (tests).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The timer: checks every `period` (one tick) that the journal and the
/// lock are still this manager's (renewals journal nothing, so no commit
/// would notice), and steps the core with a `Tick` only once the core's
/// [`Manager::next_wake`] has come, since a `Tick` before it changes
/// nothing. It sleeps until that wake or the next check, whichever is
/// first, and reads the wake again after every sleep, so a wake that an
/// input brought forward is met within one period, no later than a `Tick`
/// every period would meet it. At most one `Tick` per tick of the clock.
pub(crate) fn run_timer(
    core: &Core,
    clock: Clock,
    period: Duration,
    stop: &AtomicBool,
) -> Result<(), ShellError<JournalError>> {
    let mut next_check = Instant::now() + period;
    let mut ticked: Option<Tick> = None;
    while !stop.load(Ordering::SeqCst) {
        let wake = core
            .read(|m, _| m.manager.next_wake(&m.deployment.config))?
            .map(|w| ticked.map_or(w, |t| w.max(Tick(t.0.saturating_add(1)))));
        let now = clock.now();
        if wake.is_some_and(|w| now >= w) {
            core.apply(now, ManagerInput::Tick)?;
            ticked = Some(now);
            continue;
        }
        let mut until = next_check;
        if let Some(at) = wake.and_then(|w| clock.instant_of(w)) {
            until = until.min(at);
        }
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        if Instant::now() >= next_check {
            core.check_sink(Journal::check)?;
            next_check = Instant::now() + period;
        }
    }
    Ok(())
}

pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), ServerError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|source| ServerError::Io {
            path: PathBuf::from(format!("thread {name}")),
            source,
        })
}

/// Records a fatal journal error for `wait`.
pub fn set_fatal(fatal: &std::sync::Mutex<Option<String>>, e: &ShellError<JournalError>) {
    let why = if deposed(e) {
        format!(
            "{e}: a fenced append failed; stepping down: nothing of that step is acted on, this manager acts no more and exits (its supervisor starts it again as a standby)"
        )
    } else {
        e.to_string()
    };
    tracing::error!("{why}");
    if let Ok(mut guard) = fatal.lock() {
        guard.get_or_insert(why);
    }
}

/// Whether a journal failure is an etcd leader's deposition.
fn deposed(e: &ShellError<JournalError>) -> bool {
    #[cfg(feature = "etcd")]
    {
        matches!(
            e,
            ShellError::Sink(JournalError::Store(crate::etcd::StoreError::Deposed { .. }))
        )
    }
    #[cfg(not(feature = "etcd"))]
    {
        let _ = e;
        false
    }
}

/// Connections that have not yet said a valid hello, at most: more are
/// closed at once, so a flood of idle or oversized connections costs
/// neither threads nor memory before the token is checked.
pub const PENDING_MAX: usize = 16;

/// Time an unauthenticated connection has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(2);

/// Which machine each host id belongs to (`hosts.json` in the data dir):
/// a host's identity cannot pass to another machine while the ledger places
/// any instance on it, since that machine would confirm as dead dynos it
/// never started.
pub(crate) struct HostBindings {
    /// `hosts.json`; `None` when the bindings live in the etcd store,
    /// where every manager of the deployment finds them.
    path: Option<PathBuf>,
    machines: BTreeMap<HostId, String>,
}

impl HostBindings {
    fn load(dir: &Path) -> Result<HostBindings, ServerError> {
        let path = dir.join("hosts.json");
        let machines = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ServerError::Io {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(HostBindings {
            path: Some(path),
            machines,
        })
    }

    /// Bindings kept in the etcd store (`hosts`, written fenced by the
    /// leader), as read there.
    #[cfg(feature = "etcd")]
    pub(crate) fn in_store(machines: BTreeMap<HostId, String>) -> HostBindings {
        HostBindings {
            path: None,
            machines,
        }
    }

    fn save(&self, core: &Core) -> Result<(), ServerError> {
        let bytes = serde_json::to_vec_pretty(&self.machines).map_err(|e| ServerError::Io {
            path: self.path.clone().unwrap_or_else(|| PathBuf::from("hosts")),
            source: std::io::Error::other(e),
        })?;
        match &self.path {
            Some(path) => write_file(path, &bytes, 0o600),
            None => save_in_store(core, &bytes),
        }
    }
}

/// Writes the host bindings to the store, fenced by the leader's term.
#[cfg(feature = "etcd")]
fn save_in_store(core: &Core, bytes: &[u8]) -> Result<(), ServerError> {
    core.read_sink(|journal| match journal {
        Journal::Etcd(j) => j.save_bindings(bytes),
        Journal::File(_) => Ok(()),
    })
    .map_err(|e| ServerError::Fatal(e.to_string()))?
    .map_err(ServerError::Store)
}

/// Without etcd support every binding has a file.
#[cfg(not(feature = "etcd"))]
fn save_in_store(_core: &Core, _bytes: &[u8]) -> Result<(), ServerError> {
    Ok(())
}

/// Who is behind an agent link.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AgentIdentity {
    machine: String,
    incarnation: Incarnation,
    session: String,
}

/// What every agent connection shares.
pub(crate) struct LinkContext {
    pub(crate) core: Arc<Core>,
    pub(crate) clock: Clock,
    pub(crate) deployment: Deployment,
    pub(crate) token: String,
    pub(crate) fatal: Arc<std::sync::Mutex<Option<String>>>,
    /// Hosts with a live link: who (machine, incarnation, session) and the
    /// connection number.
    live: std::sync::Mutex<BTreeMap<HostId, (AgentIdentity, u64)>>,
    /// The machine each host id is bound to.
    bindings: std::sync::Mutex<HostBindings>,
    /// Connections not yet admitted.
    pending: AtomicUsize,
}

impl LinkContext {
    /// What the agent links of a manager share.
    pub(crate) fn new(
        core: Arc<Core>,
        clock: Clock,
        deployment: Deployment,
        token: String,
        fatal: Arc<std::sync::Mutex<Option<String>>>,
        bindings: HostBindings,
    ) -> LinkContext {
        LinkContext {
            core,
            clock,
            deployment,
            token,
            fatal,
            live: std::sync::Mutex::new(BTreeMap::new()),
            bindings: std::sync::Mutex::new(bindings),
            pending: AtomicUsize::new(0),
        }
    }

    /// A host that has ever attached, or that the ledger places instances on.
    pub(crate) fn host_known(&self, host: HostId) -> bool {
        let bound = self
            .bindings
            .lock()
            .is_ok_and(|b| b.machines.contains_key(&host));
        bound
            || self
                .core
                .read(|m, _| m.manager.instances_on(host).next().is_some())
                .unwrap_or(false)
    }
}

/// Reads from a stream until a deadline for the whole read, not per call.
pub(crate) struct Deadline<'a> {
    pub(crate) stream: &'a TcpStream,
    pub(crate) until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

/// Holds one of the [`PENDING_MAX`] places of connections not yet admitted,
/// given back when dropped (admitted, refused, timed out, or never spawned).
struct PendingSlot(Arc<LinkContext>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_agents(listener: &TcpListener, link: &Arc<LinkContext>) {
    for (n, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else {
            // Out of descriptors, say: no busy loop while it lasts.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        accept_agent(stream, link, n as u64);
    }
}

/// Serves one accepted agent connection on a thread of its own, unless
/// [`PENDING_MAX`] connections already wait for their hello.
pub(crate) fn accept_agent(stream: TcpStream, link: &Arc<LinkContext>, n: u64) {
    if link.pending.fetch_add(1, Ordering::SeqCst) >= PENDING_MAX {
        link.pending.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(
            "agent link: {PENDING_MAX} connections already wait for their hello; closing one more"
        );
        drop(stream);
        return;
    }
    let slot = PendingSlot(Arc::clone(link));
    // A failed spawn drops the closure, and with it the slot.
    let _ = std::thread::Builder::new()
        .name("agent-link".into())
        .spawn(move || serve_agent(stream, slot, n));
}

/// Checks a hello; registers the host's link.
fn admit(
    link: &LinkContext,
    frame: Frame,
    conn: u64,
) -> Result<(HostId, Incarnation), (String, bool)> {
    let Frame::Hello {
        version,
        host,
        incarnation,
        machine,
        session,
        token,
    } = frame
    else {
        return Err(("expected a hello".into(), false));
    };
    // Version 2 differs only by sending no `Dynos` (ps then shows no pid or
    // port for its dynos): an agent not yet upgraded keeps its dynos.
    if !(LINK_VERSION_OLDEST..=LINK_VERSION).contains(&version) {
        return Err((
            format!(
                "link version {version}; this manager speaks {LINK_VERSION_OLDEST} to {LINK_VERSION}"
            ),
            false,
        ));
    }
    if !crate::api::same(&token, &link.token) {
        return Err((
            "wrong agent token (give the manager data dir's `token` file)".into(),
            false,
        ));
    }
    if machine.is_empty() || machine.len() > 64 || session.is_empty() || session.len() > 64 {
        return Err((
            "a machine id and a session of 1 to 64 characters are required".into(),
            false,
        ));
    }
    let who = AgentIdentity {
        machine: machine.clone(),
        incarnation,
        session,
    };
    let Ok(mut live) = link.live.lock() else {
        return Err(("manager state poisoned".into(), true));
    };
    // Two agents of one host would each confirm dynos of the other dead.
    // Only the same agent process may replace its own live link (a
    // reconnect); anything else waits until that link is gone.
    if let Some((other, _)) = live.get(&host) {
        if *other != who {
            return Err((
                format!(
                    "{host} already has a live agent (machine {}, incarnation {}); stop it first",
                    other.machine, other.incarnation.0
                ),
                true,
            ));
        }
    }
    let Ok(mut bindings) = link.bindings.lock() else {
        return Err(("manager state poisoned".into(), true));
    };
    match bindings.machines.get(&host) {
        Some(bound) if *bound == machine => {}
        bound => {
            let placed = link
                .core
                .read(|m, _| m.manager.instances_on(host).count())
                .unwrap_or(usize::MAX);
            // Instances on the host, and no proof that this machine is the
            // one that runs them: not until they have stopped (confirmed
            // or expired, since nobody renews them meanwhile).
            if placed > 0 {
                let owner = bound.map_or_else(
                    || "no recorded machine (hosts.json lost?)".to_string(),
                    |b| format!("machine {b}"),
                );
                return Err((
                    format!(
                        "{host} belongs to {owner}, and {placed} instance(s) in the ledger may still run there; machine {machine} may take {host} only once they are stopped (stop that machine's agent and wait one lease expiry)"
                    ),
                    true,
                ));
            }
            if let Some(bound) = bound {
                tracing::warn!(
                    host = host.0,
                    "{host} passes from machine {bound} to machine {machine} (no instance of it in the ledger)"
                );
            }
            bindings.machines.insert(host, machine.clone());
            if let Err(e) = bindings.save(&link.core) {
                return Err((format!("cannot record the host's machine: {e}"), true));
            }
        }
    }
    live.insert(host, (who, conn));
    Ok((host, incarnation))
}

/// One agent connection: hello, then each report is applied and answered.
fn serve_agent(stream: TcpStream, slot: PendingSlot, conn: u64) {
    let link = Arc::clone(&slot.0);
    let link = &*link;
    let _ = stream.set_nodelay(true);
    // Small and quick before the token is checked: the whole hello within
    // HELLO_TIMEOUT, however slowly its bytes trickle in.
    let mut deadline = Deadline {
        stream: &stream,
        until: Instant::now() + HELLO_TIMEOUT,
    };
    let hello = match read_frame_limited(&mut deadline, HELLO_BYTES_MAX) {
        Ok(frame) => frame,
        Err(_) => return,
    };
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut writer = stream;
    let (host, incarnation) = match admit(link, hello, conn) {
        Ok(admitted) => admitted,
        Err((why, retry)) => {
            tracing::warn!("agent refused: {why}");
            let _ = write_frame(&mut writer, &Frame::Refused { why, retry });
            return;
        }
    };
    drop(slot);
    // A link silent for several leases is dead (a crashed remote host
    // leaves a half-open connection); its host may then attach again.
    let lease_ms = link
        .deployment
        .config
        .timing
        .lease_ticks
        .saturating_mul(link.deployment.tick_ms);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(
        lease_ms.saturating_mul(4).max(2_000),
    )));
    tracing::info!(
        host = host.0,
        incarnation = incarnation.0,
        "agent connected"
    );
    let welcome = Frame::Welcome {
        deployment: link.deployment.clone(),
    };
    let processes = link.core.read(|m, _| Arc::clone(&m.processes)).ok();
    if write_frame(&mut writer, &welcome).is_ok() {
        while let Ok(frame) = read_frame(&mut reader) {
            let report = match frame {
                Frame::Core(Message::Report(report)) => report,
                Frame::Dynos(facts) => {
                    // Only the host's current link speaks for it: an older
                    // one of a reconnect must not overwrite newer facts.
                    let current = link
                        .live
                        .lock()
                        .is_ok_and(|live| live.get(&host).is_some_and(|(_, c)| *c == conn));
                    if let (true, Some(Ok(mut table))) =
                        (current, processes.as_ref().map(|p| p.lock()))
                    {
                        table.record(host, facts);
                    }
                    continue;
                }
                _ => continue,
            };
            if report.host != host || report.incarnation != incarnation {
                tracing::warn!(
                    host = host.0,
                    "report for {} incarnation {} on this link; dropped",
                    report.host,
                    report.incarnation.0
                );
                continue;
            }
            let applied: Applied<Effect, Rejected> = match link
                .core
                .apply(link.clock.now(), ManagerInput::ReportReceived(report))
            {
                Ok(a) => a,
                Err(e) => {
                    set_fatal(&link.fatal, &e);
                    return;
                }
            };
            for effect in applied.effects {
                if let Effect::Send(reply) = effect {
                    if write_frame(&mut writer, &Frame::Core(Message::Reply(reply))).is_err() {
                        break;
                    }
                }
            }
        }
    }
    if let Ok(mut live) = link.live.lock() {
        if live.get(&host).is_some_and(|(_, c)| *c == conn) {
            live.remove(&host);
            // Its pids and ports are no longer reported; its exits stay.
            if let Some(Ok(mut table)) = processes.as_ref().map(|p| p.lock()) {
                table.forget(host);
            }
        }
    }
    tracing::info!(host = host.0, "agent disconnected");
}

/// Reads a data dir's API address and token (for the CLI verbs).
///
/// # Errors
/// The files are missing: no manager was started with this data dir.
pub fn api_endpoint(dir: &Path) -> Result<(SocketAddr, String), String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            format!(
                "cannot read {}: {e} (is `tally run --data-dir {}` running?)",
                dir.join(name).display(),
                dir.display()
            )
        })
    };
    let addr = read("api.addr")?;
    let addr = addr
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", dir.join("api.addr").display()))?;
    Ok((addr, read("token")?.trim().to_string()))
}
