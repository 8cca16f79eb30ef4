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

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// Fast timings: 50 ms ticks, 2 s leases.
const SETTINGS: &str = r#"
app = "test"
tick_ms = 50
boots_in_flight_max = 2

[types.clock]
singleton = true
ready = "file"

[types.web]
count = 1
ready = "started"

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
capacity = 6
refill_per_boot = 0.5
probe_cooldown_ms = 4000
backoff_base_ms = 100
backoff_max_ms = 800
jitter_max_ms = 50

[breaker]
window_ms = 20000
failure_threshold = 4
cooldown_ms = 3000
"#;

/// The clock: heartbeats into $WITNESS; ready unless $HANG_FILE exists. It
/// ignores SIGTERM, so every kill of it takes the full grace and a SIGKILL,
/// which the manager's margin must cover.
const CLOCK: &str = r#"clock: sh -c 'trap "" TERM; while [ -e "$HANG_FILE" ]; do echo "$TALLY_GENERATION $$ $(date +%s%N)" >> "$WITNESS"; sleep 0.02; done; touch "$TALLY_READY_FILE"; while true; do echo "$TALLY_GENERATION $$ $(date +%s%N)" >> "$WITNESS"; sleep 0.02; done'"#;

struct Cluster {
    _guard: std::sync::MutexGuard<'static, ()>,
    dir: PathBuf,
    agent_port: u16,
    manager: Option<Child>,
    agents: BTreeMap<u16, Child>,
    procfile: PathBuf,
    settings: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// One cluster at a time: the tests measure leases in real time, and two
/// clusters at once on a 2-core machine would only add scheduling noise.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Cluster {
    /// A manager process with `--hosts 0` and one `tally agent` per host.
    fn start(name: &str, procfile: &str, settings: &str, hosts: u16) -> Cluster {
        let guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = std::env::temp_dir().join(format!("tally-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let procfile_path = dir.join("Procfile");
        let settings_path = dir.join("tally.toml");
        std::fs::write(&procfile_path, procfile).unwrap();
        std::fs::write(&settings_path, settings).unwrap();
        let mut c = Cluster {
            _guard: guard,
            agent_port: free_port(),
            dir,
            manager: None,
            agents: BTreeMap::new(),
            procfile: procfile_path,
            settings: settings_path,
        };
        c.start_manager();
        for h in 0..hosts {
            c.start_agent(h);
        }
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self, name: &str) -> Stdio {
        Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .unwrap(),
        )
    }

    fn start_manager(&mut self) {
        let _ = std::fs::remove_file(self.data().join("api.addr"));
        let child = Command::new(TALLY)
            .args(["run", "--hosts", "0", "--procfile"])
            .arg(&self.procfile)
            .arg("--config")
            .arg(&self.settings)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--agent-listen")
            .arg(format!("127.0.0.1:{}", self.agent_port))
            .stdout(self.log("manager.log"))
            .stderr(self.log("manager.log"))
            .spawn()
            .unwrap();
        self.manager = Some(child);
        let until = Instant::now() + Duration::from_secs(20);
        while !self.data().join("api.addr").exists() {
            assert!(
                Instant::now() < until,
                "manager did not start: {}",
                self.read_log("manager.log")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn start_agent(&mut self, host: u16) {
        let child = Command::new(TALLY)
            .args(["agent", "--manager"])
            .arg(format!("127.0.0.1:{}", self.agent_port))
            .args(["--host", &host.to_string(), "--data-dir"])
            .arg(self.data())
            .env("WITNESS", self.dir.join("witness"))
            .env("HANG_FILE", self.dir.join("hang"))
            .stdout(self.log(&format!("agent-{host}.log")))
            .stderr(self.log(&format!("agent-{host}.log")))
            .spawn()
            .unwrap();
        self.agents.insert(host, child);
    }

    fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn tally(&self, args: &[&str]) -> Output {
        Command::new(TALLY)
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .output()
            .unwrap()
    }

    fn ps(&self) -> Value {
        let out = self.tally(&["ps", "--json"]);
        assert!(
            out.status.success(),
            "ps failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Polls `ps` until `pred` holds.
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(out) = Command::new(TALLY)
                .args(["ps", "--json", "--data-dir"])
                .arg(self.data())
                .output()
            {
                if out.status.success() {
                    let ps: Value = serde_json::from_slice(&out.stdout).unwrap();
                    if pred(&ps) {
                        return ps;
                    }
                    if Instant::now() > until {
                        panic!(
                            "timed out waiting for {what}; last ps: {ps:#}\nmanager log:\n{}",
                            self.read_log("manager.log")
                        );
                    }
                }
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what} (no ps)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn witness(&self) -> Vec<(u32, u32, u64)> {
        let text = std::fs::read_to_string(self.dir.join("witness")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                ))
            })
            .collect()
    }

    /// The clock's lives, `(generation, pid) -> (first, last)` heartbeat,
    /// asserting that no two overlap.
    fn assert_no_overlap(&self) -> BTreeMap<(u32, u32), (u64, u64)> {
        let mut lives: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
        for (generation, pid, t) in self.witness() {
            let e = lives.entry((generation, pid)).or_insert((t, t));
            e.0 = e.0.min(t);
            e.1 = e.1.max(t);
        }
        let v: Vec<_> = lives.iter().collect();
        for (i, (a, (a0, a1))) in v.iter().enumerate() {
            for (b, (b0, b1)) in v.iter().skip(i + 1) {
                assert!(
                    a1 < b0 || b1 < a0,
                    "two clocks ran at once: {a:?} {a0}..{a1} and {b:?} {b0}..{b1}"
                );
            }
        }
        lives
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL everything: fences see their agent go and kill the dynos.
        for child in self.agents.values_mut().chain(self.manager.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn clock(ps: &Value) -> Option<(u64, u64, String)> {
    ps["instances"].as_array()?.iter().find_map(|i| {
        (i["dyno"] == "clock.1").then(|| {
            (
                i["generation"].as_u64().unwrap_or(0),
                i["host"].as_u64().unwrap_or(0),
                i["phase"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

fn clock_up(ps: &Value) -> bool {
    let clocks: Vec<_> = ps["instances"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["dyno"] == "clock.1").collect())
        .unwrap_or_default();
    clocks.len() == 1 && clocks[0]["phase"] == "up"
}

fn converged(ps: &Value) -> bool {
    ps["types"]
        .as_array()
        .is_some_and(|ts| ts.iter().all(|t| t["up"] == t["desired"]))
        && ps["instances"]
            .as_array()
            .is_some_and(|is| is.iter().all(|i| i["phase"] == "up"))
}

fn procfile() -> String {
    format!("{CLOCK}\nweb: sleep 100000\n")
}

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

    let raw = |method: &str, path: &str, auth: Option<&str>| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr.trim()).unwrap();
        let auth = auth
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
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
    let after = c.ps();
    assert_eq!(
        before["types"], after["types"],
        "a refused command changed the formation"
    );

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
    ] {
        let out = run(procfile, settings, extra);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "expected `{says}` in: {err}");
        assert!(
            !c.dir.join("bad/data/journal.jsonl").exists(),
            "a journal was started"
        );
    }
}
