//! The manager process: the data dir, the journal, the agent link, the
//! timer and the HTTP API, all feeding the one [`Shared`] core.

use crate::journal::{FileJournal, JournalError};
use crate::machine::{ManagerMachine, Stats};
use crate::settings::Deployment;
use crate::shell::{Applied, Shared, ShellError};
use crate::wire::{Frame, LINK_VERSION, read_frame, write_frame};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tally_core::{
    Durable, Effect, HostId, Incarnation, JournalRecord, Manager, ManagerInput, Message, Rejected,
    Tick,
};
use thiserror::Error;

/// The manager's shared core.
pub type Core = Shared<ManagerMachine, FileJournal>;

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
        "{0} was created for a different Procfile or tally.toml; a manager must keep its configuration for the life of its journal (use a fresh --data-dir, or restore the original files)"
    )]
    DeploymentChanged(PathBuf),
    /// The core refused the configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] tally_core::ConfigError),
    /// The journal failed while running.
    #[error("stopping: {0}")]
    Fatal(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the data dir remembers besides the journal.
#[derive(Serialize, Deserialize)]
struct Meta {
    /// Tick 0, in Unix milliseconds: the manager's clock counts from here
    /// across restarts, so that journaled times stay meaningful.
    genesis_unix_ms: u64,
    deployment: Deployment,
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The manager's clock in ticks since genesis: the wall clock read once at
/// start (so journaled times stay meaningful across restarts), then the
/// monotonic clock, so that a wall-clock step cannot expire every lease at
/// once (or freeze expiry).
#[derive(Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    start: Instant,
    tick_ms: u64,
}

impl Clock {
    /// Starts the clock for a journal that began at `genesis_unix_ms`.
    #[must_use]
    pub fn start(genesis_unix_ms: u64, tick_ms: u64) -> Clock {
        Clock {
            base_ms: unix_ms().saturating_sub(genesis_unix_ms),
            start: Instant::now(),
            tick_ms,
        }
    }

    /// Now, in ticks (floored).
    #[must_use]
    pub fn now(&self) -> Tick {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Tick(self.base_ms.saturating_add(elapsed) / self.tick_ms.max(1))
    }
}

/// Writes `contents` to `path` atomically, with `mode`.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// The bearer token: read, or generated on first start and stored 0600.
fn token(dir: &Path) -> Result<(String, PathBuf), ServerError> {
    let path = dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if t.len() >= 32 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(&path))?;
            return Ok((t, path));
        }
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io(Path::new("/dev/urandom")))?;
    let t: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_file(&path, format!("{t}\n").as_bytes(), 0o600)?;
    Ok((t, path))
}

