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
}

impl RunOptions {
    /// Refuses addresses off loopback without leave, and reads the Procfile
    /// and settings. Nothing is started.
    ///
    /// # Errors
    /// An address off loopback, or bad files.
    pub fn deployment(&self) -> Result<Deployment, ProcessError> {
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

/// Starts the manager for `deployment` (from [`RunOptions::deployment`])
/// and its local agents, each on a thread of its own. The caller then waits
/// on the server ([`Server::wait`]).
///
/// # Errors
/// A data dir that cannot be used, or a thread that cannot start.
pub fn start(opts: &RunOptions, deployment: &Deployment) -> Result<Server, ProcessError> {
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
            manager: server.agent_addr,
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
    Ok(server)
}

/// One host agent as its own process: `tally agent`.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// The manager's agent address.
    pub manager: SocketAddr,
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
        manager: opts.manager,
        host: HostId(opts.host),
        token,
        data_dir: opts.data_dir.clone(),
        fence_exe: FenceExe::beside(&current_exe()?),
    };
    crate::host::run(&host, &Arc::new(AtomicBool::new(false)))?;
    Ok(())
}
