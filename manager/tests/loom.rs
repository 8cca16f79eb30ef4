//! `loom` explores every interleaving of threads feeding the real core
//! through [`Shared`]: inputs are applied one at a time in a single order,
//! each step's effects reach its caller and the journal exactly once and
//! equal a sequential replay in that order, time never runs backwards, the
//! admission and budget limits hold, and a failed journal stops everything.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p tally-manager --test loom`
//! (`scripts/test` does).
#![cfg(loom)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use loom::sync::Arc;
use loom::thread;
use std::collections::BTreeMap;
use tally_core::message::PROTOCOL_VERSION;
use tally_core::{
    AgentReport, Effect, HostId, Incarnation, ManagerInput, Rejected, Tick, TypeId, UserCommand,
};
use tally_manager::machine::ManagerMachine;
use tally_manager::settings::{FileSettings, TypeSettings, build};
use tally_manager::shell::{Applied, Machine, Shared, ShellError, Sink};

/// The journal as a list: `(seq, effects)` per committed step.
#[derive(Default)]
struct Log {
    steps: Vec<(u64, Vec<Effect>)>,
    fail_at: Option<u64>,
}

impl Sink<Effect> for Log {
    type Error = String;
    fn commit(&mut self, seq: u64, effects: &[Effect]) -> Result<(), String> {
        if self.fail_at == Some(seq) {
            return Err("disk full".into());
        }
        self.steps.push((seq, effects.to_vec()));
        Ok(())
    }
}

/// A manager for clock (singleton) and web=2, K=1, B=1, as the shell runs it.
fn machine() -> ManagerMachine {
    let procs = vec![
        ("clock".to_string(), "clock".to_string()),
        ("web".to_string(), "web".to_string()),
    ];
    let mut file = FileSettings::default();
    file.boots_in_flight_max = 1;
    file.budget.capacity = 1;
    file.types.insert(
        "clock".into(),
        TypeSettings {
            singleton: true,
            ..TypeSettings::default()
        },
    );
    file.types.insert(
        "web".into(),
        TypeSettings {
            count: Some(2),
            ..TypeSettings::default()
        },
    );
    let deployment = build(&procs, &file).unwrap();
    let mut out = Vec::new();
    let manager = tally_core::Manager::new(&deployment.config, Tick(0), &mut out).unwrap();
    ManagerMachine::new(
        std::sync::Arc::new(deployment),
        manager,
        tally_core::Counters::default(),
    )
}

fn report(host: u16, sent_at: u64) -> ManagerInput {
    ManagerInput::ReportReceived(AgentReport {
        version: PROTOCOL_VERSION,
        host: HostId(host),
        incarnation: Incarnation(1),
        sent_at: Tick(sent_at),
        running: Vec::new(),
        exited: Vec::new(),
    })
}

type Outcome = Applied<Effect, Rejected>;

/// Replays `inputs` in seq order on a fresh machine and checks that every
/// caller got exactly what a sequential run gives, and the journal too.
fn check_against_replay(shared: &Shared<ManagerMachine, Log>, runs: Vec<(ManagerInput, Outcome)>) {
    let mut runs = runs;
    runs.sort_by_key(|(_, a)| a.seq);
    let seqs: Vec<u64> = runs.iter().map(|(_, a)| a.seq).collect();
    assert_eq!(
        seqs,
        (1..=runs.len() as u64).collect::<Vec<_>>(),
        "one total order, no gaps"
    );
    let mut fresh = machine();
    let mut last_now = Tick(0);
    for (input, applied) in &runs {
        assert!(applied.now >= last_now, "time ran backwards");
        last_now = applied.now;
        let mut out = Vec::new();
        let outcome = fresh.step(applied.now, input.clone(), &mut out);
        assert_eq!(outcome, applied.outcome, "same answer as a sequential run");
        assert_eq!(out, applied.effects, "same effects as a sequential run");
    }
    shared
        .read_sink(|log| {
            let logged: Vec<(u64, Vec<Effect>)> = log.steps.clone();
            let expected: Vec<(u64, Vec<Effect>)> = runs
                .iter()
                .map(|(_, a)| (a.seq, a.effects.clone()))
                .collect();
            assert_eq!(logged, expected, "journal holds each step once, in order");
        })
        .unwrap();
    shared
        .read(|m, _| {
            let cfg = &m.deployment.config;
            tally_core::invariants::check_manager(&m.manager, cfg).unwrap();
            for host in 0..3 {
                assert!(
                    m.manager.boots_unconfirmed_shipped(HostId(host))
                        <= usize::from(cfg.boots_in_flight_max),
                    "admission K holds on host {host}"
                );
            }
            assert!(
                m.manager.durable().budgets[0].tokens_milli <= cfg.budget.capacity * 1000,
                "tokens within B"
            );
            let mut journaled = tally_core::Counters::default();
            for (_, a) in &runs {
                for e in &a.effects {
                    if let Effect::Persist(r) = e {
                        journaled.apply(r);
                    }
                }
            }
            assert_eq!(
                m.counters, journaled,
                "ps's counters are the journal's fold"
            );
        })
        .unwrap();
}

