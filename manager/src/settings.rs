//! What `tally run` reads: a Heroku-style `Procfile` and a small
//! `tally.toml`, turned into the core's [`Config`] and the commands to run.
//!
//! Durations are written in milliseconds and converted to core ticks of
//! `tick_ms`. Everything is validated before anything starts, and the
//! core's own validation has the last word.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tally_core::config::{
    BreakerConfig, BudgetConfig, Mutations, ProcessKind, ProcessTypeConfig, Timing,
};
use tally_core::{Config, ConfigError};
use thiserror::Error;

/// A bad `Procfile` or `tally.toml`.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A Procfile line is not `name: command`.
    #[error("Procfile line {line}: {why} (expected `name: command`)")]
    Procfile {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The Procfile names no process.
    #[error("the Procfile names no process type")]
    EmptyProcfile,
    /// `tally.toml` is not valid.
    #[error("tally.toml: {0}")]
    Toml(String),
    /// `tally.toml` configures a type the Procfile lacks.
    #[error("tally.toml configures `{0}`, which the Procfile does not name")]
    UnknownType(String),
    /// A value out of range.
    #[error("tally.toml: {0}")]
    Invalid(String),
    /// The core refused the resulting configuration.
    #[error("invalid configuration: {0}")]
    Core(#[from] ConfigError),
}

/// Time the margin keeps for a fence to be scheduled and a SIGKILLed group
/// to be gone, beyond the grace and the ticks.
pub const SCHEDULING_ALLOWANCE_MS: u64 = 100;

/// The longest duration accepted anywhere in `tally.toml` (a day).
pub const DURATION_MAX_MS: u64 = 86_400_000;

/// How an agent knows a dyno finished booting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Readiness {
    /// It accepts TCP connections on `$PORT` (the default for `web`).
    Port,
    /// It created the file named by `$TALLY_READY_FILE`.
    File,
    /// As soon as it has started (the default for other types).
    #[default]
    Started,
}

/// One process type as `tally.toml` may configure it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSettings {
    /// At most one running instance, ever.
    #[serde(default)]
    pub singleton: bool,
    /// Desired count at first start (default 1).
    pub count: Option<u16>,
    /// Largest count `tally scale` accepts (default 16; 1 for singletons).
    pub max: Option<u16>,
    /// How readiness is detected.
    pub ready: Option<Readiness>,
}

/// `[timing]` in milliseconds.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingSettings {
    /// Lease length.
    pub lease_ms: u64,
    /// Relative clock drift bound, parts per million.
    pub drift_ppm: u32,
    /// Grace period of a kill (SIGTERM to SIGKILL).
    pub kill_grace_ms: u64,
    /// Extra wait after drift before the manager takes a lease as expired;
    /// must cover the kill grace, three ticks of clock quantisation and
    /// [`SCHEDULING_ALLOWANCE_MS`].
    pub margin_ms: u64,
    /// Report (and lease request) interval.
    pub report_interval_ms: u64,
    /// Expected report delivery time.
    pub report_delivery_ms: u64,
    /// Expected boot time.
    pub boot_ms: u64,
    /// Boot timeout.
    pub boot_timeout_ms: u64,
    /// An `Up` instance not renewed for this long shows `unknown`.
    pub unknown_after_ms: u64,
}

impl Default for TimingSettings {
    fn default() -> Self {
        TimingSettings {
            lease_ms: 4_000,
            drift_ppm: 10_000,
            kill_grace_ms: 500,
            margin_ms: 1_000,
            report_interval_ms: 500,
            report_delivery_ms: 200,
            boot_ms: 1_000,
            boot_timeout_ms: 8_000,
            unknown_after_ms: 2_000,
        }
    }
}

/// `[budget]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetSettings {
    /// Bucket capacity `B`.
    pub capacity: u32,
    /// Refill ratio `r` per successful boot (below 1).
    pub refill_per_boot: f64,
    /// One probe relaunch per cool-down.
    pub probe_cooldown_ms: u64,
    /// First backoff.
    pub backoff_base_ms: u64,
    /// Largest backoff.
    pub backoff_max_ms: u64,
    /// Largest jitter.
    pub jitter_max_ms: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            capacity: 10,
            refill_per_boot: 0.5,
            probe_cooldown_ms: 30_000,
            backoff_base_ms: 500,
            backoff_max_ms: 10_000,
            jitter_max_ms: 300,
        }
    }
}

/// `[breaker]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Counting window.
    pub window_ms: u64,
    /// Failures in a window that open it.
    pub failure_threshold: u16,
    /// Open time before a half-open probe.
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window_ms: 30_000,
            failure_threshold: 5,
            cooldown_ms: 15_000,
        }
    }
}

