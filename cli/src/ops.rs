//! The verbs that call a running manager's API: `ps`, `scale`, `restart`,
//! `lockdown`, `breaker`, `pause` and `resume`, and how `ps` is drawn.

use crate::error::CliError;
use clap::ValueEnum;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tally_manager::api::{Ps, PsApp};
use tally_manager::client::Client;
use tally_manager::process::DATA_DIR;
use thiserror::Error;

/// Where the API verbs find the manager.
#[derive(clap::Args)]
pub struct ApiTarget {
    /// The data dir of `tally run` (holds api.addr and the token).
    #[arg(long, default_value = DATA_DIR, global = true)]
    data_dir: PathBuf,
}

impl ApiTarget {
    fn client(&self) -> Client {
        Client::new(&self.data_dir)
    }
}

/// `tally ps`.
#[derive(clap::Args)]
pub struct PsArgs {
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
    /// Only this app's types, dynos, budget and breaker (with `tally run
    /// --app`).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
}

/// `tally scale web=4 clock=1`.
#[derive(clap::Args)]
pub struct ScaleArgs {
    /// `TYPE=COUNT` (absolute) or `TYPE+N` / `TYPE-N` (from the desired
    /// count now), applied all or none: `tally scale web=4 clock=1`,
    /// `tally scale web+2`.
    #[arg(required = true, value_name = "TYPE=COUNT|TYPE+N|TYPE-N")]
    counts: Vec<String>,
    /// The app whose types these are (with `tally run --app`; or write
    /// `blog:web=2`).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
}

/// `tally restart [TYPE | TYPE.N]`.
#[derive(clap::Args)]
pub struct RestartArgs {
    /// One dyno (`web.1`), or every dyno of one type (`web`); every dyno
    /// without it.
    #[arg(value_name = "TYPE|TYPE.N")]
    what: Option<String>,
    /// The app (with `tally run --app`): its dyno or type, or all its
    /// dynos without one.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
}

/// `tally stop TYPE.N`.
#[derive(clap::Args)]
pub struct StopArgs {
    /// The dyno, as `$DYNO` names it: `web.1`.
    #[arg(value_name = "TYPE.N")]
    dyno: String,
    /// The app (with `tally run --app`; or write `blog:web.1`).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
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
#[derive(clap::Args)]
pub struct LockdownArgs {
    /// On refuses restarts, deploys and scale-downs.
    #[arg(value_enum)]
    state: OnOff,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
}

/// `tally breaker open|close`.
#[derive(clap::Args)]
pub struct BreakerArgs {
    /// Open or close by hand.
    #[arg(value_enum)]
    state: OpenClose,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
}

/// `tally pause|resume [--host N]`.
#[derive(clap::Args)]
pub struct PauseArgs {
    /// One host (all hosts without it).
    #[arg(long)]
    host: Option<u16>,
    /// Where.
    #[command(flatten)]
    target: ApiTarget,
}

/// `tally ps`: the manager's view, drawn, or its JSON.
pub fn ps(args: &PsArgs) -> Result<ExitCode, CliError> {
    let client = args.target.client();
    if args.json && args.app.is_none() {
        let json = client.ps_json()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut ps = client.ps()?;
    if let Some(app) = &args.app {
        only_app(&mut ps, app)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ps).unwrap_or_default());
    } else {
        print!("{}", render_ps(&ps));
    }
    Ok(ExitCode::SUCCESS)
}

/// `ps` narrowed to one app: its types, their dynos, its budget row.
fn only_app(ps: &mut Ps, app: &str) -> Result<(), ScaleError> {
    if !ps.types.iter().any(|t| t.app == app) {
        let mut apps: Vec<&str> = ps.types.iter().map(|t| t.app.as_str()).collect();
        apps.dedup();
        return Err(ScaleError::NoApp {
            app: app.to_owned(),
            apps: apps.join(", "),
        });
    }
    ps.types.retain(|t| t.app == app);
    let names: Vec<String> = ps.types.iter().map(|t| t.name.clone()).collect();
    ps.instances.retain(|i| {
        i.dyno
            .rsplit_once('.')
            .is_some_and(|(t, _)| names.iter().any(|n| n == t))
    });
    ps.apps.retain(|a| a.name == app);
    ps.slots.retain(|dyno, _| {
        dyno.rsplit_once('.')
            .is_some_and(|(t, _)| names.iter().any(|n| n == t))
    });
    // Lifecycle lines name their dyno (`slot=blog:web.1`); those of the
    // fleet (breaker, lockdown, pauses) name none and stay.
    let prefix = format!("slot={app}:");
    ps.recent
        .retain(|line| !line.contains("slot=") || line.contains(&prefix));
    Ok(())
}

