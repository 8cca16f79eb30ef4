//! Unit tests of the manager's transitions, one behaviour per test: the
//! ledger lifecycle (launch, boot timeout, exit confirmation, lease expiry,
//! restart), phantom reaping, retry budget and probe credit, breaker,
//! admission, pauses, lockdown and the refusal of bad user commands (each
//! refusal leaves the state unchanged).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::{CLOCK, Net, WEB, cfg_with, inst, report, slot};
use tally_core::journal::{DurableInstance, StopReason};
use tally_core::manager::CommandKind;
use tally_core::{
    Alert, AppId, Breaker, Config, Durable, Effect, ExitOutcome, HostId, JournalRecord, LiveView,
    Manager, ManagerInput, Note, OperatorCommand, Phase, Rejected, RunPhase, SlotId, Tick, TypeId,
    UserCommand,
};

/// A deployment with one host after its first exchange at tick 0: the
/// clock and web.1 are launched (admission `K = 2` holds back web.2).
fn launched() -> Net {
    let mut n = Net::new(Config::example(), 1);
    n.round();
    assert_eq!(n.launched(), vec![inst(0, 0, 1), inst(1, 0, 1)]);
    n
}

/// `Config::example()` with only one web instance and no clock.
fn one_web(f: impl FnOnce(&mut Config)) -> Config {
    cfg_with(|c| {
        c.process_types[0].count_initial = 0;
        c.process_types[1].count_initial = 1;
        f(c);
    })
}

// ----- formation and first launches -----

#[test]
fn new_manager_grants_one_free_launch_per_initial_slot() {
    let n = Net::new(Config::example(), 1);
    let free: Vec<_> = n
        .journal
        .iter()
        .filter_map(|r| match r {
            JournalRecord::FreeLaunchGranted { slot } => Some(*slot),
            _ => None,
        })
        .collect();
    assert_eq!(free, vec![slot(0, 0), slot(1, 0), slot(1, 1)]);
    assert_eq!(n.manager.durable().free_launches_granted_total(), 3);
    assert_eq!(n.manager.desired(CLOCK), 1);
    assert_eq!(n.manager.desired(WEB), 2);
    assert_eq!(
        n.manager.vacant_slots().collect::<Vec<_>>(),
        vec![slot(0, 0), slot(1, 0), slot(1, 1)]
    );
    assert_eq!(n.manager.ledger_len(), 0);
}

#[test]
fn first_launches_are_free_and_answer_the_request() {
    let n = launched();
    let r = n.sent.last().unwrap();
    assert_eq!(r.request_sent_at, Tick(0));
    assert_eq!(r.incarnation, n.agent(0).incarnation());
    assert_eq!(r.host, HostId(0));
    let full = Config::example().budget.capacity * 1000;
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, full);
    for id in n.launched() {
        assert_eq!(n.manager.phase(id), Some(Phase::Launching));
        assert_eq!(n.manager.host_of(id), Some(HostId(0)));
        assert!(n.started.contains(&(HostId(0), id)));
    }
    assert!(
        n.manager
            .durable()
            .free_launches
            .iter()
            .eq([slot(1, 1)].iter())
    );
}

#[test]
fn launch_is_persisted_before_it_is_sent() {
    let cfg = Config::example();
    let mut out = Vec::new();
    let mut m = Manager::new(&cfg, Tick(0), &mut out).unwrap();
    out.clear();
    m.step(
        &cfg,
        Tick(0),
        ManagerInput::ReportReceived(report(0, 0, 0, &[], &[])),
        &mut out,
    )
    .unwrap();
    let (send_at, reply) = out
        .iter()
        .enumerate()
        .find_map(|(i, e)| match e {
            Effect::Send(r) => Some((i, r)),
            _ => None,
        })
        .unwrap();
    assert_eq!(reply.launch.len(), 2);
    for id in &reply.launch {
        let persisted = out.iter().position(|e| {
            matches!(e, Effect::Persist(JournalRecord::InstanceLaunched { instance, .. }) if instance == id)
        });
        assert!(
            persisted.is_some_and(|p| p < send_at),
            "{id} sent before it was durable"
        );
    }
}

#[test]
fn admission_limits_boots_per_host() {
    // K = 2: of the three vacant slots, one host gets two boots.
    let n = launched();
    assert_eq!(n.manager.boots_unconfirmed(&n.cfg, HostId(0)), 2);
    assert!(n.manager.vacant_slots().eq([slot(1, 1)]));
    // K = 1: one boot per host, so two hosts get one each.
    let mut n = Net::new(cfg_with(|c| c.boots_in_flight_max = 1), 2);
    n.round();
    assert_eq!(n.launched(), vec![inst(0, 0, 1), inst(1, 0, 1)]);
    assert_eq!(n.manager.host_of(inst(0, 0, 1)), Some(HostId(0)));
    assert_eq!(n.manager.host_of(inst(1, 0, 1)), Some(HostId(1)));
    // A further report from the full host launches nothing more.
    n.advance(2);
    n.tick_agents();
    n.reports.truncate(1);
    let sent = n.sent.len();
    n.deliver_reports();
    assert_eq!(n.sent.len(), sent + 1);
    assert!(n.sent.last().unwrap().launch.is_empty());
}

#[test]
fn booted_instance_frees_admission_for_the_next_boot() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(4);
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Up));
    assert_eq!(n.manager.phase(inst(1, 1, 1)), Some(Phase::Up));
    assert_eq!(n.manager.ledger_len(), 3);
    assert_eq!(n.manager.vacant_slots().count(), 0);
}

// ----- boot timeout, exit confirmation, lease expiry -----

