//! The manager with real processes: `tally run`, `tally agent`, real dynos,
//! real signals. A singleton `clock` dyno appends `generation pid time_ns`
//! to a witness file every 20 ms; across an agent frozen by SIGSTOP (alive but
//! unheard), an agent SIGKILLed, the manager SIGKILLed and restarted, and
//! boots that hang past the timeout, no two clock lives in the witness may
//! overlap, and the formation must come back once the fault ends.
//!
//! A life is the span from a process's first heartbeat to its last, so an
//! overlap shorter than one heartbeat could hide; a broken fence would show
//! one of the order of a lease (over a second here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[test]
fn a_frozen_agent_fences_its_clock_before_the_manager_replaces_it() {
    let c = Cluster::start("sigstop", &procfile(), SETTINGS, 2);
    let ps = c.wait_for("the clock up", 30, clock_up);
    let (generation, host, _) = clock(&ps).unwrap();
    let frozen = u16::try_from(host).unwrap();
    let stopped_at = Instant::now();
    let stopped_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    signal(&c.agents[&frozen], "STOP");
    let ps = c.wait_for("a new clock elsewhere", 30, |ps| {
        clock(ps).is_some_and(|(g, h, p)| g > generation && h != host && p == "up")
    });
    let replaced = stopped_at.elapsed();
    let lives = c.assert_no_overlap();
    let old_end = lives
        .iter()
        .filter(|((g, _), _)| u64::from(*g) == generation)
        .map(|(_, (_, end))| *end)
        .max()
        .unwrap();
    let new_start = lives
        .iter()
        .filter(|((g, _), _)| u64::from(*g) > generation)
        .map(|(_, (start, _))| *start)
        .min()
        .unwrap();
    eprintln!(
        "partition: clock g{generation} fenced {} ms after SIGSTOP, replaced after {replaced:?}; gap between lives {} ms",
        old_end.saturating_sub(stopped_ns) / 1_000_000,
        (new_start - old_end) / 1_000_000
    );
    signal(&c.agents[&frozen], "CONT");
    c.wait_for("convergence after the partition heals", 30, converged);
    std::thread::sleep(Duration::from_millis(500));
    c.assert_no_overlap();
    assert!(ps["launches"].as_u64().unwrap() <= ps["launch_bound"].as_u64().unwrap());
}

#[test]
fn a_killed_agent_and_a_killed_manager_start_no_duplicate() {
    let mut c = Cluster::start("sigkill", &procfile(), SETTINGS, 2);
    let ps = c.wait_for("the clock up", 30, clock_up);
    let (generation, host, _) = clock(&ps).unwrap();
    let host = u16::try_from(host).unwrap();

    // The agent dies: its fences kill the dynos, the manager waits the lease out.
    let mut agent = c.agents.remove(&host).unwrap();
    agent.kill().unwrap();
    agent.wait().unwrap();
    c.wait_for("a new clock", 30, |ps| {
        clock(ps).is_some_and(|(g, _, p)| g > generation && p == "up")
    });
    c.start_agent(host);
    let ps = c.wait_for("convergence after the agent's restart", 30, converged);
    c.assert_no_overlap();
    let (generation, _, _) = clock(&ps).unwrap();

    // The manager dies and comes back within a lease: nothing is relaunched.
    let mut manager = c.manager.take().unwrap();
    manager.kill().unwrap();
    manager.wait().unwrap();
    let killed_at = Instant::now();
    c.start_manager();
    let ps = c.wait_for("convergence after the manager's restart", 30, converged);
    eprintln!(
        "manager restart: converged again {:?} after the SIGKILL",
        killed_at.elapsed()
    );
    let (after, _, _) = clock(&ps).unwrap();
    assert_eq!(after, generation, "a manager restart relaunched the clock");
    c.assert_no_overlap();

    // Down for longer than a lease: the dynos fence themselves; the
    // restarted manager waits out the leases, then relaunches.
    let mut manager = c.manager.take().unwrap();
    manager.kill().unwrap();
    manager.wait().unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let killed_at = Instant::now();
    c.start_manager();
    let ps = c.wait_for("convergence after a long manager outage", 40, |ps| {
        converged(ps) && clock(ps).is_some_and(|(g, _, _)| g > generation)
    });
    eprintln!(
        "long manager outage: converged {:?} after the restart",
        killed_at.elapsed()
    );
    c.assert_no_overlap();
    assert!(ps["launches"].as_u64().unwrap() <= ps["launch_bound"].as_u64().unwrap());
}