/// `name` of `app`: `blog:web` (a name already qualified is kept).
fn qualify(app: Option<&str>, name: &str) -> String {
    match app {
        Some(a) if !name.contains(':') => format!("{a}:{name}"),
        _ => name.to_owned(),
    }
}

/// An app's budget and launch-bound lines.
fn render_budget(s: &mut String, app: &PsApp) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "budget:   {:.1} of {} tokens, probe {} (a relaunch spends a token, or the probe once per cool-down; a first successful boot refills r)\nlaunches: {} so far; at most {} now = F {} first launches (free) + B {} + r*S (S = {} boots seen) + probes",
        app.tokens,
        app.capacity,
        if app.probe_ready {
            "ready"
        } else {
            "cooling down"
        },
        app.launches,
        app.launch_bound,
        app.first_launches,
        app.capacity,
        app.boots_succeeded,
    );
}

/// The leader and the standbys of a highly available group.
fn render_managers(s: &mut String, m: &tally_manager::api::PsManagers) {
    use std::fmt::Write as _;
    let at = |agent: &str, api: &str| {
        if agent.is_empty() {
            "(addresses not registered)".to_string()
        } else {
            format!("agents {agent}, API {api}")
        }
    };
    match &m.leader {
        Some(l) => {
            let _ = writeln!(
                s,
                "leader:   {} (term {}) {}",
                l.name,
                l.term.unwrap_or(0),
                at(&l.agent, &l.api)
            );
        }
        None => {
            let _ = writeln!(s, "leader:   none (an election is under way)");
        }
    }
    if m.standbys.is_empty() {
        let _ = writeln!(s, "standby:  none");
    }
    for st in &m.standbys {
        let _ = writeln!(s, "standby:  {} {}", st.name, at(&st.agent, &st.api));
    }
    let _ = writeln!(s, "store:    {}\n", m.store);
}

/// `ps` for people, in the habit of `heroku ps`.
fn render_ps(ps: &Ps) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(m) = &ps.managers {
        render_managers(&mut s, m);
    }
    for t in &ps.types {
        let kind = if t.singleton { "singleton" } else { "scalable" };
        let _ = writeln!(
            s,
            "=== {} ({kind}): {} desired, {} up, max {}",
            t.name, t.desired, t.up, t.max
        );
        let of_type = |dyno: &str| dyno.rsplit_once('.').map(|(ty, _)| ty) == Some(t.name.as_str());
        for i in ps.instances.iter().filter(|i| of_type(&i.dyno)) {
            let state = match i.phase_ms {
                Some(ms) => format!("{} {}", i.phase, age(ms)),
                None => i.phase.clone(),
            };
            let port = i.port.map_or_else(|| "-".to_owned(), |p| format!(":{p}"));
            let pid = i.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let _ = writeln!(
                s,
                "{:<12} g{:<5} host{:<4} {:<20} {:<7} {:<8} {}",
                i.dyno, i.generation, i.host, state, port, pid, i.command
            );
            // The slot's latest failure, if it was an earlier generation's.
            if let Some(e) = ps
                .exits
                .iter()
                .find(|e| e.dyno == i.dyno && e.generation < i.generation)
            {
                let _ = writeln!(s, "{:<12} ^ g{} {}", "", e.generation, exit_words(e));
            }
        }
        // Slots of the formation with no instance now: why.
        for e in ps.exits.iter().filter(|e| {
            e.in_formation && of_type(&e.dyno) && !ps.instances.iter().any(|i| i.dyno == e.dyno)
        }) {
            let _ = writeln!(
                s,
                "{:<12} g{:<5} host{:<4} {}",
                e.dyno,
                e.generation,
                e.host,
                exit_words(e)
            );
        }
        let _ = writeln!(s);
    }
    let lockdown = if ps.lockdown { "on" } else { "off" };
    if let [app] = ps.apps.as_slice() {
        let _ = writeln!(s, "breaker:  {}\nlockdown: {lockdown}", app.breaker);
        if ps.breaker_open && !app.breaker_open {
            let _ = writeln!(s, "fleet:    breaker {}", ps.breaker);
        }
        render_budget(&mut s, app);
    } else {
        let _ = writeln!(
            s,
            "fleet:    breaker {}\nlockdown: {lockdown}\nlaunches: {} so far; at most {} now, the apps' bounds together",
            ps.breaker, ps.launches, ps.launch_bound
        );
        for app in &ps.apps {
            let _ = writeln!(s, "--- app {}\nbreaker:  {}", app.name, app.breaker);
            render_budget(&mut s, app);
        }
    }
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