#[test]
fn boot_timeout_moves_instance_to_stopping_not_stopped() {
    let mut n = launched();
    let clock = inst(0, 0, 1);
    n.advance(n.cfg.timing.boot_timeout_ticks - 1);
    n.tick_manager();
    assert_eq!(n.manager.phase(clock), Some(Phase::Launching));
    n.advance(1);
    n.tick_manager();
    assert!(n.noted(Note::BootTimedOut { instance: clock }));
    assert_eq!(
        n.manager.phase(clock),
        Some(Phase::Stopping(StopReason::BootTimedOut))
    );
    assert!(n.ledger().contains(&clock));
    // A singleton slot stays occupied by its timed-out instance.
    assert!(!n.manager.vacant_slots().any(|s| s == clock.slot));
    assert!(n.journal.contains(&JournalRecord::StopRequested {
        instance: clock,
        reason: StopReason::BootTimedOut
    }));
}

#[test]
fn timed_out_boot_counts_against_admission_until_confirmed() {
    let mut n = launched();
    n.advance(n.cfg.timing.boot_timeout_ticks);
    n.tick_manager();
    // Both boots timed out but neither is confirmed ended: K is still full.
    assert_eq!(n.manager.boots_unconfirmed(&n.cfg, HostId(0)), 2);
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        n.now.0,
        &[
            (inst(0, 0, 1), RunPhase::Booting),
            (inst(1, 0, 1), RunPhase::Booting),
        ],
        &[],
    )))
    .unwrap();
    let r = n.sent.last().unwrap();
    assert!(r.launch.is_empty());
    assert_eq!(r.stop, vec![inst(0, 0, 1), inst(1, 0, 1)]);
    // Stopping instances are not renewed: their lease must run out if the stop is lost.
    assert!(r.renew.is_empty());
}

#[test]
fn exit_confirmation_frees_singleton_slot() {
    let mut n = launched();
    let clock = inst(0, 0, 1);
    n.advance(n.cfg.timing.boot_timeout_ticks);
    n.round(); // times out, reports, gets the stops
    assert!(n.killed.contains(&(HostId(0), clock)));
    n.finish_kills();
    assert_eq!(
        n.manager.phase(clock),
        Some(Phase::Stopping(StopReason::BootTimedOut))
    );
    n.advance(2);
    n.round(); // the exit reaches the manager, well before lease expiry
    assert!(n.now.0 < n.cfg.lease_expiry_ticks());
    assert_eq!(n.manager.phase(clock), Some(Phase::Stopped));
    assert!(
        n.journal
            .contains(&JournalRecord::InstanceStopped { instance: clock })
    );
    // ... and the slot is launched again, with the next generation.
    assert_eq!(n.manager.phase(inst(0, 0, 2)), Some(Phase::Launching));
    assert_eq!(n.ledger_of(clock.slot), vec![inst(0, 0, 2)]);
}

#[test]
fn lease_expiry_frees_slot_only_after_expiry_period() {
    // The host goes silent after the launch: no exit will ever come.
    let mut n = launched();
    let clock = inst(0, 0, 1);
    let expiry = n.cfg.lease_expiry_ticks();
    assert_eq!(expiry, 10 + 1 + 2, "duration * (1 + drift) + margin");
    for t in 1..expiry {
        n.now = Tick(t);
        n.tick_manager();
        assert!(n.ledger().contains(&clock), "released at {t}");
        assert!(!n.manager.vacant_slots().any(|s| s == clock.slot));
    }
    n.now = Tick(expiry);
    n.tick_manager();
    assert!(n.noted(Note::LeaseExpired { instance: clock }));
    assert_eq!(n.manager.phase(clock), Some(Phase::Stopped));
    assert!(n.manager.vacant_slots().any(|s| s == clock.slot));
}

#[test]
fn renewal_pushes_lease_expiry_back() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(30);
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Up));
    assert!(
        !n.notes
            .iter()
            .any(|x| matches!(x, Note::LeaseExpired { .. }))
    );
    assert!(
        n.agent(0)
            .instances()
            .values()
            .all(|l| l.phase == RunPhase::Up)
    );
}

#[test]
fn up_instance_not_renewed_becomes_unknown_then_expires() {
    let mut n = launched();
    n.boot_all();
    n.advance(1);
    n.round(); // no report due: next at 2
    n.advance(1);
    n.round(); // reported up at 2, renewed
    let clock = inst(0, 0, 1);
    assert_eq!(n.manager.phase(clock), Some(Phase::Up));
    // The host goes silent.
    let unknown_at = 2 + n.cfg.timing.unknown_after_ticks;
    n.now = Tick(unknown_at - 1);
    n.tick_manager();
    assert_eq!(n.manager.phase(clock), Some(Phase::Up));
    n.now = Tick(unknown_at);
    n.tick_manager();
    assert_eq!(n.manager.phase(clock), Some(Phase::Unknown));
    n.now = Tick(2 + n.cfg.lease_expiry_ticks() - 1);
    n.tick_manager();
    assert_eq!(n.manager.phase(clock), Some(Phase::Unknown));
    n.advance(1);
    n.tick_manager();
    assert_eq!(n.manager.phase(clock), Some(Phase::Stopped));
}

#[test]
fn unknown_instance_reported_up_again_is_up() {
    let mut n = launched();
    n.boot_all();
    n.advance(2);
    n.round();
    n.now = Tick(2 + n.cfg.timing.unknown_after_ticks);
    n.tick_manager();
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Unknown));
    let tokens = n.manager.durable().budgets[0].tokens_milli;
    n.tick_agents();
    n.deliver_reports();
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Up));
    // Not a new success: no refill (rule 10).
    assert!(n.manager.durable().budgets[0].tokens_milli <= tokens);
}

// ----- reports -----

#[test]
fn phantom_instance_in_report_is_stopped() {
    let mut n = launched();
    let phantom = inst(1, 5, 9);
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        1,
        &[(phantom, RunPhase::Up)],
        &[],
    )))
    .unwrap();
    assert!(n.noted(Note::PhantomReaped { instance: phantom }));
    let r = n.sent.last().unwrap();
    assert!(r.stop.contains(&phantom));
    assert!(!r.renew.contains(&phantom));
    // Above the slot's high water: a journal that lost records. The high
    // water is raised before any launch of the slot, with an alert, so the
    // generation is never issued again.
    assert_eq!(n.manager.phase(phantom), Some(Phase::Stopped));
    assert!(
        n.alerts
            .contains(&Alert::GenerationAboveHighWater { instance: phantom })
    );
    assert_eq!(
        n.manager.durable().high_water.get(&phantom.slot),
        Some(&phantom.generation)
    );
}

