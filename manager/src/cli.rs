//! The manager's verbs of the `tally` binary: `run`, `agent`, `ps`, `scale`,
//! `restart`, `lockdown`, `breaker`, `pause`, `resume` (and the hidden
//! `fence`). Argument types here; the binary only dispatches.

use crate::api::Ps;
use crate::fence::FenceExe;
use crate::host::HostOptions;
use crate::server::{Server, ServerOptions, api_endpoint};
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tally_core::HostId;

/// The default data dir.
pub const DATA_DIR: &str = ".tally";

/// `tally run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Heroku-style Procfile: one `name: command` per line.
    #[arg(long, default_value = "Procfile")]
    pub procfile: PathBuf,
    /// Settings (singletons, counts, budget, admission, leases, breaker);
    /// defaults apply without it. `tally.toml` is read if present.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Local agents to start as threads (hosts 0..N); 0 to attach agents
    /// with `tally agent` instead.
    #[arg(long, default_value_t = 2)]
    pub hosts: u16,
    /// Journal, token, addresses and dyno logs.
    #[arg(long, default_value = DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address for agents (port 0 picks a free one; written to DATA_DIR/agent.addr).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub agent_listen: SocketAddr,
    /// Address for the HTTP API (written to DATA_DIR/api.addr).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub api_listen: SocketAddr,
    /// Allow the API on a non-loopback address (the token still guards it).
    #[arg(long)]
    pub allow_remote_api: bool,
    /// Allow agents from other machines (--agent-listen off loopback); they
    /// still need the token.
    #[arg(long)]
    pub allow_remote_agents: bool,
    /// Journal segment size that triggers compaction (a new segment starting
    /// with a snapshot); tests make it small.
    #[arg(long, hide = true, default_value_t = crate::journal::SEGMENT_BYTES_MAX)]
    pub journal_segment_bytes: u64,
}

/// `tally agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The manager's agent address (DATA_DIR/agent.addr of `tally run`).
    #[arg(long)]
    pub manager: SocketAddr,
    /// This host's id (unique per host).
    #[arg(long)]
    pub host: u16,
    /// Incarnation counter, dyno logs and ready files.
    #[arg(long, default_value = DATA_DIR)]
    pub data_dir: PathBuf,
    /// The manager's token file (default: DATA_DIR/token, as `tally run`
    /// writes it; copy it to the host for a remote agent).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
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
#[derive(Args, Debug, Clone)]
pub struct FenceArgs {
    /// Readiness condition.
    #[arg(long, value_enum)]
    pub ready: ReadyArg,
    /// Port to probe.
    #[arg(long)]
    pub port: Option<u16>,
    /// File to watch.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Grace between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 500)]
    pub grace_ms: u64,
    /// The dyno's command line.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// Where the API verbs find the manager.
#[derive(Args, Debug, Clone)]
pub struct ApiTarget {
    /// The data dir of `tally run` (holds api.addr and the token).
    #[arg(long, default_value = DATA_DIR, global = true)]
    pub data_dir: PathBuf,
}

/// `tally ps`.
#[derive(Args, Debug, Clone)]
pub struct PsArgs {
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
    /// Where.
    #[command(flatten)]
    pub target: ApiTarget,
}

/// `tally scale web=4 clock=1`.
#[derive(Args, Debug, Clone)]
pub struct ScaleArgs {
    /// `TYPE=COUNT` (absolute) or `TYPE+N` / `TYPE-N` (from the desired
    /// count now), applied all or none: `tally scale web=4 clock=1`,
    /// `tally scale web+2`.
    #[arg(required = true, value_name = "TYPE=COUNT|TYPE+N|TYPE-N")]
    pub counts: Vec<String>,
    /// Where.
    #[command(flatten)]
    pub target: ApiTarget,
}

/// `tally restart [TYPE]`.
#[derive(Args, Debug, Clone)]
pub struct RestartArgs {
    /// Only this type (all types without it).
    pub process_type: Option<String>,
    /// Where.
    #[command(flatten)]
    pub target: ApiTarget,
}

/// On or off.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnOff {
    /// Refuse restarts, deploys and scale-downs until `off`.
    On,
    /// Accept them again.
    Off,
}