/// `tally logs`.
#[derive(clap::Args)]
pub struct LogsArgs {
    /// Keep printing lines as the dynos write them (Ctrl-C to stop), as
    /// `heroku logs --tail` does.
    #[arg(short = 'f', long, alias = "tail")]
    follow: bool,
    /// Only this dyno (`web.1`).
    #[arg(long, value_name = "TYPE.N", conflicts_with = "process_type")]
    dyno: Option<String>,
    /// Only the dynos of this process type (`web`).
    #[arg(long = "type", value_name = "TYPE")]
    process_type: Option<String>,
    /// Only the last N lines written so far (then new ones with -f).
    #[arg(short = 'n', long, value_name = "N")]
    num: Option<usize>,
    /// Only this app's dynos (with `tally run --app`); with --dyno or
    /// --type, the app of their name (`--app blog --type web` is
    /// `--type blog:web`).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// The data dir of `tally run` (dyno output is under host-N/).
    #[arg(long, default_value = DATA_DIR)]
    data_dir: PathBuf,
}

/// `tally logs`: every dyno's output, interleaved by time, each line with
/// its time (UTC) and dyno, coloured by dyno on a terminal.
pub fn logs(args: &LogsArgs) -> Result<ExitCode, CliError> {
    use std::io::{IsTerminal, Write};
    use tally_manager::logs::{Line, POLL_MS, Reader};
    if !args.data_dir.is_dir() {
        return Err(CliError::NoLogs(args.data_dir.display().to_string()));
    }
    let app = args.app.as_deref();
    let dyno = args.dyno.as_deref().map(|d| qualify(app, d));
    let process_type = args.process_type.as_deref().map(|t| qualify(app, t));
    let app_prefix = app.map(|a| format!("{a}:"));
    let wanted = |l: &Line| {
        dyno.as_deref().is_none_or(|d| l.dyno == d)
            && process_type
                .as_deref()
                .is_none_or(|t| l.process_type() == t)
            && app_prefix.as_deref().is_none_or(|p| l.dyno.starts_with(p))
    };
    let colour = std::io::stdout().is_terminal();
    let mut reader = Reader::default();
    let mut lines: Vec<Line> = reader
        .poll(&args.data_dir)?
        .into_iter()
        .filter(wanted)
        .collect();
    if let Some(n) = args.num {
        lines.drain(..lines.len().saturating_sub(n));
    }
    loop {
        let mut out = std::io::stdout().lock();
        let written = lines
            .iter()
            .try_for_each(|l| writeln!(out, "{}", log_line(l, colour)))
            .and_then(|()| out.flush());
        match written {
            // `tally logs | head`: the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS);
            }
            r => r?,
        }
        drop(out);
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
        lines = reader
            .poll(&args.data_dir)?
            .into_iter()
            .filter(wanted)
            .collect();
    }
}

/// Prints, from now on, every line the dynos under `data_dir` write, on a
/// thread of its own (`tally run --logs`, as foreman does).
pub(crate) fn stream_logs(data_dir: PathBuf) -> std::io::Result<()> {
    use std::io::{IsTerminal, Write};
    use tally_manager::logs::{POLL_MS, Reader};
    let colour = std::io::stdout().is_terminal();
    std::thread::Builder::new()
        .name("logs-out".into())
        .spawn(move || {
            let mut reader = Reader::default();
            // From now on: what an earlier run wrote is `tally logs`'.
            let _ = reader.poll(&data_dir);
            loop {
                std::thread::sleep(std::time::Duration::from_millis(POLL_MS));
                let mut out = std::io::stdout().lock();
                for l in reader.poll(&data_dir).unwrap_or_default() {
                    // A closed stdout ends the printing, not `tally run`.
                    if writeln!(out, "{}", log_line(&l, colour)).is_err() {
                        return;
                    }
                }
            }
        })
        .map(drop)
}

