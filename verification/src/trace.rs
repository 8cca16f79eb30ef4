//! Counterexample traces as JSON: the actions, the ledger and the ground
//! truth at every step, and what the Explorer needs to show them: the step
//! where the property breaks with a one-line account of it, and each step's
//! path in stateright's Explorer (the action indices it follows). The
//! Explorer's timeline (`crate::explorer`) reads this format.

use crate::checked::CheckedModel;
use crate::properties::{self, Kind, PROPERTIES};
use serde::Serialize;
use stateright::Model;
use std::path::{Path, PathBuf};
use tally_core::{Message, Phase};
use tally_model::world::witness;
use tally_model::{Action, ModelConfig, TallyModel, World};

/// Trace format version. 2 added `broken_at`, `summary` and, per step,
/// `explorer_path`, `action_label`, `events`, `messages` and `violated`;
/// 3 the manager's rows per app and `bound`; 4 `store`, `managers` and the
/// agents' `term`.
pub const TRACE_VERSION: u16 = 4;

/// One ledger entry as the manager sees it.
#[derive(Serialize)]
pub struct LedgerRow {
    /// `type.index@generation`, e.g. `clock.1@g2`.
    pub instance: String,
    /// Host the ledger names.
    pub host: u16,
    /// Manager's phase.
    pub phase: Phase,
}

/// One step of a trace.
#[derive(Serialize)]
pub struct Step<'a> {
    /// Step number (0 is the initial state).
    pub index: usize,
    /// The action taken from this state (none on the last).
    pub action: Option<Action>,
    /// The action as stateright's Explorer writes it (`Deliver(0)`).
    pub action_label: Option<String>,
    /// This state in stateright's Explorer: the initial state's index, then
    /// the index of each action among the model's actions, `/`-separated
    /// (`0/3/1`). The Explorer's address is `#/steps/<explorer_path>`.
    /// `None` past a step that is not a model transition (a path of the
    /// symmetry-reduced L1 graph).
    pub explorer_path: Option<String>,
    /// What the action that led here caused (the model's witness events).
    pub events: Vec<&'static str>,
    /// The `always` properties this state breaks.
    pub violated: Vec<&'static str>,
    /// The manager's ledger.
    pub ledger: Vec<LedgerRow>,
    /// Real time.
    pub now: u64,
    /// Ground truth: processes that really run.
    pub processes: Vec<ProcessRow>,
    /// Agents, by host.
    pub agents: Vec<AgentRow>,
    /// Messages in flight (indexes of `Deliver`, `Lose`, ...).
    pub network: &'a [std::sync::Arc<Message>],
    /// The same messages, one line each, in the same order.
    pub messages: Vec<MessageRow>,
    /// Manager: budget, breaker, lockdown, formation.
    pub manager: ManagerRow<'a>,
    /// S3's launch bound at this state, term by term: the fleet's, then
    /// each app's.
    pub bound: Vec<BoundRow>,
    /// With a store: the leader key.
    pub store: Option<StoreRow>,
    /// With a store: each manager process (empty without one).
    pub managers: Vec<ManagerProcRow>,
}

/// The store's leader key.
#[derive(Serialize)]
pub struct StoreRow {
    /// The latest term handed out.
    pub term: u64,
    /// The process holding the live key, if any.
    pub holder: Option<u8>,
    /// Real time at which the key lapses unless kept alive.
    pub key_until: u64,
    /// Whether the store's journal differs from the leader's ledger (a
    /// leader ahead of the store, or an unfenced append).
    pub journal_differs: bool,
}

/// One manager process.
#[derive(Serialize)]
pub struct ManagerProcRow {
    /// 0 or 1.
    pub process: u8,
    /// `leader` (its core is the ledger shown), `zombie` (a deposed
    /// leader that does not know it yet), `standby`, or `down` (the
    /// leader's process, crashed or stepped down).
    pub role: &'static str,
    /// Its core's term.
    pub term: Option<u64>,
    /// Whether its guard lets it act now, on its clock.
    pub leads: bool,
    /// Not scheduled.
    pub paused: bool,
    /// Its keep-alive stream is broken.
    pub keepalives_cut: bool,
    /// Clock lag behind real time.
    pub lag: u8,
    /// Effects processed before a pause, not yet sent.
    pub pending: usize,
}

