//! Configuration validation (every `ConfigError` variant, and that the
//! manager refuses to start or recover on an invalid config) and tests at
//! the limits of `config::limits` and of the id and time types.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::{inst, reply, report};
use tally_core::config::{ProcessTypeConfig, limits};
use tally_core::invariants::{check_agent, check_manager};
use tally_core::{
    Agent, AgentEffect, AgentInput, AgentNote, Config, ConfigError, Durable, Effect, ExitOutcome,
    Generation, HostId, Incarnation, InstanceId, Manager, ManagerInput, Mutation, Note,
    ProcessKind, RunPhase, Tick, TypeId, UserCommand,
};

fn web(name: &str, count_max: u16) -> ProcessTypeConfig {
    ProcessTypeConfig {
        app: "shop".into(),
        name: name.into(),
        kind: ProcessKind::Scalable,
        count_initial: 0,
        count_max,
    }
}

fn rejected(f: impl FnOnce(&mut Config)) -> ConfigError {
    let mut c = Config::example();
    f(&mut c);
    let err = c.validate().unwrap_err();
    // Neither a new manager nor a recovered one runs on it.
    let mut out = Vec::new();
    assert_eq!(Manager::new(&c, Tick(0), &mut out).unwrap_err(), err);
    assert!(out.is_empty());
    let d = Durable::genesis(&Config::example(), Tick(0));
    assert_eq!(Manager::recover(&c, d, Tick(0)).unwrap_err(), err);
    let msg = err.to_string();
    assert!(!msg.ends_with('.'), "{msg}");
    err
}

#[test]
fn example_config_is_valid() {
    assert_eq!(Config::example().validate(), Ok(()));
}

#[test]
fn invalid_config_is_rejected() {
    assert_eq!(
        rejected(|c| c.process_types.clear()),
        ConfigError::NoProcessTypes
    );
    assert_eq!(
        rejected(|c| {
            c.process_types = (0..=limits::PROCESS_TYPES_MAX)
                .map(|i| web(&format!("w{i}"), 1))
                .collect();
        }),
        ConfigError::TooManyProcessTypes {
            count: limits::PROCESS_TYPES_MAX + 1,
            max: limits::PROCESS_TYPES_MAX
        }
    );
    assert_eq!(
        rejected(|c| c.process_types[1].name = "clock".into()),
        ConfigError::DuplicateProcessType {
            app: "shop".into(),
            name: "clock".into()
        }
    );
    assert_eq!(
        rejected(|c| c.process_types[0].count_max = 2),
        ConfigError::SingletonAboveOne {
            app: "shop".into(),
            name: "clock".into(),
            count_max: 2
        }
    );
    assert_eq!(
        rejected(|c| c.process_types[1].count_initial = 9),
        ConfigError::InitialAboveMax {
            app: "shop".into(),
            name: "web".into(),
            initial: 9,
            max: 8
        }
    );
    assert_eq!(
        rejected(|c| c.process_types[1].count_max = limits::COUNT_MAX + 1),
        ConfigError::CountAboveLimit {
            app: "shop".into(),
            name: "web".into(),
            max: limits::COUNT_MAX + 1,
            limit: limits::COUNT_MAX
        }
    );
    assert_eq!(
        rejected(|c| c.budget.refill_per_boot_milli = 1000),
        ConfigError::RefillNotBelowOne { value: 1000 }
    );
    assert_eq!(
        rejected(|c| c.timing.margin_ticks = 0),
        ConfigError::MarginBelowKill { margin: 0, kill: 1 }
    );
    assert_eq!(
        rejected(|c| c.timing.boot_timeout_ticks = 5),
        ConfigError::BootTimeoutTooShort {
            timeout: 5,
            needed: 5
        }
    );
    assert_eq!(
        rejected(|c| c.timing.lease_ticks = 3),
        ConfigError::LeaseTooShort {
            lease: 3,
            needed: 3
        }
    );
    assert_eq!(
        rejected(|c| c.budget.backoff_base_ticks = 9),
        ConfigError::BackoffOutOfOrder { base: 9, max: 8 }
    );
    let err = Mutation::from_name("timeout-frees-slots").unwrap_err();
    assert!(matches!(&err, ConfigError::UnknownMutation { name, valid }
        if name == "timeout-frees-slots" && valid.contains("timeout-frees-slot")));
}