#[test]
fn concurrent_inputs_apply_in_one_order_with_no_effect_lost_or_doubled() {
    loom::model(|| {
        let shared = Arc::new(Shared::new(machine(), Log::default(), Tick(0)));
        let inputs = [
            (report(0, 1), Tick(2)),
            (report(1, 1), Tick(1)),
            (
                ManagerInput::User(UserCommand::Scale {
                    process_type: TypeId(1),
                    count: 3,
                }),
                Tick(2),
            ),
        ];
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|(input, now)| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let applied = shared.apply(now, input.clone()).unwrap();
                    (input, applied)
                })
            })
            .collect();
        let runs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Launches answer reports: some host got them, each exactly once.
        let launched: usize = runs
            .iter()
            .flat_map(|(_, a)| &a.effects)
            .filter_map(|e| match e {
                Effect::Send(r) => Some(r.launch.len()),
                _ => None,
            })
            .sum();
        assert!(launched >= 2, "reports were answered with launches");
        check_against_replay(&shared, runs);
    });
}

#[test]
fn a_report_racing_a_tick_keeps_admission_and_budget() {
    loom::model(|| {
        let shared = Arc::new(Shared::new(machine(), Log::default(), Tick(0)));
        let a = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let mut runs = Vec::new();
                for sent in [1, 2] {
                    let input = report(0, sent);
                    runs.push((input.clone(), shared.apply(Tick(sent), input).unwrap()));
                }
                runs
            })
        };
        let b = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let input = ManagerInput::Tick;
                vec![(input.clone(), shared.apply(Tick(20), input).unwrap())]
            })
        };
        let mut runs = a.join().unwrap();
        runs.extend(b.join().unwrap());
        check_against_replay(&shared, runs);
    });
}

#[test]
fn a_refused_batch_changes_nothing_whatever_runs_beside_it() {
    loom::model(|| {
        let shared = Arc::new(Shared::new(machine(), Log::default(), Tick(0)));
        let batch = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let inputs = vec![
                    ManagerInput::User(UserCommand::Scale {
                        process_type: TypeId(1),
                        count: 4,
                    }),
                    ManagerInput::User(UserCommand::Scale {
                        process_type: TypeId(0),
                        count: 2,
                    }),
                ];
                shared.apply_all(Tick(1), inputs).unwrap()
            })
        };
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.apply(Tick(1), report(0, 1)).unwrap())
        };
        let refused = batch.join().unwrap();
        let _ = other.join().unwrap();
        assert_eq!(refused.len(), 1, "only the refusal is returned");
        assert!(matches!(
            refused[0].outcome,
            Err(Rejected::SingletonAboveOne { .. })
        ));
        shared
            .read(|m, _| assert_eq!(m.manager.desired(TypeId(1)), 2, "web stays at 2"))
            .unwrap();
        shared
            .read_sink(|log| {
                let formation_changes = log
                    .steps
                    .iter()
                    .flat_map(|(_, e)| e)
                    .filter(|e| {
                        matches!(
                            e,
                            Effect::Persist(tally_core::JournalRecord::FormationSet { .. })
                        )
                    })
                    .count();
                assert_eq!(
                    formation_changes, 0,
                    "nothing of the batch reached the journal"
                );
            })
            .unwrap();
    });
}

#[test]
fn a_failed_journal_releases_no_effect_and_stops_every_caller() {
    loom::model(|| {
        let log = Log {
            fail_at: Some(1),
            ..Log::default()
        };
        let shared = Arc::new(Shared::new(machine(), log, Tick(0)));
        let handles: Vec<_> = [0u16, 1]
            .into_iter()
            .map(|host| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || shared.apply(Tick(1), report(host, 1)))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut by_kind = BTreeMap::new();
        for r in &results {
            let kind = match r {
                Ok(_) => "ok",
                Err(ShellError::Sink(_)) => "sink",
                Err(ShellError::Failed) => "failed",
                Err(ShellError::Poisoned) => "poisoned",
            };
            *by_kind.entry(kind).or_insert(0) += 1;
        }
        assert_eq!(
            by_kind.get("sink"),
            Some(&1),
            "the first step reports the failure"
        );
        assert_eq!(by_kind.get("failed"), Some(&1), "later steps are refused");
        assert_eq!(shared.read_sink(|l| l.steps.len()).unwrap(), 0);
    });
}
