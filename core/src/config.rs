//! The configuration of a Tally deployment, and its validation.
//!
//! Config is passed into every `step`, never stored in the state: the model
//! checker hashes states, and a config copied into each would only slow it.

use crate::ids::{AppId, TypeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Whether a process type tolerates two running instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessKind {
    /// At most one running instance, ever (clock, scheduler).
    Singleton,
    /// Any number of instances (web, worker); may be replaced early.
    Scalable,
}

/// One process type of one app.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessTypeConfig {
    /// The app this type belongs to.
    pub app: String,
    /// The type's name in the Procfile (`web`, `clock`).
    pub name: String,
    /// Singleton or scalable.
    pub kind: ProcessKind,
    /// Desired count at start.
    pub count_initial: u16,
    /// The largest count a user may ask for.
    pub count_max: u16,
}

/// Clock-related settings; all durations in ticks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Lease length `duration`, measured by the agent from its request's send time.
    pub lease_ticks: u64,
    /// Bound on relative clock drift, in parts per million.
    pub drift_ppm: u32,
    /// Extra manager-side wait after `duration * (1 + drift)`; must cover a kill.
    pub margin_ticks: u64,
    /// Time an agent needs to kill a process (grace period plus SIGKILL).
    pub kill_ticks: u64,
    /// How often an agent reports its inventory (and asks for leases).
    pub report_interval_ticks: u64,
    /// Bound on a report's delivery once faults stop.
    pub report_delivery_ticks: u64,
    /// Expected boot time once faults stop.
    pub boot_ticks: u64,
    /// A boot not reported up within this long is timed out.
    pub boot_timeout_ticks: u64,
    /// An `Up` instance not renewed for this long is shown `Unknown`.
    pub unknown_after_ticks: u64,
}

/// The retry budget: a token bucket refilled by successful boots.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Bucket capacity `B`, in whole relaunches.
    pub capacity: u32,
    /// Refill ratio `r` per successful boot, in thousandths (`r < 1`).
    pub refill_per_boot_milli: u32,
    /// One probe relaunch credit per cool-down, independent of the breaker.
    pub probe_cooldown_ticks: u64,
    /// First backoff delay of a slot's relaunch.
    pub backoff_base_ticks: u64,
    /// Largest backoff delay.
    pub backoff_max_ticks: u64,
    /// Jitter added to each backoff, drawn from the manager's seed.
    pub jitter_max_ticks: u64,
}

/// The automatic breaker over boot failures and timeouts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Length of the counting window.
    pub window_ticks: u64,
    /// Failures within one window that open the breaker.
    pub failure_threshold: u16,
    /// Time open before half-opening with a single probe.
    pub cooldown_ticks: u64,
    /// The fleet breaker trips when this share of the apps (in
    /// thousandths, and never fewer than two apps) has boots failing within
    /// one window: a cause shared by many apps, as in 2012, never one app's
    /// bad release. Above 1000, more apps than there are: it never trips by
    /// itself. See [`Config::fleet_breaker_threshold`].
    #[serde(default = "default_fleet_app_share_milli")]
    pub fleet_app_share_milli: u32,
}

/// More than one manager on a store (DESIGN.md, "More than one manager"):
/// the store's leader lease, from which the leadership guard is derived.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadershipConfig {
    /// The store lease's TTL: the leader key lapses this long after the
    /// store last heard a keep-alive (measured by the store).
    pub lease_ticks: u64,
    /// Slack between the end of the guard (in real time, drift included)
    /// and the store lease's end: the guard satisfies
    /// `guard * (1 + drift) + margin < lease`.
    pub margin_ticks: u64,
}

/// A quarter of the apps failing at once is a shared cause.
fn default_fleet_app_share_milli() -> u32 {
    250
}

