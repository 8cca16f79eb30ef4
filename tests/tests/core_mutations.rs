//! One test per entry of `Mutation::ALL`: each runs a small scenario under
//! the shipped behaviour and under the mutation, and shows where the
//! mutated behaviour differs locally (the model checker shows why that
//! difference is unsafe). A table test covers every mutation through an
//! exhaustive `match`, so a new mutation cannot be added without a scenario.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::{Net, inst, reply, report, slot};
use tally_core::agent::Local;
use tally_core::budget::Payment;
use tally_core::{
    Agent, AgentEffect, AgentInput, AppId, Breaker, Budget, Config, Durable, FleetBreaker, HostId,
    Incarnation, JournalRecord, Manager, ManagerInput, Mutation, Mutations, Phase, RunPhase, Term,
    Tick,
};

fn mutated(m: Mutation) -> Config {
    let mut c = Config::example();
    c.mutations = Mutations::NONE.with(m);
    c
}

fn agent_step(cfg: &Config, a: &mut Agent, now: u64, input: AgentInput) -> Vec<AgentEffect> {
    let mut out = Vec::new();
    a.step(cfg, Tick(now), input, &mut out);
    out
}

fn starts(out: &[AgentEffect]) -> usize {
    out.iter()
        .filter(|e| matches!(e, AgentEffect::StartProcess { .. }))
        .count()
}

// ----- scenarios: each returns what it observed -----

/// Phase of the clock right at its boot timeout.
fn timeout_phase(cfg: &Config) -> Option<Phase> {
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    n.now = Tick(cfg.timing.boot_timeout_ticks);
    n.tick_manager();
    n.manager.phase(inst(0, 0, 1))
}

/// What pays for a relaunch from an empty bucket with no probe credit.
fn empty_bucket_payment(cfg: &Config) -> Option<Payment> {
    let mut b = Budget::full(cfg, Tick(0));
    b.tokens_milli = 0;
    b.try_spend(cfg)
}

/// Whether an instance whose lease ran out is killed by its agent.
fn fenced_at_lease_end(cfg: &Config) -> bool {
    let id = inst(0, 0, 1);
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    agent_step(
        cfg,
        &mut a,
        0,
        AgentInput::ReplyReceived(reply(0, 0, 0, &[], &[id], &[])),
    );
    let out = agent_step(cfg, &mut a, cfg.timing.lease_ticks, AgentInput::Tick);
    out.contains(&AgentEffect::KillProcess { instance: id })
}

/// Starts of a launch below the highest generation seen.
fn older_launch_starts(cfg: &Config) -> usize {
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    let r = reply(0, 0, 0, &[], &[inst(1, 0, 5)], &[]);
    agent_step(cfg, &mut a, 0, AgentInput::ReplyReceived(r));
    let r = reply(0, 0, 0, &[], &[inst(1, 0, 4)], &[]);
    starts(&agent_step(cfg, &mut a, 0, AgentInput::ReplyReceived(r)))
}

/// Starts of a duplicated launch of the current generation after its boot failed.
fn duplicate_after_failed_boot_starts(cfg: &Config) -> usize {
    let id = inst(1, 0, 5);
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    let r = reply(0, 0, 0, &[], &[id], &[]);
    agent_step(cfg, &mut a, 0, AgentInput::ReplyReceived(r.clone()));
    // While it runs, the duplicate starts nothing even under the mutation.
    assert_eq!(
        starts(&agent_step(
            cfg,
            &mut a,
            0,
            AgentInput::ReplyReceived(r.clone())
        )),
        0
    );
    agent_step(cfg, &mut a, 1, AgentInput::ProcessExited { instance: id });
    starts(&agent_step(cfg, &mut a, 1, AgentInput::ReplyReceived(r)))
}