impl Server {
    /// Opens the data dir, recovers from the journal, and starts the agent
    /// link, the timer and the API.
    ///
    /// # Errors
    /// Data dir, journal or configuration problems; busy addresses.
    pub fn start(opts: ServerOptions) -> Result<Server, ServerError> {
        let dir = &opts.data_dir;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        let meta_path = dir.join("meta.json");
        let meta = match std::fs::read(&meta_path) {
            Ok(bytes) => {
                let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| ServerError::Io {
                    path: meta_path.clone(),
                    source: std::io::Error::other(e),
                })?;
                if meta.deployment != opts.deployment {
                    return Err(ServerError::DeploymentChanged(dir.clone()));
                }
                meta
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let meta = Meta {
                    genesis_unix_ms: unix_ms(),
                    deployment: opts.deployment.clone(),
                };
                let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| ServerError::Io {
                    path: meta_path.clone(),
                    source: std::io::Error::other(e),
                })?;
                write_file(&meta_path, &bytes, 0o600)?;
                meta
            }
            Err(e) => return Err(io(&meta_path)(e)),
        };
        let clock = Clock::start(meta.genesis_unix_ms, opts.deployment.tick_ms);
        let (token, token_path) = token(dir)?;
        let (mut journal, records) = FileJournal::open(&dir.join("journal.jsonl"))?;
        let cfg = &opts.deployment.config;
        let now = clock.now();
        let mut stats = Stats::default();
        let manager = if records.is_empty() {
            let mut out = Vec::new();
            let m = Manager::new(cfg, now, &mut out)?;
            journal.append(out.iter().filter_map(|e| match e {
                Effect::Persist(r) => Some(r),
                _ => None,
            }))?;
            tracing::info!("new manager: journal started in {}", dir.display());
            m
        } else {
            let mut durable = Durable::genesis(cfg, now);
            durable.apply_all(&records);
            for r in &records {
                match r {
                    JournalRecord::InstanceLaunched { free, .. } => {
                        stats.launches += 1;
                        stats.free_launches += u64::from(*free);
                    }
                    JournalRecord::BootSeenDone { .. } => stats.boots_succeeded += 1,
                    _ => {}
                }
            }
            let m = Manager::recover(cfg, durable, now)?;
            tracing::info!(
                records = records.len(),
                instances = m.ledger_len(),
                "manager recovered from its journal; every instance is held for a full lease expiry"
            );
            m
        };
        let machine = ManagerMachine::new(Arc::new(opts.deployment.clone()), manager, stats);
        let core = Arc::new(Shared::new(machine, journal, now));
        let fatal = Arc::new(std::sync::Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));

        let agents = TcpListener::bind(opts.agent_listen).map_err(|source| ServerError::Io {
            path: PathBuf::from(format!("agent listener {}", opts.agent_listen)),
            source,
        })?;
        let agent_addr = agents.local_addr().map_err(io(dir))?;
        let api = tiny_http::Server::http(opts.api_listen).map_err(|e| ServerError::Io {
            path: PathBuf::from(format!("API listener {}", opts.api_listen)),
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

        let server = Server {
            core: Arc::clone(&core),
            agent_addr,
            api_addr,
            token_path,
            token: token.clone(),
            fatal: Arc::clone(&fatal),
            stop: Arc::clone(&stop),
        };
        spawn("agent-listener", {
            let link = Arc::new(LinkContext {
                core: Arc::clone(&core),
                clock,
                deployment: opts.deployment.clone(),
                token: token.clone(),
                fatal: Arc::clone(&fatal),
                live: std::sync::Mutex::new(BTreeMap::new()),
            });
            move || accept_agents(&agents, &link)
        })?;
        spawn("timer", {
            let (core, fatal, stop) = (Arc::clone(&core), Arc::clone(&fatal), Arc::clone(&stop));
            let period = Duration::from_millis(opts.deployment.tick_ms);
            move || {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(period);
                    if let Err(e) = core.apply(clock.now(), ManagerInput::Tick) {
                        set_fatal(&fatal, &e);
                        return;
                    }
                }
            }
        })?;
        let api = Arc::new(api);
        for worker in 0..4 {
            let (core, fatal, api, token) = (
                Arc::clone(&core),
                Arc::clone(&fatal),
                Arc::clone(&api),
                token.clone(),
            );
            spawn(&format!("api-{worker}"), move || {
                crate::api::serve(&api, &core, clock, &token, &fatal);
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

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), ServerError> {
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
    tracing::error!("{e}");
    if let Ok(mut guard) = fatal.lock() {
        guard.get_or_insert_with(|| e.to_string());
    }
}

/// What every agent connection shares.
struct LinkContext {
    core: Arc<Core>,
    clock: Clock,
    deployment: Deployment,
    token: String,
    fatal: Arc<std::sync::Mutex<Option<String>>>,
    /// Hosts with a live link: incarnation and connection number.
    live: std::sync::Mutex<BTreeMap<HostId, (Incarnation, u64)>>,
}

fn accept_agents(listener: &TcpListener, link: &Arc<LinkContext>) {
    for (n, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { continue };
        let link = Arc::clone(link);
        let _ = std::thread::Builder::new()
            .name("agent-link".into())
            .spawn(move || serve_agent(stream, &link, n as u64));
    }
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
        token,
    } = frame
    else {
        return Err(("expected a hello".into(), false));
    };
    if version != LINK_VERSION {
        return Err((
            format!("link version {version}; this manager speaks {LINK_VERSION}"),
            false,
        ));
    }
    if !crate::api::same(&token, &link.token) {
        return Err((
            "wrong agent token (give the manager data dir's `token` file)".into(),
            false,
        ));
    }
    let Ok(mut live) = link.live.lock() else {
        return Err(("manager state poisoned".into(), true));
    };
    // Two agents of one host would each confirm dynos of the other dead.
    if let Some((other, _)) = live.get(&host) {
        if *other != incarnation {
            return Err((
                format!(
                    "{host} already has a live agent (incarnation {}); stop it first",
                    other.0
                ),
                true,
            ));
        }
    }
    live.insert(host, (incarnation, conn));
    Ok((host, incarnation))
}

/// One agent connection: hello, then each report is applied and answered.
fn serve_agent(stream: TcpStream, link: &LinkContext, conn: u64) {
    let _ = stream.set_nodelay(true);
    // A link silent for several leases is dead (a crashed remote host
    // leaves a half-open connection); its host may then attach again.
    let lease_ms = link
        .deployment
        .config
        .timing
        .lease_ticks
        .saturating_mul(link.deployment.tick_ms);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(
        lease_ms.saturating_mul(4).max(2_000),
    )));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut writer = stream;
    let hello = match read_frame(&mut reader) {
        Ok(frame) => frame,
        Err(_) => return,
    };
    let (host, incarnation) = match admit(link, hello, conn) {
        Ok(admitted) => admitted,
        Err((why, retry)) => {
            tracing::warn!("agent refused: {why}");
            let _ = write_frame(&mut writer, &Frame::Refused { why, retry });
            return;
        }
    };
    tracing::info!(
        host = host.0,
        incarnation = incarnation.0,
        "agent connected"
    );
    let welcome = Frame::Welcome {
        deployment: link.deployment.clone(),
    };
    if write_frame(&mut writer, &welcome).is_ok() {
        while let Ok(frame) = read_frame(&mut reader) {
            let Frame::Core(Message::Report(report)) = frame else {
                continue;
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
