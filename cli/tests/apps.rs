//! Two apps in one `tally run --app NAME=PATH ...`, through the binary:
//! `blog`'s release never boots, `shop` is healthy. Blog spends its own
//! budget and trips its own breaker; shop keeps a full bucket, converges,
//! and gets its relaunch; the verbs take an app.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::{CLOCK, Cluster};
use serde_json::Value;

/// The deployment's settings: fast timings, no `[types]` (each app sets
/// its own beside its Procfile).
const DEPLOYMENT: &str = r#"
tick_ms = 50
boots_in_flight_max = 2

[timing]
lease_ms = 2000
drift_ppm = 10000
kill_grace_ms = 200
margin_ms = 600
report_interval_ms = 250
report_delivery_ms = 100
boot_ms = 300
boot_timeout_ms = 2000
unknown_after_ms = 1500

[budget]
capacity = 3
refill_per_boot = 0.5
probe_cooldown_ms = 60000
backoff_base_ms = 100
backoff_max_ms = 400
jitter_max_ms = 50

[breaker]
window_ms = 20000
failure_threshold = 2
cooldown_ms = 60000
"#;

/// `apps/shop` (the witness clock and a web) and `apps/blog` (a web that
/// exits before it listens: a release that never boots).
fn write_apps(name: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("tally-apps-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let shop = root.join("shop");
    let blog = root.join("blog");
    std::fs::create_dir_all(&shop).unwrap();
    std::fs::create_dir_all(&blog).unwrap();
    std::fs::write(
        shop.join("Procfile"),
        format!("{CLOCK}\nweb: sleep 100000\n"),
    )
    .unwrap();
    std::fs::write(
        shop.join("tally.toml"),
        "[types.clock]\nsingleton = true\nready = \"file\"\n\n[types.web]\nready = \"started\"\n",
    )
    .unwrap();
    // Commands run in the app's directory: `pwd` tells.
    std::fs::write(
        blog.join("Procfile"),
        "web: sh -c 'pwd > ran-here; exit 3'\n",
    )
    .unwrap();
    std::fs::write(blog.join("tally.toml"), "[types.web]\nready = \"port\"\n").unwrap();
    std::fs::write(blog.join(".env"), "BLOG_ONLY=1\n").unwrap();
    root
}

fn app<'a>(ps: &'a Value, name: &str) -> &'a Value {
    ps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no app {name} in {ps:#}"))
}

fn shop_clock_up(ps: &Value) -> bool {
    ps["instances"].as_array().is_some_and(|is| {
        is.iter()
            .any(|i| i["dyno"] == "shop:clock.1" && i["phase"] == "up")
    })
}

#[test]
fn a_broken_app_spends_its_own_budget_and_the_healthy_one_is_untouched() {
    let root = write_apps("isolated");
    let shop = format!("shop={}", root.join("shop").display());
    let blog = format!("blog={}", root.join("blog").join("Procfile").display());
    let c = Cluster::start_with(
        "apps-isolated",
        "",
        DEPLOYMENT,
        2,
        &["--app", &shop, "--app", &blog],
    );
    // Blog's boots keep failing until its own breaker holds it.
    let ps = c.wait_for("blog's breaker to open", 60, |ps| {
        app(ps, "blog")["breaker_open"] == true && shop_clock_up(ps)
    });
    let (shop_app, blog_app) = (app(&ps, "shop"), app(&ps, "blog"));
    assert!(blog_app["tokens"].as_f64().unwrap() < 3.0, "{ps:#}");
    assert_eq!(shop_app["tokens"].as_f64().unwrap(), 3.0, "{ps:#}");
    assert_eq!(shop_app["breaker_open"], false, "{ps:#}");
    assert!(
        ps["breaker"].as_str().unwrap().starts_with("closed"),
        "one app's failures never trip the fleet breaker: {ps:#}"
    );
    assert!(
        blog_app["launches"].as_u64().unwrap() <= blog_app["launch_bound"].as_u64().unwrap(),
        "{ps:#}"
    );
    let ran_here = std::fs::read_to_string(root.join("blog").join("ran-here")).unwrap();
    assert_eq!(
        std::path::Path::new(ran_here.trim()),
        root.join("blog").canonicalize().unwrap(),
        "an app's commands run in its directory"
    );

    // Shop's singleton crashes out: its relaunch is paid by shop's bucket,
    // whatever blog spent, and it never overlaps.
    let out = c.tally(&["stop", "clock.1", "--app", "shop"]);
    assert!(out.status.success(), "{out:?}");
    c.wait_for("shop's clock relaunched", 30, |ps| {
        ps["instances"].as_array().is_some_and(|is| {
            is.iter().any(|i| {
                i["dyno"] == "shop:clock.1"
                    && i["phase"] == "up"
                    && i["generation"].as_u64() >= Some(2)
            })
        })
    });
    c.assert_no_overlap();

    // The verbs take an app; a bare type two apps share is refused.
    let out = c.tally(&["scale", "web=2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("more than one app") && err.contains("--app"),
        "{err}"
    );
    let out = c.tally(&["scale", "web=2", "--app", "shop"]);
    assert!(out.status.success(), "{out:?}");
    let out = c.tally(&["ps", "--app", "blog", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let only: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        only["types"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["app"] == "blog"),
        "{only:#}"
    );
    assert_eq!(only["apps"].as_array().unwrap().len(), 1, "{only:#}");
    // The lifecycle lines of shop's dynos (its clock's stop and relaunch
    // just above) are left out; the fleet's own lines stay.
    let recent = only["recent"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .all(|l| !l.as_str().unwrap().contains("slot=shop:")),
        "only blog's lifecycle lines: {only:#}"
    );
    let out = c.tally(&["ps", "--app", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("apps: shop, blog"));
    let text = c.tally(&["ps"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("--- app shop") && text.contains("--- app blog"),
        "{text}"
    );
    c.wait_for("shop's two webs", 30, |ps| {
        ps["types"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["name"] == "shop:web" && t["up"] == 2))
    });
}

#[test]
fn types_in_the_deployments_settings_are_refused_with_apps() {
    let root = write_apps("refused");
    let shop = format!("shop={}", root.join("shop").display());
    let run = || {
        std::process::Command::new(common::TALLY)
            .args(["run", "--hosts", "0", "--app", &shop, "--config"])
            .arg(root.join("deployment.toml"))
            .arg("--data-dir")
            .arg(root.join("data"))
            .output()
            .unwrap()
    };
    // The file does not exist: the read error names it.
    let out = run();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deployment.toml"),
        "{out:?}"
    );
    std::fs::write(root.join("deployment.toml"), common::SETTINGS).unwrap();
    let out = run();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("each app's types are set in its own tally.toml"),
        "{err}"
    );
    let out = std::process::Command::new(common::TALLY)
        .args(["run", "--app", "shop"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not NAME=PATH"));
}