/// Starts of a launch overtaken by its own stop.
fn overtaken_launch_starts(cfg: &Config) -> usize {
    let id = inst(0, 0, 2);
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    agent_step(
        cfg,
        &mut a,
        0,
        AgentInput::ReplyReceived(reply(0, 0, 0, &[], &[], &[id])),
    );
    starts(&agent_step(
        cfg,
        &mut a,
        1,
        AgentInput::ReplyReceived(reply(0, 0, 0, &[], &[id], &[])),
    ))
}

/// Phase of a launched instance missing from its host's next report.
fn absent_phase(cfg: &Config) -> Option<Phase> {
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    n.manager_step(ManagerInput::ReportReceived(report(0, 0, 1, &[], &[])))
        .unwrap();
    n.manager.phase(inst(0, 0, 1))
}

/// Lease of a launch answering a request sent at 0, received at 5; and
/// whether one received at 8 starts.
fn lease_of_late_launch(cfg: &Config) -> (Option<Local>, usize) {
    let id = inst(1, 0, 1);
    let mut a = Agent::new(HostId(0), Incarnation(0), Tick(0));
    agent_step(
        cfg,
        &mut a,
        5,
        AgentInput::ReplyReceived(reply(0, 0, 0, &[], &[id], &[])),
    );
    let mut b = Agent::new(HostId(0), Incarnation(0), Tick(0));
    let r = reply(0, 0, 0, &[], &[id], &[]);
    let late = starts(&agent_step(cfg, &mut b, 8, AgentInput::ReplyReceived(r)));
    (a.instances().get(&id).copied(), late)
}

/// The generation a manager recovered from the compacted journal gives a
/// slot whose only instance has stopped.
fn generation_after_compaction(cfg: &Config) -> Vec<u32> {
    let mut d = Durable::genesis(cfg, Tick(0));
    let id = inst(1, 0, 1);
    d.apply_all(&[
        JournalRecord::FormationSet {
            process_type: tally_core::TypeId(1),
            count: 1,
        },
        JournalRecord::FreeLaunchGranted { slot: id.slot },
        JournalRecord::InstanceLaunched {
            instance: id,
            host: HostId(0),
            free: true,
        },
        JournalRecord::InstanceStopped { instance: id },
        JournalRecord::FreeLaunchGranted { slot: id.slot },
    ]);
    let mut m = Manager::recover(cfg, d.compacted(cfg), Tick(0)).unwrap();
    let mut out = Vec::new();
    m.step(
        cfg,
        Tick(0),
        ManagerInput::ReportReceived(report(0, 0, 0, &[], &[])),
        &mut out,
    )
    .unwrap();
    m.ledger().map(|(id, _, _)| id.generation.0).collect()
}

/// Tokens of a manager recovered from a journal with an empty bucket.
fn tokens_after_restart(cfg: &Config) -> u32 {
    let mut d = Durable::genesis(cfg, Tick(0));
    let mut budget = d.budgets[0];
    budget.tokens_milli = 0;
    d.apply(&JournalRecord::BudgetSet {
        app: AppId(0),
        budget,
    });
    Manager::recover(cfg, d, Tick(5)).unwrap().durable().budgets[0].tokens_milli
}

/// When the manager takes a silent host's lease as expired.
fn released_at(cfg: &Config) -> u64 {
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    let id = inst(0, 0, 1);
    while n.manager.phase(id) != Some(Phase::Stopped) {
        n.advance(1);
        n.tick_manager();
    }
    n.now.0
}

/// What the manager renews for a report that lists nothing.
fn renewed_for_empty_report(cfg: &Config) -> Vec<tally_core::InstanceId> {
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    n.manager_step(ManagerInput::ReportReceived(report(0, 0, 1, &[], &[])))
        .unwrap();
    n.sent.last().unwrap().renew.clone()
}

/// What pays for a relaunch from an empty bucket with the probe credit ready.
fn probe_payment(cfg: &Config) -> Option<Payment> {
    let mut b = Budget::full(cfg, Tick(0));
    b.tokens_milli = 0;
    assert!(b.on_tick(cfg, Tick(cfg.budget.probe_cooldown_ticks)));
    b.try_spend(cfg)
}