/// Open or close.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OpenClose {
    /// Open: no launches.
    Open,
    /// Close: launches flow.
    Close,
}

/// `tally lockdown on|off`.
#[derive(Args, Debug, Clone)]
pub struct LockdownArgs {
    /// On refuses restarts, deploys and scale-downs.
    #[arg(value_enum)]
    pub state: OnOff,
    /// Where.
    #[command(flatten)]
    pub target: ApiTarget,
}

/// `tally breaker open|close`.
#[derive(Args, Debug, Clone)]
pub struct BreakerArgs {
    /// Open or close by hand.
    #[arg(value_enum)]
    pub state: OpenClose,
    /// Where.
    #[command(flatten)]
    pub target: ApiTarget,
}

/// `tally pause|resume [--host N]`.
#[derive(Args, Debug, Clone)]
pub struct PauseArgs {
    /// One host (all hosts without it).
    #[arg(long)]
    pub host: Option<u16>,
    /// Where.
    #[command(flatten)]
    pub target: ApiTarget,
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

/// Ctrl-C (SIGINT) and SIGTERM: say what stopping means, then exit with
/// 128 + the signal's number. The signals are blocked in every thread (so
/// call this before any is spawned) and taken by one waiting thread; the
/// process's exit closes every fence's stdin, and each fence then kills its
/// dyno at once. Children start with an empty signal mask.
///
/// # Errors
/// The signal mask or the thread cannot be set up.
fn stop_on_signals(what: &'static str) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("tally: {sig} received: {what}");
                std::process::exit(128 + sig as i32);
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// `tally run`.
///
/// # Errors
/// Bad files or a data dir that cannot be used; a fatal journal error.
pub fn run(args: &RunArgs) -> Result<ExitCode, String> {
    if !args.api_listen.ip().is_loopback() && !args.allow_remote_api {
        return Err(format!(
            "--api-listen {} is not a loopback address; pass --allow-remote-api to expose the API",
            args.api_listen
        ));
    }
    if !args.agent_listen.ip().is_loopback() && !args.allow_remote_agents {
        return Err(format!(
            "--agent-listen {} is not a loopback address; pass --allow-remote-agents to take agents from other machines",
            args.agent_listen
        ));
    }
    let config = match &args.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("tally.toml")).filter(|p| p.exists()),
    };
    let deployment =
        crate::settings::load(&args.procfile, config.as_deref()).map_err(|e| e.to_string())?;
    init_logging();
    stop_on_signals(
        "stopping the manager and its local hosts: their fences kill every dyno at once; dynos of remote agents run out their leases",
    )?;
    let server = Server::start(ServerOptions {
        data_dir: args.data_dir.clone(),
        deployment: deployment.clone(),
        agent_listen: args.agent_listen,
        api_listen: args.api_listen,
        journal: crate::journal::JournalOptions {
            segment_bytes_max: args.journal_segment_bytes,
        },
    })
    .map_err(|e| e.to_string())?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the tally executable: {e}"))?;
    let fence_exe = FenceExe::beside(&exe);
    let stop = Arc::new(AtomicBool::new(false));
    for h in 0..args.hosts {
        let opts = HostOptions {
            manager: server.agent_addr,
            host: HostId(h),
            data_dir: args.data_dir.clone(),
            fence_exe: fence_exe.clone(),
            token: server.token.clone(),
        };
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("host-{h}"))
            .spawn(move || {
                if let Err(e) = crate::host::run(&opts, &stop) {
                    tracing::error!(host = h, "agent stopped: {e}");
                }
            })
            .map_err(|e| e.to_string())?;
    }
    let types: Vec<String> = deployment
        .types
        .iter()
        .zip(&deployment.config.process_types)
        .map(|(t, p)| {
            let kind = if p.kind == tally_core::ProcessKind::Singleton {
                " (singleton)"
            } else {
                ""
            };
            format!("{}{kind}", t.name)
        })
        .collect();
    eprintln!(
        "tally: managing {} with {} local host(s); data in {}\n  agents: {}  (more: tally agent --manager {} --host N)\n  API:    http://{}  (token: {})\n  try:    tally ps | tally scale web=3 | tally restart | tally lockdown on",
        types.join(", "),
        args.hosts,
        args.data_dir.display(),
        server.agent_addr,
        server.agent_addr,
        server.api_addr,
        server.token_path.display(),
    );
    let err = server.wait();
    Err(err.to_string())
}

