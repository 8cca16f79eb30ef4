//! The HTTP/JSON API on loopback. Every call but `GET /health` needs the
//! bearer token from the data dir; every change goes through the core, which
//! refuses bad input with its own errors and then changes nothing.
//!
//! | call | body | what |
//! |---|---|---|
//! | `GET /health` | | liveness, no token |
//! | `GET /ps` | | formation, instances, budget, breaker, history |
//! | `POST /scale` | `{"web": 4, "clock": 1}` | all or nothing |
//! | `POST /restart` | `{"type": "web"}`, `{"dyno": "web.1"}`, `{"app": "blog"}` or `{}` | |
//!
//! With more than one app, a type is `app:type` (`blog:web`, `blog:web.1`);
//! a bare `web` names the one app that has it.
//! | `POST /stop` | `{"dyno": "web.1"}` | replaced unless the formation changes |
//! | `POST /lockdown` | `{"on": true}` | |
//! | `POST /breaker` | `{"open": true}` | |
//! | `POST /pause`, `POST /resume` | `{"host": 1}` or `{}` | |

use crate::machine::{ManagerMachine, SlotHistory};
use crate::server::{Clock, Core, set_fatal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use tally_core::budget::MILLI;
use tally_core::{
    Breaker, FleetBreaker, HostId, ManagerInput, OperatorCommand, Phase, ProcessKind, Rejected,
    Tick, UserCommand,
};

/// The largest request body accepted.
const BODY_MAX: u64 = 64 << 10;

/// One instance in `ps`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PsInstance {
    /// `web.1`.
    pub dyno: String,
    /// Its generation (the fencing token).
    pub generation: u32,
    /// Its host.
    pub host: u16,
    /// `launching`, `up`, `stopping`, `unknown`.
    pub phase: String,
    /// Milliseconds in this phase, as this manager saw it change (none if
    /// it changed before this manager started).
    #[serde(default)]
    pub phase_ms: Option<u64>,
    /// The Procfile command.
    #[serde(default)]
    pub command: String,
    /// The dyno's process id, as its agent last reported it.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The port given to it in `$PORT`, as its agent last reported it.
    #[serde(default)]
    pub port: Option<u16>,
}

/// A slot's latest crash or failed boot, in `ps` (`crashed 12s ago (exit 137)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsExit {
    /// `web.2`.
    pub dyno: String,
    /// The generation that exited.
    pub generation: u32,
    /// Where it ran.
    pub host: u16,
    /// `crashed` or `failed to boot`.
    pub what: String,
    /// The exit in the operating system's words (`exit 137`, `signal 9
    /// (SIGKILL)`), when its agent reported them.
    pub status: Option<String>,
    /// Milliseconds since the manager heard of it.
    pub ago_ms: u64,
    /// Whether the slot is in the formation now (its index below the
    /// desired count).
    #[serde(default)]
    pub in_formation: bool,
}

/// One process type in `ps`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PsType {
    /// `web` (`blog:web` when more than one app runs).
    pub name: String,
    /// Its app.
    #[serde(default)]
    pub app: String,
    /// Singleton or not.
    pub singleton: bool,
    /// Desired count.
    pub desired: u16,
    /// Instances up.
    pub up: u16,
    /// Largest count allowed.
    pub max: u16,
}

/// One app in `ps`: its own retry budget, breaker and launch bound
/// (DESIGN.md, "Apps are isolated").
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PsApp {
    /// The app's name.
    pub name: String,
    /// Retry tokens left in its bucket.
    pub tokens: f64,
    /// Bucket capacity `B`.
    pub capacity: u32,
    /// Its probe credit is ready.
    pub probe_ready: bool,
    /// Its breaker, in words.
    pub breaker: String,
    /// Whether its breaker is open.
    pub breaker_open: bool,
    /// Its launches since the journal began.
    pub launches: u64,
    /// `F_a`: its free first launches granted.
    pub first_launches: u64,
    /// `S_a`: its first successful boots.
    pub boots_succeeded: u64,
    /// Its launch bound `F_a + B + r*S_a + P` now.
    pub launch_bound: u64,
}