/// One launch bound of S3 (`tally_core::launch_bound`), term by term.
#[derive(Serialize)]
pub struct BoundRow {
    /// `fleet`, or the app's name.
    pub scope: String,
    /// Launches so far (ground truth of the manager's decisions).
    pub launches: u64,
    /// The bound: `F + n*B + r*S + n*P`.
    pub bound: u64,
    /// `F`: free first launches granted.
    pub first_launches: u64,
    /// `n`: buckets (1 for an app, the apps for the fleet).
    pub buckets: u64,
    /// `B`: one bucket's capacity.
    pub capacity: u32,
    /// `r`, in thousandths.
    pub refill_milli: u32,
    /// `S`: boots that really completed.
    pub successful_boots: u64,
    /// `P`: probe cool-downs elapsed.
    pub cooldowns: u64,
}

/// A process in ground truth.
#[derive(Serialize)]
pub struct ProcessRow {
    /// `clock.1@g2`.
    pub instance: String,
    /// Host.
    pub host: u16,
    /// Booting or up.
    pub booting: bool,
    /// Killed by its agent, still running until the kill takes effect.
    pub dying: bool,
}

/// One agent.
#[derive(Serialize)]
pub struct AgentRow {
    /// Host.
    pub host: u16,
    /// Incarnation.
    pub incarnation: u32,
    /// Clock lag behind real time.
    pub lag: u8,
    /// Cut off.
    pub partitioned: bool,
    /// The highest leader term it has heard.
    pub term: u64,
    /// Instances with phase and lease end (agent clock).
    pub instances: Vec<(String, tally_core::RunPhase, u64)>,
}

/// One message in flight, summarised.
#[derive(Serialize)]
pub struct MessageRow {
    /// `report` (agent to manager) or `reply` (manager to agent).
    pub kind: &'static str,
    /// The agent's host.
    pub host: u16,
    /// The agent clock time it was sent at (report) or answers (reply).
    pub sent_at: u64,
    /// One line: what it carries.
    pub summary: String,
}

/// The manager's flow-control state.
#[derive(Serialize)]
pub struct ManagerRow<'a> {
    /// Each app's retry budget.
    pub budgets: &'a [tally_core::Budget],
    /// Each app's breaker.
    pub breakers: &'a [tally_core::Breaker],
    /// The fleet breaker.
    pub fleet_breaker: &'a tally_core::FleetBreaker,
    /// Lockdown.
    pub lockdown: bool,
    /// Desired count per type.
    pub formation: &'a [u16],
    /// `F` so far, per type.
    pub free_launches_granted: &'a [u64],
}

/// A whole trace.
#[derive(Serialize)]
pub struct Trace<'a> {
    /// Format version.
    pub version: u16,
    /// Configuration.
    pub config: &'a ModelConfig,
    /// The property broken.
    pub property: &'a str,
    /// What breaking it means.
    pub explanation: &'a str,
    /// The first step whose state breaks the property (the last step for L1).
    pub broken_at: usize,
    /// One line: the property, what breaking it means, and who broke it here
    /// (`S1 singleton: ... — clock.1@g1 on host 0 and clock.1@g2 on host 1`).
    pub summary: String,
    /// The steps.
    pub steps: Vec<Step<'a>>,
}

/// The model's witness events, named as the timeline shows them.
const EVENTS: &[(u32, &str)] = &[
    (witness::BOOT_TIMED_OUT, "boot timed out"),
    (witness::LEASE_EXPIRED, "lease expired"),
    (witness::PHANTOM_REAPED, "phantom reaped"),
    (witness::RETRY_REFUSED, "retry refused"),
    (witness::BREAKER_TRIPPED, "breaker tripped"),
    (witness::FLEET_BREAKER_TRIPPED, "fleet breaker tripped"),
    (witness::LOCKDOWN_REFUSED, "lockdown refused a command"),
    (witness::SELF_FENCED, "self-fenced"),
    (witness::STALE_LAUNCH_REFUSED, "stale launch refused"),
    (witness::RELAUNCHED, "relaunched"),
    (witness::PROBE_SPENT, "probe credit spent"),
    (
        witness::PHANTOM_REAPED_IN_LOCKDOWN,
        "phantom reaped in lockdown",
    ),
    (
        witness::BOOT_TIMED_OUT_IN_LOCKDOWN,
        "boot timed out in lockdown",
    ),
    (witness::SELF_FENCED_IN_LOCKDOWN, "self-fenced in lockdown"),
    (
        witness::REPLACED_AFTER_EXPIRY,
        "replaced after lease expiry",
    ),
    (witness::TAKEOVER, "a standby took over"),
    (witness::DEPOSED, "a deposed leader stepped down"),
    (witness::OUTSIDE_GUARD, "input dropped outside the guard"),
    (witness::STALE_TERM_REFUSED, "reply of a lower term refused"),
];

