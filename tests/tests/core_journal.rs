//! Journal recovery: the `Effect::Persist` records a manager emits over an
//! arbitrary run fold (from `Durable::genesis`) into exactly its durable
//! state, and a manager recovered from any prefix of that journal holds
//! every instance launched and not stopped in the prefix and never reuses
//! a generation. Plus unit tests of `Durable::apply` on each record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::world::{World, cases, configs, gentle_op, op};
use common::{inst, report, slot};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use tally_core::invariants::check_manager;
use tally_core::journal::{DurableInstance, StopReason};
use tally_core::{
    AppId, Breaker, Budget, Config, Durable, Effect, Generation, HostId, InstanceId, JournalRecord,
    LiveView, Manager, ManagerInput, SlotId, Tick, TypeId,
};

/// Recovers from every prefix of `w`'s journal and checks what it holds.
fn check_prefixes(w: &World) -> Result<(), TestCaseError> {
    let cfg = &w.cfg;
    let mut d = Durable::genesis(cfg, w.t0);
    let mut live: BTreeSet<InstanceId> = BTreeSet::new();
    let mut high: BTreeMap<SlotId, Generation> = BTreeMap::new();
    let restart_at = w.manager_now.plus(1);
    for (n, record) in std::iter::once(None)
        .chain(w.journal.iter().map(Some))
        .enumerate()
    {
        if let Some(r) = record {
            d.apply(r);
            match r {
                JournalRecord::InstanceLaunched { instance, .. } => {
                    live.insert(*instance);
                    let h = high.entry(instance.slot).or_default();
                    *h = (*h).max(instance.generation);
                }
                JournalRecord::InstanceStopped { instance } => {
                    live.remove(instance);
                }
                _ => {}
            }
        }
        let mut m = Manager::recover(cfg, d.clone(), restart_at)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(check_manager(&m, cfg), Ok(()), "prefix {}", n);
        let held: BTreeSet<InstanceId> = m.ledger().map(|(id, _, _)| id).collect();
        prop_assert_eq!(&held, &live, "prefix {}", n);
        for (id, _, l) in m.ledger() {
            prop_assert_eq!(l.view, LiveView::Unknown);
            prop_assert_eq!(
                l.lease_deadline,
                restart_at.plus(cfg.lease_expiry_ticks()),
                "{}",
                id
            );
        }
        for (s, g) in &high {
            prop_assert!(
                m.durable()
                    .next_generation(*s)
                    .is_some_and(|next| next > *g)
            );
        }
        // Whatever the recovered manager launches is above the journal's generations.
        for h in 0..=common::world::HOSTS {
            let mut out = Vec::new();
            let r = report(h, 0, 0, &[], &[]);
            m.step(cfg, restart_at, ManagerInput::ReportReceived(r), &mut out)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for e in &out {
                if let Effect::Send(reply) = e {
                    for id in &reply.launch {
                        let above = high.get(&id.slot).is_none_or(|g| id.generation > *g);
                        prop_assert!(above, "prefix {}: {} reuses a generation", n, id);
                    }
                }
            }
        }
    }
    prop_assert_eq!(
        &d,
        w.manager.durable(),
        "the full fold is the manager's durable state"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn recovery_from_any_journal_prefix_holds_live_instances(
        c in 0..configs().len(),
        ops in prop::collection::vec(gentle_op(), 0..80),
    ) {
        let mut w = World::new(configs()[c].clone());
        for o in ops {
            w.apply(o).map_err(TestCaseError::fail)?;
        }
        check_prefixes(&w)?;
    }

    #[test]
    fn recovery_after_adversarial_run_holds_live_instances(
        c in 0..configs().len(),
        ops in prop::collection::vec(op(), 0..50),
    ) {
        let mut w = World::new(configs()[c].clone());
        for o in ops {
            w.apply(o).map_err(TestCaseError::fail)?;
        }
        check_prefixes(&w)?;
    }
}

// ----- Durable::apply, record by record -----

#[test]
fn genesis_is_empty_with_full_budget_and_closed_breaker() {
    let cfg = Config::example();
    let d = Durable::genesis(&cfg, Tick(5));
    assert_eq!(d.formation, vec![0, 0]);
    assert!(d.instances.is_empty() && d.high_water.is_empty() && d.free_launches.is_empty());
    assert_eq!(d.budgets[0], Budget::full(&cfg, Tick(5)));
    assert_eq!(d.budgets[0].probe_refresh_at, Tick(25));
    assert_eq!(d.breakers[0], Breaker::closed(Tick(5)));
    assert!(!d.lockdown && !d.paused_all && d.paused_hosts.is_empty());
}

#[test]
fn each_record_changes_what_it_names() {
    let cfg = Config::example();
    let mut d = Durable::genesis(&cfg, Tick(0));
    let id = inst(1, 0, 3);
    d.apply(&JournalRecord::FormationSet {
        process_type: TypeId(1),
        count: 5,
    });
    assert_eq!(d.formation, vec![0, 5]);
    d.apply(&JournalRecord::FreeLaunchGranted { slot: id.slot });
    d.apply(&JournalRecord::FreeLaunchGranted { slot: id.slot });
    assert_eq!(
        d.free_launches_granted_total(),
        1,
        "granted once per unused launch"
    );
    d.apply(&JournalRecord::InstanceLaunched {
        instance: id,
        host: HostId(2),
        free: true,
    });
    assert!(d.free_launches.is_empty());
    assert_eq!(d.high_water[&id.slot], Generation(3));
    assert_eq!(
        d.instances[&id],
        DurableInstance {
            host: HostId(2),
            boot_seen_done: false,
            stop: None
        }
    );
    d.apply(&JournalRecord::BootSeenDone { instance: id });
    assert!(d.instances[&id].boot_seen_done);
    d.apply(&JournalRecord::StopRequested {
        instance: id,
        reason: StopReason::UserRequested,
    });
    assert_eq!(d.instances[&id].stop, Some(StopReason::UserRequested));
    d.apply(&JournalRecord::StopCancelled { instance: id });
    assert_eq!(d.instances[&id].stop, None);
    d.apply(&JournalRecord::InstanceStopped { instance: id });
    assert!(d.instances.is_empty());
    assert_eq!(d.high_water[&id.slot], Generation(3), "high water survives");
    assert_eq!(d.next_generation(id.slot), Some(Generation(4)));
    let budget = Budget {
        tokens_milli: 1,
        probe_ready: true,
        probe_refresh_at: Tick(9),
    };
    d.apply(&JournalRecord::BudgetSet {
        app: AppId(0),
        budget,
    });
    assert_eq!(d.budgets[0], budget);
    let breaker = Breaker::HalfOpen { probe: Some(id) };
    d.apply(&JournalRecord::BreakerSet {
        app: AppId(0),
        breaker,
    });
    assert_eq!(d.breakers[0], breaker);
    d.apply(&JournalRecord::LockdownSet { on: true });
    assert!(d.lockdown);
    d.apply(&JournalRecord::PauseSet {
        host: Some(HostId(1)),
        paused: true,
    });
    d.apply(&JournalRecord::PauseSet {
        host: None,
        paused: true,
    });
    assert!(d.paused_all && d.paused_hosts.contains(&HostId(1)));
    d.apply(&JournalRecord::PauseSet {
        host: Some(HostId(1)),
        paused: false,
    });
    assert!(d.paused_hosts.is_empty());
}

#[test]
fn records_about_unknown_things_fold_to_no_change() {
    let cfg = Config::example();
    let genesis = Durable::genesis(&cfg, Tick(0));
    let mut d = genesis.clone();
    let ghost = inst(1, 4, 4);
    d.apply_all(&[
        JournalRecord::FormationSet {
            process_type: TypeId(99),
            count: 3,
        },
        JournalRecord::BootSeenDone { instance: ghost },
        JournalRecord::StopRequested {
            instance: ghost,
            reason: StopReason::BootTimedOut,
        },
        JournalRecord::StopCancelled { instance: ghost },
        JournalRecord::InstanceStopped { instance: ghost },
    ]);
    assert_eq!(d, genesis);
}

#[test]
fn out_of_order_launch_record_never_lowers_high_water() {
    let cfg = Config::example();
    let mut d = Durable::genesis(&cfg, Tick(0));
    for g in [5, 2] {
        d.apply(&JournalRecord::InstanceLaunched {
            instance: inst(0, 0, g),
            host: HostId(0),
            free: false,
        });
    }
    assert_eq!(d.high_water[&slot(0, 0)], Generation(5));
}

#[test]
fn restart_mid_run_continues_generations() {
    let cfg = Config::example();
    let mut n = common::Net::new(cfg.clone(), 1);
    n.round();
    // The host dies silently; the manager restarts; leases run out.
    let mut d = Durable::genesis(&cfg, Tick(0));
    d.apply_all(&n.journal);
    assert_eq!(&d, n.manager.durable());
    n.manager = Manager::recover(&cfg, d, Tick(1)).unwrap();
    n.now = Tick(1 + cfg.lease_expiry_ticks());
    n.tick_manager();
    assert_eq!(n.manager.ledger_len(), 0);
    // The unused free launch goes out at once; the relaunches after backoff.
    n.manager_step(ManagerInput::ReportReceived(report(0, 1, 0, &[], &[])))
        .unwrap();
    assert_eq!(n.sent.last().unwrap().launch, vec![inst(1, 1, 1)]);
    n.advance(cfg.budget.backoff_max_ticks + cfg.budget.jitter_max_ticks);
    n.manager_step(ManagerInput::ReportReceived(report(1, 0, 0, &[], &[])))
        .unwrap();
    assert_eq!(
        n.sent.last().unwrap().launch,
        vec![inst(0, 0, 2), inst(1, 0, 2)]
    );
}

#[test]
fn exhausted_generations_launch_nothing() {
    let cfg = Config::example();
    let mut d = Durable::genesis(&cfg, Tick(0));
    let last = InstanceId {
        slot: slot(0, 0),
        generation: Generation(u32::MAX),
    };
    d.apply_all(&[
        JournalRecord::FormationSet {
            process_type: TypeId(0),
            count: 1,
        },
        JournalRecord::InstanceLaunched {
            instance: last,
            host: HostId(0),
            free: false,
        },
        JournalRecord::InstanceStopped { instance: last },
    ]);
    assert_eq!(d.next_generation(slot(0, 0)), None);
    let mut m = Manager::recover(&cfg, d, Tick(0)).unwrap();
    let mut out = Vec::new();
    m.step(
        &cfg,
        Tick(0),
        ManagerInput::ReportReceived(report(0, 0, 0, &[], &[])),
        &mut out,
    )
    .unwrap();
    assert_eq!(m.ledger_len(), 0);
    assert!(
        out.iter()
            .all(|e| !matches!(e, Effect::Send(r) if !r.launch.is_empty()))
    );
    assert_eq!(check_manager(&m, &cfg), Ok(()));
}