/// The probe credit of a manager recovered right after start.
fn probe_after_restart(cfg: &Config) -> bool {
    let d = Durable::genesis(cfg, Tick(0));
    Manager::recover(cfg, d, Tick(1)).unwrap().durable().budgets[0].probe_ready
}

/// Tokens after a restarted manager hears an already-booted instance again.
fn tokens_after_revival(cfg: &Config) -> u32 {
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    n.boot_all();
    n.advance(2);
    n.round();
    let id = inst(0, 0, 1);
    assert_eq!(n.manager.phase(id), Some(Phase::Up));
    let mut d = n.manager.durable().clone();
    let mut budget = d.budgets[0];
    budget.tokens_milli = 0;
    d.apply(&JournalRecord::BudgetSet {
        app: AppId(0),
        budget,
    });
    n.manager = Manager::recover(cfg, d, n.now).unwrap();
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        n.now.0,
        &[(id, RunPhase::Up)],
        &[],
    )))
    .unwrap();
    n.manager.durable().budgets[0].tokens_milli
}

/// Unconfirmed boots on a host whose two boots both timed out, and what
/// its next report launches.
fn boots_after_timeouts(cfg: &Config) -> (usize, usize) {
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    n.now = Tick(cfg.timing.boot_timeout_ticks);
    n.tick_manager();
    let boots = n.manager.boots_unconfirmed(cfg, HostId(0));
    // Past the backoff, before the leases expire.
    n.advance(2);
    assert!(n.now.0 < cfg.lease_expiry_ticks());
    n.manager_step(ManagerInput::ReportReceived(report(
        0,
        0,
        n.now.0,
        &[],
        &[],
    )))
    .unwrap();
    (boots, n.sent.last().unwrap().launch.len())
}

/// The breaker an automatic trip leaves after its cool-down.
fn breaker_after_cooldown(cfg: &Config) -> Breaker {
    let mut b = Breaker::Open {
        since: Tick(0),
        manual: false,
    };
    b.on_tick(cfg, Tick(cfg.breaker.cooldown_ticks * 10));
    b
}

/// What mutation `m` changes, observed under `cfg`, exhaustively.
fn observe(m: Mutation, cfg: &Config) -> String {
    match m {
        Mutation::TimeoutFreesSlot => format!("{:?}", timeout_phase(cfg)),
        Mutation::UnboundedRetries => format!("{:?}", empty_bucket_payment(cfg)),
        Mutation::NoSelfFencing => format!("{:?}", fenced_at_lease_end(cfg)),
        Mutation::TrustLateMessages => format!("{:?}", older_launch_starts(cfg)),
        Mutation::RefuseOnlyOlder => format!("{:?}", duplicate_after_failed_boot_starts(cfg)),
        Mutation::StopWithoutTombstone => format!("{:?}", overtaken_launch_starts(cfg)),
        Mutation::AbsenceConfirmsDeath => format!("{:?}", absent_phase(cfg)),
        Mutation::LeaseFromReceipt => format!("{:?}", lease_of_late_launch(cfg)),
        Mutation::JournalForgetsGenerations => format!("{:?}", generation_after_compaction(cfg)),
        Mutation::BudgetNotJournaled => format!("{:?}", tokens_after_restart(cfg)),
        Mutation::ExpiryIgnoresDrift => format!("{:?}", released_at(cfg)),
        Mutation::HostWideRenewal => format!("{:?}", renewed_for_empty_report(cfg)),
        Mutation::BreakerProbeOnly => format!("{:?}", probe_payment(cfg)),
        Mutation::ProbeNotJournaled => format!("{:?}", probe_after_restart(cfg)),
        Mutation::RefillOnRevive => format!("{:?}", tokens_after_revival(cfg)),
        Mutation::AdmissionCountsLaunching => format!("{:?}", boots_after_timeouts(cfg)),
        Mutation::BreakerNeverHalfOpens => format!("{:?}", breaker_after_cooldown(cfg)),
        Mutation::MarginIgnoresKill => format!("{:?}", released_at(cfg)),
        Mutation::FleetWideBudget => format!("{:?}", budgets_after_other_app_relaunch(cfg)),
        Mutation::BreakerCountsOneApp => format!("{:?}", fleet_breaker_after_one_app_fails(cfg)),
        Mutation::UnfencedAppend => format!(
            "{:?}",
            tally_core::append_admitted(cfg, Some(Term(3)), Term(2))
        ),
        Mutation::UnguardedLeader => format!("{:?}", leads_long_after_confirmation(cfg)),
        Mutation::TakeoverTrustsLedger => format!("{:?}", lease_deadline_after_takeover(cfg)),
        Mutation::GuardFromAppend => format!("{:?}", leads_after_append(cfg)),
        Mutation::GuardIgnoresDrift => format!("{:?}", with_store(cfg).leadership_guard_ticks()),
    }
}

