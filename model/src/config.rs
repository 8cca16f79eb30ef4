//! The model's configuration: the core's `Config` plus the environment
//! (hosts, horizon, faults, scripted commands), and the named presets.

use serde::{Deserialize, Serialize};
use std::path::Path;
use tally_core::config::{
    BreakerConfig, BudgetConfig, LeadershipConfig, ProcessTypeConfig, Timing,
};
use tally_core::{
    Config, ConfigError, HostId, Mutation, OperatorCommand, ProcessKind, TypeId, UserCommand,
};
use thiserror::Error;

/// How many times each fault class may strike in one run. A budget that
/// runs out is also how faults stop for the liveness check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultBudget {
    /// Messages dropped.
    pub message_loss: u8,
    /// Messages delivered twice.
    pub message_duplication: u8,
    /// Host crashes (processes die, the agent restarts as a new incarnation).
    pub host_crash: u8,
    /// Partitions (the host lives on, unheard); each heals before calm.
    pub host_partition: u8,
    /// Manager restarts from its journal.
    pub manager_restart: u8,
    /// Boots that fail.
    pub boot_failure: u8,
    /// Dynos that crash after boot.
    pub dyno_crash: u8,
    /// Ticks an agent's clock may fall behind (drift); at most the
    /// configured drift per lease for each agent, and (with a store) the
    /// drift over one store lease for each manager.
    pub clock_stall: u8,
    /// Manager pauses (with a store): a manager not scheduled while time
    /// passes, maybe between processing an input and sending its effects.
    pub manager_pause: u8,
    /// Keep-alive streams broken (with a store): until it heals, none of
    /// that manager's keep-alives reaches the store, and it learns nothing
    /// from them (its appends still go through).
    pub keepalive_cut: u8,
    /// Boots may outlast the timeout (before calm). Not a counted fault.
    pub slow_boots: bool,
}

impl FaultBudget {
    /// Whether any counted fault is left.
    #[must_use]
    pub fn any_left(&self) -> bool {
        self.message_loss > 0
            || self.message_duplication > 0
            || self.host_crash > 0
            || self.host_partition > 0
            || self.manager_restart > 0
            || self.boot_failure > 0
            || self.dyno_crash > 0
            || self.clock_stall > 0
            || self.manager_pause > 0
            || self.keepalive_cut > 0
    }
}

/// A command from a user or an operator, fired once, in script order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum ScriptedCommand {
    /// A user's command.
    User {
        /// The command.
        command: UserCommand,
    },
    /// An operator's command.
    Operator {
        /// The command.
        command: OperatorCommand,
    },
}

/// One exhaustively checkable configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A name for reports.
    pub name: String,
    /// The core's configuration (mutations included).
    pub core: Config,
    /// Number of hosts (agents).
    pub hosts: u16,
    /// Time stops at this tick: the bounded horizon.
    pub horizon: u64,
    /// From this tick on no fault strikes, messages are delivered and boots
    /// complete before time advances (global stabilisation time).
    pub calm_at: u64,
    /// Messages in flight to and from one host at most; a send beyond it is
    /// lost (before calm only).
    pub network_capacity: u8,
    /// The fault budget.
    pub faults: FaultBudget,
    /// Commands fired once each, in order, at any time before calm.
    #[serde(default)]
    pub script: Vec<ScriptedCommand>,
    /// Apps whose every boot fails (a bad release): their boots fail when
    /// due, at no cost to the fault budget, and L1 asks convergence of the
    /// other apps only. What isolation is checked against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broken_apps: Vec<String>,
}

/// Apps the model tracks one by one (ghost counters are arrays of this size).
pub const MODEL_APPS_MAX: usize = 4;

/// A named set of configurations, each checked exhaustively.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    /// The preset's name.
    pub name: String,
    /// Its configurations.
    pub configs: Vec<ModelConfig>,
    /// Whether every `sometimes` must be reached in some configuration
    /// (`ci` and `deep`); a small preset or a single file need not.
    pub complete: bool,
}

