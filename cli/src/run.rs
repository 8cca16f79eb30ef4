//! The processes: `tally run` (the manager and its local agents), `tally
//! agent`, and the hidden `tally fence`.

use crate::error::CliError;
use clap::ValueEnum;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tally_manager::process::{self, AgentOptions, DATA_DIR, ProcessError, RunOptions};

/// `tally run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Heroku-style Procfile: one `name: command` per line.
    #[arg(long, default_value = "Procfile", conflicts_with = "apps")]
    procfile: PathBuf,
    /// Run several apps in one manager, each with its own retry budget and
    /// breaker: `--app blog=apps/blog --app shop=apps/shop/Procfile`
    /// (repeatable). PATH is a Procfile or a directory holding one; beside
    /// it, an optional `tally.toml` sets that app's `[types.*]` and an
    /// optional `.env` its dynos' variables; its commands run in its
    /// directory. `--config` holds the rest (timing, budget, breaker).
    /// Names are then `app:type` (`blog:web.1`); `--app NAME` on the other
    /// verbs picks one app.
    #[arg(long = "app", value_name = "NAME=PATH", value_parser = parse_app)]
    apps: Vec<(String, PathBuf)>,
    /// Settings (singletons, counts, budget, admission, leases, breaker);
    /// defaults apply without it. `tally.toml` is read if present.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print a `tally.toml` with every key, commented (the example's, whose
    /// Procfile is examples/Procfile), and exit: a template to start from.
    #[arg(long)]
    config_example: bool,
    /// The dynos' environment: `KEY=value` lines, as foreman and `heroku
    /// local` read them. Without it, `.env` beside the Procfile if present.
    /// Tally's own variables (DYNO, PORT, TALLY_*) win over the file, and the
    /// file over the environment `tally run` was started in.
    #[arg(long, value_name = "FILE")]
    env: Option<PathBuf>,
    /// Print every dyno's output here too, interleaved by time and prefixed
    /// with its time and dyno, as foreman does (`tally logs -f` shows the
    /// same from another terminal).
    #[arg(long)]
    logs: bool,
    /// Local agents to start as threads (hosts 0..N); 0 to attach agents
    /// with `tally agent` instead. Default 2; 0 with --store (a local agent
    /// would die with its manager).
    #[arg(long)]
    hosts: Option<u16>,
    /// A highly available manager: keep the journal, the leader key, the
    /// token and the host bindings in etcd, and run as the leader or a
    /// standby of every manager started with the same store:
    /// `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]` (prefix `tally/` by
    /// default). Needs a tally built with `--features etcd`.
    #[arg(long, value_name = "etcd://HOST:PORT,...")]
    store: Option<String>,
    /// This manager's name among its peers (with --store; default: the host
    /// name and the process id). One running manager per name: a second is
    /// refused (a restarted one waits for its killed run's registration to
    /// expire).
    #[arg(long, requires = "store")]
    name: Option<String>,
    /// The store lease's time to live, in seconds (with --store): a
    /// standby takes over this long after the leader stops renewing it.
    /// Every manager of a group must use the same. 1 to 3600.
    #[arg(long, default_value_t = 5, value_name = "SECONDS",
          value_parser = clap::value_parser!(i64).range(1..=3600))]
    store_lease_s: i64,
    /// The longest wait for one attempt of one etcd call, in ms (with
    /// --store). A call tries for up to three of these, moving to the next
    /// member after each failed attempt. 1 to 600000.
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    store_timeout_ms: u64,
    /// Journal, token, addresses and dyno logs.
    #[arg(long, default_value = DATA_DIR)]
    data_dir: PathBuf,
    /// Address for agents (port 0 picks a free one; written to DATA_DIR/agent.addr).
    #[arg(long, default_value = "127.0.0.1:0")]
    agent_listen: SocketAddr,
    /// Address for the HTTP API (written to DATA_DIR/api.addr).
    #[arg(long, default_value = "127.0.0.1:0")]
    api_listen: SocketAddr,
    /// Allow the API on a non-loopback address (the token still guards it).
    #[arg(long)]
    allow_remote_api: bool,
    /// Allow agents from other machines (--agent-listen off loopback); they
    /// still need the token.
    #[arg(long)]
    allow_remote_agents: bool,
    /// Journal segment size that triggers compaction (a new segment starting
    /// with a snapshot); tests make it small.
    #[arg(long, hide = true, default_value_t = tally_manager::journal::SEGMENT_BYTES_MAX)]
    journal_segment_bytes: u64,
}

/// `tally agent`.
#[derive(clap::Args)]
pub struct AgentArgs {
    /// The manager's agent address (DATA_DIR/agent.addr of `tally run`);
    /// for a highly available group, every manager's, comma separated: the
    /// agent follows the leader among them.
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "ADDR[,ADDR...]"
    )]
    manager: Vec<SocketAddr>,
    /// This host's id (unique per host).
    #[arg(long)]
    host: u16,
    /// Incarnation counter, dyno logs and ready files.
    #[arg(long, default_value = DATA_DIR)]
    data_dir: PathBuf,
    /// The manager's token file (default: DATA_DIR/token, as `tally run`
    /// writes it; copy it to the host for a remote agent).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// Readiness as the fence takes it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReadyArg {
    /// Accepts on $PORT.
    Port,
    /// Created $TALLY_READY_FILE.
    File,
    /// Started.
    Started,
}