#[test]
fn a_restarted_manager_shows_the_same_launch_bound() {
    // An hour's probe cool-down: `P` stays 0 for the whole test, so the
    // bound can change only through `F` and `S`, which the journal keeps.
    let settings = SETTINGS.replace("probe_cooldown_ms = 4000", "probe_cooldown_ms = 3600000");
    assert_ne!(settings, SETTINGS);
    let mut c = Cluster::start("bound", &procfile(), &settings, 2);
    c.wait_for("convergence", 30, converged);
    let before = c.ps();
    let field = |ps: &Value, k: &str| ps[k].as_u64().unwrap();
    // The proven formula `F + B + r*S + P`, with B = 6, r = 0.5, P = 0.
    let formula = |ps: &Value| field(ps, "first_launches") + 6 + field(ps, "boots_succeeded") / 2;
    assert!(field(&before, "boots_succeeded") >= 2, "{before:#}");
    assert_eq!(
        field(&before, "launch_bound"),
        formula(&before),
        "{before:#}"
    );

    let mut manager = c.manager.take().unwrap();
    manager.kill().unwrap();
    manager.wait().unwrap();
    c.start_manager();
    let after = c.wait_for("convergence after the manager's restart", 30, converged);
    for k in [
        "launch_bound",
        "boots_succeeded",
        "first_launches",
        "launches",
    ] {
        assert_eq!(
            field(&after, k),
            field(&before, k),
            "{k} changed across a manager restart:\nbefore {before:#}\nafter {after:#}"
        );
    }
    assert!(field(&after, "launches") <= field(&after, "launch_bound"));
    c.assert_no_overlap();
}

