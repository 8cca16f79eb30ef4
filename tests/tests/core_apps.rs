//! Apps are isolated (DESIGN.md, "Apps are isolated"): each app has its own
//! bucket, probe credit and breaker; the fleet breaker trips only on
//! failures spread across apps. Scenarios on the core alone; the model
//! checker proves it (S7, `ci-two-apps`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use common::{Net, inst};
use tally_core::config::ProcessTypeConfig;
use tally_core::{
    AgentInput, Alert, AppId, Breaker, Config, FleetBreaker, InstanceId, JournalRecord, Manager,
    ProcessKind, Tick, launch_bound,
};

/// `shop` (clock, web of 2, from `Config::example`) and `blog` (web of 1),
/// every first launch admitted at once, a breaker that trips on the second
/// failure in a window.
fn two_apps() -> Config {
    let mut c = Config::example();
    c.process_types.push(ProcessTypeConfig {
        app: "blog".into(),
        name: "web".into(),
        kind: ProcessKind::Scalable,
        count_initial: 1,
        count_max: 1,
    });
    c.boots_in_flight_max = 8;
    c.breaker.failure_threshold = 2;
    c
}

const SHOP: AppId = AppId(0);
const BLOG: AppId = AppId(1);

/// `blog`'s dyno (type 2) of generation `g`.
fn blog(g: u32) -> InstanceId {
    inst(2, 0, g)
}

/// Fails `instance`'s boot, boots every other booting process, and lets
/// reports and replies run.
fn fail_boot(n: &mut Net, instance: InstanceId) {
    n.agent_step(0, AgentInput::ProcessExited { instance });
    n.boot_all();
    for _ in 0..6 {
        n.advance(2);
        n.round();
    }
}

#[test]
fn apps_are_numbered_by_first_appearance() {
    let cfg = two_apps();
    assert_eq!(cfg.type_apps(), vec![SHOP, SHOP, BLOG]);
    assert_eq!(cfg.app_names(), vec!["shop", "blog"]);
    assert_eq!(cfg.find_app("blog"), Some(BLOG));
    assert_eq!(cfg.find_app("nope"), None);
    // Never fewer than two apps: one app alone cannot trip it.
    assert_eq!(cfg.fleet_breaker_threshold(), 2);
    let mut many = cfg.clone();
    many.breaker.fleet_app_share_milli = 500;
    for i in 0..8 {
        many.process_types.push(ProcessTypeConfig {
            app: format!("app{i}"),
            name: "web".into(),
            kind: ProcessKind::Scalable,
            count_initial: 0,
            count_max: 1,
        });
    }
    assert_eq!(many.fleet_breaker_threshold(), 5, "half of 10 apps");
}

#[test]
fn a_broken_app_spends_only_its_own_bucket() {
    let mut n = Net::new(two_apps(), 1);
    n.round();
    let full = n.manager.budget(SHOP).unwrap().tokens_milli;
    let mut g = 1;
    // Blog's release never boots: each relaunch is paid by blog alone.
    while n.launched().contains(&blog(g)) && g < 8 {
        fail_boot(&mut n, blog(g));
        g += 1;
    }
    let blog_tokens = n.manager.budget(BLOG).unwrap().tokens_milli;
    assert!(blog_tokens < full, "blog paid for its relaunches");
    assert_eq!(
        n.manager.budget(SHOP).unwrap().tokens_milli,
        full,
        "shop's bucket untouched"
    );
    // And shop still relaunches when its own dyno crashes.
    let web = inst(1, 0, 1);
    fail_boot(&mut n, web);
    assert!(n.launched().contains(&inst(1, 0, 2)), "shop relaunched");
    assert!(!n.alerts.contains(&Alert::FleetBreakerTripped));
}

#[test]
fn one_apps_failures_trip_its_breaker_and_never_the_fleets() {
    let mut n = Net::new(two_apps(), 1);
    n.round();
    fail_boot(&mut n, blog(1));
    fail_boot(&mut n, blog(2));
    assert!(n.alerts.contains(&Alert::BreakerTripped { app: BLOG }));
    assert!(!n.alerts.contains(&Alert::FleetBreakerTripped));
    assert!(!matches!(n.manager.breaker(BLOG), Breaker::Closed { .. }));
    assert!(matches!(n.manager.breaker(SHOP), Breaker::Closed { .. }));
    assert!(n.manager.fleet_breaker().allows_launch());
    // Shop's launches go on while blog is held.
    let web = inst(1, 0, 1);
    fail_boot(&mut n, web);
    assert!(n.launched().contains(&inst(1, 0, 2)), "shop relaunched");
}

#[test]
fn failures_of_two_apps_trip_the_fleet_breaker() {
    let cfg = two_apps();
    let mut b = FleetBreaker::closed(Tick(0));
    let once = b.on_failure((&cfg, 2), Tick(1), (BLOG, blog(1)));
    let again = b.on_failure((&cfg, 2), Tick(2), (BLOG, blog(2)));
    assert_eq!(
        b.failing(),
        [BLOG],
        "one app is counted once, whatever its failures"
    );
    assert_ne!(once, tally_core::breaker::BreakerChange::None);
    assert_eq!(again, tally_core::breaker::BreakerChange::None);
    let tripped = b.on_failure((&cfg, 2), Tick(3), (SHOP, inst(1, 0, 1)));
    assert_eq!(tripped, tally_core::breaker::BreakerChange::Tripped);
    assert!(!b.allows_launch());
    // A window later, the count starts again.
    let mut c = FleetBreaker::closed(Tick(0));
    c.on_failure((&cfg, 2), Tick(1), (BLOG, blog(1)));
    let w = cfg.breaker.window_ticks;
    c.on_failure((&cfg, 2), Tick(1 + w), (SHOP, inst(1, 0, 1)));
    assert!(c.allows_launch(), "failures a window apart are not spread");
}