/// `cfg` with a store lease of 10 ticks and a margin of 1: with the
/// example's drift (a tenth) the guard is 8 ticks (8 + 1 + 1 < 10).
fn with_store(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    c.leadership = Some(tally_core::config::LeadershipConfig {
        lease_ticks: 10,
        margin_ticks: 1,
    });
    c
}

/// A leader that took over at tick 0 (campaign sent then), with the
/// example's formation launched by it.
fn leader(cfg: &Config) -> Manager {
    let mut out = Vec::new();
    let m = Manager::new(cfg, Tick(0), &mut out).unwrap();
    Manager::take_over(
        cfg,
        m.durable().clone(),
        (Tick(0), Tick(0)),
        Term(1),
        &mut out,
    )
    .unwrap()
}

/// Whether a leader confirmed at 0 still acts at tick 50.
fn leads_long_after_confirmation(cfg: &Config) -> bool {
    let cfg = with_store(cfg);
    leader(&cfg).leads(&cfg, Tick(50))
}

/// Whether a leader confirmed at 0 whose append committed at 8 still acts
/// at 12 (past its guard of 8 from the confirmation).
fn leads_after_append(cfg: &Config) -> bool {
    let cfg = with_store(cfg);
    let mut m = leader(&cfg);
    m.append_committed(&cfg, Tick(8));
    m.leads(&cfg, Tick(12))
}

/// The lease deadline a new leader, taking over at tick 20, gives the
/// instance its predecessor launched.
fn lease_deadline_after_takeover(cfg: &Config) -> Vec<Tick> {
    // The predecessor's journal (its launches), as it left it.
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    let durable = n.manager.durable().clone();
    let cfg = with_store(cfg);
    let mut out = Vec::new();
    let m = Manager::take_over(&cfg, durable, (Tick(20), Tick(20)), Term(2), &mut out).unwrap();
    m.ledger().map(|(_, _, l)| l.lease_deadline).collect()
}

/// `cfg` with a second app, `blog`, of one `web` dyno.
fn with_second_app(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    c.process_types.push(tally_core::config::ProcessTypeConfig {
        app: "blog".into(),
        name: "web".into(),
        kind: tally_core::ProcessKind::Scalable,
        count_initial: 1,
        count_max: 1,
    });
    // Every first launch in the first report.
    c.boots_in_flight_max = 8;
    c
}

/// Each app's tokens after the second app's dyno fails to boot and is
/// relaunched.
fn budgets_after_other_app_relaunch(cfg: &Config) -> Vec<u32> {
    let cfg = with_second_app(cfg);
    let mut n = Net::new(cfg, 1);
    n.round();
    let blog = inst(2, 0, 1);
    n.agent_step(0, tally_core::AgentInput::ProcessExited { instance: blog });
    // Past the slot's backoff.
    for _ in 0..4 {
        n.advance(2);
        n.round();
    }
    assert!(n.launched().contains(&inst(2, 0, 2)), "relaunched");
    n.manager
        .durable()
        .budgets
        .iter()
        .map(|b| b.tokens_milli)
        .collect()
}