#[test]
fn a_reported_generation_above_the_high_water_is_never_issued_again() {
    // The manager lost its journal's last records: it believes clock.1 is
    // at generation 1 while an agent still runs generation 3.
    let mut n = launched();
    let clock = inst(0, 0, 1);
    let lost = inst(0, 0, 3);
    let before = n.alerts.len();
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        1,
        &[(lost, RunPhase::Up)],
        &[],
    )))
    .unwrap();
    assert_eq!(n.alerts.len(), before + 1);
    assert_eq!(
        n.manager.durable().high_water.get(&clock.slot),
        Some(&lost.generation)
    );
    assert_eq!(
        n.manager.durable().next_generation(clock.slot),
        Some(tally_core::Generation(4))
    );
    // An exit of an instance above the high water raises it too.
    let exited = inst(0, 0, 7);
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        1,
        &[],
        &[(exited, ExitOutcome::Crashed)],
    )))
    .unwrap();
    assert_eq!(
        n.manager.durable().next_generation(clock.slot),
        Some(tally_core::Generation(8))
    );
    assert_eq!(n.alerts.len(), before + 2);
    let before = before + 1;
    // A second report of it raises nothing more.
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        1,
        &[(lost, RunPhase::Up)],
        &[],
    )))
    .unwrap();
    assert_eq!(n.alerts.len(), before + 1);
}

#[test]
fn instance_reported_by_another_host_is_reaped_there() {
    let mut n = launched();
    let clock = inst(0, 0, 1);
    n.manager_step(ManagerInput::ReportReceived(report(
        7,
        0,
        1,
        &[(clock, RunPhase::Up)],
        &[(inst(1, 0, 1), ExitOutcome::Crashed)],
    )))
    .unwrap();
    assert!(n.noted(Note::PhantomReaped { instance: clock }));
    assert!(n.noted(Note::StaleExit));
    let r = n.sent.last().unwrap();
    assert_eq!(r.host, HostId(7));
    assert!(r.stop.contains(&clock));
    // The real instances on host 0 are untouched.
    assert_eq!(n.manager.phase(clock), Some(Phase::Launching));
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Launching));
}

#[test]
fn absence_from_report_proves_nothing() {
    let mut n = launched();
    n.manager_step(ManagerInput::ReportReceived(report(0, 0, 1, &[], &[])))
        .unwrap();
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Launching));
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Launching));
}

#[test]
fn report_renews_only_listed_instances() {
    let mut n = launched();
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        1,
        &[(inst(0, 0, 1), RunPhase::Booting)],
        &[],
    )))
    .unwrap();
    assert_eq!(n.sent.last().unwrap().renew, vec![inst(0, 0, 1)]);
}

#[test]
fn stale_exit_is_a_counted_noop() {
    let mut n = launched();
    let before = n.manager.durable().clone();
    // At or below the high water and not in the ledger (an exit above the
    // high water is not stale: it raises the high water).
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        1,
        &[],
        &[(inst(0, 0, 0), ExitOutcome::Killed)],
    )))
    .unwrap();
    assert!(n.noted(Note::StaleExit));
    assert_eq!(n.manager.durable(), &before);
}

#[test]
fn duplicated_exit_is_applied_once() {
    let mut n = launched();
    let clock = inst(0, 0, 1);
    let exit = report(0, 0, 1, &[], &[(clock, ExitOutcome::Crashed)]);
    n.manager_step(ManagerInput::ReportReceived(exit.clone()))
        .unwrap();
    assert_eq!(n.manager.phase(clock), Some(Phase::Stopped));
    let stopped = |n: &Net| {
        n.journal
            .iter()
            .filter(|r| **r == JournalRecord::InstanceStopped { instance: clock })
            .count()
    };
    assert_eq!(stopped(&n), 1);
    n.manager_step(ManagerInput::ReportReceived(exit)).unwrap();
    assert_eq!(stopped(&n), 1);
    assert!(n.noted(Note::StaleExit));
}

#[test]
fn report_with_wrong_version_is_dropped() {
    let mut n = launched();
    let before = n.manager.clone();
    let mut r = report(0, 0, 1, &[(inst(0, 0, 1), RunPhase::Up)], &[]);
    r.version = 2;
    let sent = n.sent.len();
    n.manager_step(ManagerInput::ReportReceived(r)).unwrap();
    assert!(n.noted(Note::ReportVersionMismatch));
    assert_eq!(n.manager, before);
    assert_eq!(n.sent.len(), sent, "no reply to an unreadable request");
}

#[test]
fn successful_boot_refills_budget_once() {
    let cfg = one_web(|c| c.budget.capacity = 2);
    let mut n = Net::new(cfg, 1);
    // Spend a token: the first boot times out and the slot is relaunched.
    n.round();
    n.now = Tick(n.cfg.timing.boot_timeout_ticks);
    n.round();
    n.finish_kills();
    n.advance(2);
    n.round();
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, 1000);
    let relaunch = inst(1, 0, 2);
    assert_eq!(n.manager.phase(relaunch), Some(Phase::Launching));
    n.boot_all();
    n.advance(2);
    n.round();
    assert!(n.noted(Note::BootSucceeded { instance: relaunch }));
    assert!(
        n.journal
            .contains(&JournalRecord::BootSeenDone { instance: relaunch })
    );
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, 1500);
    n.run_healthy(10);
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, 1500);
}

// ----- retry budget, probe credit, backoff -----