#[test]
fn a_boot_that_hangs_past_the_timeout_is_never_doubled() {
    let c = Cluster::start("hang", &procfile(), SETTINGS, 2);
    std::fs::write(c.dir.join("hang"), "").unwrap();
    c.wait_for("a boot timeout", 30, |ps| {
        ps["slots"]["clock.1"]["boot_timeouts"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    c.assert_no_overlap();
    std::fs::remove_file(c.dir.join("hang")).unwrap();
    let ps = c.wait_for("the clock up once the hang ends", 40, |ps| {
        clock_up(ps) && converged(ps)
    });
    c.assert_no_overlap();
    assert!(ps["launches"].as_u64().unwrap() <= ps["launch_bound"].as_u64().unwrap());
}

#[test]
fn a_crash_loop_stays_within_the_budget_and_opens_the_breaker() {
    let procfile = "crasher: sh -c 'sleep 0.1; exit 1'\n";
    let settings = SETTINGS
        .replace(
            "[types.clock]\nsingleton = true\nready = \"file\"\n",
            "[types.crasher]\nready = \"file\"\n",
        )
        .replace("[types.web]\ncount = 1\nready = \"started\"\n", "");
    let c = Cluster::start("crashloop", procfile, &settings, 2);
    let ps = c.wait_for("the breaker to open", 40, |ps| {
        ps["breaker_open"] == true || ps["breaker_trips"].as_u64().unwrap_or(0) > 0
    });
    std::thread::sleep(Duration::from_secs(3));
    let ps2 = c.ps();
    for p in [&ps, &ps2] {
        let (launches, bound) = (
            p["launches"].as_u64().unwrap(),
            p["launch_bound"].as_u64().unwrap(),
        );
        assert!(
            launches <= bound,
            "launches {launches} above the bound {bound}"
        );
    }
    let text = String::from_utf8(c.tally(&["ps"]).stdout).unwrap();
    assert!(text.contains("breaker:"), "{text}");
    assert!(
        text.contains("boot failures"),
        "ps does not say why: {text}"
    );
    eprintln!("{text}");
}

#[test]
fn lockdown_refuses_restart_and_stops_nothing() {
    let c = Cluster::start("lockdown", &procfile(), SETTINGS, 2);
    let before = c.wait_for("convergence", 30, converged);
    let out = c.tally(&["lockdown", "on"]);
    assert!(out.status.success());
    let out = c.tally(&["restart"]);
    assert!(!out.status.success(), "restart was accepted under lockdown");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked down"), "{err}");
    let out = c.tally(&["scale", "web=0"]);
    assert!(
        !out.status.success(),
        "a scale-down was accepted under lockdown"
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = c.ps();
    let gens = |ps: &Value| -> Vec<(String, u64, String)> {
        ps["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["dyno"].as_str().unwrap().to_string(),
                    i["generation"].as_u64().unwrap(),
                    i["phase"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        gens(&before),
        gens(&after),
        "something was stopped under lockdown"
    );
    assert!(after["lockdown_refusals"].as_u64().unwrap() >= 2);
    // Off again: restart replaces.
    assert!(c.tally(&["lockdown", "off"]).status.success());
    assert!(c.tally(&["restart", "web"]).status.success());
    c.wait_for("web replaced", 30, |ps| {
        converged(ps)
            && ps["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["dyno"] == "web.1" && i["generation"].as_u64() > Some(1))
    });
}

#[test]
fn the_api_needs_the_token_and_binds_loopback_and_bad_input_changes_nothing() {
    let c = Cluster::start("api", &procfile(), SETTINGS, 1);
    let addr = std::fs::read_to_string(c.data().join("api.addr")).unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "API bound to {addr}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.data().join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");

    let raw_body = |method: &str, path: &str, auth: Option<&str>, body: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr.trim()).unwrap();
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let raw = |method: &str, path: &str, auth: Option<&str>| raw_body(method, path, auth, "{}");
    assert!(raw("GET", "/health", None).starts_with("HTTP/1.1 200"));
    assert!(raw("GET", "/ps", None).starts_with("HTTP/1.1 401"));
    assert!(raw("POST", "/restart", None).starts_with("HTTP/1.1 401"));
    assert!(raw("POST", "/lockdown", Some("not-the-token")).starts_with("HTTP/1.1 401"));
    let token = std::fs::read_to_string(c.data().join("token")).unwrap();
    assert!(raw("GET", "/nope", Some(token.trim())).starts_with("HTTP/1.1 404"));

    // The agent link wants the token too: a forged agent gets nothing.
    {
        use tally_manager::wire::{Frame, LINK_VERSION, read_frame, write_frame};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", c.agent_port)).unwrap();
        let hello = Frame::Hello {
            version: LINK_VERSION,
            host: tally_core::HostId(7),
            incarnation: tally_core::Incarnation(1),
            machine: "feedface".into(),
            session: "0123".into(),
            token: "forged".into(),
        };
        write_frame(&mut s, &hello).unwrap();
        match read_frame(&mut s).unwrap() {
            Frame::Refused { why, retry } => {
                assert!(why.contains("token") && !retry, "{why}");
            }
            other => panic!("a forged agent was welcomed: {other:?}"),
        }
    }

    c.wait_for("convergence", 30, converged);
    // A copy of host 0's agent data dir on another machine (a cloned image:
    // the same machine id and incarnation) is not taken for host 0's agent.
    {
        use tally_manager::wire::{Frame, LINK_VERSION, read_frame, write_frame};
        let read = |p: &str| std::fs::read_to_string(c.data().join(p)).unwrap();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", c.agent_port)).unwrap();
        let hello = Frame::Hello {
            version: LINK_VERSION,
            host: tally_core::HostId(0),
            incarnation: tally_core::Incarnation(
                read("host-0/incarnation").trim().parse().unwrap(),
            ),
            machine: read("machine-id").trim().to_string(),
            session: "cloned".into(),
            token: read("token").trim().to_string(),
        };
        write_frame(&mut s, &hello).unwrap();
        match read_frame(&mut s).unwrap() {
            Frame::Refused { why, .. } => {
                assert!(why.contains("already has a live agent"), "{why}")
            }
            other => panic!("a cloned agent was welcomed as host 0: {other:?}"),
        }
    }
    let before = c.ps();
    for (args, says) in [
        (vec!["scale", "nope=2"], "unknown process type"),
        (vec!["scale", "clock=2"], "singleton"),
        (vec!["scale", "web=3", "clock=2"], "singleton"),
        (vec!["scale", "web=1000"], "maximum"),
        (vec!["scale", "web"], "TYPE=COUNT"),
        (vec!["restart", "nope"], "unknown process type"),
    ] {
        let out = c.tally(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A duplicated JSON key is refused, not silently the last value.
    let dup = raw_body("POST", "/scale", Some(token.trim()), r#"{"web":1,"web":9}"#);
    assert!(
        dup.starts_with("HTTP/1.1 400") && dup.contains("duplicate key"),
        "{dup}"
    );
    let dup = raw_body(
        "POST",
        "/pause",
        Some(token.trim()),
        r#"{"host":0,"host":1}"#,
    );
    assert!(dup.starts_with("HTTP/1.1 400"), "{dup}");
    // A pause for a host no agent ever attached as is refused.
    let out = c.tally(&["pause", "--host", "9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown host 9"),
        "{err}"
    );
    let out = c.tally(&["scale", "web=1", "web=9"]);
    assert!(!out.status.success(), "a type given twice was accepted");
    let after = c.ps();
    assert_eq!(
        before["types"], after["types"],
        "a refused command changed the formation"
    );
    // Relative counts, as `heroku ps:scale web+2` takes them.
    let web_desired = |ps: &Value| {
        ps["types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "web")
            .unwrap()["desired"]
            .as_u64()
            .unwrap()
    };
    let out = c.tally(&["scale", "web+2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(web_desired(&c.ps()), web_desired(&after) + 2);
    let out = c.tally(&["scale", "web-2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(web_desired(&c.ps()), web_desired(&after));

    // Bad files and a public API address are refused before anything starts.
    let run = |procfile: &str, settings: &str, extra: &[&str]| -> Output {
        let dir = c.dir.join("bad");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Procfile"), procfile).unwrap();
        std::fs::write(dir.join("tally.toml"), settings).unwrap();
        Command::new(TALLY)
            .args(["run", "--procfile"])
            .arg(dir.join("Procfile"))
            .arg("--config")
            .arg(dir.join("tally.toml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .output()
            .unwrap()
    };
    for (procfile, settings, extra, says) in [
        ("web sleep 1\n", "", &[][..], "Procfile line 1"),
        ("web: sleep 1\nweb: sleep 2\n", "", &[][..], "named twice"),
        (
            "web: sleep 1\n",
            "[types.nope]\ncount = 1\n",
            &[][..],
            "does not name",
        ),
        (
            "web: sleep 1\n",
            "tick_ms = \"fast\"\n",
            &[][..],
            "tally.toml",
        ),
        (
            "web: sleep 1\n",
            "",
            &["--api-listen", "0.0.0.0:0"][..],
            "loopback",
        ),
        (
            "web: sleep 1\n",
            "tick_ms = 1\n",
            &[][..],
            "tick_ms = 1 must be between 10 and 10000",
        ),
        (
            "web: sleep 1\n",
            "[timing]\ndrift_ppm = 4000000000\n",
            &[][..],
            "timing.drift_ppm = 4000000000 must be between 0 and 100000",
        ),
        (
            "web: sleep 1\n",
            "[budget]\ncapacity = 0\n",
            &[][..],
            "budget.capacity = 0 must be between 1 and 10000",
        ),
        (
            "web: sleep 1\n",
            "app = \"\"\n",
            &[][..],
            "must be 1 to 63 characters",
        ),
    ] {
        let out = run(procfile, settings, extra);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "expected `{says}` in: {err}");
        assert!(
            !c.dir.join("bad/data/journal").exists(),
            "a journal was started"
        );
    }
}

/// `tally run` on `data` with a one-type Procfile; returns its output, or
/// kills it after `secs` if it is still running (then `None`).
fn run_briefly(dir: &std::path::Path, data: &std::path::Path, secs: u64) -> Option<Output> {
    std::fs::write(dir.join("Procfile"), "web: sleep 100000\n").unwrap();
    let mut child = Command::new(TALLY)
        .args(["run", "--hosts", "0", "--procfile"])
        .arg(dir.join("Procfile"))
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(&mut child, secs)?;
    Some(child.wait_with_output().unwrap())
}

#[test]
fn a_data_dir_others_control_is_refused_and_no_planted_token_is_adopted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tally-test-datadir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Writable by others, with a token planted in it.
    let open = dir.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(open.join("token"), "a".repeat(64)).unwrap();
    let out = run_briefly(&dir, &open, 20).expect("started in a world-writable data dir");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("writable by others"),
        "{err}"
    );
    assert!(!open.join("journal").exists(), "a journal was started");

    // Owned by another user (only root can make one to test with).
    if nix::unistd::geteuid().is_root() {
        let theirs = dir.join("theirs");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let out = run_briefly(&dir, &theirs, 20).expect("started in another user's data dir");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("owned by uid 65534"),
            "{err}"
        );
    }

    // Our own private dir, but a token no manager of ours created: replaced.
    let planted = dir.join("planted");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
    let planted_token = "b".repeat(64);
    std::fs::write(planted.join("token"), &planted_token).unwrap();
    assert!(
        run_briefly(&dir, &planted, 8).is_none(),
        "the manager did not run"
    );
    let token = std::fs::read_to_string(planted.join("token")).unwrap();
    assert_ne!(token.trim(), planted_token, "a planted token was adopted");
    let mode = std::fs::metadata(planted.join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The row "every process of the clock's host frozen past the expiry wait,
/// then resumed": the fence, waking past its deadline, must kill at once
/// (SIGKILL, no grace), so the old clock never runs beside its replacement.
/// Prints the window: from the resume to the old dyno gone.
#[test]
fn a_whole_host_frozen_past_its_leases_runs_no_stale_clock_beside_the_new_one() {
    let c = Cluster::start("hostfreeze", &procfile(), SETTINGS, 3);
    let mut windows = Vec::new();
    for round in 0..3 {
        let ps = c.wait_for("the clock up", 30, clock_up);
        let (generation, host, _) = clock(&ps).unwrap();
        let agent = c.agents[&u16::try_from(host).unwrap()].id();
        let below = descendants(agent);
        let dyno_pids: Vec<u32> = c
            .lives()
            .iter()
            .filter(|l| u64::from(l.generation) == generation)
            .map(|l| l.pid)
            .collect();
        let mut all = vec![agent];
        all.extend(&below);
        signal_pids(&all, "STOP");
        // Past the expiry wait (2.62 s): the manager replaces the clock.
        c.wait_for("the clock replaced elsewhere", 30, |ps| {
            clock(ps).is_some_and(|(g, h, p)| g > generation && h != host && p == "up")
        });
        std::thread::sleep(Duration::from_millis(300));
        let resumed = Instant::now();
        signal_pids(&all, "CONT");
        // The old clock's shell (and its heartbeat child) must be gone.
        let until = Instant::now() + Duration::from_secs(5);
        while dyno_pids.iter().any(|p| alive(*p)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        let window = resumed.elapsed();
        windows.push(window);
        std::thread::sleep(Duration::from_millis(300));
        c.assert_no_overlap();
        eprintln!(
            "host freeze {round}: clock g{generation} on host {host} frozen past its lease; gone {window:?} after the resume"
        );
    }
    c.assert_generations_unique_and_rising();
    eprintln!("whole-host freeze: stale dyno gone after the resume in {windows:?}");
}

/// A fence wedged on its own (stopped while its agent runs) cannot kill its
/// dyno; the agent kills the group itself once the lease end plus the grace
/// passes without the fence's word, so a restart still never doubles the
/// clock.
#[test]
fn a_wedged_fence_is_backed_up_by_its_agent() {
    let c = Cluster::start("wedged", &procfile(), SETTINGS, 2);
    let ps = c.wait_for("the clock up", 30, clock_up);
    let (generation, _, _) = clock(&ps).unwrap();
    let dyno = c
        .lives()
        .iter()
        .rev()
        .find(|l| u64::from(l.generation) == generation)
        .unwrap()
        .pid;
    // The clock is `sh -c` under the Procfile's `sh -c`, under its fence.
    let mut fence = parent(dyno).unwrap();
    for _ in 0..3 {
        if comm(fence).starts_with("tally") {
            break;
        }
        fence = parent(fence).unwrap();
    }
    assert!(
        comm(fence).starts_with("tally"),
        "{} is not a fence",
        comm(fence)
    );
    signal_pids(&[fence], "STOP");
    let out = c.tally(&["restart", "clock"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_for("a new clock", 30, |ps| {
        clock(ps).is_some_and(|(g, _, p)| g > generation && p == "up")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(dyno), "the wedged fence's dyno still runs");
    c.assert_no_overlap();
    signal_pids(&[fence], "CONT");
    c.wait_for("convergence", 30, converged);
    c.assert_no_overlap();
    assert!(
        c.read_log("agent-0.log").contains("let its lease end pass")
            || c.read_log("agent-1.log").contains("let its lease end pass"),
        "the agent never had to kill the group itself"
    );
}

/// Ctrl-C in the foreground stops everything as SIGTERM does, and says so.
#[test]
fn ctrl_c_stops_every_dyno_and_says_so() {
    let dir = std::env::temp_dir().join(format!("tally-test-ctrlc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Procfile"),
        "clock: sh -c 'echo $$ > \"$PIDFILE\"; exec sleep 100000'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tally.toml"),
        SETTINGS.replace("[types.web]\ncount = 1\nready = \"started\"\n", ""),
    )
    .unwrap();
    let mut run = Command::new(TALLY)
        .args(["run", "--hosts", "1", "--procfile"])
        .arg(dir.join("Procfile"))
        .arg("--config")
        .arg(dir.join("tally.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("PIDFILE", dir.join("pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let dyno: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < until, "the clock never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(alive(dyno));
    signal_pids(&[run.id()], "INT");
    let status = wait_exit(&mut run, 10).expect("tally run ignored Ctrl-C");
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("SIGINT received: stopping"), "{err}");
    let until = Instant::now() + Duration::from_secs(3);
    while alive(dyno) {
        assert!(Instant::now() < until, "the clock outlived tally run");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `.env` beside the Procfile reaches every dyno: its values win over the
/// environment `tally run` was started in, and lose to the variables tally
/// sets for each dyno (a Heroku `.env` often sets `PORT`), which the start
/// line says.
#[test]
fn dotenv_beside_the_procfile_reaches_every_dyno_below_tallys_own_variables() {
    let dir = std::env::temp_dir().join(format!("tally-test-dotenv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Procfile"),
        "clock: sh -c 'echo \"$GREETING|$QUOTED|$OVERRIDE|$PORT|$DYNO\" > \"$OUT\"; exec sleep 100000'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "# the app's settings\nGREETING=hello world # not part of it\nexport QUOTED=\"a \\\"b\\\"\"\nOVERRIDE=from-dotenv\nPORT=1\nDYNO=nope\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tally.toml"),
        SETTINGS.replace("[types.web]\ncount = 1\nready = \"started\"\n", ""),
    )
    .unwrap();
    let out = dir.join("out");
    let mut run = Command::new(TALLY)
        .args(["run", "--hosts", "1", "--procfile"])
        .arg(dir.join("Procfile"))
        .arg("--config")
        .arg(dir.join("tally.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("OUT", &out)
        .env("OVERRIDE", "from-the-shell")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        if let Some(line) = std::fs::read_to_string(&out)
            .ok()
            .filter(|s| s.ends_with('\n'))
        {
            break line;
        }
        assert!(Instant::now() < until, "the clock never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    signal_pids(&[run.id()], "INT");
    wait_exit(&mut run, 10).expect("tally run ignored Ctrl-C");
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    let fields: Vec<&str> = seen.trim_end().split('|').collect();
    assert_eq!(
        fields[..3],
        ["hello world", "a \"b\"", "from-dotenv"],
        "{seen}"
    );
    assert_ne!(fields[3], "1", "tally's PORT must win: {seen}");
    assert_eq!(fields[4], "clock.1", "{seen}");
    assert!(
        err.contains("5 variable(s) from .env for every dyno (PORT, DYNO set by tally"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tally run --hosts 1` of `dir`'s Procfile and data dir with `flag file`,
/// to its end (these runs are refused before anything starts).
fn run_in(dir: &std::path::Path, flag: &str, file: &std::path::Path) -> Output {
    Command::new(TALLY)
        .args(["run", "--hosts", "1", "--procfile"])
        .arg(dir.join("Procfile"))
        .arg(flag)
        .arg(file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap()
}

/// `--env FILE` replaces `.env`, must exist, and a bad line is refused
/// before anything starts, with the file and the line.
#[test]
fn an_env_file_that_is_missing_or_malformed_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("tally-test-badenv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Procfile"), "web: sleep 100\n").unwrap();
    std::fs::write(dir.join("bad.env"), "A=1\nthis is not a pair\n").unwrap();
    let run = |env: &str| run_in(&dir, "--env", &dir.join(env));
    let bad = run("bad.env");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("bad.env line 2: no `=`"), "{err}");
    let missing = run("missing.env");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        err.contains("cannot read") && err.contains("missing.env"),
        "{err}"
    );
    assert!(!dir.join("data").exists(), "nothing may start");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bad `tally.toml` is refused before anything starts, all its range
/// errors at once, and a syntax error points to a template: `tally run
/// --config-example`.
#[test]
fn config_errors_come_together_and_point_to_a_template() {
    let dir = std::env::temp_dir().join(format!("tally-test-badtoml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let example = Command::new(TALLY)
        .args(["run", "--config-example"])
        .output()
        .unwrap();
    assert!(example.status.success(), "{example:?}");
    let text = String::from_utf8_lossy(&example.stdout).into_owned();
    assert!(
        text.contains("lease_ms") && text.contains("# jitter_max_ms"),
        "{text}"
    );
    std::fs::write(
        dir.join("Procfile"),
        "web: sleep 100\nclock: sleep 100\nworker: sleep 100\n",
    )
    .unwrap();
    let run = |toml: &str| {
        std::fs::write(dir.join("tally.toml"), toml).unwrap();
        run_in(&dir, "--config", &dir.join("tally.toml"))
    };
    // (That the template parses with the example's Procfile is a unit test
    // of `settings`.) A key that does not exist:
    let typo = run("[types.web]\ncount = 2\nreplicas = 3\n");
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(!typo.status.success());
    assert!(
        err.contains("unknown field `replicas`") && err.contains("tally run --config-example"),
        "{err}"
    );
    let ranges = run("[types.web]\nmax = 0\ncount = 5\n[timing]\nlease_ms = 1\n");
    let err = String::from_utf8_lossy(&ranges.stderr);
    assert!(!ranges.status.success());
    for says in [
        "types.web.max = 0",
        "types.web.count = 5",
        "timing.lease_ms = 1",
    ] {
        assert!(err.contains(says), "{says} missing from:\n{err}");
    }
    assert!(!dir.join("data").exists(), "nothing may start");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tally restart web.2` and `tally stop web.1` (Heroku's `ps:restart` and
/// `ps:stop`): each replaces that one dyno and no other, through the core;
/// a dyno the formation lacks, a name that is not a dyno, and lockdown are
/// refused with the reason.
#[test]
fn one_dyno_is_restarted_or_stopped_by_name_and_no_other() {
    let c = Cluster::start("onedyno", &procfile(), SETTINGS, 2);
    c.wait_for("convergence", 30, converged);
    assert!(c.tally(&["scale", "web=2"]).status.success());
    let generation = |ps: &Value, dyno: &str| -> u64 {
        ps["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["dyno"] == dyno)
            .filter_map(|i| i["generation"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let before = c.wait_for("web=2", 30, |ps| {
        converged(ps) && generation(ps, "web.2") > 0
    });
    let out = c.tally(&["restart", "web.2"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Restarting web.2"));
    let after = c.wait_for("web.2 replaced", 30, |ps| {
        converged(ps) && generation(ps, "web.2") > generation(&before, "web.2")
    });
    assert_eq!(generation(&after, "web.1"), generation(&before, "web.1"));
    assert_eq!(
        generation(&after, "clock.1"),
        generation(&before, "clock.1")
    );
    // `ps` tells each dyno's age in its phase and its command.
    let out = c.tally(&["ps"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("web.2 "))
        .unwrap_or_else(|| panic!("no web.2 in:\n{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[3], "up", "{line}");
    assert!(
        words[4].ends_with('s') && words[4].trim_end_matches('s').parse::<u64>().is_ok(),
        "an age such as `3s`: {line}"
    );
    assert!(line.ends_with("sleep 100000"), "{line}");
    // Its port and pid, as its agent reports them: the pid is the dyno's.
    assert!(
        words[5].starts_with(':') && words[5][1..].parse::<u16>().is_ok(),
        "a port such as `:41234`: {line}"
    );
    let pid: u32 = words[6].parse().unwrap_or_else(|_| panic!("a pid: {line}"));
    assert!(
        comm(pid).starts_with("sleep"),
        "{line}: pid {pid} is {}",
        comm(pid)
    );
    let out = c.tally(&["stop", "web.1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("so it is replaced"),
        "{out:?}"
    );
    let stopped = c.wait_for("web.1 replaced", 30, |ps| {
        converged(ps) && generation(ps, "web.1") > generation(&after, "web.1")
    });
    assert_eq!(generation(&stopped, "web.2"), generation(&after, "web.2"));
    // Killed from outside (`kill -9`): `ps` says it crashed, how, and when,
    // under the generation that replaces it; the lifecycle line says so too.
    signal_pids(&[pid], "KILL");
    c.wait_for("web.2 relaunched", 30, |ps| {
        converged(ps) && generation(ps, "web.2") > generation(&after, "web.2")
    });
    let text = String::from_utf8_lossy(&c.tally(&["ps"]).stdout).into_owned();
    let crashed = format!("^ g{} crashed ", generation(&after, "web.2"));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&crashed))
        .unwrap_or_else(|| panic!("no `{crashed}` line in:\n{text}"));
    assert!(
        line.contains(" ago on host") && line.ends_with("(signal 9 (SIGKILL))"),
        "{line}"
    );
    assert!(
        text.contains("crashed (signal 9 (SIGKILL))"),
        "the lifecycle line says how it ended:\n{text}"
    );
    for (args, says) in [
        (
            &["restart", "web.5"][..],
            "no dyno web.5: the formation runs web.1 to web.2",
        ),
        (&["stop", "web"][..], "`web` is not a dyno name"),
        (&["stop", "nope.1"][..], "unknown process type `nope`"),
    ] {
        let out = c.tally(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(c.tally(&["lockdown", "on"]).status.success());
    for args in [&["restart", "web.1"][..], &["stop", "web.1"][..]] {
        let out = c.tally(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} was accepted under lockdown"
        );
        assert!(err.contains("locked down"), "{args:?}: {err}");
    }
}

/// `tally logs` (and `tally run --logs`): every dyno's output, interleaved
/// by time, each line with its time and dyno; `--dyno`, `--type` and `-n`
/// filter, `-f` follows.
#[test]
fn logs_interleave_every_dyno_with_time_and_name_and_follow() {
    let settings = SETTINGS
        .replace("[types.clock]\nsingleton = true\nready = \"file\"\n", "")
        .replace(
            "[types.web]\ncount = 1\nready = \"started\"\n",
            "[types.talker]\ncount = 2\nready = \"started\"\n",
        );
    let procfile = "talker: sh -c 'i=0; while true; do i=$((i+1)); echo \"hello $i from $DYNO\"; sleep 0.2; done'\n";
    let c = Cluster::start_with("logs", procfile, &settings, 2, &["--logs"]);
    let text = |args: &[&str]| {
        let out = c.tally(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let until = Instant::now() + Duration::from_secs(30);
    let all = loop {
        let all = text(&["logs"]);
        if all.contains("from talker.1") && all.contains("from talker.2") {
            break all;
        }
        assert!(Instant::now() < until, "no output of both dynos:\n{all}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut last = String::new();
    for line in all.lines() {
        // `12:03:07.412 talker.1  | hello 3 from talker.1`
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(time.len(), 12, "{line}");
        assert!(
            time >= last.as_str() || last.starts_with("23"),
            "out of order: {all}"
        );
        last = time.to_string();
        let (dyno, said) = rest.split_once('|').unwrap();
        let dyno = dyno.trim();
        assert!(said.trim().ends_with(&format!("from {dyno}")), "{line}");
    }
    let one = text(&["logs", "--dyno", "talker.2"]);
    assert!(
        !one.is_empty() && one.lines().all(|l| l.contains("talker.2 ")),
        "{one}"
    );
    assert!(text(&["logs", "--type", "nope"]).is_empty());
    assert_eq!(text(&["logs", "-n", "1"]).lines().count(), 1);
    // -f: lines written after it started.
    let mut follow = Command::new(TALLY)
        .args(["logs", "-f", "-n", "0", "--dyno", "talker.1", "--data-dir"])
        .arg(c.data())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("-f printed nothing");
    assert!(
        got.contains("talker.1 ") && got.contains("from talker.1"),
        "{got}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    // `tally run --logs` printed them too.
    let run = c.read_log("manager.log");
    assert!(
        run.contains("| hello") && run.contains("from talker.2"),
        "{run}"
    );
    let out = Command::new(TALLY)
        .args(["logs", "--data-dir", "/nonexistent/tally"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dyno logs in /nonexistent/tally"));
}

/// Placement through the binary (DESIGN.md, "Placement"): once both hosts
/// run dynos, `scale web=6` leaves three web dynos on each; with `K = 8`
/// the first host to report could otherwise take all four new ones.
#[test]
fn a_scale_up_spreads_a_type_over_the_hosts() {
    let settings = SETTINGS.replace("boots_in_flight_max = 2", "boots_in_flight_max = 8");
    let c = Cluster::start("spread", &procfile(), &settings, 2);
    c.wait_for("convergence", 30, converged);
    let host_of = |ps: &Value, dyno: &str| {
        ps["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["dyno"] == dyno)
            .and_then(|i| i["host"].as_u64())
    };
    let a = host_of(&c.ps(), "web.1").unwrap();
    let b = 1 - a;
    // web.2 goes to the other host: web.1's is paused while it launches.
    assert!(
        c.tally(&["pause", "--host", &a.to_string()])
            .status
            .success()
    );
    assert!(c.tally(&["scale", "web=2"]).status.success());
    c.wait_for("web.2 up on the other host", 30, |ps| {
        converged(ps) && host_of(ps, "web.2") == Some(b)
    });
    assert!(
        c.tally(&["resume", "--host", &a.to_string()])
            .status
            .success()
    );
    assert!(c.tally(&["scale", "web=6"]).status.success());
    let ps = c.wait_for("web=6", 30, converged);
    let web_on = |h: u64| {
        ps["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["dyno"].as_str().is_some_and(|d| d.starts_with("web.")))
            .filter(|i| i["host"].as_u64() == Some(h))
            .count()
    };
    assert_eq!((web_on(a), web_on(b)), (3, 3), "{ps:#}");
}