/// The fleet breaker after two boot failures of one app, among two apps.
fn fleet_breaker_after_one_app_fails(cfg: &Config) -> FleetBreaker {
    let mut cfg = with_second_app(cfg);
    cfg.breaker.failure_threshold = 2;
    let mut b = FleetBreaker::closed(Tick(0));
    for g in 1..=2 {
        b.on_failure((&cfg, 2), Tick(1), (AppId(1), inst(2, 0, g)));
    }
    b
}

#[test]
fn every_mutation_changes_observable_behaviour() {
    let shipped = Config::example();
    for m in Mutation::ALL {
        let (a, b) = (observe(m, &shipped), observe(m, &mutated(m)));
        assert_ne!(a, b, "{m}: no local difference");
    }
}

#[test]
fn every_mutation_has_a_unique_name_that_parses() {
    for m in Mutation::ALL {
        assert_eq!(Mutation::from_name(m.name()), Ok(m));
        assert_eq!(m.to_string(), m.name());
        let set = Mutations::NONE.with(m);
        assert!(set.has(m));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![m]);
        assert!(
            Mutation::ALL
                .iter()
                .filter(|o| o.name() == m.name())
                .count()
                == 1
        );
    }
    let all = Mutation::ALL
        .into_iter()
        .fold(Mutations::NONE, Mutations::with);
    assert_eq!(all.iter().count(), Mutation::ALL.len());
    assert!(Mutations::NONE.is_empty());
    assert!(Config::example().mutations.is_empty());
}

// ----- one named test per mutation, with exact values -----

#[test]
fn timeout_frees_slot_removes_the_instance_on_timeout() {
    let m = Mutation::TimeoutFreesSlot;
    assert_eq!(
        timeout_phase(&Config::example()),
        Some(Phase::Stopping(tally_core::StopReason::BootTimedOut))
    );
    assert_eq!(timeout_phase(&mutated(m)), Some(Phase::Stopped));
}

#[test]
fn unbounded_retries_spends_nothing() {
    assert_eq!(empty_bucket_payment(&Config::example()), None);
    assert_eq!(
        empty_bucket_payment(&mutated(Mutation::UnboundedRetries)),
        Some(Payment::Unbounded)
    );
}

#[test]
fn no_self_fencing_keeps_instance_past_its_lease() {
    assert!(fenced_at_lease_end(&Config::example()));
    assert!(!fenced_at_lease_end(&mutated(Mutation::NoSelfFencing)));
}

#[test]
fn trust_late_messages_starts_an_older_generation() {
    assert_eq!(older_launch_starts(&Config::example()), 0);
    assert_eq!(
        older_launch_starts(&mutated(Mutation::TrustLateMessages)),
        1
    );
}

#[test]
fn refuse_only_older_restarts_a_failed_boot_on_a_duplicate() {
    assert_eq!(duplicate_after_failed_boot_starts(&Config::example()), 0);
    assert_eq!(
        duplicate_after_failed_boot_starts(&mutated(Mutation::RefuseOnlyOlder)),
        1
    );
}

#[test]
fn stop_without_tombstone_lets_an_overtaken_launch_start() {
    assert_eq!(overtaken_launch_starts(&Config::example()), 0);
    assert_eq!(
        overtaken_launch_starts(&mutated(Mutation::StopWithoutTombstone)),
        1
    );
}

#[test]
fn absence_confirms_death_drops_unlisted_instances() {
    assert_eq!(absent_phase(&Config::example()), Some(Phase::Launching));
    assert_eq!(
        absent_phase(&mutated(Mutation::AbsenceConfirmsDeath)),
        Some(Phase::Stopped)
    );
}