#[test]
fn retry_refused_when_budget_empty() {
    let cfg = one_web(|c| {
        c.budget.capacity = 0;
        c.budget.probe_cooldown_ticks = 1000;
    });
    let mut n = Net::new(cfg, 1);
    n.round();
    n.now = Tick(n.cfg.timing.boot_timeout_ticks);
    n.round();
    n.finish_kills();
    for _ in 0..20 {
        n.advance(1);
        n.round();
        n.finish_kills();
    }
    let web = slot(1, 0);
    assert!(n.noted(Note::RetryRefused { slot: web }));
    assert_eq!(n.launched(), vec![inst(1, 0, 1)]);
    assert!(n.manager.vacant_slots().any(|s| s == web));
}

#[test]
fn probe_credit_allows_one_relaunch_per_cooldown() {
    let cfg = one_web(|c| {
        c.budget.capacity = 0;
        c.budget.probe_cooldown_ticks = 20;
        c.breaker.failure_threshold = 100;
    });
    let mut n = Net::new(cfg, 1);
    n.round();
    // Boots never succeed; kills do.
    let mut launches_by = Vec::new();
    for _ in 0..60 {
        n.advance(1);
        n.round();
        n.finish_kills();
        launches_by.push((n.now.0, n.launched().len()));
    }
    for (t, launches) in launches_by {
        // One free launch, then at most one relaunch per elapsed cool-down.
        assert!(
            launches <= 1 + usize::try_from(t / 20).unwrap(),
            "{launches} by {t}"
        );
    }
    assert_eq!(n.launched().len(), 1 + 3);
    assert_eq!(
        n.notes.iter().filter(|x| **x == Note::ProbeSpent).count(),
        3
    );
}

#[test]
fn probe_credit_does_not_accumulate() {
    let cfg = one_web(|c| c.budget.capacity = 0);
    let mut b = tally_core::Budget::full(&cfg, Tick(0));
    assert!(!b.probe_ready);
    assert!(!b.on_tick(&cfg, Tick(19)));
    // Five cool-downs pass unused: still one credit.
    assert!(b.on_tick(&cfg, Tick(100)));
    assert!(b.probe_ready);
    assert!(!b.on_tick(&cfg, Tick(150)));
    assert_eq!(b.try_spend(&cfg), Some(tally_core::budget::Payment::Probe));
    assert_eq!(b.try_spend(&cfg), None);
    assert_eq!(b.probe_refresh_at, Tick(120));
}

#[test]
fn tokens_pay_before_the_probe() {
    let cfg = Config::example();
    let mut b = tally_core::Budget::full(&cfg, Tick(0));
    b.on_tick(&cfg, Tick(20));
    for _ in 0..cfg.budget.capacity {
        assert_eq!(b.try_spend(&cfg), Some(tally_core::budget::Payment::Token));
    }
    assert_eq!(b.try_spend(&cfg), Some(tally_core::budget::Payment::Probe));
    assert_eq!(b.try_spend(&cfg), None);
    b.refill(&cfg);
    assert_eq!(b.tokens_milli, 500);
    for _ in 0..20 {
        b.refill(&cfg);
    }
    assert_eq!(b.tokens_milli, cfg.budget.capacity * 1000);
    assert!(b.within_capacity(&cfg));
}

#[test]
fn backoff_spaces_relaunches_of_a_slot() {
    let cfg = one_web(|c| {
        c.budget.backoff_base_ticks = 4;
        c.budget.backoff_max_ticks = 6;
        c.budget.jitter_max_ticks = 0;
    });
    let mut n = Net::new(cfg, 1);
    n.round();
    let timeout = n.cfg.timing.boot_timeout_ticks;
    n.now = Tick(timeout);
    n.tick_manager();
    let b = n.manager.backoff(slot(1, 0));
    assert_eq!(b.attempts, 1);
    assert_eq!(b.not_before, Tick(timeout + 4));
    // A report before the backoff ends launches nothing.
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        timeout,
        &[],
        &[],
    )))
    .unwrap();
    assert!(n.sent.last().unwrap().launch.is_empty());
    n.now = Tick(timeout + 4);
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        timeout + 4,
        &[],
        &[],
    )))
    .unwrap();
    assert_eq!(n.sent.last().unwrap().launch, vec![inst(1, 0, 2)]);
    // The next failure doubles the delay, capped at the maximum.
    n.now = Tick(2 * timeout + 4);
    n.tick_manager();
    assert_eq!(
        n.manager.backoff(slot(1, 0)).not_before,
        Tick(2 * timeout + 4 + 6)
    );
}

// ----- breaker -----

#[test]
fn breaker_opens_after_threshold_and_half_opens_after_cooldown() {
    let cfg = Config::example();
    let x = inst(1, 0, 1);
    let mut b = Breaker::closed(Tick(0));
    for i in 1..cfg.breaker.failure_threshold {
        b.on_failure(&cfg, Tick(u64::from(i)), x);
        assert!(b.allows_launch());
    }
    let t = Tick(u64::from(cfg.breaker.failure_threshold));
    assert_eq!(
        b.on_failure(&cfg, t, x),
        tally_core::breaker::BreakerChange::Tripped
    );
    assert_eq!(
        b,
        Breaker::Open {
            since: t,
            manual: false
        }
    );
    assert!(!b.allows_launch());
    b.on_tick(&cfg, t.plus(cfg.breaker.cooldown_ticks - 1));
    assert!(!b.allows_launch());
    b.on_tick(&cfg, t.plus(cfg.breaker.cooldown_ticks));
    assert_eq!(b, Breaker::HalfOpen { probe: None });
    assert!(b.allows_launch());
    b.on_launch(x);
    assert!(!b.allows_launch(), "a single probe");
    b.on_success(t, x);
    assert_eq!(b, Breaker::closed(t));
}