/// The whole `tally.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSettings {
    /// App name.
    pub app: String,
    /// Length of one core tick.
    pub tick_ms: u64,
    /// Boots in flight per host (admission `K`).
    pub boots_in_flight_max: u16,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// Per-type settings.
    pub types: BTreeMap<String, TypeSettings>,
    /// Timing.
    pub timing: TimingSettings,
    /// Retry budget.
    pub budget: BudgetSettings,
    /// Breaker.
    pub breaker: BreakerSettings,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            app: "app".into(),
            tick_ms: 100,
            boots_in_flight_max: 2,
            seed: 1,
            types: BTreeMap::new(),
            timing: TimingSettings::default(),
            budget: BudgetSettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// What an agent needs to run one process type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSpec {
    /// `web`, `clock`.
    pub name: String,
    /// The Procfile command.
    pub command: String,
    /// Readiness.
    pub ready: Readiness,
}

/// A validated deployment: the core's configuration and the commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The core's configuration; type ids index `types`.
    pub config: Config,
    /// Commands, by type id.
    pub types: Vec<TypeSpec>,
    /// Length of one core tick, in milliseconds.
    pub tick_ms: u64,
}

impl Deployment {
    /// The type id of `name`.
    #[must_use]
    pub fn type_id(&self, name: &str) -> Option<tally_core::TypeId> {
        self.types
            .iter()
            .position(|t| t.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(tally_core::TypeId)
    }

    /// The name of a type id.
    #[must_use]
    pub fn type_name(&self, id: tally_core::TypeId) -> &str {
        self.types
            .get(usize::from(id.0))
            .map_or("?", |t| t.name.as_str())
    }

    /// `web.1@g3`: an instance the way people read it.
    #[must_use]
    pub fn instance_name(&self, id: tally_core::InstanceId) -> String {
        format!("{}@{}", self.slot_name(id.slot), id.generation)
    }

    /// `web.1`, the dyno name (`$DYNO`).
    #[must_use]
    pub fn slot_name(&self, slot: tally_core::SlotId) -> String {
        format!(
            "{}.{}",
            self.type_name(slot.process_type),
            u32::from(slot.index) + 1
        )
    }

    /// Milliseconds as ticks, rounded up (a timeout never gets shorter).
    #[must_use]
    pub fn ticks(&self, ms: u64) -> u64 {
        ms.div_ceil(self.tick_ms.max(1))
    }
}

/// Parses a Procfile: `name: command` per line, `#` comments, blank lines.
///
/// # Errors
/// A malformed line, a duplicate or invalid name, or no process at all.
pub fn parse_procfile(text: &str) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |why: &str| SettingsError::Procfile {
            line: i + 1,
            why: why.into(),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, command) = line.split_once(':').ok_or_else(|| err("no `:`"))?;
        let (name, command) = (name.trim(), command.trim());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(&format!(
                "process name `{name}` must be letters, digits, `_` or `-`"
            )));
        }
        if command.is_empty() {
            return Err(err(&format!("`{name}` has no command")));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(err(&format!("`{name}` is named twice")));
        }
        out.push((name.to_string(), command.to_string()));
    }
    if out.is_empty() {
        return Err(SettingsError::EmptyProcfile);
    }
    Ok(out)
}

/// Parses `tally.toml`.
///
/// # Errors
/// Invalid TOML, an unknown key, or a wrong type.
pub fn parse_settings(text: &str) -> Result<FileSettings, SettingsError> {
    toml::from_str(text).map_err(|e| SettingsError::Toml(e.to_string().trim().to_string()))
}

/// Reads and validates a Procfile and an optional `tally.toml`.
///
/// # Errors
/// Unreadable or invalid files.
pub fn load(procfile: &Path, settings: Option<&Path>) -> Result<Deployment, SettingsError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| SettingsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let procs = parse_procfile(&read(procfile)?)?;
    let file = match settings {
        Some(p) => parse_settings(&read(p)?)?,
        None => FileSettings::default(),
    };
    build(&procs, &file)
}