/// One manager of a highly available deployment, as `ps` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsManager {
    /// Its name (`tally run --name`).
    pub name: String,
    /// The leader's term (the store revision at which it took the leader
    /// key); `None` for a standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// Its agent address (empty when it has not registered).
    pub agent: String,
    /// Its API address (empty when it has not registered).
    pub api: String,
}

/// The managers of a highly available deployment (`tally run --store`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsManagers {
    /// The store, as `--store` named it.
    pub store: String,
    /// The leader, if any manager leads.
    pub leader: Option<PsManager>,
    /// The other running managers, by name.
    pub standbys: Vec<PsManager>,
}

/// What `GET /ps` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ps {
    /// Manager clock, ticks.
    pub now: u64,
    /// Tick length.
    pub tick_ms: u64,
    /// Process types.
    pub types: Vec<PsType>,
    /// Instances in the ledger.
    pub instances: Vec<PsInstance>,
    /// Lockdown.
    pub lockdown: bool,
    /// The fleet breaker, in words.
    pub breaker: String,
    /// Whether the fleet breaker or any app's breaker is open (by hand or
    /// on its own).
    pub breaker_open: bool,
    /// Each app's budget, breaker and launch bound.
    pub apps: Vec<PsApp>,
    /// Launches paused everywhere.
    pub paused_all: bool,
    /// Hosts with launches paused.
    pub paused_hosts: Vec<u16>,
    /// Launches since the journal began.
    pub launches: u64,
    /// `F`: free first launches granted.
    pub first_launches: u64,
    /// `S`: first successful boots.
    pub boots_succeeded: u64,
    /// The fleet's launch bound `F + n*B + r*S + n*P` now (DESIGN.md S3),
    /// the sum of the apps' bounds at most.
    pub launch_bound: u64,
    /// Breaker trips since this manager process started.
    pub breaker_trips: u64,
    /// User commands refused by lockdown.
    pub lockdown_refusals: u64,
    /// Per-slot history.
    pub slots: BTreeMap<String, SlotHistory>,
    /// Latest lifecycle lines.
    pub recent: Vec<String>,
    /// Each slot's latest crash or failed boot.
    #[serde(default)]
    pub exits: Vec<PsExit>,
    /// The leader and the standbys, for a highly available deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managers: Option<PsManagers>,
}