#[test]
fn breaker_failures_outside_the_window_do_not_add_up() {
    let cfg = Config::example();
    let x = inst(1, 0, 1);
    let mut b = Breaker::closed(Tick(0));
    let w = cfg.breaker.window_ticks;
    for i in 0..10 {
        b.on_failure(&cfg, Tick(i * w), x);
        assert!(matches!(b, Breaker::Closed { failures: 1, .. }), "{b:?}");
    }
}

#[test]
fn breaker_trip_stops_launches_and_probe_decides() {
    let cfg = cfg_with(|c| c.breaker.failure_threshold = 1);
    let mut n = Net::new(cfg, 1);
    n.round();
    let timeout = n.cfg.timing.boot_timeout_ticks;
    n.now = Tick(timeout);
    n.round();
    n.finish_kills();
    assert!(n.alerts.contains(&Alert::BreakerTripped { app: AppId(0) }));
    assert_eq!(
        n.manager.breaker(AppId(0)),
        Breaker::Open {
            since: Tick(timeout),
            manual: false
        }
    );
    let cooled = timeout + n.cfg.breaker.cooldown_ticks;
    while n.now.0 < cooled - 1 {
        n.advance(1);
        n.round();
        n.finish_kills();
    }
    assert_eq!(n.launched().len(), 2, "no launch while open");
    assert_eq!(n.manager.ledger_len(), 0);
    n.advance(1);
    n.round();
    assert_eq!(n.launched().len(), 3, "exactly one probe");
    let probe = inst(0, 0, 2);
    assert_eq!(
        n.manager.breaker(AppId(0)),
        Breaker::HalfOpen { probe: Some(probe) }
    );
    n.boot_all();
    n.advance(2);
    n.round();
    assert!(matches!(
        n.manager.breaker(AppId(0)),
        Breaker::Closed { .. }
    ));
    assert_eq!(n.launched().len(), 5, "closed again: the rest launch");
}

#[test]
fn failed_probe_reopens_breaker() {
    let cfg = cfg_with(|c| c.breaker.failure_threshold = 1);
    let mut n = Net::new(cfg, 1);
    n.round();
    n.now = Tick(8);
    n.round();
    n.finish_kills();
    n.now = Tick(18);
    n.round();
    let probe = inst(0, 0, 2);
    assert_eq!(
        n.manager.breaker(AppId(0)),
        Breaker::HalfOpen { probe: Some(probe) }
    );
    n.agent_step(0, tally_core::AgentInput::ProcessExited { instance: probe });
    n.advance(2);
    n.round();
    assert_eq!(
        n.manager.breaker(AppId(0)),
        Breaker::Open {
            since: Tick(20),
            manual: false
        }
    );
    assert_eq!(
        n.alerts
            .iter()
            .filter(|a| **a == Alert::BreakerTripped { app: AppId(0) })
            .count(),
        2
    );
}

#[test]
fn manual_breaker_stays_open_until_closed_by_hand() {
    let mut n = Net::new(Config::example(), 1);
    n.operator(OperatorCommand::BreakerOpen);
    n.run_healthy(100);
    assert!(n.launched().is_empty());
    assert!(n.alerts.is_empty(), "an operator's open raises no alert");
    n.operator(OperatorCommand::BreakerClose);
    n.run_healthy(10);
    assert_eq!(n.manager.ledger_len(), 3);
}

// ----- pauses -----

#[test]
fn paused_host_gets_no_launches() {
    let mut n = Net::new(Config::example(), 2);
    n.operator(OperatorCommand::PauseLaunches {
        host: Some(HostId(0)),
    });
    n.run_healthy(10);
    assert!(
        n.launched()
            .iter()
            .all(|id| n.manager.host_of(*id) == Some(HostId(1)))
    );
    assert_eq!(n.manager.ledger_len(), 3);
    n.operator(OperatorCommand::ResumeLaunches {
        host: Some(HostId(0)),
    });
    assert!(n.manager.durable().paused_hosts.is_empty());
}

#[test]
fn global_pause_stops_every_launch_until_resumed() {
    let mut n = Net::new(Config::example(), 2);
    n.operator(OperatorCommand::PauseLaunches { host: None });
    n.run_healthy(10);
    assert!(n.launched().is_empty());
    n.operator(OperatorCommand::ResumeLaunches { host: None });
    n.run_healthy(10);
    assert_eq!(n.manager.ledger_len(), 3);
}

// ----- user commands -----

#[test]
fn scale_singleton_above_one_is_refused() {
    let mut n = launched();
    let err = n
        .user(UserCommand::Scale {
            process_type: CLOCK,
            count: 2,
        })
        .unwrap_err();
    assert_eq!(
        err,
        Rejected::SingletonAboveOne {
            process_type: CLOCK,
            requested: 2
        }
    );
    assert!(err.to_string().contains("singleton"));
}

#[test]
fn unknown_process_type_is_refused() {
    let mut n = launched();
    let bad = TypeId(9);
    for command in [
        UserCommand::Scale {
            process_type: bad,
            count: 1,
        },
        UserCommand::Restart {
            process_type: Some(bad),
        },
    ] {
        assert_eq!(
            n.user(command),
            Err(Rejected::UnknownProcessType { process_type: bad })
        );
    }
}

#[test]
fn scale_above_max_is_refused() {
    let mut n = launched();
    let err = n
        .user(UserCommand::Scale {
            process_type: WEB,
            count: 9,
        })
        .unwrap_err();
    assert_eq!(
        err,
        Rejected::ScaleAboveMax {
            process_type: WEB,
            requested: 9,
            max: 8
        }
    );
    assert_eq!(
        n.user(UserCommand::Scale {
            process_type: WEB,
            count: u16::MAX,
        })
        .map_err(|_| ()),
        Err(())
    );
    // The maximum itself is accepted.
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 8,
    })
    .unwrap();
    assert_eq!(n.manager.desired(WEB), 8);
    assert_eq!(n.manager.durable().free_launches_granted_total(), 3 + 6);
}

