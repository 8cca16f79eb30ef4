//! Scenario files: the fleet, the hosts' physics, the network, the core's
//! configuration and a timeline of conditions, as TOML; plus the built-in
//! scenarios shipped in `sim/scenarios/` and embedded in the binary.
//!
//! All durations in a scenario are in milliseconds (or hours, where the
//! field name says `_h`). The core's ticks are [`TICK_MS`] long.

use crate::error::SimError;
use serde::{Deserialize, Serialize};
use tally_core::config::{BreakerConfig, BudgetConfig, ProcessTypeConfig, Timing};
use tally_core::{Config, Mutations, ProcessKind};

/// Length of one core tick, in simulated milliseconds.
pub const TICK_MS: u64 = 100;

/// Milliseconds in one hour.
pub const HOUR_MS: f64 = 3_600_000.0;

/// The built-in scenarios: `(name, TOML text)`.
pub const BUILTIN: [(&str, &str); 5] = [
    (
        "incident-2012",
        include_str!("../scenarios/incident-2012.toml"),
    ),
    (
        "host-crash-wave",
        include_str!("../scenarios/host-crash-wave.toml"),
    ),
    ("partition", include_str!("../scenarios/partition.toml")),
    ("crash-loop", include_str!("../scenarios/crash-loop.toml")),
    (
        "noisy-neighbour",
        include_str!("../scenarios/noisy-neighbour.toml"),
    ),
];

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (`incident-2012`).
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Simulated length, in hours.
    pub duration_h: f64,
    /// Default seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Time-series sampling period.
    #[serde(default = "default_sample_ms")]
    pub sample_ms: u64,
    /// Period of the manager's `Tick` input.
    #[serde(default = "default_manager_tick_ms")]
    pub manager_tick_ms: u64,
    /// When boot times first drift (for the detector's delay), if they do.
    #[serde(default)]
    pub drift_start_h: Option<f64>,
    /// When the trigger is removed (for the time to recover), if there is one.
    #[serde(default)]
    pub trigger_end_h: Option<f64>,
    /// When the trigger starts; absent: the first event's time.
    #[serde(default)]
    pub trigger_start_h: Option<f64>,
    /// What the trigger is, in a few words (`fsync slowdown`), for the
    /// plots' marks; absent: named from the events.
    #[serde(default)]
    pub trigger: Option<String>,
    /// The fleet.
    pub fleet: Fleet,
    /// Host physics.
    pub host: HostModel,
    /// Network between agents and the manager.
    pub network: Network,
    /// The core's configuration, durations in milliseconds.
    pub core: CoreSettings,
    /// Conditions that vary smoothly over the day.
    #[serde(default)]
    pub curves: Curves,
    /// Discrete events.
    #[serde(default, rename = "event")]
    pub events: Vec<Event>,
    /// The policies `tally simulate` compares when none is named.
    #[serde(default = "default_policies")]
    pub policies: Vec<crate::Policy>,
}

fn default_policies() -> Vec<crate::Policy> {
    crate::Policy::DEFAULT.to_vec()
}

fn default_seed() -> u64 {
    1
}
fn default_sample_ms() -> u64 {
    60_000
}
fn default_manager_tick_ms() -> u64 {
    1_000
}

/// Hosts, apps and their formations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Number of hosts (agents).
    pub hosts: u32,
    /// Number of apps; each has one scalable `web` type.
    pub apps: u32,
    /// Total scalable dynos, spread evenly over the apps.
    pub dynos: u64,
    /// Share of apps that also run a singleton `clock`.
    pub singleton_share: f64,
    /// The formation is scaled up, app by app, over this long at the start.
    pub warmup_h: f64,
}