/// `tally agent`.
///
/// # Errors
/// The data dir fails, or the manager refuses the agent.
pub fn agent(args: &AgentArgs) -> Result<ExitCode, String> {
    let token_file = args
        .token_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("token"));
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| {
            format!(
                "cannot read the manager's token {}: {e}",
                token_file.display()
            )
        })?
        .trim()
        .to_string();
    init_logging();
    stop_on_signals("stopping the agent: its fences kill every dyno it runs at once")?;
    let opts = HostOptions {
        manager: args.manager,
        host: HostId(args.host),
        token,
        data_dir: args.data_dir.clone(),
        fence_exe: FenceExe::beside(
            &std::env::current_exe()
                .map_err(|e| format!("cannot find the tally executable: {e}"))?,
        ),
    };
    crate::host::run(&opts, &Arc::new(AtomicBool::new(false))).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `tally fence`: the same fence as the `tally-fence` binary, for an
/// install without it.
#[must_use]
pub fn fence(args: &FenceArgs) -> ExitCode {
    let opts = crate::fence::FenceOptions {
        ready: match args.ready {
            ReadyArg::Port => crate::fence::Ready::Port,
            ReadyArg::File => crate::fence::Ready::File,
            ReadyArg::Started => crate::fence::Ready::Started,
        },
        port: args.port,
        ready_file: args.ready_file.clone(),
        grace: Duration::from_millis(args.grace_ms),
        argv: args.argv.iter().map(std::ffi::OsString::from).collect(),
    };
    ExitCode::from(u8::try_from(crate::fence::run(&opts)).unwrap_or(1))
}

/// Calls the API: `(status, json)`.
///
/// # Errors
/// No manager at the data dir's address.
pub fn call(
    dir: &Path,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let (addr, token) = api_endpoint(dir)?;
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    );
    let url = format!("http://{addr}{path}");
    let auth = format!("Bearer {token}");
    let response = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        (_, Some(b)) => agent
            .post(&url)
            .header("Authorization", &auth)
            .send_json(&b),
        (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
    };
    let mut response = response.map_err(|e| {
        format!(
            "cannot reach the manager at {addr}: {e} (is `tally run` running with --data-dir {}?)",
            dir.display()
        )
    })?;
    let status = response.status().as_u16();
    let json = response
        .body_mut()
        .read_json::<serde_json::Value>()
        .map_err(|e| format!("bad answer from the manager: {e}"))?;
    Ok((status, json))
}

fn answer(
    result: Result<(u16, serde_json::Value), String>,
    done: &str,
) -> Result<ExitCode, String> {
    let (status, json) = result?;
    if status == 200 {
        println!("{done}");
        Ok(ExitCode::SUCCESS)
    } else {
        let why = json
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("refused")
            .to_string();
        Err(why)
    }
}