#[test]
fn error_messages_are_lowercase_without_trailing_period() {
    for e in [
        Rejected::UnknownProcessType {
            process_type: TypeId(3),
        },
        Rejected::ScaleAboveMax {
            process_type: WEB,
            requested: 9,
            max: 8,
        },
        Rejected::SingletonAboveOne {
            process_type: CLOCK,
            requested: 2,
        },
        Rejected::LockedDown {
            command: CommandKind::Restart,
        },
    ] {
        let s = e.to_string();
        assert!(s.chars().next().is_some_and(char::is_lowercase), "{s}");
        assert!(!s.ends_with('.'), "{s}");
    }
}

#[test]
fn scale_down_stops_instances_above_the_count() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 1,
    })
    .unwrap();
    assert_eq!(
        n.manager.phase(inst(1, 1, 1)),
        Some(Phase::Stopping(StopReason::UserRequested))
    );
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Up));
    n.run_healthy(4);
    assert_eq!(n.manager.phase(inst(1, 1, 1)), Some(Phase::Stopped));
    assert_eq!(n.manager.ledger_len(), 2);
    assert_eq!(n.manager.vacant_slots().count(), 0);
}

#[test]
fn scale_up_launches_for_free() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    let tokens = n.manager.durable().budgets[0].tokens_milli;
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 4,
    })
    .unwrap();
    n.run_healthy(10);
    assert_eq!(n.manager.ledger_len(), 5);
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, tokens);
}

#[test]
fn restart_replaces_instances_with_free_launches() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    let tokens = n.manager.durable().budgets[0].tokens_milli;
    n.user(UserCommand::Restart {
        process_type: Some(WEB),
    })
    .unwrap();
    assert_eq!(
        n.manager.phase(inst(1, 0, 1)),
        Some(Phase::Stopping(StopReason::UserRequested))
    );
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Up));
    n.run_healthy(10);
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Stopped));
    assert_eq!(n.manager.phase(inst(1, 0, 2)), Some(Phase::Up));
    assert_eq!(n.manager.phase(inst(1, 1, 2)), Some(Phase::Up));
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, tokens);
}

#[test]
fn restarting_one_dyno_replaces_that_slot_only() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    let tokens = n.manager.durable().budgets[0].tokens_milli;
    n.user(UserCommand::RestartDyno { slot: slot(1, 1) })
        .unwrap();
    assert_eq!(
        n.manager.phase(inst(1, 1, 1)),
        Some(Phase::Stopping(StopReason::UserRequested))
    );
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Up));
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Up));
    n.run_healthy(10);
    assert_eq!(n.manager.phase(inst(1, 1, 1)), Some(Phase::Stopped));
    assert_eq!(n.manager.phase(inst(1, 1, 2)), Some(Phase::Up));
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Up));
    // A formation change, not a retry: no token spent.
    assert_eq!(n.manager.durable().budgets[0].tokens_milli, tokens);
}

#[test]
fn restarting_a_dyno_the_formation_lacks_or_under_lockdown_is_refused() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    let before = n.manager.clone();
    assert_eq!(
        n.user(UserCommand::RestartDyno { slot: slot(1, 2) }),
        Err(Rejected::NoSuchDyno {
            slot: slot(1, 2),
            desired: 2
        })
    );
    let bad = TypeId(9);
    assert_eq!(
        n.user(UserCommand::RestartDyno {
            slot: SlotId {
                process_type: bad,
                index: 0
            }
        }),
        Err(Rejected::UnknownProcessType { process_type: bad })
    );
    assert_eq!(n.manager, before);
    n.operator(OperatorCommand::Lockdown { on: true });
    let before = n.manager.clone();
    assert_eq!(
        n.user(UserCommand::RestartDyno { slot: slot(0, 0) }),
        Err(Rejected::LockedDown {
            command: CommandKind::Restart
        })
    );
    assert_eq!(n.manager, before);
}

#[test]
fn singleton_restart_launches_only_after_old_instance_is_stopped() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.user(UserCommand::Restart {
        process_type: Some(CLOCK),
    })
    .unwrap();
    // The stop is lost and the host stays silent: the old clock may still
    // run, so no new clock until its lease has certainly expired.
    let deadline = n
        .manager
        .ledger()
        .find(|(id, _, _)| *id == inst(0, 0, 1))
        .map(|(_, _, l)| l.lease_deadline)
        .unwrap();
    assert!(deadline <= n.now.plus(n.cfg.lease_expiry_ticks()));
    while n.now.plus(1) < deadline {
        n.advance(1);
        n.tick_manager();
        assert_eq!(n.ledger_of(slot(0, 0)).len(), 1);
        n.manager_step(ManagerInput::ReportReceived(report(
            9,
            0,
            n.now.0,
            &[],
            &[],
        )))
        .unwrap();
        assert!(
            !n.sent
                .last()
                .unwrap()
                .launch
                .iter()
                .any(|i| i.slot == slot(0, 0))
        );
    }
    n.advance(1);
    n.tick_manager();
    assert_eq!(n.manager.phase(inst(0, 0, 1)), Some(Phase::Stopped));
    n.manager_step(ManagerInput::ReportReceived(report(
        9,
        0,
        n.now.0,
        &[],
        &[],
    )))
    .unwrap();
    assert!(n.sent.last().unwrap().launch.contains(&inst(0, 0, 2)));
}

#[test]
fn deploy_replaces_every_instance() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.user(UserCommand::Deploy).unwrap();
    for id in n.ledger() {
        assert_eq!(
            n.manager.phase(id),
            Some(Phase::Stopping(StopReason::UserRequested))
        );
    }
    n.run_healthy(20);
    let gens: Vec<u32> = n.ledger().iter().map(|i| i.generation.0).collect();
    assert_eq!(gens, vec![2, 2, 2]);
}

// ----- lockdown -----