/// What a host does with the processes it is asked to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostModel {
    /// Disk work of one boot's container build-up (its fsyncs) at nominal
    /// latency; boots queue for the disk one after another.
    pub disk_ms_per_boot: u64,
    /// Each other boot on the host's disk slows one boot's disk work by this
    /// share (fsync flushes everyone's dirty data).
    pub contention_per_boot: f64,
    /// App start time after the disk work, on average.
    pub app_start_ms: u64,
    /// Uniform jitter around `app_start_ms`, plus or minus.
    pub app_start_jitter_ms: u64,
    /// Time from SIGTERM to death of a running process. A booting process
    /// blocked in fsync dies only once its disk work is done.
    pub kill_ms: u64,
    /// Crashes per dyno per day, after boot.
    pub crash_per_dyno_day: f64,
    /// Agents' clocks run off by up to this many parts per million.
    pub clock_drift_ppm: u32,
    /// How long a crashed host stays down before its agent restarts.
    #[serde(default = "default_host_down_ms")]
    pub down_ms: u64,
}

fn default_host_down_ms() -> u64 {
    600_000
}

/// Message latency; a partition drops messages both ways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Fixed one-way latency.
    pub latency_ms: u64,
    /// Uniform extra latency, `[0, jitter_ms]`.
    pub jitter_ms: u64,
}

/// The core's `Config` settings, durations in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CoreSettings {
    pub lease_ms: u64,
    pub drift_ppm: u32,
    pub margin_ms: u64,
    pub kill_ms: u64,
    pub report_interval_ms: u64,
    pub report_delivery_ms: u64,
    pub boot_ms: u64,
    pub boot_timeout_ms: u64,
    pub unknown_after_ms: u64,
    pub budget_capacity: u32,
    pub refill_per_boot_milli: u32,
    pub probe_cooldown_ms: u64,
    /// For the `fleet-wide` baseline only (one bucket, one probe credit
    /// for the fleet): the fleet size (dynos) that `probe_cooldown_ms` is
    /// meant for; when set, its one cool-down scales as
    /// `probe_cooldown_ms * ref / dynos` (at least one tick), so its
    /// empty-bucket relaunch ceiling, about `(1 / cooldown) / (1 - r)` per
    /// second, grows with the fleet. Per-app budgets (the `tally` policy)
    /// need no such scaling: each app earns its own probe credit every
    /// `probe_cooldown_ms`, so the fleet's ceiling grows with its apps.
    #[serde(default)]
    pub probe_cooldown_ref_dynos: Option<u64>,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub jitter_max_ms: u64,
    pub boots_in_flight_max: u16,
    pub breaker_window_ms: u64,
    pub breaker_failure_threshold: u16,
    pub breaker_cooldown_ms: u64,
    /// One app's bucket capacity `B` under per-app budgets (the `tally`
    /// policy); `budget_capacity` is the one bucket of the fleet-wide
    /// baseline. Absent: `budget_capacity` shared out over the apps (at
    /// least 5).
    #[serde(default)]
    pub app_budget_capacity: Option<u32>,
    /// One app's probe cool-down under per-app budgets (the `tally`
    /// policy): each app earns one relaunch credit this often, so the
    /// fleet's empty-bucket ceiling is about `apps / cooldown / (1 - r)`
    /// per second, and the launch bound's probe term `n*P` grows with it.
    /// Absent: `probe_cooldown_ms`.
    #[serde(default)]
    pub app_probe_cooldown_ms: Option<u64>,
    /// One app's breaker threshold under per-app breakers (the `tally`
    /// policy); `breaker_failure_threshold` is the fleet-wide baseline's.
    /// Absent: `breaker_failure_threshold` shared out over the apps (at
    /// least 3).
    #[serde(default)]
    pub app_breaker_failure_threshold: Option<u16>,
    /// The fleet breaker trips when this share of the apps (thousandths)
    /// has boots failing in one window (`core::Config`'s
    /// `fleet_app_share_milli`).
    #[serde(default = "default_fleet_app_share_milli")]
    pub fleet_app_share_milli: u32,
}

fn default_fleet_app_share_milli() -> u32 {
    250
}

