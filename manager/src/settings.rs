//! What `tally run` reads: a Heroku-style `Procfile` and a small
//! `tally.toml`, turned into the core's [`Config`] and the commands to run.
//!
//! Durations are written in milliseconds and converted to core ticks of
//! `tick_ms`. Everything is validated before anything starts, and the
//! core's own validation has the last word.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tally_core::config::limits::{AGENT_INSTANCES_MAX, COUNT_MAX};
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
    #[error("Procfile line {line}: {why}")]
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
    #[error("tally.toml: {0}\n(every key, commented, in `tally run --config-example`)")]
    Toml(String),
    /// `tally.toml` configures a type the Procfile lacks.
    #[error("tally.toml configures `{0}`, which the Procfile does not name")]
    UnknownType(String),
    /// An `--app NAME=PATH` that cannot be used.
    #[error("--app {0}")]
    App(String),
    /// A value out of range.
    #[error("tally.toml: {0}")]
    Invalid(String),
    /// The core refused the resulting configuration.
    #[error("invalid configuration: {0}")]
    Core(#[from] ConfigError),
    /// A `.env` line is not `KEY=value`.
    #[error(
        "{path}{}: {why} (expected `KEY=value` lines, as foreman and `heroku local` read them)", at_line(*line)
    )]
    Env {
        /// The file.
        path: String,
        /// 1-based line number (0: the whole file).
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// ` line N`, or nothing for an error of the whole file (line 0).
fn at_line(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}

/// The largest `.env` accepted. It travels to every agent and into each
/// dyno's environment, which the kernel bounds together with the
/// arguments (`ARG_MAX`, 2 MiB on Linux by default).
pub const ENV_FILE_MAX: usize = 256 << 10;

/// Variables `tally` sets for each dyno: they win over `.env` (see
/// [`Deployment::env`]).
pub const DYNO_VARIABLES: [&str; 6] = [
    "DYNO",
    "PORT",
    "TALLY_APP",
    "TALLY_GENERATION",
    "TALLY_READY_FILE",
    "TALLY_HOST",
];

/// Time the margin keeps for a fence to be scheduled and a SIGKILLed group
/// to be gone, beyond the grace and the ticks.
pub const SCHEDULING_ALLOWANCE_MS: u64 = 100;

/// The longest duration accepted anywhere in `tally.toml` (a day).
pub const DURATION_MAX_MS: u64 = 86_400_000;

/// Shortest core tick: a shorter one would step the manager (and journal
/// its clock) more than a hundred times a second.
pub const TICK_MS_MIN: u64 = 10;

/// Longest core tick: every duration is rounded up to whole ticks.
pub const TICK_MS_MAX: u64 = 10_000;

/// Largest clock drift bound: 10%. Clocks that disagree by more are broken,
/// not drifting; the core's expiry arithmetic has room for far more.
pub const DRIFT_PPM_MAX: u32 = 100_000;

/// Largest retry bucket. The core keeps tokens in thousandths in a `u32`
/// (at most 4 294 967 whole tokens); a bucket this size is already
/// unbounded retries in practice.
pub const CAPACITY_MAX: u32 = 10_000;

/// Largest breaker threshold: a breaker that needs more failures in one
/// window never opens in practice.
pub const FAILURE_THRESHOLD_MAX: u16 = 1_000;

/// Largest admission `K`: an agent tracks at most this many instances.
pub const BOOTS_IN_FLIGHT_MAX: u16 = 4_096;
const _: () = assert!(BOOTS_IN_FLIGHT_MAX as usize <= AGENT_INSTANCES_MAX);

/// Longest app name (a DNS label).
pub const APP_NAME_MAX: usize = 63;

/// `count_max` of a scalable type whose `max` is not set.
pub const DEFAULT_MAX: u16 = 16;

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
    /// Share of the apps whose boots fail within a window that opens the
    /// fleet breaker (never fewer than two apps: one app's failures open
    /// only its own breaker).
    pub fleet_app_share: f64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            window_ms: 30_000,
            failure_threshold: 5,
            cooldown_ms: 15_000,
            fleet_app_share: 0.25,
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
    /// The app it belongs to.
    #[serde(default)]
    pub app: String,
    /// Where its command runs (the app's directory); the directory `tally
    /// run` was started in when `None`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
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
    /// Variables from `.env` (or `--env FILE`) for every dyno, in file
    /// order. Precedence, highest first: the variables `tally` sets for
    /// each dyno ([`DYNO_VARIABLES`]), then these, then the environment the
    /// agent was started in. Not part of what a data dir is bound to (see
    /// [`Deployment::same_core`]): a new `.env` needs no new journal.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Each app's own `.env` (beside its Procfile), above `env` and below
    /// tally's variables. Not bound to the data dir either.
    #[serde(default)]
    pub app_env: Vec<(String, Vec<(String, String)>)>,
}

impl Deployment {
    /// Whether `other` runs the same core configuration, commands and tick:
    /// everything a journal depends on; the environment and the apps'
    /// directories aside.
    #[must_use]
    pub fn same_core(&self, other: &Deployment) -> bool {
        // `env`, `app_env` and `dir` left out: a changed `.env`, or an app
        // checked out elsewhere, needs no new journal.
        let key = |t: &TypeSpec| (t.app.clone(), t.name.clone(), t.command.clone(), t.ready);
        self.config == other.config
            && self.types.iter().map(key).eq(other.types.iter().map(key))
            && self.tick_ms == other.tick_ms
    }