#[test]
fn lockdown_refuses_restart_and_leaves_state_unchanged() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.operator(OperatorCommand::Lockdown { on: true });
    let before = n.manager.clone();
    let err = n
        .user(UserCommand::Restart { process_type: None })
        .unwrap_err();
    assert_eq!(
        err,
        Rejected::LockedDown {
            command: CommandKind::Restart
        }
    );
    assert!(err.to_string().contains("locked down"));
    assert_eq!(n.manager, before);
    assert!(n.noted(Note::LockdownRefused));
}

#[test]
fn lockdown_refuses_deploy_and_scale_down_but_allows_scale_up() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.operator(OperatorCommand::Lockdown { on: true });
    assert_eq!(
        n.user(UserCommand::Deploy),
        Err(Rejected::LockedDown {
            command: CommandKind::Deploy
        })
    );
    assert_eq!(
        n.user(UserCommand::Scale {
            process_type: WEB,
            count: 1
        }),
        Err(Rejected::LockedDown {
            command: CommandKind::ScaleDown
        })
    );
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 3,
    })
    .unwrap();
    n.run_healthy(10);
    assert_eq!(n.manager.ledger_len(), 4);
    assert!(
        n.ledger()
            .iter()
            .all(|i| n.manager.phase(*i) == Some(Phase::Up))
    );
    // Lockdown off: the same command goes through.
    n.operator(OperatorCommand::Lockdown { on: false });
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 1,
    })
    .unwrap();
}

#[test]
fn lockdown_on_cancels_user_stops() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.user(UserCommand::Restart {
        process_type: Some(WEB),
    })
    .unwrap();
    n.user(UserCommand::Scale {
        process_type: CLOCK,
        count: 0,
    })
    .unwrap();
    assert_eq!(
        n.manager.phase(inst(0, 0, 1)),
        Some(Phase::Stopping(StopReason::UserRequested))
    );
    n.operator(OperatorCommand::Lockdown { on: true });
    for id in [inst(1, 0, 1), inst(1, 1, 1), inst(0, 0, 1)] {
        assert_eq!(n.manager.phase(id), Some(Phase::Up), "{id}");
        assert!(
            n.journal
                .contains(&JournalRecord::StopCancelled { instance: id })
        );
    }
    n.run_healthy(10);
    assert!(
        n.killed.is_empty(),
        "nothing a user asked for is killed under lockdown"
    );
    assert_eq!(n.manager.ledger_len(), 3);
}

#[test]
fn lockdown_keeps_safety_actions() {
    let mut n = launched();
    n.operator(OperatorCommand::Lockdown { on: true });
    // A boot timeout still stops the instance.
    n.now = Tick(n.cfg.timing.boot_timeout_ticks);
    n.tick_manager();
    assert_eq!(
        n.manager.phase(inst(0, 0, 1)),
        Some(Phase::Stopping(StopReason::BootTimedOut))
    );
    // A phantom is still reaped.
    let phantom = inst(1, 3, 1);
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        n.now.0,
        &[(phantom, RunPhase::Up)],
        &[],
    )))
    .unwrap();
    assert!(n.sent.last().unwrap().stop.contains(&phantom));
    assert!(n.sent.last().unwrap().stop.contains(&inst(0, 0, 1)));
}

#[test]
fn lockdown_scale_to_current_count_stops_nothing() {
    // A stop taken back by lockdown must not be re-issued by a user command
    // that lockdown lets through (S5).
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 1,
    })
    .unwrap();
    n.operator(OperatorCommand::Lockdown { on: true });
    assert_eq!(n.manager.phase(inst(1, 1, 1)), Some(Phase::Up));
    // The count does not go down, but it would stop web.2: a scale-down.
    assert_eq!(
        n.user(UserCommand::Scale {
            process_type: WEB,
            count: 1,
        }),
        Err(Rejected::LockedDown {
            command: CommandKind::ScaleDown
        })
    );
    assert_eq!(n.manager.phase(inst(1, 1, 1)), Some(Phase::Up));
    n.run_healthy(10);
    assert!(n.killed.is_empty());
}

#[test]
fn operator_commands_are_journaled_once() {
    let mut n = Net::new(Config::example(), 1);
    let len = n.journal.len();
    n.operator(OperatorCommand::Lockdown { on: true });
    n.operator(OperatorCommand::Lockdown { on: true });
    n.operator(OperatorCommand::BreakerClose);
    assert_eq!(n.journal.len(), len + 1);
    assert!(n.manager.lockdown());
    n.operator(OperatorCommand::BreakerOpen);
    n.operator(OperatorCommand::BreakerOpen);
    assert_eq!(n.journal.len(), len + 2);
}

// ----- restart from the journal -----

#[test]
fn restarted_manager_treats_instances_as_unknown_with_full_lease() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    assert_eq!(n.manager.ledger_len(), 3);
    let restart_at = n.now.plus(100);
    let m = Manager::recover(&n.cfg, n.manager.durable().clone(), restart_at).unwrap();
    let expiry = n.cfg.lease_expiry_ticks();
    assert_eq!(m.ledger_len(), 3);
    for (id, _, live) in m.ledger() {
        assert_eq!(m.phase(id), Some(Phase::Unknown));
        assert_eq!(live.view, LiveView::Unknown);
        assert_eq!(live.lease_deadline, restart_at.plus(expiry));
    }
    n.manager = m;
    n.now = restart_at.plus(expiry - 1);
    n.tick_manager();
    assert_eq!(n.manager.ledger_len(), 3);
    n.advance(1);
    n.tick_manager();
    assert_eq!(n.manager.ledger_len(), 0);
}

#[test]
fn restarted_manager_resumes_from_reports() {
    let mut n = launched();
    n.boot_all();
    n.run_healthy(6);
    let durable = n.manager.durable().clone();
    let tokens = durable.budgets[0].tokens_milli;
    n.manager = Manager::recover(&n.cfg, durable, n.now).unwrap();
    n.run_healthy(4);
    for id in n.ledger() {
        assert_eq!(n.manager.phase(id), Some(Phase::Up));
        assert_eq!(id.generation.0, 1);
    }
    assert_eq!(
        n.manager.durable().budgets[0].tokens_milli,
        tokens,
        "revival is no refill"
    );
}

