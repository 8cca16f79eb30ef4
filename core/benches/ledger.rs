//! The core alone at fleet size: a manager whose ledger holds 1,000,000
//! instances (10,000 hosts x 100) and the 10,000 agents that run them,
//! driven through `Manager::step` and `Agent::step` with nothing around
//! them. Prints steps per second, instance updates per second and resident
//! bytes per instance.
//!
//! `cargo bench -p tally-core --bench ledger`
//! (`LEDGER_HOSTS`, `LEDGER_PER_HOST` and `LEDGER_ROUNDS` change the size.)
//!
//! One round: every agent ticks and sends its report (its whole inventory
//! and lease request), the manager applies it and replies (renewals, and
//! relaunches of whatever crashed), the agent applies the reply and its new
//! processes boot. In the churn rounds 1% of the instances crash first.
//! Every `step` call is one event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;
use tally_core::config::ProcessTypeConfig;
use tally_core::{
    Agent, AgentEffect, AgentInput, Config, Effect, HostId, Incarnation, InstanceId, Manager,
    ManagerInput, ProcessKind, Tick, TypeId, UserCommand,
};

/// A positive integer from the environment, at most `max`; a clear error
/// and exit status 2 otherwise.
fn env(name: &str, default: u64, max: u64) -> u64 {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => n,
        _ => {
            eprintln!("error: {name}={v:?}: expected a whole number from 1 to {max}");
            std::process::exit(2);
        }
    }
}

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

struct Fleet {
    cfg: Config,
    manager: Manager,
    agents: Vec<Agent>,
    now: Tick,
    effects: Vec<Effect>,
    agent_effects: Vec<AgentEffect>,
    /// Steps taken (manager and agents).
    steps: u64,
    /// Instances named in the reports the manager applied.
    reported: u64,
    /// Processes started by agents.
    started: u64,
}

impl Fleet {
    fn agent_step(&mut self, h: usize, input: AgentInput) -> Vec<AgentEffect> {
        let mut out = std::mem::take(&mut self.agent_effects);
        out.clear();
        self.agents[h].step(&self.cfg, self.now, input, &mut out);
        self.steps += 1;
        out
    }

    /// One host's report, the manager's reply, and the boots it starts.
    fn exchange(&mut self, h: usize) {
        let effects = self.agent_step(h, AgentInput::Tick);
        let mut reports = Vec::new();
        for e in &effects {
            if let AgentEffect::Send(r) = e {
                reports.push(r.clone());
            }
        }
        self.agent_effects = effects;
        for report in reports {
            self.reported += report.running.len() as u64;
            let mut out = std::mem::take(&mut self.effects);
            out.clear();
            let _ = self.manager.step(
                &self.cfg,
                self.now,
                ManagerInput::ReportReceived(report),
                &mut out,
            );
            self.steps += 1;
            let mut replies = Vec::new();
            for e in out.drain(..) {
                if let Effect::Send(reply) = e {
                    replies.push(reply);
                }
            }
            self.effects = out;
            for reply in replies {
                let effects = self.agent_step(h, AgentInput::ReplyReceived(reply));
                let started: Vec<InstanceId> = effects
                    .iter()
                    .filter_map(|e| match e {
                        AgentEffect::StartProcess { instance } => Some(*instance),
                        _ => None,
                    })
                    .collect();
                self.agent_effects = effects;
                for instance in started {
                    self.started += 1;
                    let _ = self.agent_step(h, AgentInput::ProcessBooted { instance });
                }
            }
        }
    }

    fn round(&mut self, crash_every: usize) {
        self.now = self.now.plus(self.cfg.timing.report_interval_ticks);
        let _ = self
            .manager
            .step(&self.cfg, self.now, ManagerInput::Tick, &mut self.effects);
        self.effects.clear();
        self.steps += 1;
        for h in 0..self.agents.len() {
            if crash_every > 0 {
                let crashed: Vec<InstanceId> = self.agents[h]
                    .instances()
                    .keys()
                    .enumerate()
                    .filter(|(i, _)| (i + h) % crash_every == 0)
                    .map(|(_, id)| *id)
                    .collect();
                for instance in crashed {
                    let _ = self.agent_step(h, AgentInput::ProcessExited { instance });
                }
            }
            self.exchange(h);
        }
    }
}