/// Piecewise-linear curves over hours: `[[hour, value], ...]`, held flat
/// before the first point and after the last.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curves {
    /// Daytime load: multiplies every boot's disk work (1.0 when absent).
    #[serde(default)]
    pub load: Vec<[f64; 2]>,
    /// The fsync bug: multiplies every boot's disk work (1.0 when absent).
    #[serde(default)]
    pub fsync: Vec<[f64; 2]>,
    /// Added to every boot's app start, in ms (0 when absent).
    #[serde(default)]
    pub boot_shift_ms: Vec<[f64; 2]>,
}

/// A discrete change of conditions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// Hosts `[hosts[0], hosts[1])` crash: their processes die, their agents
    /// come back after `host.down_ms` with a new incarnation.
    HostCrash {
        /// When.
        at_h: f64,
        /// Host range, end exclusive.
        hosts: [u32; 2],
    },
    /// Hosts `[hosts[0], hosts[1])` are cut off from the manager; their
    /// processes live on.
    Partition {
        /// From.
        at_h: f64,
        /// Until.
        until_h: f64,
        /// Host range, end exclusive.
        hosts: [u32; 2],
    },
    /// Every dyno of apps `[apps[0], apps[1])` booted in the window crashes
    /// `after_ms` after its boot.
    CrashLoop {
        /// From.
        at_h: f64,
        /// Until.
        until_h: f64,
        /// App range, end exclusive.
        apps: [u32; 2],
        /// Time from boot to crash.
        after_ms: u64,
    },
    /// The manager restarts from its journal.
    ManagerRestart {
        /// When.
        at_h: f64,
    },
    /// Apps `[apps[0], apps[1])` deploy a release that never boots: every
    /// dyno of theirs is restarted (through the core) and every boot of
    /// theirs launched from then on fails.
    BadRelease {
        /// When.
        at_h: f64,
        /// App range, end exclusive.
        apps: [u32; 2],
    },
}

impl Event {
    /// Whether the event breaks some apps and not the others (a bad
    /// release, a crash loop): what the `tally-no-bad-apps` baseline leaves
    /// out.
    #[must_use]
    pub fn breaks_apps(&self) -> bool {
        matches!(self, Event::BadRelease { .. } | Event::CrashLoop { .. })
    }
}

/// Milliseconds from hours.
#[must_use]
pub fn ms_from_h(h: f64) -> u64 {
    if h.is_finite() && h > 0.0 {
        (h * HOUR_MS).round() as u64
    } else {
        0
    }
}

/// The value of a piecewise-linear curve at `t_ms`, or `default` if empty.
#[must_use]
pub fn curve_at(points: &[[f64; 2]], t_ms: u64, default: f64) -> f64 {
    let h = t_ms as f64 / HOUR_MS;
    let Some(first) = points.first() else {
        return default;
    };
    if h <= first[0] {
        return first[1];
    }
    for w in points.windows(2) {
        if let [a, b] = w {
            if h <= b[0] {
                let span = b[0] - a[0];
                if span <= 0.0 {
                    return b[1];
                }
                return a[1] + (b[1] - a[1]) * (h - a[0]) / span;
            }
        }
    }
    points.last().map_or(default, |p| p[1])
}

/// `[from, to)` times `ratio` when it holds more than one; never empty
/// when it was not.
fn scale_range(r: [u32; 2], ratio: f64) -> [u32; 2] {
    if r[1] <= r[0].saturating_add(1) {
        return r;
    }
    let scale = |v: u32| (f64::from(v) * ratio).round().min(f64::from(u32::MAX)) as u32;
    let from = scale(r[0]);
    [from, scale(r[1]).max(from + 1)]
}

fn ticks(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS)
}

/// The scenario's trigger: what it is and when, for the plots' marks and
/// the recovery window.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    /// What it is, in a few words.
    pub label: String,
    /// When it starts, hours.
    pub start_h: f64,
    /// When it is removed, hours; `None`: it lasts to the end.
    pub end_h: Option<f64>,
}

