//! JSON round trips of everything that crosses a boundary: every message
//! (`Message`, `AgentReport`, `ManagerReply`), every `JournalRecord`
//! variant, every `Effect` and `AgentEffect`, inputs, `Config`; and
//! properties that decoding arbitrary bytes as a `Message` or a
//! `JournalRecord` is an error, never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::world::cases;
use common::{inst, reply, report, slot};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use tally_core::journal::StopReason;
use tally_core::{
    AgentEffect, AgentInput, AgentNote, Alert, AppId, Breaker, Budget, Config, Effect, ExitOutcome,
    FleetBreaker, HostId, JournalRecord, ManagerInput, Message, Mutation, Mutations, Note,
    OperatorCommand, RunPhase, Tick, TypeId, UserCommand,
};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(&back, value, "{json}");
    let pretty = serde_json::to_vec_pretty(value).expect("serializes");
    let back: T = serde_json::from_slice(&pretty).expect("deserializes");
    assert_eq!(&back, value);
}

fn sample_report() -> tally_core::AgentReport {
    report(
        2,
        7,
        99,
        &[
            (inst(0, 0, 1), RunPhase::Booting),
            (inst(1, 0, 2), RunPhase::Up),
            (inst(1, 1, 3), RunPhase::Killing),
        ],
        &[
            (inst(1, 2, 1), ExitOutcome::BootFailed),
            (inst(1, 2, 2), ExitOutcome::Crashed),
            (inst(1, 2, 3), ExitOutcome::Killed),
            (inst(1, 2, 4), ExitOutcome::NeverStarted),
        ],
    )
}

fn sample_reply() -> tally_core::ManagerReply {
    reply(
        2,
        7,
        99,
        &[inst(1, 0, 2)],
        &[inst(1, 3, 1), inst(1, 4, 1)],
        &[inst(1, 1, 3)],
    )
}

fn records() -> Vec<JournalRecord> {
    let id = inst(0, 0, 4);
    vec![
        JournalRecord::FormationSet {
            process_type: TypeId(1),
            count: 3,
        },
        JournalRecord::FreeLaunchGranted { slot: slot(1, 2) },
        JournalRecord::InstanceLaunched {
            instance: id,
            host: HostId(3),
            free: true,
        },
        JournalRecord::BootSeenDone { instance: id },
        JournalRecord::StopRequested {
            instance: id,
            reason: StopReason::BootTimedOut,
        },
        JournalRecord::StopRequested {
            instance: id,
            reason: StopReason::UserRequested,
        },
        JournalRecord::StopCancelled { instance: id },
        JournalRecord::InstanceStopped { instance: id },
        JournalRecord::BudgetSet {
            app: AppId(1),
            budget: Budget {
                tokens_milli: 2500,
                probe_ready: true,
                probe_refresh_at: Tick(40),
            },
        },
        JournalRecord::BreakerSet {
            app: AppId(0),
            breaker: Breaker::closed(Tick(3)),
        },
        JournalRecord::BreakerSet {
            app: AppId(0),
            breaker: Breaker::Open {
                since: Tick(4),
                manual: true,
            },
        },
        JournalRecord::BreakerSet {
            app: AppId(0),
            breaker: Breaker::HalfOpen { probe: None },
        },
        JournalRecord::BreakerSet {
            app: AppId(0),
            breaker: Breaker::HalfOpen { probe: Some(id) },
        },
        JournalRecord::FleetBreakerSet {
            breaker: FleetBreaker::Closed {
                window_start: Tick(2),
                failing: vec![AppId(0), AppId(3)],
            },
        },
        JournalRecord::FleetBreakerSet {
            breaker: FleetBreaker::HalfOpen {
                probe: Some(id),
                window_start: Tick(7),
                failing: vec![AppId(1)],
            },
        },
        JournalRecord::FleetBreakerSet {
            breaker: FleetBreaker::opened_by_hand(Tick(9)),
        },
        JournalRecord::LockdownSet { on: true },
        JournalRecord::PauseSet {
            host: None,
            paused: true,
        },
        JournalRecord::PauseSet {
            host: Some(HostId(1)),
            paused: false,
        },
    ]
}

fn notes() -> Vec<Note> {
    let id = inst(1, 0, 1);
    vec![
        Note::ReportVersionMismatch,
        Note::StaleExit,
        Note::BootFailureCounted { instance: id },
        Note::PhantomReaped { instance: id },
        Note::BootTimedOut { instance: id },
        Note::LeaseExpired { instance: id },
        Note::RetryRefused { slot: id.slot },
        Note::BootSucceeded { instance: id },
        Note::LockdownRefused,
        Note::ProbeSpent,
    ]
}

fn agent_notes() -> Vec<AgentNote> {
    let id = inst(1, 0, 1);
    vec![
        AgentNote::StaleReply,
        AgentNote::StaleLaunch { instance: id },
        AgentNote::LeaseTooShort { instance: id },
        AgentNote::SelfFenced { instance: id },
        AgentNote::AtCapacity,
        AgentNote::Misrouted,
    ]
}

#[test]
fn messages_round_trip() {
    round_trip(&sample_report());
    round_trip(&sample_reply());
    round_trip(&Message::Report(sample_report()));
    round_trip(&Message::Reply(sample_reply()));
    round_trip(&Message::Report(report(0, 0, 0, &[], &[])));
    round_trip(&Message::Reply(reply(0, 0, 0, &[], &[], &[])));
    let json = serde_json::to_value(Message::Reply(sample_reply())).unwrap();
    assert_eq!(json["kind"], "reply", "messages are tagged by kind");
}