/// Builds a validated deployment from a parsed Procfile and settings.
///
/// # Errors
/// A setting out of range, or a configuration the core refuses.
pub fn build(procs: &[(String, String)], file: &FileSettings) -> Result<Deployment, SettingsError> {
    if let Some(unknown) = file
        .types
        .keys()
        .find(|k| !procs.iter().any(|(n, _)| n == *k))
    {
        return Err(SettingsError::UnknownType(unknown.clone()));
    }
    if file.tick_ms == 0 || file.tick_ms > 10_000 {
        return Err(SettingsError::Invalid(
            "tick_ms must be between 1 and 10000".into(),
        ));
    }
    if !(0.0..1.0).contains(&file.budget.refill_per_boot) {
        return Err(SettingsError::Invalid(
            "budget.refill_per_boot must be at least 0 and below 1".into(),
        ));
    }
    let t = &file.timing;
    let b = &file.budget;
    for (name, ms) in [
        ("timing.lease_ms", t.lease_ms),
        ("timing.kill_grace_ms", t.kill_grace_ms),
        ("timing.margin_ms", t.margin_ms),
        ("timing.report_interval_ms", t.report_interval_ms),
        ("timing.report_delivery_ms", t.report_delivery_ms),
        ("timing.boot_ms", t.boot_ms),
        ("timing.boot_timeout_ms", t.boot_timeout_ms),
        ("timing.unknown_after_ms", t.unknown_after_ms),
        ("budget.probe_cooldown_ms", b.probe_cooldown_ms),
        ("budget.backoff_base_ms", b.backoff_base_ms),
        ("budget.backoff_max_ms", b.backoff_max_ms),
        ("budget.jitter_max_ms", b.jitter_max_ms),
        ("breaker.window_ms", file.breaker.window_ms),
        ("breaker.cooldown_ms", file.breaker.cooldown_ms),
    ] {
        if ms > DURATION_MAX_MS {
            return Err(SettingsError::Invalid(format!(
                "{name} = {ms} is above the limit of {DURATION_MAX_MS} (a day)"
            )));
        }
    }
    let kill_ms = t.kill_grace_ms.saturating_add(file.tick_ms);
    // The manager's and the agent's tick readings are each floored (up to a
    // tick each), the grace is rounded up to whole ticks (one more), and the
    // fence must be scheduled and the group gone after its SIGKILL.
    let needed = t
        .kill_grace_ms
        .saturating_add(3 * file.tick_ms)
        .saturating_add(SCHEDULING_ALLOWANCE_MS);
    if t.margin_ms < needed {
        return Err(SettingsError::Invalid(format!(
            "timing.margin_ms ({}) must be at least kill_grace_ms + 3 ticks + {SCHEDULING_ALLOWANCE_MS} ms = {needed}, so that a lease the manager takes as expired has certainly been fenced",
            t.margin_ms
        )));
    }
    let ticks = |ms: u64| ms.div_ceil(file.tick_ms);
    let mut types = Vec::new();
    let mut process_types = Vec::new();
    for (name, command) in procs {
        let s = file.types.get(name).cloned().unwrap_or_default();
        let kind = if s.singleton {
            ProcessKind::Singleton
        } else {
            ProcessKind::Scalable
        };
        let count_max = s.max.unwrap_or(if s.singleton { 1 } else { 16 });
        process_types.push(ProcessTypeConfig {
            app: file.app.clone(),
            name: name.clone(),
            kind,
            count_initial: s.count.unwrap_or(1),
            count_max,
        });
        let default_ready = if name == "web" {
            Readiness::Port
        } else {
            Readiness::Started
        };
        types.push(TypeSpec {
            name: name.clone(),
            command: command.clone(),
            ready: s.ready.unwrap_or(default_ready),
        });
    }
    let refill_milli = (b.refill_per_boot * 1000.0).round();
    let config = Config {
        process_types,
        timing: Timing {
            lease_ticks: ticks(t.lease_ms),
            drift_ppm: t.drift_ppm,
            margin_ticks: ticks(t.margin_ms),
            kill_ticks: ticks(kill_ms),
            report_interval_ticks: ticks(t.report_interval_ms),
            report_delivery_ticks: ticks(t.report_delivery_ms),
            boot_ticks: ticks(t.boot_ms),
            boot_timeout_ticks: ticks(t.boot_timeout_ms),
            unknown_after_ticks: ticks(t.unknown_after_ms),
        },
        budget: BudgetConfig {
            capacity: b.capacity,
            // In range: refill_per_boot was checked to be in [0, 1).
            refill_per_boot_milli: u32::try_from(refill_milli as i64).unwrap_or(0),
            probe_cooldown_ticks: ticks(b.probe_cooldown_ms),
            backoff_base_ticks: ticks(b.backoff_base_ms),
            backoff_max_ticks: ticks(b.backoff_max_ms),
            jitter_max_ticks: ticks(b.jitter_max_ms),
        },
        boots_in_flight_max: file.boots_in_flight_max,
        breaker: BreakerConfig {
            window_ticks: ticks(file.breaker.window_ms),
            failure_threshold: file.breaker.failure_threshold,
            cooldown_ticks: ticks(file.breaker.cooldown_ms),
        },
        seed: file.seed,
        mutations: Mutations::NONE,
    };
    config.validate()?;
    Ok(Deployment {
        config,
        types,
        tick_ms: file.tick_ms,
    })
}