#[test]
fn a_failed_fleet_probe_alone_does_not_reopen_it() {
    let cfg = two_apps();
    let mut b = FleetBreaker::closed(Tick(0));
    b.on_failure((&cfg, 2), Tick(1), (BLOG, blog(1)));
    b.on_failure((&cfg, 2), Tick(1), (SHOP, inst(1, 0, 1)));
    b.on_tick(&cfg, Tick(1 + cfg.breaker.cooldown_ticks));
    assert!(b.allows_launch(), "half-open");
    b.on_launch(blog(2));
    assert!(!b.allows_launch(), "one probe at a time");
    b.on_failure((&cfg, 2), Tick(20), (BLOG, blog(2)));
    assert!(
        b.allows_launch(),
        "blog's failed probe lets the next probe through: blog alone cannot keep the fleet shut"
    );
    b.on_launch(inst(1, 0, 2));
    b.on_failure((&cfg, 2), Tick(21), (SHOP, inst(1, 0, 2)));
    assert!(matches!(b, FleetBreaker::Open { .. }), "two apps failing");
}

#[test]
fn the_launch_bound_holds_per_app_and_sums_to_the_fleets() {
    let cfg = two_apps();
    let mut n = Net::new(cfg.clone(), 1);
    n.round();
    for g in 1..4 {
        fail_boot(&mut n, blog(g));
    }
    let m: &Manager = &n.manager;
    let counters = tally_core::Counters::default();
    let apps: u64 = (0..2)
        .map(|a| {
            let inputs = m.launch_bound_inputs_of_app(&cfg, (AppId(a), 0), n.now);
            assert_eq!(inputs.buckets, 1);
            launch_bound(&cfg, inputs)
        })
        .sum();
    let fleet = m.launch_bound_inputs(&cfg, &counters, n.now);
    assert_eq!(fleet.buckets, 2);
    assert_eq!(launch_bound(&cfg, fleet), apps);
    let blog_launches = n
        .launched()
        .iter()
        .filter(|i| i.slot.process_type.0 == 2)
        .count() as u64;
    let blog_bound = launch_bound(&cfg, m.launch_bound_inputs_of_app(&cfg, (BLOG, 0), n.now));
    assert!(
        blog_launches <= blog_bound,
        "{blog_launches} > {blog_bound}"
    );
}

#[test]
fn a_journal_of_one_app_recovers_with_a_new_apps_full_budget() {
    let one = Config::example();
    let mut d = tally_core::Durable::genesis(&one, Tick(0));
    let mut spent = d.budgets[0];
    spent.tokens_milli = 0;
    d.apply(&JournalRecord::BudgetSet {
        app: SHOP,
        budget: spent,
    });
    let m = Manager::recover(&two_apps(), d, Tick(3)).unwrap();
    assert_eq!(m.budget(SHOP).unwrap().tokens_milli, 0, "kept");
    assert_eq!(
        m.budget(BLOG).unwrap().tokens_milli,
        two_apps().budget.capacity * 1000,
        "a new app starts full"
    );
    assert!(matches!(m.breaker(BLOG), Breaker::Closed { .. }));
}

#[test]
fn a_journal_of_more_apps_recovers_under_fewer_without_stale_counts() {
    let mut three = two_apps();
    three.process_types.push(ProcessTypeConfig {
        app: "wiki".into(),
        name: "web".into(),
        kind: ProcessKind::Scalable,
        count_initial: 1,
        count_max: 1,
    });
    let mut d = tally_core::Durable::genesis(&three, Tick(0));
    d.apply(&JournalRecord::FleetBreakerSet {
        breaker: FleetBreaker::Closed {
            window_start: Tick(0),
            failing: vec![AppId(2)],
        },
    });
    let cfg = two_apps();
    let mut m = Manager::recover(&cfg, d, Tick(1)).unwrap();
    assert!(m.fleet_breaker().failing().is_empty(), "wiki is gone");
    assert_eq!(tally_core::invariants::check_manager(&m, &cfg), Ok(()));
    let mut out = Vec::new();
    m.step(&cfg, Tick(2), tally_core::ManagerInput::Tick, &mut out)
        .unwrap();
}

#[test]
fn a_half_open_fleet_breaker_counts_apps_within_a_window() {
    let cfg = two_apps();
    let mut b = FleetBreaker::closed(Tick(0));
    b.on_failure((&cfg, 2), Tick(1), (BLOG, blog(1)));
    b.on_failure((&cfg, 2), Tick(1), (SHOP, inst(1, 0, 1)));
    b.on_tick(&cfg, Tick(1 + cfg.breaker.cooldown_ticks));
    assert!(
        matches!(b, FleetBreaker::HalfOpen { ref failing, .. } if failing.is_empty()),
        "{b:?}"
    );
    // Half-open counts within a window too: two apps' failures a window
    // apart do not reopen it.
    let t = 1 + cfg.breaker.cooldown_ticks;
    b.on_failure((&cfg, 2), Tick(t + 1), (BLOG, blog(2)));
    let w = cfg.breaker.window_ticks;
    b.on_failure((&cfg, 2), Tick(t + 1 + w), (SHOP, inst(1, 0, 2)));
    assert!(b.allows_launch(), "{b:?}");
}