/// `tally fence` (internal: started by agents around each dyno).
#[derive(clap::Args)]
pub struct FenceArgs {
    /// Readiness condition.
    #[arg(long, value_enum)]
    ready: ReadyArg,
    /// Port to probe.
    #[arg(long)]
    port: Option<u16>,
    /// File to watch.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Grace between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 500)]
    grace_ms: u64,
    /// The dyno's command line.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

/// `tally run`: the manager and its local agents, until the journal fails
/// or a signal stops it.
pub fn run(args: &RunArgs) -> Result<ExitCode, CliError> {
    if args.config_example {
        print!("{}", tally_manager::settings::CONFIG_EXAMPLE);
        return Ok(ExitCode::SUCCESS);
    }
    let opts = RunOptions {
        procfile: args.procfile.clone(),
        apps: args.apps.clone(),
        config: args.config.clone(),
        hosts: args
            .hosts
            .unwrap_or(if args.store.is_some() { 0 } else { 2 }),
        data_dir: args.data_dir.clone(),
        agent_listen: args.agent_listen,
        api_listen: args.api_listen,
        allow_remote_api: args.allow_remote_api,
        allow_remote_agents: args.allow_remote_agents,
        journal_segment_bytes: args.journal_segment_bytes,
        env_file: args.env.clone(),
        store: args.store.clone(),
        name: args.name.clone(),
        store_lease_s: args.store_lease_s,
        store_timeout_ms: args.store_timeout_ms,
    };
    let deployment = opts.deployment()?;
    process::init_logging();
    process::stop_on_signals(
        "stopping the manager and its local hosts: their fences kill every dyno at once; dynos of remote agents run out their leases",
    )?;
    let server = process::start(&opts, &deployment)?;
    if args.logs {
        crate::ops::stream_logs(args.data_dir.clone())?;
    }
    let types: Vec<String> = deployment
        .config
        .process_types
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let kind = if p.kind == tally_core::ProcessKind::Singleton {
                " (singleton)"
            } else {
                ""
            };
            let id = tally_core::TypeId(u16::try_from(i).unwrap_or(u16::MAX));
            format!("{}{kind}", deployment.type_name(id))
        })
        .collect();
    if !deployment.env.is_empty() {
        let overridden = deployment.env_overridden();
        eprintln!(
            "tally: {} variable(s) from {} for every dyno{}",
            deployment.env.len(),
            args.env
                .as_deref()
                .map_or_else(|| ".env".to_string(), |p| p.display().to_string()),
            if overridden.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} set by tally for each dyno instead)",
                    overridden.join(", ")
                )
            }
        );
    }
    if let Some(group) = server.group() {
        eprintln!(
            "tally: manager {group} for {}; data in {}\n  agents: {}  (agents list every manager: tally agent --manager {},OTHER:PORT --host N)\n  API:    http://{}  (token: {}; a standby points to the leader)\n  a standby until it wins the leader key; `tally ps` shows the leader and the standbys",
            types.join(", "),
            args.data_dir.display(),
            server.agent_addr(),
            server.agent_addr(),
            server.api_addr(),
            server.token_path().display(),
        );
    } else {
        eprintln!(
            "tally: managing {} with {} local host(s); data in {}\n  agents: {}  (more: tally agent --manager {} --host N)\n  API:    http://{}  (token: {})\n  try:    tally ps | tally scale web=3 | tally restart | tally lockdown on",
            types.join(", "),
            opts.hosts,
            args.data_dir.display(),
            server.agent_addr(),
            server.agent_addr(),
            server.api_addr(),
            server.token_path().display(),
        );
    }
    Err(ProcessError::from(server.wait()).into())
}

/// `NAME=PATH` of `--app`.
fn parse_app(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "`{s}` is not NAME=PATH: give an app name and its Procfile or directory, e.g. blog=apps/blog"
        )),
    }
}

/// `tally agent`: one host agent, until the manager refuses it.
pub fn agent(args: &AgentArgs) -> Result<ExitCode, CliError> {
    let opts = AgentOptions {
        managers: args.manager.clone(),
        host: args.host,
        data_dir: args.data_dir.clone(),
        token_file: args.token_file.clone(),
    };
    let token = opts.read_token()?;
    process::init_logging();
    process::stop_on_signals("stopping the agent: its fences kill every dyno it runs at once")?;
    process::agent(&opts, token)?;
    Ok(ExitCode::SUCCESS)
}

/// `tally fence`: the same fence as the `tally-fence` binary, for an
/// install without it; its exit status is the fence's.
pub fn fence(args: &FenceArgs) -> Result<ExitCode, CliError> {
    use tally_manager::fence::{FenceOptions, Ready};
    let opts = FenceOptions {
        ready: match args.ready {
            ReadyArg::Port => Ready::Port,
            ReadyArg::File => Ready::File,
            ReadyArg::Started => Ready::Started,
        },
        port: args.port,
        ready_file: args.ready_file.clone(),
        grace: Duration::from_millis(args.grace_ms),
        argv: args.argv.iter().map(std::ffi::OsString::from).collect(),
    };
    Ok(ExitCode::from(
        u8::try_from(tally_manager::fence::run(&opts)).unwrap_or(1),
    ))
}
