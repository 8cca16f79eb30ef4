//! The manager and agent processes as library calls: what `tally run` and
//! `tally agent` start, the log lines and the stop signals. The `tally`
//! binary fills [`RunOptions`] and [`AgentOptions`] from its arguments and
//! prints what the person at the terminal reads.

use crate::fence::FenceExe;
use crate::host::{HostError, HostOptions};
use crate::journal::JournalOptions;
use crate::server::{Server, ServerError, ServerOptions};
use crate::settings::{Deployment, SettingsError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tally_core::HostId;
use thiserror::Error;

/// The default data dir.
pub const DATA_DIR: &str = ".tally";

/// Why a manager or an agent cannot start, or had to stop.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// The API would listen off loopback without leave.
    #[error(
        "--api-listen {0} is not a loopback address; pass --allow-remote-api to expose the API"
    )]
    RemoteApi(SocketAddr),
    /// Agents would be taken from other machines without leave.
    #[error(
        "--agent-listen {0} is not a loopback address; pass --allow-remote-agents to take agents from other machines"
    )]
    RemoteAgents(SocketAddr),
    /// The Procfile or `tally.toml`.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The manager could not start, or stopped.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The agent stopped.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The manager's token file.
    #[error("cannot read the manager's token {}: {source}", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The running executable, beside which the fence is looked for.
    #[error("cannot find the tally executable: {0}")]
    Executable(std::io::Error),
    /// SIGINT and SIGTERM could not be blocked.
    #[error("cannot block SIGINT/SIGTERM: {0}")]
    SignalMask(nix::Error),
    /// The signal thread could not start.
    #[error("cannot start the signal thread: {0}")]
    SignalThread(std::io::Error),
    /// A local agent's thread could not start.
    #[error(transparent)]
    Thread(std::io::Error),
    /// `--store` in a build without etcd support.
    #[error(
        "--store {0}: this tally was built without etcd support: build with `cargo build --release --features etcd --bin tally --bin tally-fence`"
    )]
    NoEtcd(String),
    /// A `--store` that cannot be used.
    #[error("{0}")]
    Store(String),
    /// Local agents with a store: they would die with their manager.
    #[error(
        "--hosts {0} with --store: a local agent runs inside its manager and dies with it, which defeats a standby; run `tally agent --manager ADDR,ADDR --host N` on each host instead (--hosts 0)"
    )]
    LocalHostsWithStore(u16),
}

/// Sets up log lines on stderr. `TALLY_LOG` (or `RUST_LOG`) sets the level:
/// `error`, `warn`, `info` (the default), `debug` or `trace`.
pub fn init_logging() {
    use std::io::IsTerminal;
    let level = std::env::var("TALLY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|v| v.trim().parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Ctrl-C (SIGINT) and SIGTERM: print `tally: <signal> received: <what>`,
/// then exit with 128 + the signal's number. The signals are blocked in
/// every thread (so call this before any is spawned) and taken by one
/// waiting thread; the process's exit closes every fence's stdin, and each
/// fence then kills its dyno at once. Children start with an empty signal
/// mask.
///
/// # Errors
/// The signal mask or the thread cannot be set up.
pub fn stop_on_signals(what: &'static str) -> Result<(), ProcessError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block().map_err(ProcessError::SignalMask)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("tally: {sig} received: {what}");
                std::process::exit(128 + sig as i32);
            }
        })
        .map(|_| ())
        .map_err(ProcessError::SignalThread)
}

fn current_exe() -> Result<PathBuf, ProcessError> {
    std::env::current_exe().map_err(ProcessError::Executable)
}

