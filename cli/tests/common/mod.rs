//! What the real-process tests share: a cluster of one `tally run
//! --hosts 0` and one `tally agent` per host, with a singleton `clock`
//! dyno that appends `generation pid time_ns` to a witness file every
//! 20 ms, and the checks over that witness.
#![allow(
    dead_code,
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

pub const TALLY: &str = env!("CARGO_BIN_EXE_tally");

/// Fast timings: 50 ms ticks, 2 s leases.
pub const SETTINGS: &str = r#"
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
pub const CLOCK: &str = r#"clock: sh -c 'trap "" TERM; while [ -e "$HANG_FILE" ]; do echo "$TALLY_GENERATION $$ $(date +%s%N)" >> "$WITNESS"; sleep 0.02; done; touch "$TALLY_READY_FILE"; while true; do echo "$TALLY_GENERATION $$ $(date +%s%N)" >> "$WITNESS"; sleep 0.02; done'"#;

pub struct Cluster {
    _guard: std::sync::MutexGuard<'static, ()>,
    pub dir: PathBuf,
    pub agent_port: u16,
    pub manager: Option<Child>,
    pub agents: BTreeMap<u16, Child>,
    pub procfile: PathBuf,
    pub settings: PathBuf,
    /// Extra arguments of every `tally run`.
    pub run_args: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn signal(child: &Child, sig: &str) {
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
    pub fn start(name: &str, procfile: &str, settings: &str, hosts: u16) -> Cluster {
        Cluster::start_with(name, procfile, settings, hosts, &[])
    }

    /// As [`Cluster::start`], with extra `tally run` arguments.
    pub fn start_with(
        name: &str,
        procfile: &str,
        settings: &str,
        hosts: u16,
        run_args: &[&str],
    ) -> Cluster {
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
            run_args: run_args.iter().map(|a| (*a).to_string()).collect(),
        };
        c.start_manager();
        for h in 0..hosts {
            c.start_agent(h);
        }
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log(&self, name: &str) -> Stdio {
        Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .unwrap(),
        )
    }

    /// Starts the manager and waits until it serves; panics with its log if
    /// it refuses to start.
    pub fn start_manager(&mut self) {
        if let Err(log) = self.try_start_manager() {
            panic!("manager did not start:\n{log}");
        }
    }

    /// Starts the manager; `Err` with its log tail if it exits first.
    pub fn try_start_manager(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.data().join("api.addr"));
        let mut child = self.manager_command().spawn().unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while !self.data().join("api.addr").exists() {
            if let Some(status) = child.try_wait().unwrap() {
                let log = self.read_log("manager.log");
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!("exited {status}: {}", tail.join("\n")));
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no api.addr after 30 s: {}",
                    self.read_log("manager.log")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.manager = Some(child);
        Ok(())
    }

    /// The `tally run` of this cluster.
    pub fn manager_command(&self) -> Command {
        let mut cmd = Command::new(TALLY);
        cmd.args(["run", "--hosts", "0"]);
        // `--app` names the apps' Procfiles instead.
        if !self.run_args.iter().any(|a| a == "--app") {
            cmd.arg("--procfile").arg(&self.procfile);
        }
        cmd.arg("--config")
            .arg(&self.settings)
            .arg("--data-dir")
            .arg(self.data())
            .arg("--agent-listen")
            .arg(format!("127.0.0.1:{}", self.agent_port))
            .args(&self.run_args)
            .stdout(self.log("manager.log"))
            .stderr(self.log("manager.log"));
        cmd
    }

    pub fn start_agent(&mut self, host: u16) {
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

    pub fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    pub fn tally(&self, args: &[&str]) -> Output {
        Command::new(TALLY)
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .output()
            .unwrap()
    }

    pub fn ps(&self) -> Value {
        let out = self.tally(&["ps", "--json"]);
        assert!(
            out.status.success(),
            "ps failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Polls `ps` until `pred` holds.
    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
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

    pub fn witness(&self) -> Vec<(u32, u32, u64)> {
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
    pub fn assert_no_overlap(&self) -> BTreeMap<(u32, u32), (u64, u64)> {
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

pub fn clock(ps: &Value) -> Option<(u64, u64, String)> {
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

pub fn clock_up(ps: &Value) -> bool {
    let clocks: Vec<_> = ps["instances"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["dyno"] == "clock.1").collect())
        .unwrap_or_default();
    clocks.len() == 1 && clocks[0]["phase"] == "up"
}

pub fn converged(ps: &Value) -> bool {
    ps["types"]
        .as_array()
        .is_some_and(|ts| ts.iter().all(|t| t["up"] == t["desired"]))
        && ps["instances"]
            .as_array()
            .is_some_and(|is| is.iter().all(|i| i["phase"] == "up"))
}

pub fn procfile() -> String {
    format!("{CLOCK}\nweb: sleep 100000\n")
}

/// Every process below `pid` (children, their children, ...), from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // `pid (comm) state ppid ...`: comm may hold spaces, so split
            // after its closing parenthesis.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|x| x.parse().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// The command name of a process (`tally-fence`, `sh`, ...).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Sends `sig` to each pid in one `kill` (so they receive it together).
pub fn signal_pids(pids: &[u32], sig: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .status();
}

/// Waits for `child` to exit within `secs`; kills it and returns `None`
/// if it does not.
pub fn wait_exit(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One life of the clock in the witness: its generation, pid, first and
/// last heartbeat (ns since the epoch).
#[derive(Clone, Copy, Debug)]
pub struct Life {
    pub generation: u32,
    pub pid: u32,
    pub first: u64,
    pub last: u64,
}

impl Cluster {
    /// The clock's lives, in order of their first heartbeat.
    pub fn lives(&self) -> Vec<Life> {
        let mut lives: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
        for (generation, pid, t) in self.witness() {
            let e = lives.entry((generation, pid)).or_insert((t, t));
            e.0 = e.0.min(t);
            e.1 = e.1.max(t);
        }
        let mut v: Vec<Life> = lives
            .into_iter()
            .map(|((generation, pid), (first, last))| Life {
                generation,
                pid,
                first,
                last,
            })
            .collect();
        v.sort_by_key(|l| l.first);
        v
    }

    /// Asserts that no generation was run by two processes (a fencing token
    /// issued twice) and that generations rise with time.
    pub fn assert_generations_unique_and_rising(&self) {
        let lives = self.lives();
        let mut seen: BTreeMap<u32, u32> = BTreeMap::new();
        for l in &lives {
            if let Some(pid) = seen.insert(l.generation, l.pid) {
                assert_eq!(
                    pid, l.pid,
                    "generation {} ran as two processes ({pid} and {}): a fencing token issued twice",
                    l.generation, l.pid
                );
            }
        }
        for w in lives.windows(2) {
            assert!(
                w[0].generation < w[1].generation,
                "generation {} started after {}",
                w[1].generation,
                w[0].generation
            );
        }
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The parent of `pid`, from /proc.
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A tiny deterministic generator (splitmix64): the run is reproducible
/// in its choices from the printed seed (timings still vary).
pub struct Rng(pub u64);

/// The number in environment variable `var`, or `default`.
pub fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Rng {
    /// Seeded from environment variable `var`, or else from the time.
    pub fn from_env(var: &str) -> Rng {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(env_u64(var, now))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi.saturating_sub(lo) + 1))
    }
}