    /// The `.env` keys that `tally` overrides for each dyno (told once at
    /// start: a Heroku `.env` often sets `PORT`).
    #[must_use]
    pub fn env_overridden(&self) -> Vec<&str> {
        let own = self.app_env.iter().flat_map(|(_, vars)| vars);
        // In file order, each once.
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in self.env.iter().chain(own) {
            if DYNO_VARIABLES.contains(&k.as_str()) && !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    /// Whether more than one app runs here: names are then `app:type`.
    #[must_use]
    pub fn multi_app(&self) -> bool {
        self.types
            .first()
            .is_some_and(|first| self.types.iter().any(|t| t.app != first.app))
    }

    /// The type id of `name`: `web`, or `blog:web` to name the app.
    #[must_use]
    pub fn type_id(&self, name: &str) -> Option<tally_core::TypeId> {
        self.resolve_type(name).ok()
    }

    /// The type id of `name` (`web` or `blog:web`), or why there is none
    /// (unknown, or the same type in more than one app), in words.
    ///
    /// # Errors
    /// The reason, naming the types there are.
    pub fn resolve_type(&self, name: &str) -> Result<tally_core::TypeId, String> {
        let (app, ty) = match name.split_once(':') {
            Some((a, t)) => (Some(a), t),
            None => (None, name),
        };
        let found: Vec<usize> = self
            .types
            .iter()
            .enumerate()
            .filter(|(_, t)| t.name == ty && app.is_none_or(|a| t.app == a))
            .map(|(i, _)| i)
            .collect();
        let all = || {
            (0..self.types.len())
                .map(|i| self.qualified(i))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match found.as_slice() {
            [i] => Ok(tally_core::TypeId(u16::try_from(*i).unwrap_or(u16::MAX))),
            [] => Err(format!(
                "unknown process type `{name}`; the Procfiles name {}",
                all()
            )),
            many => {
                let first = many.first().copied().unwrap_or_default();
                Err(format!(
                    "`{name}` is a type of more than one app ({}): name the app, e.g. `--app {}` or `{}`",
                    many.iter()
                        .map(|i| self.qualified(*i))
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.types.get(first).map_or("", |t| t.app.as_str()),
                    self.qualified(first),
                ))
            }
        }
    }

    /// `web`, or `blog:web` when more than one app runs here.
    fn qualified(&self, i: usize) -> String {
        match self.types.get(i) {
            Some(t) if self.multi_app() => format!("{}:{}", t.app, t.name),
            Some(t) => t.name.clone(),
            None => "?".into(),
        }
    }

    /// The name of a type id: `web`, or `blog:web` when more than one app
    /// runs here.
    #[must_use]
    pub fn type_name(&self, id: tally_core::TypeId) -> String {
        self.qualified(usize::from(id.0))
    }

    /// `$DYNO` for a slot: `web.1`, without the app (Heroku's name within
    /// an app).
    #[must_use]
    pub fn dyno_var(&self, slot: tally_core::SlotId) -> String {
        let name = self
            .types
            .get(usize::from(slot.process_type.0))
            .map_or("?", |t| t.name.as_str());
        format!("{name}.{}", u32::from(slot.index) + 1)
    }

    /// The app of a type id.
    #[must_use]
    pub fn app_of(&self, id: tally_core::TypeId) -> &str {
        self.types
            .get(usize::from(id.0))
            .map_or("", |t| t.app.as_str())
    }

    /// The apps, in the order their first type appears.
    #[must_use]
    pub fn apps(&self) -> Vec<&str> {
        let mut apps: Vec<&str> = Vec::new();
        for t in &self.types {
            if !apps.contains(&t.app.as_str()) {
                apps.push(&t.app);
            }
        }
        apps
    }

    /// The environment an app's dynos get from files: the deployment's
    /// `env`, then the app's own `.env` (later wins).
    pub fn env_of(&self, app: &str) -> impl Iterator<Item = &(String, String)> {
        let own = self
            .app_env
            .iter()
            .filter(move |(a, _)| a == app)
            .flat_map(|(_, vars)| vars);
        self.env.iter().chain(own)
    }

    /// `web.1@g3`: an instance the way people read it.
    #[must_use]
    pub fn instance_name(&self, id: tally_core::InstanceId) -> String {
        format!("{}@{}", self.slot_name(id.slot), id.generation)
    }

    /// `web.1` (`blog:web.1` when more than one app runs here): the dyno's
    /// name in `ps`, logs and commands.
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

/// The core's refusal of the timing rules it owns (one definition, in
/// `Config::validate`), told in the `tally.toml` keys they come from, with
/// durations back in milliseconds; any other refusal as the core says it.
fn in_settings_words(e: ConfigError, file: &FileSettings) -> SettingsError {
    let (t, b, tick) = (&file.timing, &file.budget, file.tick_ms);
    let why = match e {
        ConfigError::BootTimeoutTooShort { needed, .. } => format!(
            "timing.boot_timeout_ms = {} must be above timing.boot_ms + timing.report_interval_ms + timing.report_delivery_ms = {} (in whole ticks), or every timely boot races its own timeout",
            t.boot_timeout_ms,
            needed.saturating_mul(tick)
        ),
        ConfigError::LeaseTooShort { needed, .. } => format!(
            "timing.lease_ms = {} must be above timing.report_interval_ms + timing.report_delivery_ms = {} (in whole ticks): an instance starts only if more of its first lease remains",
            t.lease_ms,
            needed.saturating_mul(tick)
        ),
        ConfigError::BackoffOutOfOrder { .. } => format!(
            "budget.backoff_base_ms = {} must be at most budget.backoff_max_ms = {} (in whole ticks)",
            b.backoff_base_ms, b.backoff_max_ms
        ),
        other => return SettingsError::Core(other),
    };
    SettingsError::Invalid(why)
}

/// Parses a Procfile: `name: command` per line, `#` comments, blank lines.
///
/// # Errors
/// A malformed line, a duplicate or invalid name, or no process at all.
pub fn parse_procfile(text: &str) -> Result<Vec<(String, String)>, SettingsError> {
    let mut out: Vec<(String, String)> = Vec::new();
    // Every bad line, not only the first: one edit fixes them all.
    let mut bad: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':') else {
            bad.push((i + 1, "no `:` (expected `name: command`)".into()));
            continue;
        };
        let (name, command) = (name.trim(), command.trim());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bad.push((
                i + 1,
                format!("process name `{name}` must be letters, digits, `_` or `-`"),
            ));
        } else if command.is_empty() {
            bad.push((i + 1, format!("`{name}` has no command")));
        } else if out.iter().any(|(n, _)| n == name) {
            bad.push((i + 1, format!("`{name}` is named twice")));
        } else {
            out.push((name.to_string(), command.to_string()));
        }
    }
    if let Some((line, first)) = bad.first() {
        let mut why = first.clone();
        for (l, w) in bad.iter().skip(1) {
            why.push_str(&format!("\nProcfile line {l}: {w}"));
        }
        return Err(SettingsError::Procfile { line: *line, why });
    }
    if out.is_empty() {
        return Err(SettingsError::EmptyProcfile);
    }
    Ok(out)
}

/// Parses a `.env` file the way foreman and `heroku local` read it:
/// `KEY=value` per line, `export ` allowed before the key, `#` comments and
/// blank lines. A value in single quotes is taken as it is; one in double
/// quotes may span nothing more than its line and understands `\n`, `\"`
/// and `\\`; an unquoted value is trimmed, and ` #` starts a comment in
/// it. A key is letters, digits and `_`, not starting with a digit; a key
/// given twice keeps its last value.
///
/// # Errors
/// The 1-based line number and what is wrong with it.
pub fn parse_env(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    if text.len() > ENV_FILE_MAX {
        return Err((
            0,
            format!(
                "{} bytes, more than the {ENV_FILE_MAX} a dyno's environment can take",
                text.len()
            ),
        ));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('\0') {
            // No process can be given it: every launch would fail.
            return Err((i + 1, "a NUL byte".into()));
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let err = |why: String| (i + 1, why);
        let (key, value) = line.split_once('=').ok_or_else(|| err("no `=`".into()))?;
        let key = key.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(err(format!(
                "`{}` is not a variable name (letters, digits and `_`, not starting with a digit)",
                shown(key)
            )));
        }
        let value = env_value(value.trim()).map_err(err)?;
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// One `.env` value, quotes and escapes resolved (see [`parse_env`]).
fn env_value(v: &str) -> Result<String, String> {
    if let Some(rest) = v.strip_prefix('\'') {
        let (inner, after) = rest
            .split_once('\'')
            .ok_or_else(|| "a single quote is not closed".to_string())?;
        return trailing(after).map(|()| inner.to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return trailing(chars.as_str()).map(|()| out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(e @ ('"' | '\\')) => out.push(e),
                    Some(e) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("a double quote is not closed".into());
    }
    let v = v.split_once(" #").map_or(v, |(v, _)| v);
    Ok(v.trim_end().to_string())
}

/// Nothing but a comment may follow a quoted value.
fn trailing(after: &str) -> Result<(), String> {
    let after = after.trim();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err(format!("`{}` after the closing quote", shown(after)))
    }
}

/// A `tally.toml` that sets every key the manager reads, commented: what
/// `tally run --config-example` prints.
pub const CONFIG_EXAMPLE: &str = include_str!("../../examples/tally.toml");

/// Parses `tally.toml`.
///
/// # Errors
/// Invalid TOML, an unknown key, or a wrong type.
pub fn parse_settings(text: &str) -> Result<FileSettings, SettingsError> {
    toml::from_str(text).map_err(|e| SettingsError::Toml(e.to_string().trim().to_string()))
}

/// Reads and validates a Procfile, an optional `tally.toml` and the
/// dynos' environment: `env_file`, or else `.env` beside the Procfile if
/// there is one.
///
/// # Errors
/// Unreadable or invalid files (an `env_file` that is missing too).
pub fn load(
    procfile: &Path,
    settings: Option<&Path>,
    env_file: Option<&Path>,
) -> Result<Deployment, SettingsError> {
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
    let beside = procfile
        .parent()
        .map(|d| d.join(".env"))
        .filter(|p| p.is_file());
    let env = match env_file.map(Path::to_path_buf).or(beside) {
        Some(p) => parse_env(&read(&p)?).map_err(|(line, why)| SettingsError::Env {
            path: p.display().to_string(),
            line,
            why,
        })?,
        None => Vec::new(),
    };
    let mut deployment = build(&procs, &file)?;
    deployment.env = env;
    Ok(deployment)
}

/// Reads the apps of `tally run --app NAME=PATH ...`: each PATH a Procfile
/// or a directory holding one, beside which an optional `tally.toml` sets
/// that app's `[types.*]` and an optional `.env` its dynos' variables;
/// `settings` holds the deployment's own (timing, budget, breaker), and
/// `env_file` variables for every app's dynos.
///
/// # Errors
/// Unreadable or invalid files, an app name that is not one, two apps of
/// one name.
pub fn load_apps(
    apps: &[(String, PathBuf)],
    settings: Option<&Path>,
    env_file: Option<&Path>,
) -> Result<Deployment, SettingsError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| SettingsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let file = match settings {
        Some(p) => parse_settings(&read(p)?)?,
        None => FileSettings::default(),
    };
    if let Some(t) = file.types.keys().next() {
        return Err(SettingsError::App(format!(
            "with --app, each app's types are set in its own tally.toml (beside its Procfile), not in --config: [types.{t}]"
        )));
    }
    let env_of = |p: &Path| {
        read(p).and_then(|text| {
            parse_env(&text).map_err(|(line, why)| SettingsError::Env {
                path: p.display().to_string(),
                line,
                why,
            })
        })
    };
    let mut sources = Vec::new();
    for (name, path) in apps {
        let procfile = if path.is_dir() {
            path.join("Procfile")
        } else {
            path.clone()
        };
        let dir = procfile
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.canonicalize().ok());
        let procs = parse_procfile(&read(&procfile)?)
            .map_err(|e| SettingsError::App(format!("{name}={}: {e}", procfile.display())))?;
        let own = dir
            .as_ref()
            .map(|d| d.join("tally.toml"))
            .filter(|p| p.is_file());
        let types = match own {
            Some(p) => {
                toml::from_str::<AppFileSettings>(&read(&p)?)
                    .map_err(|e| {
                        SettingsError::App(format!(
                            "{name}: {}: {e}\n  an app's own tally.toml sets only [types.*]; timing, budget and breaker are the deployment's (--config)",
                            p.display()
                        ))
                    })?
                    .types
            }
            None => BTreeMap::new(),
        };
        let env = match dir.as_ref().map(|d| d.join(".env")).filter(|p| p.is_file()) {
            Some(p) => env_of(&p)?,
            None => Vec::new(),
        };
        sources.push(AppSource {
            name: name.clone(),
            procs,
            types,
            dir,
            env,
        });
    }
    let mut deployment = build_apps(&sources, &file)?;
    if let Some(p) = env_file {
        deployment.env = env_of(p)?;
    }
    Ok(deployment)
}

/// Builds a validated deployment from a parsed Procfile and settings.
///
/// # Errors
/// A type the Procfile lacks; settings out of range, all of them in one
/// [`SettingsError::Invalid`], one problem a line; or a configuration the
/// core refuses.
pub fn build(procs: &[(String, String)], file: &FileSettings) -> Result<Deployment, SettingsError> {
    let app = AppSource {
        name: file.app.clone(),
        procs: procs.to_vec(),
        types: file.types.clone(),
        dir: None,
        env: Vec::new(),
    };
    build_apps(&[app], file)
}

/// One app of a deployment: its name, its Procfile's processes, its own
/// types' settings, where its commands run and its own `.env`.
#[derive(Clone, Debug, Default)]
pub struct AppSource {
    /// The app's name.
    pub name: String,
    /// `(type, command)` from its Procfile.
    pub procs: Vec<(String, String)>,
    /// `[types.*]` from its own `tally.toml`.
    pub types: BTreeMap<String, TypeSettings>,
    /// Its directory (commands run there).
    pub dir: Option<PathBuf>,
    /// Its own `.env`.
    pub env: Vec<(String, String)>,
}

/// An app's own `tally.toml`: only `[types.*]`; timing, budget and breaker
/// are the deployment's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFileSettings {
    #[serde(default)]
    types: BTreeMap<String, TypeSettings>,
}

/// Builds one deployment of several apps (`tally run --app NAME=PATH ...`):
/// their types in order, each app with its own budget and breaker in the
/// core; `file` holds the deployment-wide settings.
///
/// # Errors
/// As [`build`], for any app; two apps of one name.
pub fn build_apps(apps: &[AppSource], file: &FileSettings) -> Result<Deployment, SettingsError> {
    let mut problems_all: Vec<String> = Vec::new();
    for (i, app) in apps.iter().enumerate() {
        if apps.iter().take(i).any(|a| a.name == app.name) {
            return Err(SettingsError::App(format!(
                "{}: two apps of that name",
                shown(&app.name)
            )));
        }
        if let Some(unknown) = app
            .types
            .keys()
            .find(|k| !app.procs.iter().any(|(n, _)| n == *k))
        {
            let name = if apps.len() > 1 {
                format!("{}:{unknown}", app.name)
            } else {
                unknown.clone()
            };
            return Err(SettingsError::UnknownType(name));
        }
        let one = FileSettings {
            app: app.name.clone(),
            types: app.types.clone(),
            ..file.clone()
        };
        for p in problems(&one) {
            if !problems_all.contains(&p) {
                problems_all.push(p);
            }
        }
    }
    if !problems_all.is_empty() {
        // Each line reads `tally.toml: ...` once displayed.
        return Err(SettingsError::Invalid(problems_all.join("\ntally.toml: ")));
    }
    let t = &file.timing;
    let b = &file.budget;
    let kill_ms = t.kill_grace_ms.saturating_add(file.tick_ms);
    let ticks = |ms: u64| ms.div_ceil(file.tick_ms);
    let mut types = Vec::new();
    let mut process_types = Vec::new();
    for (app, (name, command)) in apps
        .iter()
        .flat_map(|a| a.procs.iter().map(move |p| (a, p)))
    {
        let s = app.types.get(name).cloned().unwrap_or_default();
        let kind = if s.singleton {
            ProcessKind::Singleton
        } else {
            ProcessKind::Scalable
        };
        let count_max = s.max.unwrap_or(if s.singleton { 1 } else { DEFAULT_MAX });
        process_types.push(ProcessTypeConfig {
            app: app.name.clone(),
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
            app: app.name.clone(),
            dir: app.dir.clone(),
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
            // In range: refill_per_boot was checked to round to 0..=999.
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
            // In range: fleet_app_share was checked to be within (0, 1].
            fleet_app_share_milli: u32::try_from(
                (file.breaker.fleet_app_share * 1000.0).round() as i64
            )
            .unwrap_or(250),
        },
        seed: file.seed,
        leadership: None,
        mutations: Mutations::NONE,
    };
    config.validate().map_err(|e| in_settings_words(e, file))?;
    let app_env = apps
        .iter()
        .filter(|a| !a.env.is_empty())
        .map(|a| (a.name.clone(), a.env.clone()))
        .collect();
    Ok(Deployment {
        config,
        types,
        tick_ms: file.tick_ms,
        env: Vec::new(),
        app_env,
    })
}

/// At most `APP_NAME_MAX` characters of `s`, escaped, for a message.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(APP_NAME_MAX + 1).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    format!("{out:?}")
}

/// Every setting out of range, one message each naming the key, the value
/// and what is allowed. Types not in the Procfile are checked before.
fn problems(file: &FileSettings) -> Vec<String> {
    let mut out = Vec::new();
    let app = &file.app;
    let app_ok = !app.is_empty()
        && app.len() <= APP_NAME_MAX
        && app
            .bytes()
            .enumerate()
            .all(|(i, c)| c.is_ascii_lowercase() || c.is_ascii_digit() || (c == b'-' && i > 0));
    if !app_ok {
        out.push(format!(
            "app = {} must be 1 to {APP_NAME_MAX} characters of `a-z`, `0-9` and `-`, not starting with `-`",
            shown(app)
        ));
    }
    let tick = file.tick_ms;
    let tick_ok = (TICK_MS_MIN..=TICK_MS_MAX).contains(&tick);
    if !tick_ok {
        out.push(format!(
            "tick_ms = {tick} must be between {TICK_MS_MIN} and {TICK_MS_MAX}: the manager steps once a tick, and every duration is rounded up to whole ticks"
        ));
    }
    if !(1..=BOOTS_IN_FLIGHT_MAX).contains(&file.boots_in_flight_max) {
        out.push(format!(
            "boots_in_flight_max = {} must be between 1 and {BOOTS_IN_FLIGHT_MAX} (the instances an agent tracks): with 0 nothing ever boots",
            file.boots_in_flight_max
        ));
    }
    for (name, s) in &file.types {
        if let Some(max) = s.max {
            if s.singleton && max != 1 {
                out.push(format!(
                    "types.{name}.max = {max} must be 1: {name} is a singleton and runs at most 1"
                ));
            } else if !(1..=COUNT_MAX).contains(&max) {
                out.push(format!(
                    "types.{name}.max = {max} must be between 1 and {COUNT_MAX}"
                ));
            }
        }
        if let Some(count) = s.count {
            let (max, why) = match s.max {
                _ if s.singleton => (1, format!("{name} is a singleton")),
                Some(max) => (max.min(COUNT_MAX), format!("types.{name}.max")),
                None => (
                    DEFAULT_MAX,
                    format!("the default types.{name}.max; set it to allow more"),
                ),
            };
            if count > max {
                out.push(format!(
                    "types.{name}.count = {count} must be between 0 and {max} ({why})"
                ));
            }
        }
    }
    let t = &file.timing;
    let b = &file.budget;
    let k = &file.breaker;
    if t.drift_ppm > DRIFT_PPM_MAX {
        out.push(format!(
            "timing.drift_ppm = {} must be between 0 and {DRIFT_PPM_MAX} (10%)",
            t.drift_ppm
        ));
    }
    if !(1..=CAPACITY_MAX).contains(&b.capacity) {
        out.push(format!(
            "budget.capacity = {} must be between 1 and {CAPACITY_MAX}: with 0 a crashed dyno is relaunched only by the probe, once per budget.probe_cooldown_ms",
            b.capacity
        ));
    }
    let refill = b.refill_per_boot;
    // Kept in thousandths: 0.9996 would round to 1, unbounded retries.
    if !(0.0..1.0).contains(&refill) || (refill * 1000.0).round() >= 1000.0 {
        out.push(format!(
            "budget.refill_per_boot = {refill} must be between 0 and 0.999: at 1 or more retries are unbounded"
        ));
    }
    let share = k.fleet_app_share;
    if !(share > 0.0 && share <= 1.0) {
        out.push(format!(
            "breaker.fleet_app_share = {share} must be above 0 and at most 1: the share of the apps failing at once that opens the fleet breaker"
        ));
    }
    if !(1..=FAILURE_THRESHOLD_MAX).contains(&k.failure_threshold) {
        out.push(format!(
            "breaker.failure_threshold = {} must be between 1 and {FAILURE_THRESHOLD_MAX}",
            k.failure_threshold
        ));
    }
    // Durations: at most a day; those where zero makes no sense at least
    // one tick (a shorter one would be rounded up to a tick anyway).
    let day = DURATION_MAX_MS;
    let mut durations_ok = true;
    for (name, ms, nonzero) in [
        ("timing.lease_ms", t.lease_ms, true),
        ("timing.kill_grace_ms", t.kill_grace_ms, false),
        ("timing.margin_ms", t.margin_ms, false),
        ("timing.report_interval_ms", t.report_interval_ms, true),
        ("timing.report_delivery_ms", t.report_delivery_ms, false),
        ("timing.boot_ms", t.boot_ms, false),
        ("timing.boot_timeout_ms", t.boot_timeout_ms, true),
        ("timing.unknown_after_ms", t.unknown_after_ms, true),
        ("budget.probe_cooldown_ms", b.probe_cooldown_ms, true),
        ("budget.backoff_base_ms", b.backoff_base_ms, true),
        ("budget.backoff_max_ms", b.backoff_max_ms, true),
        ("budget.jitter_max_ms", b.jitter_max_ms, false),
        ("breaker.window_ms", k.window_ms, true),
        ("breaker.cooldown_ms", k.cooldown_ms, true),
    ] {
        let (low, what) = match (nonzero, tick_ok) {
            (false, _) => (0, ""),
            (true, true) => (tick, " (one tick)"),
            (true, false) => (1, ""),
        };
        if !(low..=day).contains(&ms) {
            durations_ok = false;
            out.push(format!(
                "{name} = {ms} must be between {low}{what} and {day} (a day)"
            ));
        }
    }
    if !(tick_ok && durations_ok) {
        // The rules between durations: only once every duration and the
        // tick are in range.
        return out;
    }
    // The rules between durations that the core owns (lease, boot timeout,
    // backoff order) are the core's, told in these keys by
    // `in_settings_words`; these two are the shell's own.
    // The manager's and the agent's tick readings are each floored (up to a
    // tick each), the grace is rounded up to whole ticks (one more), and the
    // fence must be scheduled and the group gone after its SIGKILL.
    let needed = t
        .kill_grace_ms
        .saturating_add(3 * tick)
        .saturating_add(SCHEDULING_ALLOWANCE_MS);
    if t.margin_ms < needed {
        out.push(format!(
            "timing.margin_ms = {} must be at least timing.kill_grace_ms + 3 ticks + {SCHEDULING_ALLOWANCE_MS} ms = {needed}, so that a lease the manager takes as expired has certainly been fenced",
            t.margin_ms
        ));
    }
    let renewal_ms = t.report_interval_ms.saturating_add(t.report_delivery_ms);
    if t.unknown_after_ms < renewal_ms {
        out.push(format!(
            "timing.unknown_after_ms = {} must be at least timing.report_interval_ms + timing.report_delivery_ms = {renewal_ms}, or up dynos show unknown between two reports",
            t.unknown_after_ms
        ));
    }
    out
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    const PROCFILE: &str = "web: w\nclock: c\nworker: k\n";

    #[test]
    fn every_bad_procfile_line_is_told_at_once() {
        let e = parse_procfile("web: w\nbad line\n: c\nweb: again\nok: fine\nempty:\n")
            .unwrap_err()
            .to_string();
        for says in [
            "Procfile line 2: no `:` (expected `name: command`)",
            "Procfile line 3: process name ``",
            "Procfile line 4: `web` is named twice",
            "Procfile line 6: `empty` has no command",
        ] {
            assert!(e.contains(says), "{says}: {e}");
        }
    }

    #[test]
    fn env_files_read_as_foreman_reads_them() {
        let text = "# a comment\n\nGREETING=hello world # not part of it\nexport QUOTED=\"a \\\"b\\\"\\nc\"\nRAW='$HOME \\n # kept'\n  SPACED = x  \nEMPTY=\nGREETING=again\n";
        let env = parse_env(text).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GREETING"), Some("again"));
        assert_eq!(get("QUOTED"), Some("a \"b\"\nc"));
        assert_eq!(get("RAW"), Some("$HOME \\n # kept"));
        assert_eq!(get("SPACED"), Some("x"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(env.len(), 5, "{env:?}");
        // Each error names its line.
        for (bad, line, says) in [
            ("A=1\nnot a pair\n", 2, "no `=`"),
            ("1A=x\n", 1, "not a variable name"),
            ("A-B=x\n", 1, "not a variable name"),
            ("A=\"open\n", 1, "not closed"),
            ("A='open\n", 1, "not closed"),
            ("A=\"x\" y\n", 1, "after the closing quote"),
            ("A=1\nB=x\0y\n", 2, "NUL"),
        ] {
            let (l, why) = parse_env(bad).unwrap_err();
            assert_eq!(l, line, "{bad:?}");
            assert!(why.contains(says), "{bad:?}: {why}");
        }
        let huge = "A=x\n".repeat(ENV_FILE_MAX / 4 + 1);
        assert!(parse_env(&huge).unwrap_err().1.contains("more than"));
    }

    /// Builds `toml` over [`PROCFILE`]. `says` empty: accepted. Otherwise
    /// refused with [`SettingsError::Invalid`] (the shell, not the core,
    /// refuses: its message names the tally.toml key), one problem a line,
    /// each line holding every string of `says`.
    fn check(toml: &str, says: &[&str]) {
        let procs = parse_procfile(PROCFILE).unwrap();
        let file = parse_settings(toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
        match (build(&procs, &file), says) {
            (Ok(_), []) => {}
            (Ok(_), _) => panic!("accepted, expected {says:?}:\n{toml}"),
            (Err(e), []) => panic!("refused: {e}\n{toml}"),
            (Err(e @ SettingsError::Invalid(_)), _) => {
                let text = e.to_string();
                for line in text.lines() {
                    let problem = line
                        .strip_prefix("tally.toml: ")
                        .unwrap_or_else(|| panic!("line without `tally.toml: `: {line}"));
                    assert!(
                        problem.starts_with(|c: char| c.is_ascii_lowercase()),
                        "{line}"
                    );
                    assert!(!problem.ends_with('.'), "{line}");
                }
                assert!(
                    text.lines().any(|l| says.iter().all(|s| l.contains(s))),
                    "expected a line with all of {says:?} in:\n{text}\n{toml}"
                );
            }
            (Err(e), _) => panic!("refused, but not by the shell: {e}\n{toml}"),
        }
    }

    #[test]
    fn top_level_bounds() {
        let long = "a".repeat(APP_NAME_MAX);
        let too_long = "a".repeat(APP_NAME_MAX + 1);
        let cases: Vec<(String, &[&str])> = vec![
            ("app = \"a\"".into(), &[]),
            ("app = \"0\"".into(), &[]),
            ("app = \"shop-2\"".into(), &[]),
            (format!("app = \"{long}\""), &[]),
            ("app = \"\"".into(), &["app = \"\"", "1 to 63 characters"]),
            (format!("app = \"{too_long}\""), &["app = \"aaa", "1 to 63"]),
            (
                "app = \"-shop\"".into(),
                &["app = \"-shop\"", "not starting with `-`"],
            ),
            ("app = \"Shop\"".into(), &["app = \"Shop\"", "`a-z`"]),
            ("app = \"shop_2\"".into(), &["app = \"shop_2\"", "`a-z`"]),
            ("app = \"shop\\n\"".into(), &["app = \"shop\\n\"", "`a-z`"]),
            ("tick_ms = 10".into(), &[]),
            (
                "tick_ms = 9".into(),
                &["tick_ms = 9", "between 10 and 10000"],
            ),
            (
                "tick_ms = 1".into(),
                &["tick_ms = 1 ", "between 10 and 10000"],
            ),
            (
                "tick_ms = 0".into(),
                &["tick_ms = 0", "between 10 and 10000"],
            ),
            (
                "tick_ms = 10001".into(),
                &["tick_ms = 10001", "between 10 and 10000"],
            ),
            ("boots_in_flight_max = 1".into(), &[]),
            ("boots_in_flight_max = 4096".into(), &[]),
            (
                "boots_in_flight_max = 0".into(),
                &["boots_in_flight_max = 0", "between 1 and 4096"],
            ),
            (
                "boots_in_flight_max = 4097".into(),
                &["boots_in_flight_max = 4097", "between 1 and 4096"],
            ),
            ("seed = 0".into(), &[]),
            ("seed = 9223372036854775807".into(), &[]),
        ];
        for (toml, says) in cases {
            check(&toml, says);
        }
    }

    #[test]
    fn the_longest_tick() {
        let ok = "tick_ms = 10000\n\
            [timing]\nlease_ms = 20001\nkill_grace_ms = 0\nmargin_ms = 30100\n\
            report_interval_ms = 10000\nreport_delivery_ms = 0\nboot_ms = 0\n\
            boot_timeout_ms = 10001\nunknown_after_ms = 10000\n\
            [budget]\nprobe_cooldown_ms = 10000\nbackoff_base_ms = 10000\n\
            backoff_max_ms = 10000\njitter_max_ms = 0\n\
            [breaker]\nwindow_ms = 10000\ncooldown_ms = 10000\n";
        check(ok, &[]);
        check(
            &ok.replace("tick_ms = 10000", "tick_ms = 10001"),
            &["tick_ms = 10001", "between 10 and 10000"],
        );
        check(
            &ok.replace("margin_ms = 30100", "margin_ms = 30099"),
            &["timing.margin_ms = 30099", "at least", "= 30100"],
        );
    }

    #[test]
    fn type_bounds() {
        let cases: &[(&str, &[&str])] = &[
            ("[types.web]\nmax = 1", &[]),
            ("[types.web]\nmax = 10000\ncount = 10000", &[]),
            (
                "[types.web]\nmax = 10001",
                &["types.web.max = 10001", "between 1 and 10000"],
            ),
            (
                "[types.web]\nmax = 0",
                &["types.web.max = 0", "between 1 and 10000"],
            ),
            ("[types.web]\ncount = 0", &[]),
            ("[types.web]\ncount = 16", &[]),
            (
                "[types.web]\ncount = 17",
                &["types.web.count = 17", "between 0 and 16", "default"],
            ),
            ("[types.web]\ncount = 8\nmax = 8", &[]),
            (
                "[types.web]\ncount = 9\nmax = 8",
                &["types.web.count = 9", "between 0 and 8", "types.web.max"],
            ),
            (
                "[types.web]\ncount = 10001\nmax = 10001",
                &["types.web.count = 10001", "between 0 and 10000"],
            ),
            ("[types.clock]\nsingleton = true\nmax = 1\ncount = 1", &[]),
            ("[types.clock]\nsingleton = true\ncount = 0", &[]),
            (
                "[types.clock]\nsingleton = true\nmax = 2",
                &["types.clock.max = 2", "must be 1", "singleton"],
            ),
            (
                "[types.clock]\nsingleton = true\nmax = 0",
                &["types.clock.max = 0", "must be 1"],
            ),
            (
                "[types.clock]\nsingleton = true\ncount = 2",
                &["types.clock.count = 2", "between 0 and 1", "singleton"],
            ),
        ];
        for (toml, says) in cases {
            check(toml, says);
        }
    }

    #[test]
    fn budget_and_breaker_bounds() {
        let cases: &[(&str, &[&str])] = &[
            ("[budget]\ncapacity = 1", &[]),
            ("[budget]\ncapacity = 10000", &[]),
            (
                "[budget]\ncapacity = 0",
                &["budget.capacity = 0", "between 1 and 10000", "probe"],
            ),
            (
                "[budget]\ncapacity = 10001",
                &["budget.capacity = 10001", "between 1 and 10000"],
            ),
            ("[budget]\nrefill_per_boot = 0.0", &[]),
            ("[budget]\nrefill_per_boot = 0.999", &[]),
            (
                "[budget]\nrefill_per_boot = 0.9996",
                &["budget.refill_per_boot = 0.9996", "between 0 and 0.999"],
            ),
            (
                "[budget]\nrefill_per_boot = 1.0",
                &["budget.refill_per_boot = 1", "between 0 and 0.999"],
            ),
            (
                "[budget]\nrefill_per_boot = -0.001",
                &["budget.refill_per_boot = -0.001", "between 0 and 0.999"],
            ),
            (
                "[budget]\nrefill_per_boot = nan",
                &["budget.refill_per_boot = NaN", "between 0 and 0.999"],
            ),
            ("[budget]\nprobe_cooldown_ms = 100", &[]),
            (
                "[budget]\nprobe_cooldown_ms = 99",
                &[
                    "budget.probe_cooldown_ms = 99",
                    "between 100 (one tick) and 86400000",
                ],
            ),
            ("[budget]\nprobe_cooldown_ms = 86400000", &[]),
            (
                "[budget]\nprobe_cooldown_ms = 86400001",
                &[
                    "budget.probe_cooldown_ms = 86400001",
                    "and 86400000 (a day)",
                ],
            ),
            ("[budget]\nbackoff_base_ms = 100", &[]),
            (
                "[budget]\nbackoff_base_ms = 99",
                &["budget.backoff_base_ms = 99", "between 100 (one tick)"],
            ),
            ("[budget]\nbackoff_base_ms = 10000", &[]),
            (
                "[budget]\nbackoff_base_ms = 10001",
                &[
                    "budget.backoff_base_ms = 10001",
                    "at most budget.backoff_max_ms = 10000",
                ],
            ),
            ("[budget]\nbackoff_max_ms = 86400000", &[]),
            (
                "[budget]\nbackoff_max_ms = 86400001",
                &["budget.backoff_max_ms = 86400001", "and 86400000"],
            ),
            ("[budget]\njitter_max_ms = 0", &[]),
            ("[budget]\njitter_max_ms = 86400000", &[]),
            (
                "[budget]\njitter_max_ms = 86400001",
                &["budget.jitter_max_ms = 86400001", "between 0 and 86400000"],
            ),
            ("[breaker]\nfleet_app_share = 1.0", &[]),
            ("[breaker]\nfleet_app_share = 0.01", &[]),
            (
                "[breaker]\nfleet_app_share = 0",
                &["breaker.fleet_app_share = 0", "above 0 and at most 1"],
            ),
            (
                "[breaker]\nfleet_app_share = 1.5",
                &["breaker.fleet_app_share = 1.5", "above 0 and at most 1"],
            ),
            ("[breaker]\nfailure_threshold = 1", &[]),
            ("[breaker]\nfailure_threshold = 1000", &[]),
            (
                "[breaker]\nfailure_threshold = 0",
                &["breaker.failure_threshold = 0", "between 1 and 1000"],
            ),
            (
                "[breaker]\nfailure_threshold = 1001",
                &["breaker.failure_threshold = 1001", "between 1 and 1000"],
            ),
            ("[breaker]\nwindow_ms = 100", &[]),
            (
                "[breaker]\nwindow_ms = 99",
                &["breaker.window_ms = 99", "between 100 (one tick)"],
            ),
            (
                "[breaker]\nwindow_ms = 86400001",
                &["breaker.window_ms = 86400001", "86400000 (a day)"],
            ),
            ("[breaker]\ncooldown_ms = 100", &[]),
            (
                "[breaker]\ncooldown_ms = 0",
                &["breaker.cooldown_ms = 0", "between 100 (one tick)"],
            ),
            (
                "[breaker]\ncooldown_ms = 86400001",
                &["breaker.cooldown_ms = 86400001", "86400000 (a day)"],
            ),
        ];
        for (toml, says) in cases {
            check(toml, says);
        }
    }

    #[test]
    fn timing_bounds() {
        // Defaults: tick 100, lease 4000, margin 1000, grace 500, report
        // 500 + 200, boot 1000, timeout 8000, unknown after 2000.
        let cases: &[(&str, &[&str])] = &[
            ("[timing]\ndrift_ppm = 0", &[]),
            ("[timing]\ndrift_ppm = 100000", &[]),
            (
                "[timing]\ndrift_ppm = 100001",
                &["timing.drift_ppm = 100001", "between 0 and 100000"],
            ),
            (
                "[timing]\ndrift_ppm = 4000000000",
                &["timing.drift_ppm = 4000000000", "between 0 and 100000"],
            ),
            ("[timing]\nlease_ms = 701", &[]),
            (
                "[timing]\nlease_ms = 700",
                &["timing.lease_ms = 700", "above", "= 700"],
            ),
            // Rounded to whole ticks: 450 + 150 ms is 5 + 2 ticks.
            (
                "[timing]\nlease_ms = 700\nreport_interval_ms = 450\nreport_delivery_ms = 150",
                &["timing.lease_ms = 700", "= 700 (in whole ticks)"],
            ),
            (
                "[timing]\nlease_ms = 0",
                &["timing.lease_ms = 0", "between 100 (one tick) and 86400000"],
            ),
            ("[timing]\nlease_ms = 86400000", &[]),
            (
                "[timing]\nlease_ms = 86400001",
                &["timing.lease_ms = 86400001", "86400000 (a day)"],
            ),
            ("[timing]\nkill_grace_ms = 0", &[]),
            ("[timing]\nkill_grace_ms = 600", &[]),
            (
                "[timing]\nkill_grace_ms = 601",
                &["timing.margin_ms = 1000", "at least", "= 1001"],
            ),
            (
                "[timing]\nkill_grace_ms = 86400001",
                &["timing.kill_grace_ms = 86400001", "between 0 and 86400000"],
            ),
            ("[timing]\nmargin_ms = 900", &[]),
            (
                "[timing]\nmargin_ms = 899",
                &["timing.margin_ms = 899", "at least", "= 900"],
            ),
            (
                "[timing]\nmargin_ms = 86400001",
                &["timing.margin_ms = 86400001", "between 0 and 86400000"],
            ),
            ("[timing]\nreport_interval_ms = 100", &[]),
            (
                "[timing]\nreport_interval_ms = 99",
                &["timing.report_interval_ms = 99", "between 100 (one tick)"],
            ),
            (
                "[timing]\nreport_interval_ms = 0",
                &["timing.report_interval_ms = 0", "between 100 (one tick)"],
            ),
            ("[timing]\nreport_delivery_ms = 0", &[]),
            (
                "[timing]\nreport_delivery_ms = 86400001",
                &[
                    "timing.report_delivery_ms = 86400001",
                    "between 0 and 86400000",
                ],
            ),
            ("[timing]\nboot_ms = 0", &[]),
            (
                "[timing]\nboot_ms = 86400001",
                &["timing.boot_ms = 86400001", "between 0 and 86400000"],
            ),
            ("[timing]\nboot_timeout_ms = 1701", &[]),
            (
                "[timing]\nboot_timeout_ms = 1700",
                &["timing.boot_timeout_ms = 1700", "above", "= 1700"],
            ),
            (
                "[timing]\nboot_timeout_ms = 0",
                &["timing.boot_timeout_ms = 0", "between 100 (one tick)"],
            ),
            (
                "[timing]\nboot_timeout_ms = 86400001",
                &["timing.boot_timeout_ms = 86400001", "86400000 (a day)"],
            ),
            ("[timing]\nunknown_after_ms = 700", &[]),
            (
                "[timing]\nunknown_after_ms = 699",
                &["timing.unknown_after_ms = 699", "at least", "= 700"],
            ),
            (
                "[timing]\nunknown_after_ms = 0",
                &["timing.unknown_after_ms = 0", "between 100 (one tick)"],
            ),
            (
                "[timing]\nunknown_after_ms = 86400001",
                &["timing.unknown_after_ms = 86400001", "86400000 (a day)"],
            ),
        ];
        for (toml, says) in cases {
            check(toml, says);
        }
    }

    #[test]
    fn every_problem_is_reported_one_a_line() {
        let toml = "app = \"\"\ntick_ms = 1\n\
            [budget]\ncapacity = 0\n[timing]\ndrift_ppm = 4000000000\n";
        let procs = parse_procfile(PROCFILE).unwrap();
        let e = build(&procs, &parse_settings(toml).unwrap()).unwrap_err();
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for (line, key) in
            lines
                .iter()
                .zip(["app", "tick_ms", "timing.drift_ppm", "budget.capacity"])
        {
            assert!(line.starts_with(&format!("tally.toml: {key} = ")), "{text}");
        }
    }

    #[test]
    fn drift_at_its_bound_fits_the_expiry_arithmetic() {
        let toml = "tick_ms = 10\n[timing]\nlease_ms = 86400000\ndrift_ppm = 100000\n";
        check(toml, &[]);
        let d = build(
            &parse_procfile(PROCFILE).unwrap(),
            &parse_settings(toml).unwrap(),
        )
        .unwrap();
        assert_eq!(d.config.drift_ticks_per_lease(), 864_000);
        assert_eq!(d.config.lease_expiry_ticks(), 8_640_000 + 864_000 + 100);
    }

    #[test]
    fn shipped_settings_pass() {
        let example = include_str!("../../examples/tally.toml");
        let procs = parse_procfile(include_str!("../../examples/Procfile")).unwrap();
        build(&procs, &parse_settings(example).unwrap()).unwrap();
        // Its commented keys (`tally run --config-example`) exist and take
        // the values shown.
        let uncommented = example
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(uncommented, example);
        build(&procs, &parse_settings(&uncommented).unwrap()).unwrap();
        build(&procs, &FileSettings::default()).unwrap();
        // `SETTINGS` of cli/tests/manager.rs.
        let e2e = "app = \"test\"\ntick_ms = 50\nboots_in_flight_max = 2\n\
            [types.clock]\nsingleton = true\nready = \"file\"\n\
            [types.web]\ncount = 1\nready = \"started\"\n\
            [timing]\nlease_ms = 2000\ndrift_ppm = 10000\nkill_grace_ms = 200\n\
            margin_ms = 600\nreport_interval_ms = 250\nreport_delivery_ms = 100\n\
            boot_ms = 300\nboot_timeout_ms = 2000\nunknown_after_ms = 1500\n\
            [budget]\ncapacity = 6\nrefill_per_boot = 0.5\nprobe_cooldown_ms = 4000\n\
            backoff_base_ms = 100\nbackoff_max_ms = 800\njitter_max_ms = 50\n\
            [breaker]\nwindow_ms = 20000\nfailure_threshold = 4\ncooldown_ms = 3000\n";
        check(e2e, &[]);
    }
}