/// A switch that re-creates a 2012 bug or an unsafe shortcut of DESIGN.md.
///
/// Each one must be refuted by the model checker; none is ever on in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mutation {
    /// A boot timeout marks the instance `Stopped` (2012).
    TimeoutFreesSlot,
    /// No retry budget at all (2012).
    UnboundedRetries,
    /// Agents keep instances past their lease (2012).
    NoSelfFencing,
    /// Agents ignore generations (2012).
    TrustLateMessages,
    /// Agents refuse only generations below the highest seen (shortcut 1).
    RefuseOnlyOlder,
    /// A stop of a never-started instance leaves no tombstone (shortcut 2).
    StopWithoutTombstone,
    /// An instance missing from a report is taken as dead (shortcut 3).
    AbsenceConfirmsDeath,
    /// The first lease runs from the launch's receipt (shortcut 4).
    LeaseFromReceipt,
    /// Journal compaction drops per-slot high-water generations (shortcut 5).
    JournalForgetsGenerations,
    /// A restarted manager refills the bucket (shortcut 6).
    BudgetNotJournaled,
    /// The manager expires a lease after `duration` alone.
    ExpiryIgnoresDrift,
    /// A report renews every instance on the host (shortcut 8).
    HostWideRenewal,
    /// No probe credit: only the breaker's half-open probe.
    BreakerProbeOnly,
    /// A restarted manager finds a fresh probe credit (shortcut 9).
    ProbeNotJournaled,
    /// Every return to `Up` refills the budget (shortcut 10).
    RefillOnRevive,
    /// Admission counts only `Launching` instances (shortcut 11).
    AdmissionCountsLaunching,
    /// An open breaker never half-opens.
    BreakerNeverHalfOpens,
    /// The manager's expiry margin covers drift but not the kill (shortcut 7).
    MarginIgnoresKill,
    /// One bucket and one probe credit for every app: a broken app drains
    /// the relaunches of the healthy ones.
    FleetWideBudget,
    /// The fleet-wide breaker of before apps were isolated: the fleet
    /// breaker counts failures (against `failure_threshold`), not distinct
    /// failing apps, and no app has a breaker of its own; one broken app
    /// trips it and stops every app's launches.
    BreakerCountsOneApp,
    /// A journal append without the term compare: a paused old leader's
    /// append commits after a new leader took over (HA rule 1).
    UnfencedAppend,
    /// A leader acts until an append fails, without a guard: it renews
    /// leases after its store lease expired (HA rule 2).
    UnguardedLeader,
    /// A new leader trusts the ledger it took over: instances are leased
    /// only until the takeover, not a full expiry from it (HA rule 3).
    TakeoverTrustsLedger,
    /// A fenced append restarts the guard, though it does not extend the
    /// store lease (HA rule 2).
    GuardFromAppend,
    /// The guard is `lease - margin` of the manager's own clock, without
    /// the drift factor (HA rule 2).
    GuardIgnoresDrift,
}

impl Mutation {
    /// Every mutation, in declaration order.
    pub const ALL: [Mutation; 25] = [
        Mutation::TimeoutFreesSlot,
        Mutation::UnboundedRetries,
        Mutation::NoSelfFencing,
        Mutation::TrustLateMessages,
        Mutation::RefuseOnlyOlder,
        Mutation::StopWithoutTombstone,
        Mutation::AbsenceConfirmsDeath,
        Mutation::LeaseFromReceipt,
        Mutation::JournalForgetsGenerations,
        Mutation::BudgetNotJournaled,
        Mutation::ExpiryIgnoresDrift,
        Mutation::HostWideRenewal,
        Mutation::BreakerProbeOnly,
        Mutation::ProbeNotJournaled,
        Mutation::RefillOnRevive,
        Mutation::AdmissionCountsLaunching,
        Mutation::BreakerNeverHalfOpens,
        Mutation::MarginIgnoresKill,
        Mutation::FleetWideBudget,
        Mutation::BreakerCountsOneApp,
        Mutation::UnfencedAppend,
        Mutation::UnguardedLeader,
        Mutation::TakeoverTrustsLedger,
        Mutation::GuardFromAppend,
        Mutation::GuardIgnoresDrift,
    ];