#[test]
fn restarted_manager_gives_unbooted_instance_a_fresh_boot_deadline() {
    let mut n = launched();
    n.manager = Manager::recover(&n.cfg, n.manager.durable().clone(), Tick(5)).unwrap();
    n.now = Tick(6);
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        6,
        &[(inst(0, 0, 1), RunPhase::Booting)],
        &[],
    )))
    .unwrap();
    let live = n
        .manager
        .ledger()
        .find(|(id, _, _)| *id == inst(0, 0, 1))
        .map(|(_, _, l)| *l)
        .unwrap();
    assert_eq!(
        live.view,
        LiveView::Launching {
            boot_deadline: Tick(6 + n.cfg.timing.boot_timeout_ticks)
        }
    );
    // Web.1 was not reported: it stays unknown and keeps counting as a boot.
    assert_eq!(n.manager.phase(inst(1, 0, 1)), Some(Phase::Unknown));
    assert_eq!(n.manager.boots_unconfirmed(&n.cfg, HostId(0)), 2);
}

#[test]
fn recover_keeps_budget_breaker_and_lockdown() {
    let cfg = Config::example();
    let mut d = Durable::genesis(&cfg, Tick(0));
    let budget = tally_core::Budget {
        tokens_milli: 0,
        probe_ready: false,
        probe_refresh_at: Tick(77),
    };
    let breaker = Breaker::Open {
        since: Tick(3),
        manual: true,
    };
    d.apply_all(&[
        JournalRecord::BudgetSet {
            app: AppId(0),
            budget,
        },
        JournalRecord::BreakerSet {
            app: AppId(0),
            breaker,
        },
        JournalRecord::LockdownSet { on: true },
    ]);
    let m = Manager::recover(&cfg, d, Tick(50)).unwrap();
    assert_eq!(m.durable().budgets[0], budget);
    assert_eq!(m.breaker(AppId(0)), breaker);
    assert!(m.lockdown());
}

#[test]
fn recover_with_short_formation_pads_it() {
    let cfg = Config::example();
    let mut d = Durable::genesis(&cfg, Tick(0));
    d.formation.clear();
    d.instances.insert(
        inst(1, 0, 1),
        DurableInstance {
            host: HostId(0),
            boot_seen_done: true,
            stop: None,
        },
    );
    d.high_water.insert(slot(1, 0), tally_core::Generation(1));
    let m = Manager::recover(&cfg, d, Tick(0)).unwrap();
    assert_eq!(m.desired(WEB), 0);
    assert_eq!(tally_core::invariants::check_manager(&m, &cfg), Ok(()));
}

// ----- placement -----

/// DESIGN.md, "Placement": a host that already holds its share of a
/// scalable type, `ceil(desired / holders)`, leaves that type's first
/// launches to the other hosts; the rest of the formation waits for them.
#[test]
fn first_launches_of_a_scalable_type_spread_over_the_hosts() {
    let web_on = |n: &Net, h: u16| {
        n.manager
            .ledger()
            .filter(|(id, d, _)| id.slot.process_type == WEB && d.host == HostId(h))
            .count()
    };
    // K = 1: the clock on host 0, web.1 on host 1.
    let mut n = Net::new(
        cfg_with(|c| {
            c.boots_in_flight_max = 1;
            c.process_types[1].count_initial = 1;
        }),
        2,
    );
    n.round();
    n.run_healthy(2);
    assert_eq!(n.manager.host_of(inst(0, 0, 1)), Some(HostId(0)));
    assert_eq!(n.manager.host_of(inst(1, 0, 1)), Some(HostId(1)));
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 5,
    })
    .unwrap();
    // Only host 0 reports: it takes its share of web, ceil(5 / 2) = 3, and
    // no more, however often it asks.
    for _ in 0..6 {
        n.advance(1);
        n.tick_manager();
        n.tick_agents();
        n.reports.retain(|r| r.host == HostId(0));
        n.deliver_reports();
        n.deliver_replies();
        n.boot_all();
    }
    assert_eq!(web_on(&n, 0), 3);
    assert_eq!(n.manager.vacant_slots().count(), 1);
    // Host 1 reports again and takes the last one: three and two.
    n.run_healthy(3);
    assert_eq!((web_on(&n, 0), web_on(&n, 1)), (3, 2));
    assert_eq!(n.manager.vacant_slots().count(), 0);
}

/// A host alone never defers: instances above the formation that lockdown
/// keeps running hold no share (found in review: a lone host holding web.1
/// and web.3 with web=2 left web.2's relaunch waiting for good).
#[test]
fn a_host_alone_relaunches_beside_instances_lockdown_keeps_above_the_formation() {
    let mut n = Net::new(
        cfg_with(|c| {
            c.process_types[0].count_initial = 0;
            c.process_types[1].count_initial = 3;
        }),
        1,
    );
    n.round();
    n.run_healthy(6);
    assert_eq!(n.manager.vacant_slots().count(), 0);
    let web2 = n.manager.instances_of(slot(1, 1)).next().unwrap();
    // Down to one, up to two (web.2 gets a free launch), then lockdown
    // cancels the stops: web.2 and web.3 keep running.
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 1,
    })
    .unwrap();
    n.user(UserCommand::Scale {
        process_type: WEB,
        count: 2,
    })
    .unwrap();
    n.operator(OperatorCommand::Lockdown { on: true });
    // web.2 crashes; the host, alone, must relaunch it.
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        n.agent(0).incarnation().0,
        n.now.0,
        &[],
        &[(web2, ExitOutcome::Crashed)],
    )))
    .unwrap();
    n.run_healthy(10);
    assert_eq!(n.manager.vacant_slots().count(), 0);
    assert!(
        n.manager
            .instances_of(slot(1, 1))
            .any(|i| i.generation > web2.generation)
    );
}
