//! Counterexample traces as JSON: the actions, the ledger and the ground
//! truth at every step. The Explorer's timeline reads this format.

use crate::properties;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tally_core::Phase;
use tally_model::{Action, ModelConfig, World};

/// Trace format version.
pub const TRACE_VERSION: u16 = 1;

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
    /// The manager's ledger.
    pub ledger: Vec<LedgerRow>,
    /// Real time.
    pub now: u64,
    /// Ground truth: processes that really run.
    pub processes: Vec<ProcessRow>,
    /// Agents, by host.
    pub agents: Vec<AgentRow>,
    /// Messages in flight.
    pub network: &'a [tally_core::Message],
    /// Manager: budget, breaker, lockdown, formation.
    pub manager: ManagerRow<'a>,
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
    /// Instances with phase and lease end (agent clock).
    pub instances: Vec<(String, tally_core::RunPhase, u64)>,
}

/// The manager's flow-control state.
#[derive(Serialize)]
pub struct ManagerRow<'a> {
    /// Retry budget.
    pub budget: tally_core::Budget,
    /// Breaker.
    pub breaker: tally_core::Breaker,
    /// Lockdown.
    pub lockdown: bool,
    /// Desired count per type.
    pub formation: &'a [u16],
    /// `F` so far.
    pub free_launches_granted: u64,
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
    /// The steps.
    pub steps: Vec<Step<'a>>,
}

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
    let steps = path
        .iter()
        .enumerate()
        .map(|(index, (state, action))| Step {
            index,
            action: *action,
            ledger: state
                .manager
                .ledger()
                .map(|(id, d, _)| LedgerRow {
                    instance: instance_name(cfg, id),
                    host: d.host.0,
                    phase: state.manager.phase(id).unwrap_or(Phase::Stopped),
                })
                .collect(),
            now: state.now.0,
            processes: state
                .processes
                .iter()
                .map(|p| ProcessRow {
                    instance: instance_name(cfg, p.instance),
                    host: p.host.0,
                    booting: p.booting_since.is_some(),
                })
                .collect(),
            agents: state
                .hosts
                .iter()
                .map(|h| AgentRow {
                    host: h.agent.host().0,
                    incarnation: h.agent.incarnation().0,
                    lag: h.lag,
                    partitioned: h.partitioned,
                    instances: h
                        .agent
                        .instances()
                        .iter()
                        .map(|(id, l)| (instance_name(cfg, *id), l.phase, l.lease_until.0))
                        .collect(),
                })
                .collect(),
            network: &state.network,
            manager: ManagerRow {
                budget: state.manager.durable().budget,
                breaker: state.manager.breaker(),
                lockdown: state.manager.lockdown(),
                formation: &state.manager.durable().formation,
                free_launches_granted: state.manager.durable().free_launches_granted,
            },
        })
        .collect();
    Trace {
        version: TRACE_VERSION,
        config: cfg,
        property,
        explanation,
        steps,
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

/// Writes the trace to `dir/<config>--<property>.json`.
pub fn write(
    dir: &Path,
    cfg: &ModelConfig,
    property: &str,
    path: &[(World, Option<Action>)],
) -> Result<PathBuf, (String, std::io::Error)> {
    let slug: String = format!("{}--{}", cfg.name, property)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let file = dir.join(format!("{slug}.json"));
    let shown = file.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| (dir.display().to_string(), e))?;
    let json = serde_json::to_string_pretty(&build(cfg, property, path))
        .map_err(|e| (shown.clone(), std::io::Error::other(e)))?;
    std::fs::write(&file, json).map_err(|e| (shown, e))?;
    Ok(file)
}