    /// The switch's name on the command line (`timeout-frees-slot`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Mutation::TimeoutFreesSlot => "timeout-frees-slot",
            Mutation::UnboundedRetries => "unbounded-retries",
            Mutation::NoSelfFencing => "no-self-fencing",
            Mutation::TrustLateMessages => "trust-late-messages",
            Mutation::RefuseOnlyOlder => "refuse-only-older",
            Mutation::StopWithoutTombstone => "stop-without-tombstone",
            Mutation::AbsenceConfirmsDeath => "absence-confirms-death",
            Mutation::LeaseFromReceipt => "lease-from-receipt",
            Mutation::JournalForgetsGenerations => "journal-forgets-generations",
            Mutation::BudgetNotJournaled => "budget-not-journaled",
            Mutation::ExpiryIgnoresDrift => "expiry-ignores-drift",
            Mutation::HostWideRenewal => "host-wide-renewal",
            Mutation::BreakerProbeOnly => "breaker-probe-only",
            Mutation::ProbeNotJournaled => "probe-not-journaled",
            Mutation::RefillOnRevive => "refill-on-revive",
            Mutation::AdmissionCountsLaunching => "admission-counts-launching",
            Mutation::BreakerNeverHalfOpens => "breaker-never-half-opens",
            Mutation::MarginIgnoresKill => "margin-ignores-kill",
            Mutation::FleetWideBudget => "fleet-wide-budget",
            Mutation::BreakerCountsOneApp => "breaker-counts-one-app",
            Mutation::UnfencedAppend => "unfenced-append",
            Mutation::UnguardedLeader => "unguarded-leader",
            Mutation::TakeoverTrustsLedger => "takeover-trusts-ledger",
            Mutation::GuardFromAppend => "guard-from-append",
            Mutation::GuardIgnoresDrift => "guard-ignores-drift",
        }
    }

    /// Parses a switch name; the error lists the valid names.
    pub fn from_name(name: &str) -> Result<Mutation, ConfigError> {
        Mutation::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| ConfigError::UnknownMutation {
                name: name.to_owned(),
                valid: Mutation::ALL.map(Mutation::name).join(", "),
            })
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

// Every switch has a bit of the `u32` set, and `ALL` lists each one in the
// order of its discriminant (so `ALL.len()` is the next discriminant).
const _: () = assert!(Mutation::ALL.len() <= u32::BITS as usize);
const _: () = assert!(Mutation::GuardIgnoresDrift as usize + 1 == Mutation::ALL.len());