#[test]
fn every_journal_record_round_trips() {
    let all = records();
    for r in &all {
        round_trip(r);
    }
    round_trip(&all);
}

#[test]
fn every_effect_round_trips() {
    let mut effects: Vec<Effect> = records().into_iter().map(Effect::Persist).collect();
    effects.push(Effect::Send(sample_reply()));
    effects.push(Effect::Alert(Alert::BreakerTripped { app: AppId(2) }));
    effects.push(Effect::Alert(Alert::FleetBreakerTripped));
    effects.extend(notes().into_iter().map(Effect::Note));
    for e in &effects {
        round_trip(e);
    }
    let id = inst(0, 0, 1);
    let mut agent_effects = vec![
        AgentEffect::StartProcess { instance: id },
        AgentEffect::KillProcess { instance: id },
        AgentEffect::Send(sample_report()),
    ];
    agent_effects.extend(agent_notes().into_iter().map(AgentEffect::Note));
    for e in &agent_effects {
        round_trip(e);
    }
}

#[test]
fn every_input_round_trips() {
    let inputs = [
        ManagerInput::Tick,
        ManagerInput::ReportReceived(sample_report()),
        ManagerInput::User(UserCommand::Scale {
            process_type: TypeId(1),
            count: 4,
        }),
        ManagerInput::User(UserCommand::Restart { process_type: None }),
        ManagerInput::User(UserCommand::Restart {
            process_type: Some(TypeId(0)),
        }),
        ManagerInput::User(UserCommand::Deploy),
        ManagerInput::Operator(OperatorCommand::Lockdown { on: false }),
        ManagerInput::Operator(OperatorCommand::BreakerOpen),
        ManagerInput::Operator(OperatorCommand::BreakerClose),
        ManagerInput::Operator(OperatorCommand::PauseLaunches {
            host: Some(HostId(2)),
        }),
        ManagerInput::Operator(OperatorCommand::ResumeLaunches { host: None }),
    ];
    for i in &inputs {
        round_trip(i);
    }
    let id = inst(0, 0, 1);
    for i in [
        AgentInput::Tick,
        AgentInput::ReplyReceived(sample_reply()),
        AgentInput::ProcessBooted { instance: id },
        AgentInput::ProcessExited { instance: id },
    ] {
        round_trip(&i);
    }
}

#[test]
fn config_round_trips_with_and_without_mutations() {
    let cfg = Config::example();
    round_trip(&cfg);
    let mut all = cfg.clone();
    all.mutations = Mutation::ALL
        .into_iter()
        .fold(Mutations::NONE, Mutations::with);
    round_trip(&all);
    // Mutations are written as their kebab-case names, and default to none.
    let json = serde_json::to_value(&all).unwrap();
    assert_eq!(json["mutations"][0], "timeout-frees-slot");
    let mut v = serde_json::to_value(&cfg).unwrap();
    v.as_object_mut().unwrap().remove("mutations");
    let back: Config = serde_json::from_value(v).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn config_with_unknown_field_is_rejected() {
    let mut v = serde_json::to_value(Config::example()).unwrap();
    v.as_object_mut()
        .unwrap()
        .insert("lease_tick".into(), serde_json::json!(3));
    assert!(serde_json::from_value::<Config>(v).is_err());
}

#[test]
fn ids_serialize_as_plain_numbers() {
    assert_eq!(serde_json::to_string(&Tick(7)).unwrap(), "7");
    assert_eq!(serde_json::to_string(&HostId(3)).unwrap(), "3");
    let v = serde_json::to_value(inst(1, 2, 3)).unwrap();
    assert_eq!(v["generation"], 3);
    assert_eq!(v["slot"]["index"], 2);
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("report".to_owned()),
            Just("reply".to_owned()),
            Just("instance-launched".to_owned()),
            Just("budget-set".to_owned()),
            Just("open".to_owned()),
            "[a-z-]{0,12}",
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("kind".to_owned()),
                    Just("record".to_owned()),
                    Just("version".to_owned()),
                    Just("host".to_owned()),
                    Just("instance".to_owned()),
                    Just("running".to_owned()),
                    Just("slot".to_owned()),
                    Just("generation".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        // Random bytes are practically never a valid encoding; if they
        // are, they must decode to a value that round-trips.
        if let Ok(m) = serde_json::from_slice::<Message>(&bytes) {
            round_trip(&m);
        }
        if let Ok(r) = serde_json::from_slice::<JournalRecord>(&bytes) {
            round_trip(&r);
        }
        let _ = serde_json::from_slice::<Config>(&bytes);
    }

    #[test]
    fn decoding_corrupted_encodings_never_panics(
        which in 0..2usize,
        i in any::<usize>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = if which == 0 {
            let all = [Message::Report(sample_report()), Message::Reply(sample_reply())];
            serde_json::to_vec(&all[i % all.len()]).unwrap()
        } else {
            let all = records();
            serde_json::to_vec(&all[i % all.len()]).unwrap()
        };
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        if let Ok(m) = serde_json::from_slice::<Message>(&bytes) {
            // Whatever decodes is a value that re-encodes and decodes the same.
            let again: Message = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
        if let Ok(r) = serde_json::from_slice::<JournalRecord>(&bytes) {
            let again: JournalRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            prop_assert_eq!(again, r);
        }
    }

    #[test]
    fn decoding_arbitrary_json_never_panics(v in any_json()) {
        let text = v.to_string();
        let _ = serde_json::from_str::<Message>(&text);
        let _ = serde_json::from_str::<JournalRecord>(&text);
        let _ = serde_json::from_value::<Message>(v.clone());
        let _ = serde_json::from_value::<JournalRecord>(v);
    }
}