impl Event {
    /// When the event happens (starts), hours.
    #[must_use]
    pub fn at_h(&self) -> f64 {
        match self {
            Event::HostCrash { at_h, .. }
            | Event::Partition { at_h, .. }
            | Event::CrashLoop { at_h, .. }
            | Event::ManagerRestart { at_h }
            | Event::BadRelease { at_h, .. } => *at_h,
        }
    }

    /// The event's kind in words.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::HostCrash { .. } => "host crashes",
            Event::Partition { .. } => "partition",
            Event::CrashLoop { .. } => "crash loop",
            Event::ManagerRestart { .. } => "manager restart",
            Event::BadRelease { .. } => "bad release",
        }
    }
}

impl Scenario {
    /// The trigger: `trigger`, `trigger_start_h` and `trigger_end_h` as
    /// written, a missing name or start taken from the events (their kinds,
    /// the first one's time). `None` when the scenario has neither a start
    /// nor an end.
    #[must_use]
    pub fn trigger_window(&self) -> Option<Trigger> {
        let first_event = self.events.iter().map(Event::at_h).reduce(f64::min);
        let start_h = self
            .trigger_start_h
            .or(first_event)
            .or(self.trigger_end_h.map(|_| 0.0))?;
        let label = self.trigger.clone().unwrap_or_else(|| {
            let mut kinds: Vec<&str> = Vec::new();
            for e in &self.events {
                if !kinds.contains(&e.kind_name()) {
                    kinds.push(e.kind_name());
                }
            }
            if kinds.is_empty() {
                "trigger".to_owned()
            } else {
                kinds.join(" + ")
            }
        });
        Some(Trigger {
            label,
            start_h,
            end_h: self.trigger_end_h,
        })
    }