impl std::fmt::Display for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of mutations, as a bit set so that configs stay small and `Copy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<Mutation>", into = "Vec<Mutation>")]
pub struct Mutations(u32);

impl Mutations {
    /// No mutation: the shipped behaviour.
    pub const NONE: Mutations = Mutations(0);

    /// Whether `m` is switched on.
    #[must_use]
    pub fn has(self, m: Mutation) -> bool {
        self.0 & m.bit() != 0
    }

    /// This set with `m` switched on.
    #[must_use]
    pub fn with(self, m: Mutation) -> Mutations {
        Mutations(self.0 | m.bit())
    }

    /// Whether no mutation is on.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The switched-on mutations, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Mutation> {
        Mutation::ALL.into_iter().filter(move |m| self.has(*m))
    }
}

impl From<Vec<Mutation>> for Mutations {
    fn from(v: Vec<Mutation>) -> Self {
        v.into_iter().fold(Mutations::NONE, Mutations::with)
    }
}

impl From<Mutations> for Vec<Mutation> {
    fn from(m: Mutations) -> Self {
        m.iter().collect()
    }
}

/// Everything the manager and the agents need to know about the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process types, indexed by `TypeId`.
    pub process_types: Vec<ProcessTypeConfig>,
    /// Lease, boot and report timing.
    pub timing: Timing,
    /// Retry budget and backoff.
    pub budget: BudgetConfig,
    /// Per-host admission `K`: boots in flight at most.
    pub boots_in_flight_max: u16,
    /// The automatic breaker.
    pub breaker: BreakerConfig,
    /// Seed of the manager's jitter generator.
    pub seed: u64,
    /// More than one manager on a store: the leader lease and the guard
    /// derived from it. `None`: one manager with a local journal, which
    /// always leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leadership: Option<LeadershipConfig>,
    /// Unsafe switches, for the checker only.
    #[serde(default)]
    pub mutations: Mutations,
}

/// Limits on what the core grows; each has a test at the maximum.
pub mod limits {
    /// Process types in one deployment.
    pub const PROCESS_TYPES_MAX: usize = 1024;
    /// Largest desired count of one process type.
    pub const COUNT_MAX: u16 = 10_000;
    /// Instances an agent tracks at once; launches past it are refused.
    pub const AGENT_INSTANCES_MAX: usize = 4096;
    /// Exit notices an agent holds between two reports.
    pub const AGENT_EXITS_MAX: usize = 4096;
    /// Instances one report may list; longer reports are truncated by the agent.
    pub const REPORT_INSTANCES_MAX: usize = 4096;

    // A report lists every instance its agent tracks: none is left out of
    // a report (and so unrenewed) for want of room.
    const _: () = assert!(REPORT_INSTANCES_MAX >= AGENT_INSTANCES_MAX);
}

/// A configuration that cannot run safely, with what to change.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The formation is empty.
    #[error("no process types are configured: add at least one")]
    NoProcessTypes,
    /// Too many process types.
    #[error("{count} process types configured, at most {max} are supported")]
    TooManyProcessTypes {
        /// Types configured.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two types share `app` and `name`.
    #[error("process type {app}/{name} is configured twice")]
    DuplicateProcessType {
        /// App name.
        app: String,
        /// Type name.
        name: String,
    },
    /// A singleton allowed more than one instance.
    #[error("singleton {app}/{name} has count_max {count_max}: a singleton runs at most 1")]
    SingletonAboveOne {
        /// App name.
        app: String,
        /// Type name.
        name: String,
        /// Configured maximum.
        count_max: u16,
    },
    /// An initial count above the maximum.
    #[error("{app}/{name}: count_initial {initial} exceeds count_max {max}")]
    InitialAboveMax {
        /// App name.
        app: String,
        /// Type name.
        name: String,
        /// Initial count.
        initial: u16,
        /// Maximum count.
        max: u16,
    },
    /// A count above the global limit.
    #[error("{app}/{name}: count_max {max} exceeds the limit {limit}")]
    CountAboveLimit {
        /// App name.
        app: String,
        /// Type name.
        name: String,
        /// Configured maximum.
        max: u16,
        /// The limit.
        limit: u16,
    },
    /// A setting that must be positive is zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// The setting.
        field: &'static str,
    },
    /// The refill ratio is not below one.
    #[error(
        "budget.refill_per_boot_milli is {value}: it must be below 1000 (r < 1) or retries are unbounded"
    )]
    RefillNotBelowOne {
        /// Configured value.
        value: u32,
    },
    /// The margin does not cover a kill (DESIGN.md shortcut 7).
    #[error(
        "timing.margin_ticks ({margin}) must be at least timing.kill_ticks ({kill}): the margin covers the kill"
    )]
    MarginBelowKill {
        /// Configured margin.
        margin: u64,
        /// Configured kill time.
        kill: u64,
    },
    /// Every timely boot would race its own timeout.
    #[error(
        "timing.boot_timeout_ticks ({timeout}) must exceed boot_ticks + report_interval_ticks + report_delivery_ticks ({needed})"
    )]
    BootTimeoutTooShort {
        /// Configured timeout.
        timeout: u64,
        /// Lower bound (exclusive).
        needed: u64,
    },
    /// No first lease could ever be long enough to start an instance.
    #[error(
        "timing.lease_ticks ({lease}) must exceed report_interval_ticks + report_delivery_ticks ({needed})"
    )]
    LeaseTooShort {
        /// Configured lease.
        lease: u64,
        /// Lower bound (exclusive).
        needed: u64,
    },
    /// Backoff bounds out of order.
    #[error("budget.backoff_base_ticks ({base}) exceeds budget.backoff_max_ticks ({max})")]
    BackoffOutOfOrder {
        /// Base delay.
        base: u64,
        /// Maximum delay.
        max: u64,
    },
    /// The store lease leaves no room for a guard.
    #[error(
        "leadership.lease_ticks ({lease}) is too short: no guard g >= 1 satisfies g * (1 + drift) + margin ({margin}) < lease; lengthen the store lease"
    )]
    LeadershipLeaseTooShort {
        /// The store lease.
        lease: u64,
        /// The configured margin.
        margin: u64,
    },
    /// An unknown mutation name.
    #[error("unknown mutation `{name}`; valid mutations: {valid}")]
    UnknownMutation {
        /// The name given.
        name: String,
        /// The valid names.
        valid: String,
    },
}

impl Config {
    /// Checks every rule a safe deployment needs; the first broken one is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_types()?;
        let t = &self.timing;
        for (field, value) in [
            ("timing.lease_ticks", t.lease_ticks),
            ("timing.report_interval_ticks", t.report_interval_ticks),
            ("timing.boot_timeout_ticks", t.boot_timeout_ticks),
            (
                "budget.probe_cooldown_ticks",
                self.budget.probe_cooldown_ticks,
            ),
            ("breaker.window_ticks", self.breaker.window_ticks),
            ("breaker.cooldown_ticks", self.breaker.cooldown_ticks),
            ("boots_in_flight_max", u64::from(self.boots_in_flight_max)),
            (
                "breaker.failure_threshold",
                u64::from(self.breaker.failure_threshold),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.budget.refill_per_boot_milli >= 1000 {
            return Err(ConfigError::RefillNotBelowOne {
                value: self.budget.refill_per_boot_milli,
            });
        }
        if t.margin_ticks < t.kill_ticks {
            return Err(ConfigError::MarginBelowKill {
                margin: t.margin_ticks,
                kill: t.kill_ticks,
            });
        }
        let report = t
            .report_interval_ticks
            .saturating_add(t.report_delivery_ticks);
        let needed = t.boot_ticks.saturating_add(report);
        if t.boot_timeout_ticks <= needed {
            return Err(ConfigError::BootTimeoutTooShort {
                timeout: t.boot_timeout_ticks,
                needed,
            });
        }
        if t.lease_ticks <= report {
            return Err(ConfigError::LeaseTooShort {
                lease: t.lease_ticks,
                needed: report,
            });
        }
        if let Some(l) = &self.leadership
            && self.leadership_guard_ticks() == Some(0)
        {
            return Err(ConfigError::LeadershipLeaseTooShort {
                lease: l.lease_ticks,
                margin: l.margin_ticks,
            });
        }
        if self.budget.backoff_base_ticks > self.budget.backoff_max_ticks {
            return Err(ConfigError::BackoffOutOfOrder {
                base: self.budget.backoff_base_ticks,
                max: self.budget.backoff_max_ticks,
            });
        }
        Ok(())
    }

    fn validate_types(&self) -> Result<(), ConfigError> {
        if self.process_types.is_empty() {
            return Err(ConfigError::NoProcessTypes);
        }
        if self.process_types.len() > limits::PROCESS_TYPES_MAX {
            return Err(ConfigError::TooManyProcessTypes {
                count: self.process_types.len(),
                max: limits::PROCESS_TYPES_MAX,
            });
        }
        for (i, p) in self.process_types.iter().enumerate() {
            let dup = self.process_types.iter().take(i);
            if dup.into_iter().any(|q| q.app == p.app && q.name == p.name) {
                return Err(ConfigError::DuplicateProcessType {
                    app: p.app.clone(),
                    name: p.name.clone(),
                });
            }
            if p.kind == ProcessKind::Singleton && p.count_max > 1 {
                return Err(ConfigError::SingletonAboveOne {
                    app: p.app.clone(),
                    name: p.name.clone(),
                    count_max: p.count_max,
                });
            }
            if p.count_max > limits::COUNT_MAX {
                return Err(ConfigError::CountAboveLimit {
                    app: p.app.clone(),
                    name: p.name.clone(),
                    max: p.count_max,
                    limit: limits::COUNT_MAX,
                });
            }
            if p.count_initial > p.count_max {
                return Err(ConfigError::InitialAboveMax {
                    app: p.app.clone(),
                    name: p.name.clone(),
                    initial: p.count_initial,
                    max: p.count_max,
                });
            }
        }
        Ok(())
    }

    /// Manager-side wait after a grant before a lease is certainly expired:
    /// `duration * (1 + drift) + margin`, or `duration` alone under
    /// `expiry-ignores-drift`, or without the margin under
    /// `margin-ignores-kill`.
    #[must_use]
    pub fn lease_expiry_ticks(&self) -> u64 {
        let t = &self.timing;
        if self.mutations.has(Mutation::ExpiryIgnoresDrift) {
            return t.lease_ticks;
        }
        let margin = if self.mutations.has(Mutation::MarginIgnoresKill) {
            0
        } else {
            t.margin_ticks
        };
        t.lease_ticks
            .saturating_add(self.drift_ticks_per_lease())
            .saturating_add(margin)
    }

    /// `ceil(ticks * drift)`: how far a clock may fall behind real time
    /// while it measures `ticks`.
    #[must_use]
    pub fn drift_ticks_over(&self, ticks: u64) -> u64 {
        let ppm = u64::from(self.timing.drift_ppm);
        // In `u64` when it fits (a 128-bit division is slow, and this is
        // asked on every renewal); the same value either way.
        if let Some(scaled) = ticks.checked_mul(ppm) {
            return scaled.div_ceil(1_000_000);
        }
        let scaled = u128::from(ticks) * u128::from(ppm);
        u64::try_from(scaled.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    /// The leadership guard (DESIGN.md, HA rule 2): a leader processes an
    /// input only within this many ticks of its own clock since the send
    /// time of its last confirmation. The largest `g` with
    /// `g + ceil(g * drift) + margin < lease`, so that the guard ends, in
    /// real time, before the store lease can lapse; `lease - margin - 1`
    /// under `guard-ignores-drift`. `None` without a store (one manager
    /// always leads); `Some(0)` when the lease is too short (refused by
    /// validation).
    #[must_use]
    pub fn leadership_guard_ticks(&self) -> Option<u64> {
        let l = self.leadership.as_ref()?;
        let room = l.lease_ticks.saturating_sub(l.margin_ticks);
        // `g + drift(g) < room`, the largest such g.
        let fits = |g: u64| g.saturating_add(self.drift_ticks_over(g)) < room;
        let mut g = room.saturating_sub(1);
        if self.mutations.has(Mutation::GuardIgnoresDrift) {
            return Some(g);
        }
        // drift(g) <= g for any drift below 100%, so this ends quickly for
        // the drifts a deployment has; a search keeps it exact.
        let mut lo = 0;
        while lo < g {
            let mid = lo + (g - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                g = mid - 1;
            }
        }
        Some(lo)
    }

    /// `ceil(duration * drift)`: how far an agent's clock may fall behind
    /// during one lease.
    #[must_use]
    pub fn drift_ticks_per_lease(&self) -> u64 {
        self.drift_ticks_over(self.timing.lease_ticks)
    }

    /// One report interval plus the report's delivery: an instance starts
    /// only if strictly more of its first lease remains.
    #[must_use]
    pub fn first_lease_min_ticks(&self) -> u64 {
        self.timing
            .report_interval_ticks
            .saturating_add(self.timing.report_delivery_ticks)
    }

    /// `T(cfg)`, the recovery bound: once faults stop (and commands with
    /// them), every slot has its desired count of instances up, and nothing
    /// else runs, within this many ticks. The model checker proves it for
    /// each configuration it checks (DESIGN.md, L1); this is its one
    /// definition. Derived phase by phase, each a worst case:
    ///
    /// 1. *Settle*: every instance launched before the faults stopped is
    ///    either alive and renewed or out of the ledger within
    ///    `lease_expiry_ticks` (its last grant, or a restart, came before);
    ///    the last boot timeout of such a launch comes within
    ///    `boot_timeout_ticks`, and the breaker it may open half-opens
    ///    `cooldown_ticks` later, while the backoff it sets ends within
    ///    `backoff_max_ticks + jitter_max_ticks`. A stop sent then takes
    ///    `kill_ticks`.
    /// 2. *First report*: launches ride on replies, so one report interval.
    /// 3. *Relaunch, slot by slot*: each of the `N` slots (every type at its
    ///    `count_max`) may have to wait for a probe credit
    ///    (`probe_cooldown_ticks`, when the budget is empty) or for the boot
    ///    before it on its host to be confirmed (`boots_in_flight_max` ends
    ///    there; a first launch that placement leaves to other hosts waits
    ///    the same on a host below its share, which some live host is
    ///    while a slot of the formation is vacant): the reply's delivery,
    ///    the boot, the next report and its delivery. Sequential, so it
    ///    holds for any number of hosts.
    #[must_use]
    pub fn recovery_bound_ticks(&self) -> u64 {
        let t = &self.timing;
        let b = &self.budget;
        let after_timeout = self
            .breaker
            .cooldown_ticks
            .max(b.backoff_max_ticks.saturating_add(b.jitter_max_ticks));
        let settle = self
            .lease_expiry_ticks()
            .max(t.boot_timeout_ticks.saturating_add(after_timeout))
            .saturating_add(t.kill_ticks);
        let boot_cycle = t
            .report_delivery_ticks
            .saturating_mul(2)
            .saturating_add(t.boot_ticks)
            .saturating_add(t.report_interval_ticks);
        let slots: u64 = self
            .process_types
            .iter()
            .map(|p| u64::from(p.count_max))
            .sum();
        // With a store, the leader may be gone when faults stop: a standby
        // takes over once its store lease lapses, and then settles as a
        // restarted manager does (every lease a full expiry from then).
        let takeover = self.leadership.as_ref().map_or(0, |l| l.lease_ticks);
        settle
            .saturating_add(takeover)
            .saturating_add(t.report_interval_ticks)
            .saturating_add(slots.saturating_mul(b.probe_cooldown_ticks.max(boot_cycle)))
    }

    /// The process type `id`, if configured.
    #[must_use]
    pub fn process_type(&self, id: TypeId) -> Option<&ProcessTypeConfig> {
        self.process_types.get(usize::from(id.0))
    }

    /// Looks a process type up by app and name.
    #[must_use]
    pub fn find_type(&self, app: &str, name: &str) -> Option<TypeId> {
        self.process_types
            .iter()
            .position(|p| p.app == app && p.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(TypeId)
    }

    /// The app of each process type, indexed by `TypeId`: apps are numbered
    /// in the order their first type appears. Computed once by the manager
    /// (`Manager::recover`), not per lookup.
    #[must_use]
    pub fn type_apps(&self) -> Vec<AppId> {
        let mut names: Vec<&str> = Vec::new();
        self.process_types
            .iter()
            .map(|p| {
                let i = names.iter().position(|n| *n == p.app).unwrap_or_else(|| {
                    names.push(&p.app);
                    names.len() - 1
                });
                AppId(u16::try_from(i).unwrap_or(u16::MAX))
            })
            .collect()
    }

    /// The apps' names, indexed by `AppId`.
    #[must_use]
    pub fn app_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for p in &self.process_types {
            if !names.contains(&p.app.as_str()) {
                names.push(&p.app);
            }
        }
        names
    }

    /// How many apps the formation has.
    #[must_use]
    pub fn app_count(&self) -> usize {
        self.app_names().len()
    }

    /// Looks an app up by name.
    #[must_use]
    pub fn find_app(&self, name: &str) -> Option<AppId> {
        let i = self.app_names().iter().position(|n| *n == name)?;
        u16::try_from(i).ok().map(AppId)
    }

    /// Distinct apps whose boots fail within one window that trip the fleet
    /// breaker: `fleet_app_share_milli` of the apps, rounded up, and never
    /// fewer than two, so that no single app can trip it (DESIGN.md, "Apps
    /// are isolated"). With one app, only an operator opens it. Under
    /// `breaker-counts-one-app` it counts failures instead, against
    /// `failure_threshold`: the fleet-wide breaker before apps were
    /// isolated.
    #[must_use]
    pub fn fleet_breaker_threshold(&self) -> usize {
        self.fleet_breaker_threshold_of(self.app_count())
    }

    /// [`Config::fleet_breaker_threshold`] for `apps` apps, when the caller
    /// knows how many (counting them compares names).
    #[must_use]
    pub fn fleet_breaker_threshold_of(&self, apps: usize) -> usize {
        if self.mutations.has(Mutation::BreakerCountsOneApp) {
            return usize::from(self.breaker.failure_threshold);
        }
        let share = (apps as u64)
            .saturating_mul(u64::from(self.breaker.fleet_app_share_milli))
            .div_ceil(1000);
        usize::try_from(share).unwrap_or(usize::MAX).max(2)
    }

    /// Whether `id` names a singleton type.
    #[must_use]
    pub fn is_singleton(&self, id: TypeId) -> bool {
        self.process_type(id)
            .is_some_and(|p| p.kind == ProcessKind::Singleton)
    }

    /// A small, valid configuration: one app with `clock` (singleton) and
    /// `web` (scalable, 2), used by examples, tests and the demo.
    #[must_use]
    pub fn example() -> Config {
        Config {
            process_types: vec![
                ProcessTypeConfig {
                    app: "shop".into(),
                    name: "clock".into(),
                    kind: ProcessKind::Singleton,
                    count_initial: 1,
                    count_max: 1,
                },
                ProcessTypeConfig {
                    app: "shop".into(),
                    name: "web".into(),
                    kind: ProcessKind::Scalable,
                    count_initial: 2,
                    count_max: 8,
                },
            ],
            timing: Timing {
                lease_ticks: 10,
                drift_ppm: 100_000,
                margin_ticks: 2,
                kill_ticks: 1,
                report_interval_ticks: 2,
                report_delivery_ticks: 1,
                boot_ticks: 2,
                boot_timeout_ticks: 8,
                unknown_after_ticks: 5,
            },
            budget: BudgetConfig {
                capacity: 4,
                refill_per_boot_milli: 500,
                probe_cooldown_ticks: 20,
                backoff_base_ticks: 1,
                backoff_max_ticks: 8,
                jitter_max_ticks: 1,
            },
            boots_in_flight_max: 2,
            breaker: BreakerConfig {
                window_ticks: 20,
                failure_threshold: 4,
                cooldown_ticks: 10,
                fleet_app_share_milli: default_fleet_app_share_milli(),
            },
            seed: 1,
            leadership: None,
            mutations: Mutations::NONE,
        }
    }
}