/// `12:03:07.412 web.1 | text`, the dyno coloured on a terminal.
pub(crate) fn log_line(l: &tally_manager::logs::Line, colour: bool) -> String {
    let ms = l.ms % 86_400_000;
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    if colour {
        // One of six colours per dyno name, stable across runs.
        let hue = l
            .dyno
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 6;
        format!("{time} \x1b[3{}m{:<10}\x1b[0m| {}", hue + 1, l.dyno, l.text)
    } else {
        format!("{time} {:<10}| {}", l.dyno, l.text)
    }
}

/// A slot's failure as `heroku ps` says it: `crashed 12s ago on host1 (exit 137)`.
fn exit_words(e: &tally_manager::api::PsExit) -> String {
    let status = e
        .status
        .as_deref()
        .map_or_else(String::new, |w| format!(" ({w})"));
    format!("{} {} ago on host{}{status}", e.what, age(e.ago_ms), e.host)
}

/// A duration as people read one: `4s`, `3m12s`, `2h5m`, `3d4h`.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// A `tally scale` argument that cannot be applied.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScaleError {
    /// `web=x`.
    #[error("`{0}`: COUNT must be a whole number from 0 to 65535")]
    Count(String),
    /// Neither `TYPE=COUNT` nor `TYPE+N` / `TYPE-N`.
    #[error("`{0}`: expected TYPE=COUNT or TYPE+N / TYPE-N, as in web=4 or web+2")]
    Syntax(String),
    /// `TYPE+N` for a type the manager does not run.
    #[error("`{pair}`: unknown process type `{name}`")]
    UnknownType {
        /// The argument.
        pair: String,
        /// The type.
        name: String,
    },
    /// `TYPE+N` past the bounds of a count.
    #[error("`{pair}`: {name} has {now} desired; the result must be from 0 to 65535")]
    OutOfRange {
        /// The argument.
        pair: String,
        /// The type.
        name: String,
        /// Its desired count now.
        now: i64,
    },
    /// One type twice.
    #[error("`{0}` is given twice; give each type once")]
    Twice(String),
    /// `--app` names no app the manager runs.
    #[error("no app `{app}`; apps: {apps}")]
    NoApp {
        /// The name given.
        app: String,
        /// The apps there are.
        apps: String,
    },
}

/// `tally scale`: absolute and relative counts, sent all or none.
pub fn scale(args: &ScaleArgs) -> Result<ExitCode, CliError> {
    let client = args.target.client();
    let mut counts: BTreeMap<String, u16> = BTreeMap::new();
    let mut desired: Option<Ps> = None;
    for pair in &args.counts {
        let app = args.app.as_deref();
        let (name, count) = match parse_scale(pair)? {
            ScalePair::Absolute(name, count) => (qualify(app, &name), count),
            ScalePair::Relative(name, delta) => {
                let name = qualify(app, &name);
                // `web+2`, as `heroku ps:scale` takes it: from the desired
                // count now (read once for the whole command).
                if desired.is_none() {
                    desired = Some(client.ps()?);
                }
                let now = desired
                    .as_ref()
                    .and_then(|ps| {
                        // `web` names the one app's `blog:web` too.
                        let bare = |t: &&tally_manager::api::PsType| {
                            t.name.rsplit_once(':').is_some_and(|(_, n)| n == name)
                        };
                        let exact = ps.types.iter().find(|t| t.name == name);
                        let mut bares = ps.types.iter().filter(bare);
                        exact.or_else(|| match (bares.next(), bares.next()) {
                            (Some(t), None) => Some(t),
                            _ => None,
                        })
                    })
                    .map(|t| i64::from(t.desired))
                    .ok_or_else(|| ScaleError::UnknownType {
                        pair: pair.clone(),
                        name: name.clone(),
                    })?;
                let count = u16::try_from(now.saturating_add(delta)).map_err(|_| {
                    ScaleError::OutOfRange {
                        pair: pair.clone(),
                        name: name.clone(),
                        now,
                    }
                })?;
                (name, count)
            }
        };
        if counts.contains_key(&name) {
            return Err(ScaleError::Twice(name).into());
        }
        counts.insert(name, count);
    }
    let done: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    client.scale(&counts)?;
    println!("Scaling: {}", done.join(" "));
    Ok(ExitCode::SUCCESS)
}