/// A configuration the model cannot run.
#[derive(Debug, Error)]
pub enum ModelConfigError {
    /// The core's configuration is invalid.
    #[error("core configuration: {0}")]
    Core(#[from] ConfigError),
    /// An environment setting out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or JSON for a configuration.
    #[error(
        "cannot parse {path}: {reason}\n  a complete configuration to start from: `tally show-preset smoke > model.json` (or examples/model.json)"
    )]
    Parse {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No such preset.
    #[error("unknown preset `{name}`; presets: smoke, ci, deep")]
    UnknownPreset {
        /// The name given.
        name: String,
    },
}

impl ModelConfig {
    /// The tick by which every behaviour has converged: `calm_at` plus the
    /// core's recovery bound `T(cfg)`. L1 is decided only over a horizon
    /// that reaches it.
    #[must_use]
    pub fn recovery_deadline(&self) -> u64 {
        self.calm_at
            .saturating_add(self.core.recovery_bound_ticks())
    }

    /// Checks the core config and the environment.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        self.core.validate()?;
        if self.hosts == 0 || self.hosts > 8 {
            return Err(ModelConfigError::Invalid {
                field: "hosts",
                reason: format!("{} hosts; the model supports 1 to 8", self.hosts),
            });
        }
        if self.calm_at > self.horizon {
            return Err(ModelConfigError::Invalid {
                field: "calm_at",
                reason: format!("{} is after the horizon {}", self.calm_at, self.horizon),
            });
        }
        if self.horizon > 200 {
            return Err(ModelConfigError::Invalid {
                field: "horizon",
                reason: format!("{} ticks is more than the model's 200", self.horizon),
            });
        }
        if self.network_capacity == 0 {
            return Err(ModelConfigError::Invalid {
                field: "network_capacity",
                reason: "must be at least 1".into(),
            });
        }
        if u64::from(self.faults.clock_stall) > 0 && self.core.drift_ticks_per_lease() == 0 {
            return Err(ModelConfigError::Invalid {
                field: "faults.clock_stall",
                reason: "clock stalls need a drift bound: set core.timing.drift_ppm".into(),
            });
        }
        let apps = self.core.app_names();
        if apps.len() > MODEL_APPS_MAX {
            return Err(ModelConfigError::Invalid {
                field: "core.process_types",
                reason: format!(
                    "{} apps; the model tracks at most {MODEL_APPS_MAX}",
                    apps.len()
                ),
            });
        }
        if let Some(a) = self
            .broken_apps
            .iter()
            .find(|a| !apps.contains(&a.as_str()))
        {
            return Err(ModelConfigError::Invalid {
                field: "broken_apps",
                reason: format!(
                    "no process type belongs to app `{a}`; apps: {}",
                    apps.join(", ")
                ),
            });
        }
        for c in &self.script {
            if let ScriptedCommand::Operator {
                command:
                    OperatorCommand::PauseLaunches { host: Some(h) }
                    | OperatorCommand::ResumeLaunches { host: Some(h) },
            } = c
            {
                if h.0 >= self.hosts {
                    return Err(ModelConfigError::Invalid {
                        field: "script",
                        reason: format!("{h} does not exist"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether `process_type` belongs to a broken app (see `broken_apps`).
    #[must_use]
    pub fn is_broken(&self, process_type: TypeId) -> bool {
        !self.broken_apps.is_empty()
            && self
                .core
                .process_type(process_type)
                .is_some_and(|p| self.broken_apps.contains(&p.app))
    }

    /// This configuration with `m` switched on.
    #[must_use]
    pub fn with_mutation(mut self, m: Mutation) -> ModelConfig {
        self.core.mutations = self.core.mutations.with(m);
        self
    }

    /// Loads a configuration from a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<ModelConfig, ModelConfigError> {
        let mut all = ModelConfig::load_many(path)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            n => Err(ModelConfigError::Invalid {
                field: "configuration file",
                reason: format!(
                    "{} holds {n} configurations, one was expected",
                    path.display()
                ),
            }),
        }
    }

    /// Loads one configuration, or a JSON array of them (what
    /// `tally show-preset` prints), from a `.toml` or `.json` file.
    pub fn load_many(path: &Path) -> Result<Vec<ModelConfig>, ModelConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        let parsed: Result<Vec<ModelConfig>, String> = if is_json {
            if text.trim_start().starts_with('[') {
                serde_json::from_str(&text).map_err(|e| e.to_string())
            } else {
                serde_json::from_str(&text)
                    .map(|c| vec![c])
                    .map_err(|e| e.to_string())
            }
        } else {
            toml::from_str(&text)
                .map(|c| vec![c])
                .map_err(|e| format!("{e} (TOML expected; use a .json extension for JSON)"))
        };
        let cfgs = parsed.map_err(|reason| ModelConfigError::Parse {
            path: shown.clone(),
            reason,
        })?;
        if cfgs.is_empty() {
            return Err(ModelConfigError::Invalid {
                field: "configuration file",
                reason: format!("{shown} holds no configuration"),
            });
        }
        for c in &cfgs {
            c.validate()?;
        }
        Ok(cfgs)
    }
}

/// The core configuration the presets share: one app with a singleton
/// `clock` and a scalable `web` of 2, timing in small discrete ticks.
///
/// Timing: a lease of 4 ticks, reports every 2, boots of 1 tick timed out
/// after 4, a drift bound of one tick per lease and zero margin (kills are
/// instantaneous in the model: the agent fences within the tick its lease
/// ends, before the manager's tick of the same instant).
#[must_use]
pub fn model_core(singletons: u16, scalable: u16) -> Config {
    let mut process_types = Vec::new();
    if singletons > 0 {
        process_types.push(ProcessTypeConfig {
            app: "shop".into(),
            name: "clock".into(),
            kind: ProcessKind::Singleton,
            count_initial: 1,
            count_max: 1,
        });
    }
    if scalable > 0 {
        process_types.push(ProcessTypeConfig {
            app: "shop".into(),
            name: "web".into(),
            kind: ProcessKind::Scalable,
            count_initial: scalable,
            count_max: scalable.max(2),
        });
    }
    Config {
        process_types,
        timing: Timing {
            lease_ticks: 4,
            drift_ppm: 250_000,
            margin_ticks: 0,
            kill_ticks: 0,
            report_interval_ticks: 2,
            report_delivery_ticks: 0,
            boot_ticks: 1,
            boot_timeout_ticks: 4,
            unknown_after_ticks: 2,
        },
        budget: BudgetConfig {
            capacity: 1,
            refill_per_boot_milli: 500,
            probe_cooldown_ticks: 4,
            backoff_base_ticks: 0,
            backoff_max_ticks: 0,
            jitter_max_ticks: 0,
        },
        boots_in_flight_max: 1,
        breaker: BreakerConfig {
            window_ticks: 4,
            failure_threshold: 2,
            cooldown_ticks: 2,
            fleet_app_share_milli: 250,
        },
        seed: 0,
        leadership: None,
        mutations: tally_core::Mutations::NONE,
    }
}

/// The timing of the presets with kills that take a tick: the margin covers
/// the kill (DESIGN.md rule 7), reports may take a tick to arrive, and the
/// boot timeout grows to keep exceeding boot + report interval + delivery.
pub fn timed_kills(core: &mut Config) {
    let t = &mut core.timing;
    t.kill_ticks = 1;
    t.margin_ticks = 1;
    t.report_delivery_ticks = 1;
    t.boot_timeout_ticks = 5;
}

/// Two managers on a store (DESIGN.md, "More than one manager"): a store
/// lease of `lease_ticks`, no margin. With the presets' drift (a quarter),
/// a lease of 5 gives a guard of 3 ticks (3 + 1 < 5), and a manager's
/// clock may lose 2 ticks over one store lease; a lease of 3, a guard of 1.
pub fn with_store(core: &mut Config, lease_ticks: u64) {
    core.leadership = Some(LeadershipConfig {
        lease_ticks,
        margin_ticks: 0,
    });
}

fn base(name: &str, hosts: u16, core: Config) -> ModelConfig {
    ModelConfig {
        name: name.into(),
        core,
        hosts,
        horizon: 14,
        calm_at: 3,
        network_capacity: 1,
        faults: FaultBudget::default(),
        script: Vec::new(),
        broken_apps: Vec::new(),
    }
}

/// Scripted commands: lockdown on, a restart (refused), lockdown off.
#[must_use]
pub fn lockdown_script() -> Vec<ScriptedCommand> {
    vec![
        ScriptedCommand::Operator {
            command: OperatorCommand::Lockdown { on: true },
        },
        ScriptedCommand::User {
            command: UserCommand::Restart {
                process_type: Some(TypeId(0)),
            },
        },
        ScriptedCommand::Operator {
            command: OperatorCommand::Lockdown { on: false },
        },
    ]
}

/// Looks a preset up by name.
pub fn preset(name: &str) -> Result<Preset, ModelConfigError> {
    match name {
        "smoke" => Ok(smoke()),
        "ci" => Ok(ci()),
        "deep" => Ok(deep()),
        _ => Err(ModelConfigError::UnknownPreset { name: name.into() }),
    }
}

/// Seconds: one singleton on two hosts, a few faults.
#[must_use]
pub fn smoke() -> Preset {
    let mut c = base("smoke", 2, model_core(1, 0));
    c.calm_at = 3;
    c.horizon = c.recovery_deadline();
    c.faults = FaultBudget {
        message_loss: 1,
        boot_failure: 1,
        slow_boots: true,
        ..FaultBudget::default()
    };
    Preset {
        name: "smoke".into(),
        configs: vec![c],
        complete: false,
    }
}

/// The CI preset: three hosts, a singleton and a scalable type of 2, every
/// fault class on across its configurations, each checked exhaustively.
#[must_use]
pub fn ci() -> Preset {
    let core = model_core(1, 2);
    let mut network = base("ci-network-drift", 3, core.clone());
    network.faults = FaultBudget {
        message_loss: 1,
        message_duplication: 1,
        clock_stall: 1,
        slow_boots: true,
        ..FaultBudget::default()
    };
    let mut crashes = base("ci-crashes-restarts", 3, core.clone());
    crashes.faults = FaultBudget {
        host_crash: 1,
        host_partition: 1,
        manager_restart: 1,
        ..FaultBudget::default()
    };
    let mut dynos = base("ci-dyno-faults-lockdown", 3, core);
    dynos.faults = FaultBudget {
        boot_failure: 1,
        dyno_crash: 1,
        slow_boots: true,
        ..FaultBudget::default()
    };
    dynos.script = lockdown_script();
    dynos.calm_at = 4;
    // Two hosts and a later calm: long enough for reordered reports, so a
    // phantom is reaped and every safety action is seen under lockdown.
    let mut lockdown = base("ci-lockdown-reordering", 2, model_core(1, 2));
    lockdown.faults = dynos.faults;
    lockdown.script = lockdown_script();
    lockdown.calm_at = 5;
    // Kills take a tick, reports may take one to arrive, and the margin
    // covers the kill (rule 7); a clock stall and a partition long enough
    // for a lease to run out (two hosts keep it small), and a host crash.
    let mut timed = base("ci-timed-kills", 2, model_core(1, 2));
    timed_kills(&mut timed.core);
    timed.calm_at = 6;
    timed.faults = FaultBudget {
        clock_stall: 1,
        host_partition: 1,
        host_crash: 1,
        ..FaultBudget::default()
    };
    // Message faults together with a manager restart and a partition.
    let mut mixed = base("ci-messages-restart-partition", 3, model_core(1, 2));
    mixed.faults = FaultBudget {
        message_loss: 1,
        manager_restart: 1,
        host_partition: 1,
        ..FaultBudget::default()
    };
    // A restart after failed boots and a duplicated reply, and a user
    // restart of a singleton: what `tally mutations --against ci` found no
    // other configuration combines (refuse-only-older,
    // stop-without-tombstone, journal-forgets-generations,
    // budget-not-journaled are refuted here and nowhere else in `ci`).
    let mut restart = base("ci-restart-failures", 2, model_core(1, 2));
    restart.calm_at = 5;
    restart.faults = FaultBudget {
        boot_failure: 2,
        manager_restart: 1,
        message_duplication: 1,
        ..FaultBudget::default()
    };
    restart.script = vec![ScriptedCommand::User {
        command: UserCommand::Restart {
            process_type: Some(TypeId(0)),
        },
    }];
    let mut configs = vec![
        network,
        crashes,
        dynos,
        lockdown,
        timed,
        mixed,
        restart,
        two_apps(),
    ];
    configs.extend(failover());
    // Every horizon reaches the recovery bound: L1 proves convergence
    // within T(cfg), and no recovery is cut short by the horizon.
    for c in &mut configs {
        c.horizon = c.recovery_deadline();
    }
    Preset {
        name: "ci".into(),
        configs,
        complete: true,
    }
}

/// Two managers on a store (DESIGN.md, "More than one manager"), with a
/// store lease of 5 ticks (a guard of 3): failovers within the fault
/// budget, each configuration exhaustive.
///
/// - `ci-failover`: two hosts; the leader may pause (also between
///   processing a report and sending its effects), crash, or lose its
///   keep-alive stream while it goes on acting: S1 across hosts through
///   any of those failovers. Refutes `unfenced-append` and
///   `takeover-trusts-ledger`.
/// - `ci-failover-keepalive`: one host, the same faults and a clock stall,
///   a later calm: long enough for an old leader's late renewal to
///   outlast the new leader's expiry. Refutes `unguarded-leader` and
///   `guard-from-append` too.
/// - `ci-failover-drift`: one host, a broken keep-alive stream and three
///   clock stalls (two of the old leader's, one of the agent's): refutes
///   `guard-ignores-drift`.
#[must_use]
pub fn failover() -> Vec<ModelConfig> {
    let mut core = model_core(1, 0);
    with_store(&mut core, 5);
    let mut two_hosts = base("ci-failover", 2, core.clone());
    two_hosts.calm_at = 6;
    two_hosts.faults = FaultBudget {
        manager_pause: 1,
        manager_restart: 1,
        keepalive_cut: 1,
        ..FaultBudget::default()
    };
    let mut keepalive = base("ci-failover-keepalive", 1, core.clone());
    keepalive.calm_at = 8;
    keepalive.faults = FaultBudget {
        clock_stall: 1,
        ..two_hosts.faults
    };
    let mut drift = base("ci-failover-drift", 1, core);
    drift.calm_at = 11;
    drift.faults = FaultBudget {
        keepalive_cut: 1,
        clock_stall: 3,
        ..FaultBudget::default()
    };
    vec![two_hosts, keepalive, drift]
}

/// Two apps on two hosts (DESIGN.md, "Apps are isolated"): `shop`'s
/// singleton `clock`, healthy, whose dyno may crash and must be relaunched;
/// and `bad`, whose release never boots. `bad` spends its own budget and
/// trips its own breaker; `shop` still gets its relaunch (S7, L1).
#[must_use]
pub fn two_apps() -> ModelConfig {
    let mut core = model_core(1, 0);
    core.process_types.push(ProcessTypeConfig {
        app: "bad".into(),
        name: "web".into(),
        kind: ProcessKind::Scalable,
        count_initial: 1,
        count_max: 1,
    });
    let mut c = base("ci-two-apps", 2, core);
    c.broken_apps = vec!["bad".into()];
    c.calm_at = 6;
    c.faults = FaultBudget {
        dyno_crash: 1,
        message_loss: 1,
        ..FaultBudget::default()
    };
    c
}

/// The nightly preset: larger budgets per configuration.
#[must_use]
pub fn deep() -> Preset {
    let mut p = ci();
    p.name = "deep".into();
    for c in &mut p.configs {
        c.name = c.name.replace("ci-", "deep-");
        c.horizon += 2;
        c.calm_at += 1;
        let f = &mut c.faults;
        for x in [
            &mut f.message_loss,
            &mut f.message_duplication,
            &mut f.host_crash,
            &mut f.manager_restart,
            &mut f.boot_failure,
            &mut f.dyno_crash,
        ] {
            if *x > 0 {
                *x += 1;
            }
        }
    }
    p
}

/// Host ids `0..n`.
pub fn host_ids(n: u16) -> impl Iterator<Item = HostId> {
    (0..n).map(HostId)
}