    /// Parses a scenario from TOML text and checks it.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Scenario {
            message: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// A built-in scenario by name, or a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<Scenario, SimError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::from_toml(text);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|e| SimError::Io {
            path: name_or_path.to_owned(),
            message: format!(
                "{e}; built-in scenarios are: {}",
                BUILTIN.map(|(n, _)| n).join(", ")
            ),
        })?;
        Scenario::from_toml(&text)
    }

    /// The same scenario on a smaller (or larger) fleet. The retry budget's
    /// capacity and the breaker's threshold are fleet-wide counters, so they
    /// scale with the number of dynos (never below 50 and 3). An event's
    /// range of hosts or apps wider than one is a share of the fleet
    /// ("5% of the hosts crash") and scales with it, never to nothing; a
    /// range of one names that host or app (`app0`'s bad release) and
    /// stays.
    #[must_use]
    pub fn with_fleet(mut self, hosts: u32, apps: u32, dynos: u64) -> Scenario {
        let host_ratio = f64::from(hosts) / f64::from(self.fleet.hosts.max(1));
        let app_ratio = f64::from(apps) / f64::from(self.fleet.apps.max(1));
        for e in &mut self.events {
            match e {
                Event::HostCrash { hosts: r, .. } | Event::Partition { hosts: r, .. } => {
                    *r = scale_range(*r, host_ratio);
                }
                Event::CrashLoop { apps: r, .. } | Event::BadRelease { apps: r, .. } => {
                    *r = scale_range(*r, app_ratio);
                }
                Event::ManagerRestart { .. } => {}
            }
        }
        let ratio = dynos as f64 / self.fleet.dynos.max(1) as f64;
        let scale = |v: f64, min: f64| (v * ratio).round().max(min);
        self.core.budget_capacity = scale(f64::from(self.core.budget_capacity), 50.0) as u32;
        self.core.breaker_failure_threshold =
            scale(f64::from(self.core.breaker_failure_threshold), 3.0).min(f64::from(u16::MAX))
                as u16;
        self.fleet.hosts = hosts;
        self.fleet.apps = apps;
        self.fleet.dynos = dynos;
        self
    }

    /// The same story told `factor` times faster: every time of the
    /// timeline (hours) is divided by `factor` and the crash rate multiplied
    /// by it, so each phase sees as many boots; the core's timing is kept.
    #[must_use]
    pub fn compressed(mut self, factor: f64) -> Scenario {
        let f = if factor > 0.0 { factor } else { 1.0 };
        self.duration_h /= f;
        self.fleet.warmup_h /= f;
        self.drift_start_h = self.drift_start_h.map(|h| h / f);
        self.trigger_end_h = self.trigger_end_h.map(|h| h / f);
        self.trigger_start_h = self.trigger_start_h.map(|h| h / f);
        self.host.crash_per_dyno_day *= f;
        for curve in [
            &mut self.curves.load,
            &mut self.curves.fsync,
            &mut self.curves.boot_shift_ms,
        ] {
            for p in curve.iter_mut() {
                p[0] /= f;
            }
        }
        for e in &mut self.events {
            match e {
                Event::HostCrash { at_h, .. }
                | Event::ManagerRestart { at_h }
                | Event::BadRelease { at_h, .. } => *at_h /= f,
                Event::Partition { at_h, until_h, .. } | Event::CrashLoop { at_h, until_h, .. } => {
                    *at_h /= f;
                    *until_h /= f;
                }
            }
        }
        self
    }

    fn validate(&self) -> Result<(), SimError> {
        let bad = |message: &str| {
            Err(SimError::Scenario {
                message: message.to_owned(),
            })
        };
        let f = &self.fleet;
        if f.hosts == 0 || f.hosts > u32::from(u16::MAX) {
            return bad("fleet.hosts must be within 1..=65535");
        }
        if f.apps == 0 {
            return bad("fleet.apps must be at least 1");
        }
        if !(0.0..=1.0).contains(&f.singleton_share) {
            return bad("fleet.singleton_share must be within 0..=1");
        }
        if self.duration_h.is_nan() || self.duration_h <= 0.0 {
            return bad("duration_h must be positive");
        }
        if self.sample_ms == 0 || self.manager_tick_ms == 0 {
            return bad("sample_ms and manager_tick_ms must be positive");
        }
        self.core_config()
            .validate()
            .map_err(|e| SimError::Scenario {
                message: format!("core settings: {e}"),
            })?;
        Ok(())
    }

    /// Number of apps that run a singleton `clock`.
    #[must_use]
    pub fn singleton_apps(&self) -> u32 {
        (f64::from(self.fleet.apps) * self.fleet.singleton_share).round() as u32
    }

    /// Whether app `app` runs a clock: spread evenly over the apps.
    #[must_use]
    pub fn app_has_clock(&self, app: u32) -> bool {
        let n = u64::from(self.singleton_apps());
        let apps = u64::from(self.fleet.apps);
        // App i has a clock when floor((i+1)n/apps) > floor(i n/apps).
        let i = u64::from(app);
        (i + 1) * n / apps > i * n / apps
    }

    /// The fleet-wide baseline's one probe cool-down in ticks:
    /// `probe_cooldown_ms`, scaled by `probe_cooldown_ref_dynos /
    /// fleet.dynos` when the reference is set, never below one tick. With
    /// an empty bucket, launches are funded only by probe credits and their
    /// refills, at most about `(1 / cooldown) / (1 - r)` per second
    /// fleet-wide; scaling the cool-down keeps that ceiling in proportion to
    /// the fleet (and so above its normal crash rate).
    #[must_use]
    pub fn fleet_wide_probe_cooldown_ticks(&self) -> u64 {
        let c = &self.core;
        let ms = match c.probe_cooldown_ref_dynos {
            Some(r) if r > 0 && self.fleet.dynos > 0 => {
                (c.probe_cooldown_ms as f64 * r as f64 / self.fleet.dynos as f64).round() as u64
            }
            _ => c.probe_cooldown_ms,
        };
        ticks(ms).max(1)
    }

    /// One app's bucket capacity under per-app budgets.
    #[must_use]
    pub fn app_budget_capacity(&self) -> u32 {
        let c = &self.core;
        c.app_budget_capacity
            .unwrap_or_else(|| c.budget_capacity.div_ceil(self.fleet.apps.max(1)).max(5))
    }

    /// One app's breaker threshold under per-app breakers.
    #[must_use]
    pub fn app_breaker_failure_threshold(&self) -> u16 {
        let c = &self.core;
        let apps = u16::try_from(self.fleet.apps.max(1)).unwrap_or(u16::MAX);
        c.app_breaker_failure_threshold
            .unwrap_or_else(|| c.breaker_failure_threshold.div_ceil(apps).max(3))
    }

    /// The core configuration of the `tally` policy: process types for the
    /// fleet (desired counts start at zero; the warm-up scales them up),
    /// settings from `[core]`, with per-app budgets and breakers (each app's
    /// probe credit every `probe_cooldown_ms`). The other policies change
    /// it ([`crate::Policy::configure`]).
    #[must_use]
    pub fn core_config(&self) -> Config {
        let c = &self.core;
        let apps = u64::from(self.fleet.apps.max(1));
        let mut process_types = Vec::new();
        for app in 0..self.fleet.apps {
            let share =
                self.fleet.dynos / apps + u64::from(u64::from(app) < self.fleet.dynos % apps);
            let count = u16::try_from(share).unwrap_or(u16::MAX);
            process_types.push(ProcessTypeConfig {
                app: format!("app{app}"),
                name: "web".into(),
                kind: ProcessKind::Scalable,
                count_initial: 0,
                count_max: count,
            });
            if self.app_has_clock(app) {
                process_types.push(ProcessTypeConfig {
                    app: format!("app{app}"),
                    name: "clock".into(),
                    kind: ProcessKind::Singleton,
                    count_initial: 0,
                    count_max: 1,
                });
            }
        }
        Config {
            process_types,
            timing: Timing {
                lease_ticks: ticks(c.lease_ms),
                drift_ppm: c.drift_ppm,
                margin_ticks: ticks(c.margin_ms),
                kill_ticks: ticks(c.kill_ms),
                report_interval_ticks: ticks(c.report_interval_ms),
                report_delivery_ticks: ticks(c.report_delivery_ms),
                boot_ticks: ticks(c.boot_ms),
                boot_timeout_ticks: ticks(c.boot_timeout_ms),
                unknown_after_ticks: ticks(c.unknown_after_ms),
            },
            budget: BudgetConfig {
                capacity: self.app_budget_capacity(),
                refill_per_boot_milli: c.refill_per_boot_milli,
                probe_cooldown_ticks: ticks(c.app_probe_cooldown_ms.unwrap_or(c.probe_cooldown_ms))
                    .max(1),
                backoff_base_ticks: ticks(c.backoff_base_ms),
                backoff_max_ticks: ticks(c.backoff_max_ms),
                jitter_max_ticks: ticks(c.jitter_max_ms),
            },
            boots_in_flight_max: c.boots_in_flight_max,
            breaker: BreakerConfig {
                window_ticks: ticks(c.breaker_window_ms),
                failure_threshold: self.app_breaker_failure_threshold(),
                cooldown_ticks: ticks(c.breaker_cooldown_ms),
                fleet_app_share_milli: c.fleet_app_share_milli,
            },
            seed: self.seed,
            leadership: None,
            mutations: Mutations::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_validates() {
        for (name, text) in BUILTIN {
            let s = Scenario::from_toml(text);
            assert!(s.is_ok(), "{name}: {s:?}");
        }
    }

    #[test]
    fn curve_interpolates_and_holds() {
        let c = [[1.0, 10.0], [2.0, 20.0]];
        assert_eq!(curve_at(&c, 0, 0.0), 10.0);
        assert_eq!(curve_at(&c, ms_from_h(1.5), 0.0), 15.0);
        assert_eq!(curve_at(&c, ms_from_h(3.0), 0.0), 20.0);
        assert_eq!(curve_at(&[], 5, 1.0), 1.0);
    }

    #[test]
    fn a_smaller_fleet_keeps_each_events_share_and_named_apps() {
        let load = |name| match Scenario::load(name) {
            Ok(s) => s.with_fleet(20, 40, 2000),
            Err(e) => unreachable!("{e}"),
        };
        let ranges = |s: &Scenario| -> Vec<[u32; 2]> {
            s.events
                .iter()
                .filter_map(|e| match e {
                    Event::HostCrash { hosts, .. } | Event::Partition { hosts, .. } => Some(*hosts),
                    Event::CrashLoop { apps, .. } | Event::BadRelease { apps, .. } => Some(*apps),
                    Event::ManagerRestart { .. } => None,
                })
                .collect()
        };
        // 5% of 10,000 hosts, twice: one host of 20 each.
        assert_eq!(ranges(&load("host-crash-wave")), [[0, 1], [1, 2]]);
        // A tenth of the hosts, of the apps.
        assert_eq!(ranges(&load("partition")), [[0, 2]]);
        assert_eq!(ranges(&load("crash-loop")), [[0, 4]]);
        // app0 and app1 by name.
        assert_eq!(ranges(&load("noisy-neighbour")), [[0, 1], [1, 2]]);
    }

    #[test]
    fn the_trigger_is_named_and_placed() {
        let load = |name| match Scenario::load(name) {
            Ok(s) => s.trigger_window(),
            Err(e) => unreachable!("{e}"),
        };
        let t = load("incident-2012");
        assert_eq!(t.as_ref().map(|t| t.start_h), Some(14.0));
        assert_eq!(t.as_ref().and_then(|t| t.end_h), Some(20.0));
        let t = load("host-crash-wave");
        assert_eq!(t.as_ref().map(|t| t.start_h), Some(3.0), "the first event");
        let t = load("noisy-neighbour");
        assert_eq!(t.as_ref().and_then(|t| t.end_h), None, "never removed");
        let Ok(mut s) = Scenario::load("partition") else {
            unreachable!("built-in")
        };
        s.trigger = None;
        let t = s.compressed(2.0).trigger_window();
        assert_eq!(t.as_ref().map(|t| t.label.as_str()), Some("partition"));
        assert_eq!(t.as_ref().map(|t| t.start_h), Some(1.5));
    }

    #[test]
    fn singleton_share_spreads_clocks() {
        let Ok(s) = Scenario::load("incident-2012") else {
            unreachable!("built-in scenario")
        };
        let s = s.with_fleet(10, 10, 100);
        let clocks = (0..10).filter(|a| s.app_has_clock(*a)).count();
        assert_eq!(clocks as u32, s.singleton_apps());
    }

    #[test]
    fn fleet_wide_probe_cooldown_scales_with_the_fleet() {
        let Ok(s) = Scenario::load("incident-2012") else {
            unreachable!("built-in scenario")
        };
        // Full scale: 10 s at 2,000 dynos is 20 ms at 1,000,000: one tick.
        assert_eq!(s.fleet_wide_probe_cooldown_ticks(), 1);
        assert_eq!(
            s.clone()
                .with_fleet(20, 200, 2000)
                .fleet_wide_probe_cooldown_ticks(),
            100
        );
        assert_eq!(
            s.clone()
                .with_fleet(200, 180, 20_000)
                .fleet_wide_probe_cooldown_ticks(),
            10
        );
        // Per-app budgets: each app's own cool-down, whatever the fleet.
        assert_eq!(s.core_config().budget.probe_cooldown_ticks, 6000);
        let mut fixed = s.with_fleet(20, 200, 2000);
        fixed.core.probe_cooldown_ref_dynos = None;
        assert_eq!(
            fixed
                .with_fleet(10, 10, 100)
                .fleet_wide_probe_cooldown_ticks(),
            100
        );
    }
}