/// One argument of `tally scale`.
#[derive(Debug, PartialEq, Eq)]
enum ScalePair {
    /// `web=4`.
    Absolute(String, u16),
    /// `web+2`, `web-1`.
    Relative(String, i64),
}

fn parse_scale(pair: &str) -> Result<ScalePair, ScaleError> {
    if let Some((name, count)) = pair.split_once('=') {
        let count = count
            .parse()
            .map_err(|_| ScaleError::Count(pair.to_string()))?;
        return Ok(ScalePair::Absolute(name.to_string(), count));
    }
    // The last `+` or `-` followed by digits only (type names may hold `-`).
    let syntax = || ScaleError::Syntax(pair.to_string());
    let at = pair
        .rfind(['+', '-'])
        .filter(|&i| i > 0)
        .ok_or_else(syntax)?;
    let (name, delta) = pair.split_at(at);
    let delta: i64 = delta
        .parse()
        .ok()
        .filter(|d: &i64| d.unsigned_abs() <= u64::from(u16::MAX))
        .ok_or_else(syntax)?;
    Ok(ScalePair::Relative(name.to_string(), delta))
}

/// `tally restart`: one dyno, one type's dynos, or all.
pub fn restart(args: &RestartArgs) -> Result<ExitCode, CliError> {
    let client = args.target.client();
    let app = args.app.as_deref();
    match args.what.as_deref() {
        Some(dyno) if dyno.contains('.') => {
            let dyno = qualify(app, dyno);
            client.restart_dyno(&dyno)?;
            println!("Restarting {dyno}");
        }
        Some(what) => {
            let what = qualify(app, what);
            client.restart(Some(&what))?;
            println!("Restarting {what}");
        }
        None => match app {
            Some(app) => {
                client.restart_app(app)?;
                println!("Restarting every dyno of {app}");
            }
            None => {
                client.restart(None)?;
                println!("Restarting all dynos");
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// `tally stop`: one dyno, replaced since the formation still asks for it.
pub fn stop(args: &StopArgs) -> Result<ExitCode, CliError> {
    let dyno = qualify(args.app.as_deref(), &args.dyno);
    args.target.client().stop_dyno(&dyno)?;
    let process_type = dyno.rsplit_once('.').map_or("TYPE", |(t, _)| t);
    println!(
        "Stopping {dyno}: the formation still asks for it, so it is replaced (`tally scale {process_type}-1` removes one)"
    );
    Ok(ExitCode::SUCCESS)
}

/// `tally lockdown`.
pub fn lockdown(args: &LockdownArgs) -> Result<ExitCode, CliError> {
    let on = matches!(args.state, OnOff::On);
    args.target.client().lockdown(on)?;
    println!(
        "{}",
        if on {
            "Lockdown on: restarts, deploys and scale-downs are refused"
        } else {
            "Lockdown off"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `tally breaker`.
pub fn breaker(args: &BreakerArgs) -> Result<ExitCode, CliError> {
    let open = matches!(args.state, OpenClose::Open);
    args.target.client().breaker(open)?;
    println!(
        "{}",
        if open {
            "Breaker open: no launches"
        } else {
            "Breaker closed"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `tally pause`.
pub fn pause(args: &PauseArgs) -> Result<ExitCode, CliError> {
    pause_or_resume(args, true)
}

/// `tally resume`.
pub fn resume(args: &PauseArgs) -> Result<ExitCode, CliError> {
    pause_or_resume(args, false)
}

fn pause_or_resume(args: &PauseArgs, paused: bool) -> Result<ExitCode, CliError> {
    args.target.client().pause(args.host, paused)?;
    let at = args
        .host
        .map_or("everywhere".to_string(), |h| format!("on host {h}"));
    println!(
        "Launches {} {at}",
        if paused { "paused" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
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