fn config(types: usize, per_type: u16, per_host: u16) -> Config {
    let mut cfg = Config::example();
    cfg.process_types = (0..types)
        .map(|t| ProcessTypeConfig {
            app: format!("app{t}"),
            name: "web".into(),
            kind: ProcessKind::Scalable,
            count_initial: 0,
            count_max: per_type,
        })
        .collect();
    // Long leases and a deep bucket: the bench measures the steady state,
    // not expiry or refusals.
    cfg.timing.lease_ticks = 1_000;
    cfg.timing.unknown_after_ticks = 500;
    cfg.timing.boot_timeout_ticks = 100;
    cfg.budget.capacity = 1_000_000;
    cfg.boots_in_flight_max = per_host;
    cfg
}

fn main() {
    // Host ids are 16-bit; an agent holds at most AGENT_INSTANCES_MAX.
    let hosts = usize::try_from(env("LEDGER_HOSTS", 10_000, 1 << 16)).unwrap();
    let per_host = u16::try_from(env(
        "LEDGER_PER_HOST",
        100,
        tally_core::config::limits::AGENT_INSTANCES_MAX as u64,
    ))
    .unwrap();
    let rounds = env("LEDGER_ROUNDS", 20, 1_000_000);
    let instances = hosts * usize::from(per_host);
    let per_type: u16 = 10_000;
    let types = instances.div_ceil(usize::from(per_type));
    let cfg = config(types, per_type, per_host);
    if let Err(e) = cfg.validate() {
        eprintln!("error: bench configuration refused: {e}");
        std::process::exit(2);
    }
    let rss_before = rss_bytes();
    let mut effects = Vec::new();
    let mut manager = Manager::new(&cfg, Tick(0), &mut effects).unwrap();
    let mut left = instances;
    for t in 0..types {
        let count = u16::try_from(left.min(usize::from(per_type))).unwrap();
        left -= usize::from(count);
        let scale = UserCommand::Scale {
            process_type: TypeId(u16::try_from(t).unwrap()),
            count,
        };
        manager
            .step(&cfg, Tick(0), ManagerInput::User(scale), &mut effects)
            .unwrap();
    }
    effects.clear();
    let agents = (0..hosts)
        .map(|h| Agent::new(HostId(u16::try_from(h).unwrap()), Incarnation(0), Tick(0)))
        .collect();
    let mut fleet = Fleet {
        cfg,
        manager,
        agents,
        now: Tick(0),
        effects,
        agent_effects: Vec::new(),
        steps: 0,
        reported: 0,
        started: 0,
    };

    // Fill: each host's first report gets its share launched, the second
    // reports them up.
    let t = Instant::now();
    fleet.round(0);
    fleet.round(0);
    let fill_s = t.elapsed().as_secs_f64();
    let ledger = fleet.manager.ledger_len();
    let rss = rss_bytes().saturating_sub(rss_before);
    println!(
        "fill: {ledger} instances in the ledger on {hosts} hosts in {fill_s:.2} s ({} launches, {} steps)",
        fleet.started, fleet.steps
    );
    println!(
        "memory: {} MiB resident for the manager, {hosts} agents and their buffers = {} B per instance",
        rss / (1 << 20),
        rss / u64::try_from(ledger.max(1)).unwrap()
    );

    for (name, crash_every) in [("steady", 0), ("churn 1%", 100)] {
        let (steps, reported, started) = (fleet.steps, fleet.reported, fleet.started);
        let t = Instant::now();
        for _ in 0..rounds {
            fleet.round(crash_every);
        }
        let s = t.elapsed().as_secs_f64();
        let steps = fleet.steps - steps;
        let reported = fleet.reported - reported;
        let started = fleet.started - started;
        println!(
            "{name}: {rounds} rounds in {s:.2} s: {:.2} M steps/s ({steps} steps), {:.2} M instance updates/s ({reported} reported, {started} relaunched), {:.0} reports/s",
            steps as f64 / s / 1e6,
            (reported + started) as f64 / s / 1e6,
            (rounds as f64 * hosts as f64) / s,
        );
    }
    let violations = tally_core::invariants::check_manager(&fleet.manager, &fleet.cfg);
    println!(
        "ledger {} instances at the end; manager invariants: {}",
        fleet.manager.ledger_len(),
        if violations.is_ok() { "hold" } else { "BROKEN" }
    );
    if violations.is_err() {
        std::process::exit(1);
    }
}