/// A manager and its local agents: `tally run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The Procfile (of the one app, when `apps` is empty).
    pub procfile: PathBuf,
    /// Apps by name, each a Procfile or a directory holding one (`tally
    /// run --app NAME=PATH`); `procfile` is not read when there are any.
    pub apps: Vec<(String, PathBuf)>,
    /// The settings file; `tally.toml` when `None` and it exists.
    pub config: Option<PathBuf>,
    /// Local agents started as threads (hosts `0..hosts`).
    pub hosts: u16,
    /// Journal, token, addresses and dyno logs.
    pub data_dir: PathBuf,
    /// Address for agents (port 0 picks one).
    pub agent_listen: SocketAddr,
    /// Address for the HTTP API (port 0 picks one).
    pub api_listen: SocketAddr,
    /// Allow the API off loopback.
    pub allow_remote_api: bool,
    /// Allow agents from other machines.
    pub allow_remote_agents: bool,
    /// Journal segment size that triggers compaction.
    pub journal_segment_bytes: u64,
    /// The dynos' environment file (`.env` beside the Procfile without it).
    pub env_file: Option<PathBuf>,
    /// A highly available group: the journal, the leader key and the
    /// shared state in etcd (`etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`);
    /// `None`: the local file journal, one manager per data dir.
    pub store: Option<String>,
    /// This manager's name among its peers (with `store`).
    pub name: Option<String>,
    /// The store lease's time to live, seconds (with `store`).
    pub store_lease_s: i64,
    /// The longest wait for one attempt of one store call, ms.
    pub store_timeout_ms: u64,
}

impl RunOptions {
    /// Refuses addresses off loopback without leave, and reads the Procfile
    /// and settings. Nothing is started.
    ///
    /// # Errors
    /// An address off loopback, bad files, or `--store` in a build without
    /// etcd support.
    pub fn deployment(&self) -> Result<Deployment, ProcessError> {
        if let Some(url) = &self.store {
            if !cfg!(feature = "etcd") {
                return Err(ProcessError::NoEtcd(url.clone()));
            }
        }
        if !self.api_listen.ip().is_loopback() && !self.allow_remote_api {
            return Err(ProcessError::RemoteApi(self.api_listen));
        }
        if !self.agent_listen.ip().is_loopback() && !self.allow_remote_agents {
            return Err(ProcessError::RemoteAgents(self.agent_listen));
        }
        let config = match &self.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from("tally.toml")).filter(|p| p.exists()),
        };
        if !self.apps.is_empty() {
            return Ok(crate::settings::load_apps(
                &self.apps,
                config.as_deref(),
                self.env_file.as_deref(),
            )?);
        }
        Ok(crate::settings::load(
            &self.procfile,
            config.as_deref(),
            self.env_file.as_deref(),
        )?)
    }
}

/// A started manager: alone on its data dir, or one of a highly available
/// group on etcd.
pub enum Started {
    /// The manager of a local file journal.
    Single(Server),
    /// A manager of a group (standby or leader).
    #[cfg(feature = "etcd")]
    Ha(crate::ha::HaServer),
}

impl Started {
    /// The agent link's address.
    #[must_use]
    pub fn agent_addr(&self) -> SocketAddr {
        match self {
            Started::Single(s) => s.agent_addr,
            #[cfg(feature = "etcd")]
            Started::Ha(s) => s.agent_addr,
        }
    }

    /// The API's address.
    #[must_use]
    pub fn api_addr(&self) -> SocketAddr {
        match self {
            Started::Single(s) => s.api_addr,
            #[cfg(feature = "etcd")]
            Started::Ha(s) => s.api_addr,
        }
    }

    /// The token file.
    #[must_use]
    pub fn token_path(&self) -> &std::path::Path {
        match self {
            Started::Single(s) => &s.token_path,
            #[cfg(feature = "etcd")]
            Started::Ha(s) => &s.token_path,
        }
    }

    /// The group this manager belongs to, in words (`None` alone).
    #[must_use]
    pub fn group(&self) -> Option<String> {
        match self {
            Started::Single(_) => None,
            #[cfg(feature = "etcd")]
            Started::Ha(s) => Some(format!("{} in {}", s.name, s.store)),
        }
    }

    /// Blocks until the manager must stop (its journal failed, or it was
    /// deposed); the caller exits non-zero.
    #[must_use]
    pub fn wait(&self) -> ServerError {
        match self {
            Started::Single(s) => s.wait(),
            #[cfg(feature = "etcd")]
            Started::Ha(s) => s.wait(),
        }
    }
}