/// Builds the trace of `path`.
#[must_use]
pub fn build<'a>(
    cfg: &'a ModelConfig,
    property: &'a str,
    path: &'a [(World, Option<Action>)],
) -> Trace<'a> {
    let explanation = properties::find(property)
        .map(|p| p.explanation)
        .unwrap_or("from some calm state no converged state is reachable");
    let model = TallyModel::new(cfg.clone()).ok().map(CheckedModel::new);
    let explorer_paths = model
        .as_ref()
        .map(|m| explorer_paths(m, path))
        .unwrap_or_default();
    let steps: Vec<Step<'a>> = path
        .iter()
        .enumerate()
        .map(|(index, (state, action))| Step {
            index,
            action: *action,
            action_label: action.map(|a| format!("{a:?}")),
            explorer_path: explorer_paths.get(index).cloned().flatten(),
            events: events(state),
            violated: violated(cfg, state),
            ledger: ledger_rows(cfg, state),
            now: state.now.0,
            processes: process_rows(cfg, state),
            agents: agent_rows(cfg, state),
            network: &state.network,
            messages: state.network.iter().map(|m| message_row(cfg, m)).collect(),
            manager: ManagerRow {
                budgets: &state.manager.durable().budgets,
                breakers: &state.manager.durable().breakers,
                fleet_breaker: &state.manager.durable().fleet_breaker,
                lockdown: state.manager.lockdown(),
                formation: &state.manager.durable().formation,
                free_launches_granted: &state.manager.durable().free_launches_granted,
            },
            bound: bound_rows(cfg, state),
            store: state.ha.as_ref().map(|ha| StoreRow {
                term: ha.term.0,
                holder: ha.holder,
                key_until: ha.key_until.0,
                journal_differs: ha.journal.is_some(),
            }),
            managers: manager_rows(cfg, state),
        })
        .collect();
    let broken_at = broken_at(cfg, property, path);
    let who = path
        .get(broken_at)
        .map(|(state, _)| culprits(cfg, property, state))
        .unwrap_or_default();
    let summary = if who.is_empty() {
        format!("{property}: {explanation}")
    } else {
        format!("{property}: {explanation} — {who}")
    };
    Trace {
        version: TRACE_VERSION,
        config: cfg,
        property,
        explanation,
        broken_at,
        summary,
        steps,
    }
}

/// Each state's path in stateright's Explorer (see [`Step::explorer_path`]),
/// found by replaying `path` through the model the Explorer serves.
#[must_use]
pub fn explorer_paths(
    model: &CheckedModel,
    path: &[(World, Option<Action>)],
) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(path.len());
    let Some((first, _)) = path.first() else {
        return out;
    };
    let Some(init) = model.init_states().iter().position(|s| s == first) else {
        return out;
    };
    let mut current = init.to_string();
    out.push(Some(current.clone()));
    for pair in path.windows(2) {
        let [(state, action), (next, _)] = pair else {
            break;
        };
        let mut actions = Vec::new();
        model.actions(state, &mut actions);
        let index = action.and_then(|a| actions.iter().position(|x| *x == a));
        let reached = action.and_then(|a| model.next_state(state, a));
        match index {
            Some(i) if reached.as_ref() == Some(next) => {
                current = format!("{current}/{i}");
                out.push(Some(current.clone()));
            }
            _ => break,
        }
    }
    out.resize(path.len(), None);
    out
}

/// The first state of `path` that breaks `property`; the last state when it
/// has no per-state predicate (L1) or none breaks it. A trace's `broken_at`,
/// and the length `tally check --mutation` prints.
#[must_use]
pub fn broken_at(cfg: &ModelConfig, property: &str, path: &[(World, Option<Action>)]) -> usize {
    let last = path.len().saturating_sub(1);
    match properties::find(property) {
        Some(p) if p.kind == Kind::Always => path
            .iter()
            .position(|(state, _)| !(p.holds)(cfg, state))
            .unwrap_or(last),
        _ => last,
    }
}

fn violated(cfg: &ModelConfig, state: &World) -> Vec<&'static str> {
    PROPERTIES
        .iter()
        .filter(|p| p.kind == Kind::Always && !(p.holds)(cfg, state))
        .map(|p| p.name)
        .collect()
}