#[test]
fn every_setting_that_must_be_positive_is_checked() {
    type Zeroing = (&'static str, fn(&mut Config));
    let fields: [Zeroing; 8] = [
        ("timing.lease_ticks", |c| c.timing.lease_ticks = 0),
        ("timing.report_interval_ticks", |c| {
            c.timing.report_interval_ticks = 0;
        }),
        ("timing.boot_timeout_ticks", |c| {
            c.timing.boot_timeout_ticks = 0
        }),
        ("budget.probe_cooldown_ticks", |c| {
            c.budget.probe_cooldown_ticks = 0;
        }),
        ("breaker.window_ticks", |c| c.breaker.window_ticks = 0),
        ("breaker.cooldown_ticks", |c| c.breaker.cooldown_ticks = 0),
        ("boots_in_flight_max", |c| c.boots_in_flight_max = 0),
        ("breaker.failure_threshold", |c| {
            c.breaker.failure_threshold = 0
        }),
    ];
    for (field, f) in fields {
        assert_eq!(rejected(f), ConfigError::Zero { field });
        assert_eq!(
            ConfigError::Zero { field }.to_string(),
            format!("{field} must be at least 1")
        );
    }
}

#[test]
fn bounds_are_exclusive_where_documented() {
    // Each bound is accepted one step inside it.
    for f in [
        (|c: &mut Config| c.budget.refill_per_boot_milli = 999) as fn(&mut Config),
        |c| c.timing.margin_ticks = c.timing.kill_ticks,
        |c| c.timing.boot_timeout_ticks = 6,
        |c| c.timing.lease_ticks = 4,
        |c| c.budget.backoff_base_ticks = c.budget.backoff_max_ticks,
        |c| c.process_types[1].count_initial = 8,
        |c| {
            c.process_types[0].count_initial = 0;
            c.process_types[0].count_max = 0;
        },
    ] {
        let mut c = Config::example();
        f(&mut c);
        assert_eq!(c.validate(), Ok(()), "{c:?}");
    }
}

#[test]
fn drift_and_expiry_arithmetic() {
    let mut c = Config::example();
    assert_eq!(c.drift_ticks_per_lease(), 1);
    assert_eq!(c.lease_expiry_ticks(), 13);
    assert_eq!(c.first_lease_min_ticks(), 3);
    c.timing.lease_ticks = u64::MAX;
    c.timing.drift_ppm = u32::MAX;
    assert_eq!(c.lease_expiry_ticks(), u64::MAX, "saturates, never wraps");
    assert_eq!(c.find_type("shop", "web"), Some(TypeId(1)));
    assert_eq!(c.find_type("shop", "worker"), None);
    assert!(c.is_singleton(TypeId(0)) && !c.is_singleton(TypeId(1)) && !c.is_singleton(TypeId(7)));
}

#[test]
fn process_types_at_the_limit_run() {
    let mut c = Config::example();
    c.process_types = (0..limits::PROCESS_TYPES_MAX)
        .map(|i| ProcessTypeConfig {
            count_initial: 1,
            ..web(&format!("w{i}"), 1)
        })
        .collect();
    assert_eq!(c.validate(), Ok(()));
    let mut out = Vec::new();
    let mut m = Manager::new(&c, Tick(0), &mut out).unwrap();
    assert_eq!(m.vacant_slots().count(), limits::PROCESS_TYPES_MAX);
    let last = TypeId(u16::try_from(limits::PROCESS_TYPES_MAX - 1).unwrap());
    m.step(
        &c,
        Tick(1),
        ManagerInput::User(UserCommand::Scale {
            process_type: last,
            count: 0,
        }),
        &mut out,
    )
    .unwrap();
    assert_eq!(m.desired(last), 0);
    assert_eq!(check_manager(&m, &c), Ok(()));
}

#[test]
fn count_at_the_limit_is_accepted() {
    let mut c = Config::example();
    c.process_types[1].count_max = limits::COUNT_MAX;
    c.boots_in_flight_max = 64;
    let mut out = Vec::new();
    let mut m = Manager::new(&c, Tick(0), &mut out).unwrap();
    m.step(
        &c,
        Tick(1),
        ManagerInput::User(UserCommand::Scale {
            process_type: TypeId(1),
            count: limits::COUNT_MAX,
        }),
        &mut out,
    )
    .unwrap();
    assert_eq!(m.vacant_slots().count(), usize::from(limits::COUNT_MAX) + 1);
    // One report from one host launches as many as admission allows.
    // (Each launch recounts the host's boots, so `K` is kept modest here.)
    out.clear();
    m.step(
        &c,
        Tick(1),
        ManagerInput::ReportReceived(report(0, 0, 1, &[], &[])),
        &mut out,
    )
    .unwrap();
    let launched = out
        .iter()
        .find_map(|e| match e {
            Effect::Send(r) => Some(r.launch.len()),
            _ => None,
        })
        .unwrap();
    assert_eq!(launched, 64);
    assert_eq!(check_manager(&m, &c), Ok(()));
    let before = m.clone();
    assert!(
        m.step(
            &c,
            Tick(2),
            ManagerInput::User(UserCommand::Scale {
                process_type: TypeId(1),
                count: limits::COUNT_MAX + 1,
            }),
            &mut out,
        )
        .is_err()
    );
    assert_eq!(m, before);
}

/// An agent told, in one reply, to launch `n` generations of one slot.
fn agent_with(n: u32) -> (Agent, Vec<AgentEffect>) {
    let cfg = Config::example();
    let launch: Vec<InstanceId> = (1..=n).map(|g| inst(1, 0, g)).collect();
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    let mut out = Vec::new();
    a.step(
        &cfg,
        Tick(0),
        AgentInput::ReplyReceived(reply(0, 0, 0, &[], &launch, &[])),
        &mut out,
    );
    assert_eq!(check_agent(&a, &cfg), Ok(()));
    (a, out)
}

#[test]
fn agent_instances_at_the_limit() {
    let max = u32::try_from(limits::AGENT_INSTANCES_MAX).unwrap();
    let (mut a, out) = agent_with(max + 2);
    assert_eq!(a.instances().len(), limits::AGENT_INSTANCES_MAX);
    let refused = out
        .iter()
        .filter(|e| **e == AgentEffect::Note(AgentNote::AtCapacity))
        .count();
    assert_eq!(refused, 2);
    // A refused launch is not remembered as seen: a later one can start
    // once there is room (it answers a fresh request).
    let cfg = Config::example();
    let mut out = Vec::new();
    a.step(
        &cfg,
        Tick(1),
        AgentInput::ProcessExited {
            instance: inst(1, 0, 1),
        },
        &mut out,
    );
    a.step(
        &cfg,
        Tick(1),
        AgentInput::ReplyReceived(reply(0, 0, 1, &[], &[inst(1, 0, max + 2)], &[])),
        &mut out,
    );
    assert_eq!(a.instances().len(), limits::AGENT_INSTANCES_MAX);
    // The report lists every instance, at exactly the report limit.
    let mut out = Vec::new();
    a.step(&cfg, Tick(1), AgentInput::Tick, &mut out);
    let listed = out
        .iter()
        .find_map(|e| match e {
            AgentEffect::Send(r) => Some(r.running.len()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        listed,
        limits::REPORT_INSTANCES_MAX.min(limits::AGENT_INSTANCES_MAX)
    );
    assert_eq!(check_agent(&a, &cfg), Ok(()));
}

#[test]
fn agent_exits_at_the_limit_drop_the_oldest() {
    let cfg = Config::example();
    let n = u32::try_from(limits::AGENT_EXITS_MAX).unwrap() + 3;
    let stop: Vec<InstanceId> = (0..n)
        .map(|i| inst(1, u16::try_from(i % 100).unwrap(), 1 + i / 100))
        .collect();
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    let mut out = Vec::new();
    a.step(
        &cfg,
        Tick(0),
        AgentInput::ReplyReceived(reply(0, 0, 0, &[], &[], &stop)),
        &mut out,
    );
    assert_eq!(a.pending_exits().len(), limits::AGENT_EXITS_MAX);
    assert_eq!(a.pending_exits()[0].instance, stop[3]);
    assert_eq!(
        a.pending_exits().last().unwrap().instance,
        *stop.last().unwrap()
    );
    assert!(
        a.pending_exits()
            .iter()
            .all(|e| e.outcome == ExitOutcome::NeverStarted)
    );
    assert_eq!(check_agent(&a, &cfg), Ok(()));
}

#[test]
fn manager_reaps_a_report_full_of_phantoms() {
    let cfg = Config::example();
    let mut out = Vec::new();
    let mut m = Manager::new(&cfg, Tick(0), &mut out).unwrap();
    let running: Vec<(InstanceId, RunPhase)> = (0..limits::REPORT_INSTANCES_MAX)
        .map(|i| (inst(1, 7, u32::try_from(i).unwrap() + 1), RunPhase::Up))
        .collect();
    out.clear();
    m.step(
        &cfg,
        Tick(0),
        ManagerInput::ReportReceived(report(0, 0, 0, &running, &[])),
        &mut out,
    )
    .unwrap();
    let reaped = out
        .iter()
        .filter(|e| matches!(e, Effect::Note(Note::PhantomReaped { .. })))
        .count();
    assert_eq!(reaped, limits::REPORT_INSTANCES_MAX);
    assert_eq!(check_manager(&m, &cfg), Ok(()));
}

#[test]
fn time_and_generations_at_their_maximum_do_not_overflow() {
    assert_eq!(Tick(u64::MAX).plus(5), Tick(u64::MAX));
    assert_eq!(Tick(3).since(Tick(9)), 0);
    assert_eq!(Generation(u32::MAX).next(), None);
    let cfg = Config::example();
    let mut out = Vec::new();
    let mut m = Manager::new(&cfg, Tick(u64::MAX - 1), &mut out).unwrap();
    let mut a = Agent::new(HostId(0), Incarnation(u32::MAX), Tick(u64::MAX - 1));
    for now in [u64::MAX - 1, u64::MAX, u64::MAX] {
        let mut aout = Vec::new();
        a.step(&cfg, Tick(now), AgentInput::Tick, &mut aout);
        for e in aout {
            if let AgentEffect::Send(r) = e {
                out.clear();
                m.step(&cfg, Tick(now), ManagerInput::ReportReceived(r), &mut out)
                    .unwrap();
                for e in &out {
                    if let Effect::Send(r) = e {
                        let mut aout = Vec::new();
                        a.step(
                            &cfg,
                            Tick(now),
                            AgentInput::ReplyReceived(r.clone()),
                            &mut aout,
                        );
                    }
                }
            }
        }
        m.step(&cfg, Tick(now), ManagerInput::Tick, &mut out)
            .unwrap();
        assert_eq!(check_manager(&m, &cfg), Ok(()));
        assert_eq!(check_agent(&a, &cfg), Ok(()));
    }
}