/// Builds the `ps` view.
#[must_use]
pub fn ps(m: &ManagerMachine, now: Tick) -> Ps {
    let d = &m.deployment;
    let cfg = &d.config;
    let core = &m.manager;
    let mut instances = Vec::new();
    let mut up = vec![0u16; d.types.len()];
    let processes = m.processes.lock().ok();
    for (id, di, live) in core.ledger() {
        let phase = tally_core::manager::phase_of(di, live);
        if phase == Phase::Up {
            if let Some(n) = up.get_mut(usize::from(id.slot.process_type.0)) {
                *n = n.saturating_add(1);
            }
        }
        let process = processes.as_ref().and_then(|t| t.process(di.host, id));
        instances.push(PsInstance {
            dyno: d.slot_name(id.slot),
            generation: id.generation.0,
            host: di.host.0,
            phase: match phase {
                Phase::Launching => "launching".into(),
                Phase::Up => "up".into(),
                Phase::Stopping(tally_core::StopReason::BootTimedOut) => {
                    "stopping (boot timed out)".into()
                }
                Phase::Stopping(tally_core::StopReason::UserRequested) => {
                    "stopping (asked to)".into()
                }
                Phase::Unknown => "unknown".into(),
                Phase::Stopped => "stopped".into(),
            },
            phase_ms: m
                .stats
                .since
                .get(&id)
                .map(|t| now.since(*t).saturating_mul(d.tick_ms)),
            command: d
                .types
                .get(usize::from(id.slot.process_type.0))
                .map(|t| t.command.clone())
                .unwrap_or_default(),
            pid: process.and_then(|(pid, _)| pid),
            port: process.map(|(_, port)| port),
        });
    }
    let exits = m
        .stats
        .slots
        .iter()
        .filter_map(|(dyno, h)| {
            let e = h.last_exit.as_ref().filter(|e| e.failed)?;
            let status = processes
                .as_ref()
                .and_then(|t| t.exit_words(HostId(e.host), e.instance?).map(str::to_owned));
            Some(PsExit {
                dyno: dyno.clone(),
                generation: e.generation,
                host: e.host,
                what: e.what.clone(),
                status,
                ago_ms: now.0.saturating_sub(e.at).saturating_mul(d.tick_ms),
                in_formation: e
                    .instance
                    .is_some_and(|i| i.slot.index < core.desired(i.slot.process_type)),
            })
        })
        .collect();
    drop(processes);
    let types = cfg
        .process_types
        .iter()
        .enumerate()
        .map(|(i, p)| PsType {
            name: d.type_name(tally_core::TypeId(u16::try_from(i).unwrap_or(u16::MAX))),
            app: p.app.clone(),
            singleton: p.kind == ProcessKind::Singleton,
            desired: core.desired(tally_core::TypeId(u16::try_from(i).unwrap_or(u16::MAX))),
            up: up.get(i).copied().unwrap_or(0),
            max: p.count_max,
        })
        .collect();
    let durable = core.durable();
    let apps: Vec<PsApp> = cfg
        .app_names()
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let app = tally_core::AppId(u16::try_from(i).unwrap_or(u16::MAX));
            let budget = core
                .budget(app)
                .unwrap_or(tally_core::Budget::full(cfg, now));
            let (breaker, breaker_open) = breaker_words(m, core.breaker(app));
            let counts = m.counters.of_app(core.type_apps(), app);
            let inputs = core.launch_bound_inputs_of_app(cfg, (app, counts.boots_seen_done), now);
            PsApp {
                name: name.to_owned(),
                tokens: f64::from(budget.tokens_milli) / f64::from(MILLI),
                capacity: cfg.budget.capacity,
                probe_ready: budget.probe_ready,
                breaker,
                breaker_open,
                launches: counts.launches,
                first_launches: inputs.first_launches,
                boots_succeeded: inputs.successful_boots,
                launch_bound: tally_core::launch_bound(cfg, inputs),
            }
        })
        .collect();
    let (breaker, fleet_open) = fleet_breaker_words(m, core.fleet_breaker());
    let breaker_open = fleet_open || apps.iter().any(|a| a.breaker_open);
    // The core's inputs from the journal's counters (the formula S3
    // proves, with the journal's `S`, which is what refilled the budget),
    // and the same after a restart.
    let inputs = core.launch_bound_inputs(cfg, &m.counters, now);
    Ps {
        now: now.0,
        tick_ms: d.tick_ms,
        types,
        instances,
        lockdown: core.lockdown(),
        breaker,
        breaker_open,
        apps,
        paused_all: durable.paused_all,
        paused_hosts: durable.paused_hosts.iter().map(|h| h.0).collect(),
        launches: m.counters.launches,
        first_launches: inputs.first_launches,
        boots_succeeded: inputs.successful_boots,
        launch_bound: tally_core::launch_bound(cfg, inputs),
        breaker_trips: m.stats.breaker_trips,
        lockdown_refusals: m.stats.lockdown_refusals,
        slots: m.stats.slots.clone(),
        recent: m.stats.recent.iter().cloned().collect(),
        exits,
        managers: m
            .managers
            .as_ref()
            .and_then(|v| v.lock().ok().map(|v| v.clone())),
    }
}

/// An app's breaker in words, and whether it is open.
fn breaker_words(m: &ManagerMachine, b: Breaker) -> (String, bool) {
    let d = &m.deployment;
    match b {
        Breaker::Closed { failures, .. } => (
            format!(
                "closed ({failures} of {} failures in the window)",
                d.config.breaker.failure_threshold
            ),
            false,
        ),
        Breaker::Open { manual: true, .. } => ("open (by an operator)".to_string(), true),
        Breaker::Open { since, .. } => (
            format!("open since {since}: its boots kept failing; one probe after the cool-down"),
            true,
        ),
        Breaker::HalfOpen { probe } => (
            format!(
                "half-open: probing with {}",
                probe.map_or("the next launch".into(), |p| d.instance_name(p))
            ),
            false,
        ),
    }
}