/// Starts the manager for `deployment` (from [`RunOptions::deployment`])
/// and its local agents, each on a thread of its own. The caller then waits
/// on it ([`Started::wait`]).
///
/// # Errors
/// A data dir that cannot be used, or a thread that cannot start; with a
/// store, an unreachable or different one.
pub fn start(opts: &RunOptions, deployment: &Deployment) -> Result<Started, ProcessError> {
    if let Some(url) = &opts.store {
        if opts.hosts > 0 {
            return Err(ProcessError::LocalHostsWithStore(opts.hosts));
        }
        return start_ha(opts, deployment, url);
    }
    let server = Server::start(ServerOptions {
        data_dir: opts.data_dir.clone(),
        deployment: deployment.clone(),
        agent_listen: opts.agent_listen,
        api_listen: opts.api_listen,
        journal: JournalOptions {
            segment_bytes_max: opts.journal_segment_bytes,
        },
    })?;
    let fence_exe = FenceExe::beside(&current_exe()?);
    let stop = Arc::new(AtomicBool::new(false));
    for h in 0..opts.hosts {
        let host = HostOptions {
            managers: vec![server.agent_addr],
            host: HostId(h),
            data_dir: opts.data_dir.clone(),
            fence_exe: fence_exe.clone(),
            token: server.token.clone(),
        };
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("host-{h}"))
            .spawn(move || {
                if let Err(e) = crate::host::run(&host, &stop) {
                    tracing::error!(host = h, "agent stopped: {e}");
                }
            })
            .map_err(ProcessError::Thread)?;
    }
    Ok(Started::Single(server))
}

/// One manager of a highly available group on etcd.
#[cfg(feature = "etcd")]
fn start_ha(
    opts: &RunOptions,
    deployment: &Deployment,
    url: &str,
) -> Result<Started, ProcessError> {
    use crate::etcd::StoreSettings;
    use crate::ha::{HaOptions, HaServer, StoreUrl};
    let parsed = StoreUrl::parse(url).map_err(ProcessError::Store)?;
    let store = StoreSettings {
        call_timeout: std::time::Duration::from_millis(opts.store_timeout_ms.max(1)),
        attempts_max: 3,
        lease_ttl_s: opts.store_lease_s,
        ..StoreSettings::new(parsed.endpoints, parsed.prefix)
    };
    let server = HaServer::start(HaOptions {
        data_dir: opts.data_dir.clone(),
        deployment: deployment.clone(),
        agent_listen: opts.agent_listen,
        api_listen: opts.api_listen,
        journal: JournalOptions {
            segment_bytes_max: opts.journal_segment_bytes,
        },
        store,
        name: opts.name.clone(),
    })?;
    Ok(Started::Ha(server))
}

/// Without etcd support, `--store` is refused, saying how to build it in.
#[cfg(not(feature = "etcd"))]
fn start_ha(
    _opts: &RunOptions,
    _deployment: &Deployment,
    url: &str,
) -> Result<Started, ProcessError> {
    Err(ProcessError::NoEtcd(url.to_string()))
}

/// One host agent as its own process: `tally agent`.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The managers' agent addresses (one, or every manager of a highly
    /// available group: the agent follows the leader).
    pub managers: Vec<SocketAddr>,
    /// This host's id.
    pub host: u16,
    /// Incarnation counter, dyno logs and ready files.
    pub data_dir: PathBuf,
    /// The manager's token file; `DATA_DIR/token` when `None`.
    pub token_file: Option<PathBuf>,
}

impl AgentOptions {
    /// Reads the manager's token.
    ///
    /// # Errors
    /// The token file cannot be read.
    pub fn read_token(&self) -> Result<String, ProcessError> {
        let path = self
            .token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("token"));
        match std::fs::read_to_string(&path) {
            Ok(token) => Ok(token.trim().to_string()),
            Err(source) => Err(ProcessError::Token { path, source }),
        }
    }
}

/// Runs the agent with `token` (from [`AgentOptions::read_token`]) until
/// the manager refuses it or its data dir fails.
///
/// # Errors
/// The data dir fails, or the manager refuses the agent.
pub fn agent(opts: &AgentOptions, token: String) -> Result<(), ProcessError> {
    let host = HostOptions {
        managers: opts.managers.clone(),
        host: HostId(opts.host),
        token,
        data_dir: opts.data_dir.clone(),
        fence_exe: FenceExe::beside(&current_exe()?),
    };
    crate::host::run(&host, &Arc::new(AtomicBool::new(false)))?;
    Ok(())
}