#[test]
fn lease_from_receipt_lengthens_a_late_launch_lease() {
    let (local, late) = lease_of_late_launch(&Config::example());
    assert_eq!(local.map(|l| l.lease_until), Some(Tick(10)));
    assert_eq!(late, 0);
    let (local, late) = lease_of_late_launch(&mutated(Mutation::LeaseFromReceipt));
    assert_eq!(local.map(|l| l.lease_until), Some(Tick(15)));
    assert_eq!(late, 1);
}

#[test]
fn journal_forgets_generations_reuses_a_generation() {
    assert_eq!(generation_after_compaction(&Config::example()), vec![2]);
    assert_eq!(
        generation_after_compaction(&mutated(Mutation::JournalForgetsGenerations)),
        vec![1]
    );
    let cfg = mutated(Mutation::JournalForgetsGenerations);
    let mut d = Durable::genesis(&cfg, Tick(0));
    d.high_water.insert(slot(1, 0), tally_core::Generation(3));
    assert!(d.compacted(&cfg).high_water.is_empty());
    assert_eq!(d.compacted(&Config::example()), d);
}

#[test]
fn budget_not_journaled_refills_on_restart() {
    assert_eq!(tokens_after_restart(&Config::example()), 0);
    assert_eq!(
        tokens_after_restart(&mutated(Mutation::BudgetNotJournaled)),
        4000
    );
}

#[test]
fn expiry_ignores_drift_releases_after_duration_alone() {
    assert_eq!(Config::example().lease_expiry_ticks(), 13);
    assert_eq!(
        mutated(Mutation::ExpiryIgnoresDrift).lease_expiry_ticks(),
        10
    );
    assert_eq!(released_at(&Config::example()), 13);
    assert_eq!(released_at(&mutated(Mutation::ExpiryIgnoresDrift)), 10);
}

#[test]
fn margin_ignores_kill_releases_before_the_kill_is_done() {
    let cfg = Config::example();
    let t = &cfg.timing;
    assert!(t.margin_ticks >= t.kill_ticks && t.kill_ticks > 0);
    let without = 13 - t.margin_ticks;
    assert_eq!(
        mutated(Mutation::MarginIgnoresKill).lease_expiry_ticks(),
        without
    );
    assert_eq!(released_at(&mutated(Mutation::MarginIgnoresKill)), without);
}

#[test]
fn host_wide_renewal_renews_unlisted_instances() {
    assert!(renewed_for_empty_report(&Config::example()).is_empty());
    assert_eq!(
        renewed_for_empty_report(&mutated(Mutation::HostWideRenewal)),
        vec![inst(0, 0, 1), inst(1, 0, 1)]
    );
}

#[test]
fn breaker_probe_only_has_no_probe_credit() {
    assert_eq!(probe_payment(&Config::example()), Some(Payment::Probe));
    assert_eq!(probe_payment(&mutated(Mutation::BreakerProbeOnly)), None);
}

#[test]
fn probe_not_journaled_finds_a_fresh_probe_on_restart() {
    assert!(!probe_after_restart(&Config::example()));
    assert!(probe_after_restart(&mutated(Mutation::ProbeNotJournaled)));
}

#[test]
fn refill_on_revive_refills_for_a_known_boot() {
    assert_eq!(tokens_after_revival(&Config::example()), 0);
    assert_eq!(
        tokens_after_revival(&mutated(Mutation::RefillOnRevive)),
        500
    );
}

#[test]
fn admission_counts_launching_forgets_timed_out_boots() {
    assert_eq!(boots_after_timeouts(&Config::example()), (2, 0));
    assert_eq!(
        boots_after_timeouts(&mutated(Mutation::AdmissionCountsLaunching)),
        (0, 2)
    );
}

#[test]
fn breaker_never_half_opens_stays_open() {
    assert_eq!(
        breaker_after_cooldown(&Config::example()),
        Breaker::HalfOpen { probe: None }
    );
    assert!(matches!(
        breaker_after_cooldown(&mutated(Mutation::BreakerNeverHalfOpens)),
        Breaker::Open { .. }
    ));
}