fn events(state: &World) -> Vec<&'static str> {
    EVENTS
        .iter()
        .filter(|(bit, _)| state.ghost.last & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Who breaks `property` in `state`, in words; empty when the property has
/// no single culprit to name.
#[must_use]
pub fn culprits(cfg: &ModelConfig, property: &str, state: &World) -> String {
    let running = |p: &tally_model::Process| {
        format!("{} on host {}", instance_name(cfg, p.instance), p.host.0)
    };
    match property {
        "S1 singleton" => {
            let singletons = state
                .processes
                .iter()
                .filter(|p| cfg.core.is_singleton(p.instance.slot.process_type));
            for (i, a) in singletons.clone().enumerate() {
                let twin = singletons
                    .clone()
                    .skip(i + 1)
                    .find(|b| b.instance.slot == a.instance.slot);
                if let Some(b) = twin {
                    return format!("{} and {}", running(a), running(b));
                }
            }
            String::new()
        }
        "S2 no phantom" => state
            .processes
            .iter()
            .find(|p| state.manager.host_of(p.instance) != Some(p.host))
            .map(|p| match state.manager.host_of(p.instance) {
                Some(h) => format!("{} runs, the ledger has it on host {}", running(p), h.0),
                None => format!("{} runs, the ledger does not hold it", running(p)),
            })
            .unwrap_or_default(),
        "S3 launch bound" => bound_rows(cfg, state)
            .iter()
            .find(|b| b.launches > b.bound)
            .map(|b| {
                let r = f64::from(b.refill_milli) / 1000.0;
                format!(
                    "{}: {} launches > {} = F {} + {}*B {} + r*S {}*{} + {}*P {}",
                    b.scope,
                    b.launches,
                    b.bound,
                    b.first_launches,
                    b.buckets,
                    b.capacity,
                    r,
                    b.successful_boots,
                    b.buckets,
                    b.cooldowns
                )
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// S3's bounds at `state`, by the core's one definition and the model's
/// inputs (what `properties::s3_launch_bound` checks).
fn bound_rows(cfg: &ModelConfig, state: &World) -> Vec<BoundRow> {
    let row = |scope: String, launches: u64, inputs: tally_core::LaunchBoundInputs| BoundRow {
        scope,
        launches,
        bound: tally_core::launch_bound(&cfg.core, inputs),
        first_launches: inputs.first_launches,
        buckets: inputs.buckets,
        capacity: cfg.core.budget.capacity,
        refill_milli: cfg.core.budget.refill_per_boot_milli,
        successful_boots: inputs.successful_boots,
        cooldowns: inputs.cooldowns_elapsed,
    };
    let mut rows = vec![row(
        "fleet".into(),
        u64::from(state.ghost.launches),
        state.launch_bound_inputs(cfg),
    )];
    let names = cfg.core.app_names();
    if names.len() > 1 {
        for (a, (name, g)) in names.iter().zip(&state.ghost.apps).enumerate() {
            let app = tally_core::AppId(u16::try_from(a).unwrap_or(u16::MAX));
            let inputs = state.launch_bound_inputs_of_app(cfg, app);
            rows.push(row((*name).to_owned(), u64::from(g.launches), inputs));
        }
    }
    rows
}

fn ledger_rows(cfg: &ModelConfig, state: &World) -> Vec<LedgerRow> {
    state
        .manager
        .ledger()
        .map(|(id, d, _)| LedgerRow {
            instance: instance_name(cfg, id),
            host: d.host.0,
            phase: state.manager.phase(id).unwrap_or(Phase::Stopped),
        })
        .collect()
}

fn process_rows(cfg: &ModelConfig, state: &World) -> Vec<ProcessRow> {
    state
        .processes
        .iter()
        .map(|p| ProcessRow {
            instance: instance_name(cfg, p.instance),
            host: p.host.0,
            booting: p.booting_since.is_some(),
            dying: p.dying(),
        })
        .collect()
}

fn agent_rows(cfg: &ModelConfig, state: &World) -> Vec<AgentRow> {
    state
        .hosts
        .iter()
        .map(|h| AgentRow {
            host: h.agent.host().0,
            incarnation: h.agent.incarnation().0,
            lag: h.lag,
            partitioned: h.partitioned,
            term: h.agent.term().0,
            instances: h
                .agent
                .instances()
                .iter()
                .map(|(id, l)| (instance_name(cfg, *id), l.phase, l.lease_until.0))
                .collect(),
        })
        .collect()
}

fn manager_rows(cfg: &ModelConfig, state: &World) -> Vec<ManagerProcRow> {
    let Some(ha) = state.ha.as_ref() else {
        return Vec::new();
    };
    (0..2)
        .map(|p| {
            let core = if p == ha.leader {
                ha.leader_running.then_some(&*state.manager)
            } else {
                ha.zombie.as_deref()
            };
            let role = match (p == ha.leader, core.is_some()) {
                (true, true) => "leader",
                (true, false) => "down",
                (false, true) => "zombie",
                (false, false) => "standby",
            };
            let proc = ha.proc(p);
            ManagerProcRow {
                process: p,
                role,
                term: core.map(|m| m.durable().term.0),
                leads: core.is_some_and(|m| m.leads(&cfg.core, state.manager_now(p))),
                paused: proc.paused,
                keepalives_cut: proc.cut,
                lag: proc.lag,
                pending: proc.pending.as_ref().map_or(0, |e| e.len()),
            }
        })
        .collect()
}

fn message_row(cfg: &ModelConfig, m: &Message) -> MessageRow {
    let names = |ids: &[tally_core::InstanceId]| {
        ids.iter()
            .map(|id| instance_name(cfg, *id))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match m {
        Message::Report(r) => {
            let mut parts: Vec<String> = r
                .running
                .iter()
                .map(|x| format!("{} {:?}", instance_name(cfg, x.instance), x.phase).to_lowercase())
                .collect();
            parts.extend(r.exited.iter().map(|x| {
                format!(
                    "{} exited ({:?})",
                    instance_name(cfg, x.instance),
                    x.outcome
                )
                .to_lowercase()
            }));
            MessageRow {
                kind: "report",
                host: r.host.0,
                sent_at: r.sent_at.0,
                summary: if parts.is_empty() {
                    "nothing running".to_string()
                } else {
                    parts.join(", ")
                },
            }
        }
        Message::Reply(r) => {
            let mut parts = Vec::new();
            for (verb, ids) in [
                ("launch", &r.launch),
                ("stop", &r.stop),
                ("renew", &r.renew),
            ] {
                if !ids.is_empty() {
                    parts.push(format!("{verb} {}", names(ids)));
                }
            }
            let mut summary = if parts.is_empty() {
                "nothing".to_string()
            } else {
                parts.join("; ")
            };
            if cfg.core.leadership.is_some() {
                summary.push_str(&format!(" (term {})", r.term.0));
            }
            MessageRow {
                kind: "reply",
                host: r.host.0,
                sent_at: r.request_sent_at.0,
                summary,
            }
        }
    }
}

/// `clock.1@g2`.
#[must_use]
pub fn instance_name(cfg: &ModelConfig, id: tally_core::InstanceId) -> String {
    let t = cfg
        .core
        .process_type(id.slot.process_type)
        .map_or("?", |p| p.name.as_str());
    format!("{t}.{}@g{}", u32::from(id.slot.index) + 1, id.generation.0)
}

/// The trace of `path` as pretty JSON.
pub fn to_json(
    cfg: &ModelConfig,
    property: &str,
    path: &[(World, Option<Action>)],
) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&build(cfg, property, path))
}

/// The file name (without `.json`) of `property`'s trace in `cfg`:
/// `<config>--<property>`, lowercase, other characters as `-`.
#[must_use]
pub fn slug(cfg: &ModelConfig, property: &str) -> String {
    slugify(&format!("{}--{}", cfg.name, property))
}

/// `text` lowercase, with every character but ASCII letters, digits and `-`
/// as `-`: safe in a file name and a URL path.
#[must_use]
pub fn slugify(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Writes the trace to `dir/<config>--<property>.json`.
pub fn write(
    dir: &Path,
    cfg: &ModelConfig,
    property: &str,
    path: &[(World, Option<Action>)],
) -> Result<PathBuf, (String, std::io::Error)> {
    let file = dir.join(format!("{}.json", slug(cfg, property)));
    let shown = file.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| (dir.display().to_string(), e))?;
    let json =
        to_json(cfg, property, path).map_err(|e| (shown.clone(), std::io::Error::other(e)))?;
    std::fs::write(&file, json).map_err(|e| (shown, e))?;
    Ok(file)
}