/// `tally ps`.
///
/// # Errors
/// No manager, or a refusal.
pub fn ps(args: &PsArgs) -> Result<ExitCode, String> {
    let (status, json) = call(&args.target.data_dir, "GET", "/ps", None)?;
    if status != 200 {
        return answer(Ok((status, json)), "");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let ps: Ps = serde_json::from_value(json).map_err(|e| format!("bad answer: {e}"))?;
    print!("{}", render_ps(&ps));
    Ok(ExitCode::SUCCESS)
}

/// `ps` for people, in the habit of `heroku ps`.
#[must_use]
pub fn render_ps(ps: &Ps) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for t in &ps.types {
        let kind = if t.singleton { "singleton" } else { "scalable" };
        let _ = writeln!(
            s,
            "=== {} ({kind}): {} desired, {} up, max {}",
            t.name, t.desired, t.up, t.max
        );
        for i in ps
            .instances
            .iter()
            .filter(|i| i.dyno.split('.').next() == Some(t.name.as_str()))
        {
            let _ = writeln!(
                s,
                "{:<12} g{:<5} host{:<4} {}",
                i.dyno, i.generation, i.host, i.phase
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "breaker:  {}\nlockdown: {}\nbudget:   {:.1} of {} tokens, probe {}\nlaunches: {} (bound now {}: F={} free + B={} + r*S with S={} + probes)",
        ps.breaker,
        if ps.lockdown { "on" } else { "off" },
        ps.tokens,
        ps.capacity,
        if ps.probe_ready {
            "ready"
        } else {
            "cooling down"
        },
        ps.launches,
        ps.launch_bound,
        ps.first_launches,
        ps.capacity,
        ps.boots_succeeded,
    );
    if ps.paused_all || !ps.paused_hosts.is_empty() {
        let _ = writeln!(
            s,
            "paused:   {}",
            if ps.paused_all {
                "everywhere".to_string()
            } else {
                format!("hosts {:?}", ps.paused_hosts)
            }
        );
    }
    let troubled: Vec<_> = ps
        .slots
        .iter()
        .filter(|(_, h)| h.boot_failures + h.crashes + h.boot_timeouts + h.retries_refused > 0)
        .collect();
    if !troubled.is_empty() {
        let _ = writeln!(s, "\nwhy:");
        for (name, h) in troubled {
            let _ = writeln!(
                s,
                "  {name}: {} launches, {} boot failures, {} crashes, {} boot timeouts, {} relaunches refused; last: {}",
                h.launches, h.boot_failures, h.crashes, h.boot_timeouts, h.retries_refused, h.last
            );
        }
    }
    if !ps.recent.is_empty() {
        let _ = writeln!(s, "\nrecent:");
        for line in ps.recent.iter().rev().take(10).rev() {
            let _ = writeln!(s, "  {line}");
        }
    }
    s
}

/// `tally scale`.
///
/// # Errors
/// Malformed pairs, no manager, or a refusal (nothing changes then).
pub fn scale(args: &ScaleArgs) -> Result<ExitCode, String> {
    let mut body = serde_json::Map::new();
    let mut desired: Option<Ps> = None;
    for pair in &args.counts {
        let (name, count) = match parse_scale(pair)? {
            ScalePair::Absolute(name, count) => (name, count),
            ScalePair::Relative(name, delta) => {
                // `web+2`, as `heroku ps:scale` takes it: from the desired
                // count now (read once for the whole command).
                if desired.is_none() {
                    let (status, json) = call(&args.target.data_dir, "GET", "/ps", None)?;
                    if status != 200 {
                        return answer(Ok((status, json)), "");
                    }
                    desired =
                        Some(serde_json::from_value(json).map_err(|e| format!("bad answer: {e}"))?);
                }
                let now = desired
                    .as_ref()
                    .and_then(|ps| ps.types.iter().find(|t| t.name == name))
                    .map(|t| i64::from(t.desired))
                    .ok_or_else(|| format!("`{pair}`: unknown process type `{name}`"))?;
                let count = u16::try_from(now.saturating_add(delta)).map_err(|_| {
                    format!(
                        "`{pair}`: {name} has {now} desired; the result must be from 0 to 65535"
                    )
                })?;
                (name, count)
            }
        };
        if body.insert(name.clone(), count.into()).is_some() {
            return Err(format!("`{name}` is given twice; give each type once"));
        }
    }
    let done: Vec<String> = body.iter().map(|(k, v)| format!("{k}={v}")).collect();
    answer(
        call(
            &args.target.data_dir,
            "POST",
            "/scale",
            Some(serde_json::Value::Object(body)),
        ),
        &format!("Scaling: {}", done.join(" ")),
    )
}

/// One argument of `tally scale`.
#[derive(Debug, PartialEq, Eq)]
enum ScalePair {
    /// `web=4`.
    Absolute(String, u16),
    /// `web+2`, `web-1`.
    Relative(String, i64),
}

fn parse_scale(pair: &str) -> Result<ScalePair, String> {
    if let Some((name, count)) = pair.split_once('=') {
        let count = count
            .parse()
            .map_err(|_| format!("`{pair}`: COUNT must be a whole number from 0 to 65535"))?;
        return Ok(ScalePair::Absolute(name.to_string(), count));
    }
    // The last `+` or `-` followed by digits only (type names may hold `-`).
    let at = pair.rfind(['+', '-']).filter(|&i| i > 0).ok_or_else(|| {
        format!("`{pair}`: expected TYPE=COUNT or TYPE+N / TYPE-N, as in web=4 or web+2")
    })?;
    let (name, delta) = pair.split_at(at);
    let delta: i64 = delta
        .parse()
        .ok()
        .filter(|d: &i64| d.unsigned_abs() <= u64::from(u16::MAX))
        .ok_or_else(|| {
            format!("`{pair}`: expected TYPE=COUNT or TYPE+N / TYPE-N, as in web=4 or web+2")
        })?;
    Ok(ScalePair::Relative(name.to_string(), delta))
}

/// `tally restart`.
///
/// # Errors
/// No manager, or a refusal (lockdown).
pub fn restart(args: &RestartArgs) -> Result<ExitCode, String> {
    let body = match &args.process_type {
        Some(t) => serde_json::json!({ "type": t }),
        None => serde_json::json!({}),
    };
    answer(
        call(&args.target.data_dir, "POST", "/restart", Some(body)),
        &format!(
            "Restarting {}",
            args.process_type.as_deref().unwrap_or("all dynos")
        ),
    )
}

/// `tally lockdown`.
///
/// # Errors
/// No manager.
pub fn lockdown(args: &LockdownArgs) -> Result<ExitCode, String> {
    let on = matches!(args.state, OnOff::On);
    answer(
        call(
            &args.target.data_dir,
            "POST",
            "/lockdown",
            Some(serde_json::json!({ "on": on })),
        ),
        if on {
            "Lockdown on: restarts, deploys and scale-downs are refused"
        } else {
            "Lockdown off"
        },
    )
}

/// `tally breaker`.
///
/// # Errors
/// No manager.
pub fn breaker(args: &BreakerArgs) -> Result<ExitCode, String> {
    let open = matches!(args.state, OpenClose::Open);
    answer(
        call(
            &args.target.data_dir,
            "POST",
            "/breaker",
            Some(serde_json::json!({ "open": open })),
        ),
        if open {
            "Breaker open: no launches"
        } else {
            "Breaker closed"
        },
    )
}

/// `tally pause` / `tally resume`.
///
/// # Errors
/// No manager.
pub fn pause(args: &PauseArgs, paused: bool) -> Result<ExitCode, String> {
    let path = if paused { "/pause" } else { "/resume" };
    let at = args
        .host
        .map_or("everywhere".to_string(), |h| format!("on host {h}"));
    answer(
        call(
            &args.target.data_dir,
            "POST",
            path,
            Some(serde_json::json!({ "host": args.host })),
        ),
        &format!(
            "Launches {} {at}",
            if paused { "paused" } else { "resumed" }
        ),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{ScalePair, parse_scale};

    #[test]
    fn scale_takes_absolute_and_relative_counts() {
        let rel = |n: &str, d| Ok(ScalePair::Relative(n.into(), d));
        assert_eq!(
            parse_scale("web=4"),
            Ok(ScalePair::Absolute("web".into(), 4))
        );
        assert_eq!(parse_scale("web+2"), rel("web", 2));
        assert_eq!(parse_scale("web-1"), rel("web", -1));
        assert_eq!(parse_scale("my-worker+3"), rel("my-worker", 3));
        for bad in [
            "web",
            "web=",
            "web=-1",
            "web+",
            "+2",
            "web+x",
            "web+99999",
            "my-worker",
        ] {
            assert!(parse_scale(bad).is_err(), "{bad} accepted");
        }
    }
}