/// The fleet breaker in words, and whether it is open.
fn fleet_breaker_words(m: &ManagerMachine, b: &FleetBreaker) -> (String, bool) {
    let d = &m.deployment;
    let threshold = d.config.fleet_breaker_threshold();
    let apps = d.config.app_count();
    match b {
        FleetBreaker::Closed { failing, .. } if apps < threshold => (
            format!(
                "closed ({} of {apps} apps failing; it trips at {threshold} apps, so only an operator opens it)",
                failing.len()
            ),
            false,
        ),
        FleetBreaker::Closed { failing, .. } => (
            format!(
                "closed ({} of {threshold} failing apps that trip it in the window)",
                failing.len()
            ),
            false,
        ),
        FleetBreaker::Open { manual: true, .. } => {
            ("open (by an operator): no app launches".to_string(), true)
        }
        FleetBreaker::Open { since, .. } => (
            format!(
                "open since {since}: boots of many apps kept failing; no app launches until one probe after the cool-down"
            ),
            true,
        ),
        FleetBreaker::HalfOpen { probe, .. } => (
            format!(
                "half-open: probing with {}",
                probe.map_or("the next launch".into(), |p| d.instance_name(p))
            ),
            false,
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartBody {
    #[serde(rename = "type")]
    process_type: Option<String>,
    dyno: Option<String>,
    /// Every dyno of this app (with neither `type` nor `dyno`).
    app: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DynoBody {
    dyno: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OnBody {
    on: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    open: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostBody {
    host: Option<u16>,
}

/// An API answer: status and JSON body.
struct Answer {
    status: u16,
    body: serde_json::Value,
}

fn error(status: u16, message: impl Into<String>) -> Answer {
    Answer {
        status,
        body: serde_json::json!({ "error": message.into() }),
    }
}

fn ok(body: serde_json::Value) -> Answer {
    Answer { status: 200, body }
}

/// Compares without an early exit, so the time taken does not leak how
/// much of a guessed token was right.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Serves requests until the listener fails.
pub fn serve(
    server: &tiny_http::Server,
    core: &Core,
    clock: Clock,
    token: &str,
    fatal: &std::sync::Mutex<Option<String>>,
    host_known: &dyn Fn(HostId) -> bool,
) {
    for request in server.incoming_requests() {
        answer(request, core, clock, token, fatal, host_known);
    }
}

/// Answers one request (as [`serve`] does each).
pub(crate) fn answer(
    mut request: tiny_http::Request,
    core: &Core,
    clock: Clock,
    token: &str,
    fatal: &std::sync::Mutex<Option<String>>,
    host_known: &dyn Fn(HostId) -> bool,
) {
    let authorized = request.headers().iter().any(|h| {
        h.field.equiv("Authorization")
            && h.value
                .as_str()
                .strip_prefix("Bearer ")
                .is_some_and(|t| same(t.trim(), token))
    });
    let method = request.method().as_str().to_ascii_uppercase();
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let answer = if method == "GET" && path == "/health" {
        ok(serde_json::json!({ "status": "ok", "applied": core.applied() }))
    } else if !authorized {
        // Refused before the body is read: a caller without the token
        // cannot hold a worker by sending one slowly.
        error(
            401,
            "missing or wrong bearer token (see the data dir's `token` file)",
        )
    } else {
        let mut body = String::new();
        match request
            .as_reader()
            .take(BODY_MAX + 1)
            .read_to_string(&mut body)
        {
            Err(_) => error(400, "the request body is not UTF-8 text"),
            Ok(n) if n as u64 > BODY_MAX => {
                error(413, format!("request body over the {BODY_MAX}-byte limit"))
            }
            Ok(_) => route(&method, &path, &body, core, clock, fatal, host_known),
        }
    };
    let json = serde_json::to_string_pretty(&answer.body).unwrap_or_default();
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]).ok();
    let mut response = tiny_http::Response::from_string(json).with_status_code(answer.status);
    if let Some(h) = header {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, Answer> {
    let text = if body.trim().is_empty() { "{}" } else { body };
    // Strict: a duplicated key (`{"web": 1, "web": 9}`) is refused, not
    // silently the last one.
    crate::strict_json::from_str(text).map_err(|e| error(400, format!("bad request body: {e}")))
}

fn route(
    method: &str,
    path: &str,
    body: &str,
    core: &Core,
    clock: Clock,
    fatal: &std::sync::Mutex<Option<String>>,
    host_known: &dyn Fn(HostId) -> bool,
) -> Answer {
    let inputs = match (method, path) {
        ("GET", "/ps") => {
            // At the clock's time: the timer no longer steps the core every
            // tick, so the last input's time may be long past.
            return match core.read(|m, last| ps(m, last.max(clock.now()))) {
                Ok(view) => ok(serde_json::to_value(view).unwrap_or_default()),
                Err(e) => error(500, e.to_string()),
            };
        }
        ("POST", "/scale") => scale_inputs(body, core),
        ("POST", "/restart") => parse::<RestartBody>(body).and_then(|b| {
            let command = match (b.process_type, b.dyno) {
                (Some(_), Some(_)) => {
                    return Err(error(400, "give `type` or `dyno`, not both"));
                }
                // Every dyno of one app: one restart per type, applied
                // together.
                (None, None) if b.app.is_some() => {
                    let app = b.app.unwrap_or_default();
                    return Ok(app_types(core, &app)?
                        .into_iter()
                        .map(|t| {
                            ManagerInput::User(UserCommand::Restart {
                                process_type: Some(t),
                            })
                        })
                        .collect());
                }
                (None, Some(dyno)) => UserCommand::RestartDyno {
                    slot: slot_id(core, &dyno)?,
                },
                (process_type, None) => UserCommand::Restart {
                    process_type: match process_type {
                        None => None,
                        Some(name) => Some(type_id(core, &name)?),
                    },
                },
            };
            Ok(vec![ManagerInput::User(command)])
        }),
        // Heroku's `ps:stop`: the dyno stops, and the formation, which
        // still asks for it, replaces it: the core's one-dyno restart.
        ("POST", "/stop") => parse::<DynoBody>(body).and_then(|b| {
            Ok(vec![ManagerInput::User(UserCommand::RestartDyno {
                slot: slot_id(core, &b.dyno)?,
            })])
        }),
        ("POST", "/lockdown") => parse::<OnBody>(body).map(|b| {
            vec![ManagerInput::Operator(OperatorCommand::Lockdown {
                on: b.on,
            })]
        }),
        ("POST", "/breaker") => parse::<OpenBody>(body).map(|b| {
            vec![ManagerInput::Operator(if b.open {
                OperatorCommand::BreakerOpen
            } else {
                OperatorCommand::BreakerClose
            })]
        }),
        ("POST", "/pause") => known_host(body, host_known).map(|host| {
            vec![ManagerInput::Operator(OperatorCommand::PauseLaunches {
                host,
            })]
        }),
        ("POST", "/resume") => known_host(body, host_known).map(|host| {
            vec![ManagerInput::Operator(OperatorCommand::ResumeLaunches {
                host,
            })]
        }),
        (
            _,
            "/ps" | "/scale" | "/restart" | "/stop" | "/lockdown" | "/breaker" | "/pause"
            | "/resume",
        ) => {
            return error(405, format!("{method} is not allowed on {path}"));
        }
        _ => return error(404, format!("no such endpoint: {method} {path}")),
    };
    let inputs = match inputs {
        Ok(i) => i,
        Err(answer) => return answer,
    };
    match core.apply_all(clock.now(), inputs) {
        Err(e) => {
            set_fatal(fatal, &e);
            error(503, e.to_string())
        }
        Ok(steps) => match steps.iter().find_map(|s| s.outcome.as_ref().err()) {
            Some(rejected) => {
                let status = match rejected {
                    Rejected::LockedDown { .. } => 409,
                    _ => 422,
                };
                error(status, describe(core, rejected))
            }
            None => ok(serde_json::json!({ "ok": true, "applied": steps.len() })),
        },
    }
}

/// The host of a pause or resume, refused if no agent of it ever attached
/// and the ledger places nothing on it (a typo would otherwise pause nothing).
fn known_host(body: &str, host_known: &dyn Fn(HostId) -> bool) -> Result<Option<HostId>, Answer> {
    let b = parse::<HostBody>(body)?;
    match b.host.map(HostId) {
        Some(h) if !host_known(h) => Err(error(
            422,
            format!(
                "unknown host {}: no agent of it has attached to this manager",
                h.0
            ),
        )),
        host => Ok(host),
    }
}

fn type_id(core: &Core, name: &str) -> Result<tally_core::TypeId, Answer> {
    core.read(|m, _| {
        m.deployment
            .resolve_type(name)
            .map_err(|why| error(422, why))
    })
    .unwrap_or_else(|e| Err(error(500, e.to_string())))
}

/// Every type of the app `name`, or a 422 naming the apps there are.
fn app_types(core: &Core, name: &str) -> Result<Vec<tally_core::TypeId>, Answer> {
    core.read(|m, _| {
        let d = &m.deployment;
        let types: Vec<tally_core::TypeId> = (0..d.types.len())
            .map(|i| tally_core::TypeId(u16::try_from(i).unwrap_or(u16::MAX)))
            .filter(|t| d.app_of(*t) == name)
            .collect();
        if types.is_empty() {
            Err(error(
                422,
                format!("no app `{name}`; apps: {}", d.apps().join(", ")),
            ))
        } else {
            Ok(types)
        }
    })
    .unwrap_or_else(|e| Err(error(500, e.to_string())))
}

/// The slot of a dyno name, `web.1` (numbered from 1, as `$DYNO` is).
fn slot_id(core: &Core, dyno: &str) -> Result<tally_core::SlotId, Answer> {
    let bad = || {
        error(
            422,
            format!("`{dyno}` is not a dyno name: give TYPE.N, e.g. web.1 (or APP:TYPE.N)"),
        )
    };
    let (name, n) = dyno.rsplit_once('.').ok_or_else(bad)?;
    let n: u16 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
    Ok(tally_core::SlotId {
        process_type: type_id(core, name)?,
        index: n - 1,
    })
}

fn scale_inputs(body: &str, core: &Core) -> Result<Vec<ManagerInput>, Answer> {
    let counts: BTreeMap<String, u16> = parse(body)?;
    if counts.is_empty() {
        return Err(error(400, "nothing to scale: give `{\"web\": 2}`"));
    }
    counts
        .into_iter()
        .map(|(name, count)| {
            Ok(ManagerInput::User(UserCommand::Scale {
                process_type: type_id(core, &name)?,
                count,
            }))
        })
        .collect()
}

/// The core's refusal in the user's words (type names, not ids).
fn describe(core: &Core, rejected: &Rejected) -> String {
    core.read(|m, _| {
        let name = |t: tally_core::TypeId| m.deployment.type_name(t).to_string();
        match rejected {
            Rejected::NotLeading => rejected.to_string(),
            Rejected::UnknownProcessType { process_type } => {
                format!("unknown process type {}", name(*process_type))
            }
            Rejected::ScaleAboveMax {
                process_type,
                requested,
                max,
            } => {
                let n = name(*process_type);
                format!(
                    "cannot scale {n} to {requested}: its maximum is {max} (`max` under [types.{n}] in tally.toml)"
                )
            }
            Rejected::SingletonAboveOne {
                process_type,
                requested,
            } => {
                let n = name(*process_type);
                format!("cannot scale {n} to {requested}: {n} is a singleton and runs at most 1")
            }
            Rejected::NoSuchDyno { slot, desired } => {
                let n = name(slot.process_type);
                let runs = match desired {
                    0 => format!("the formation runs no {n}"),
                    1 => format!("the formation runs {n}.1 only"),
                    d => format!("the formation runs {n}.1 to {n}.{d}"),
                };
                format!(
                    "no dyno {}: {runs}",
                    m.deployment.slot_name(*slot)
                )
            }
            Rejected::LockedDown { .. } => rejected.to_string(),
        }
    })
    .unwrap_or_else(|_| rejected.to_string())
}
