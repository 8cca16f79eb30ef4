//! A three-member etcd cluster on loopback for tests: free ports, a fresh
//! data dir per member, fast elections, and every member it started killed
//! (by pid) when it is dropped. Include it from a test with
//! `#[path = "support/etcd_cluster.rs"] mod etcd_cluster;`.
//!
//! etcd is an external program: if `/usr/bin/etcd` is missing, starting a
//! cluster fails the test with how to install it, rather than skipping.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The etcd binary the tests use (Debian's `etcd-server` package).
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// Members per cluster.
pub const MEMBERS: usize = 3;

/// How long a fresh or restarted cluster may take to elect a leader.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// Fresh clusters tried before giving up (another process may take a port
/// between our finding it free and etcd binding it).
const START_TRIES: usize = 3;

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

/// One member's fixed identity and flags.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// What one member says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its raft id.
    pub id: u64,
    /// The raft leader's id it knows (0: none).
    pub leader: u64,
}

/// A running three-member cluster.
pub struct EtcdCluster {
    root: PathBuf,
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
}

impl EtcdCluster {
    /// Starts three members and waits until they have a leader. Panics with
    /// the members' logs if they do not.
    pub fn start() -> EtcdCluster {
        assert!(
            Path::new(ETCD_BIN).exists(),
            "{ETCD_BIN} is missing: these tests run a real etcd cluster; install Debian's \
             etcd-server package (`apt-get install -y etcd-server`, as CI does)"
        );
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            let cluster = EtcdCluster::spawn();
            match cluster.wait_ready(READY_WITHIN) {
                Ok(()) => return cluster,
                Err(why) => failures.push(format!("{why}\n{}", cluster.logs())),
            }
        }
        panic!("etcd cluster did not start:\n{}", failures.join("\n----\n"));
    }

    fn spawn() -> EtcdCluster {
        let n = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let token = format!("tally-test-{}-{n}", std::process::id());
        let root = scratch_root().join(&token);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the cluster's scratch dir");
        let ports = free_ports(2 * MEMBERS);
        let members: Vec<Member> = (0..MEMBERS)
            .map(|i| Member {
                name: format!("n{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                data_dir: root.join(format!("n{i}")),
                log: root.join(format!("n{i}.log")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            root,
            members,
            initial_cluster,
            token,
        };
        for i in 0..MEMBERS {
            cluster.launch(i);
        }
        cluster
    }

    fn launch(&mut self, i: usize) {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("open the member's log");
        let child = Command::new(ETCD_BIN)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.members[i].child = Some(child);
    }

    /// Client URLs of all members, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        (0..MEMBERS).map(|i| self.endpoint(i)).collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// What member `i` says about itself, if it answers within a second
    /// (etcd's JSON gateway, `POST /v3/maintenance/status`, so that this
    /// file needs no etcd client and any test crate can include it).
    pub fn status(&self, i: usize) -> Option<MemberStatus> {
        let json = self.gateway(i, "/v3/maintenance/status", "{}")?;
        let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        Some(MemberStatus {
            id: number(&json["header"]["member_id"])?,
            leader: json.get("leader").and_then(number).unwrap_or(0),
        })
    }

    /// Deletes `key` as an operator's `etcdctl del` would, through the first
    /// member that answers. Returns how many keys were deleted.
    pub fn delete_key(&self, key: &str) -> Option<u64> {
        let body = format!("{{\"key\":\"{}\"}}", base64(key.as_bytes()));
        (0..MEMBERS).find_map(|i| {
            let json = self.gateway(i, "/v3/kv/deleterange", &body)?;
            Some(
                json.get("deleted")
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )
        })
    }

    /// Puts `key` = `value` (no lease) as an operator's `etcdctl put` would.
    pub fn put_key(&self, key: &str, value: &str) -> bool {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            base64(key.as_bytes()),
            base64(value.as_bytes())
        );
        (0..MEMBERS).any(|i| self.gateway(i, "/v3/kv/put", &body).is_some())
    }

    /// POSTs `body` to member `i`'s JSON gateway at `path`; its answer, if
    /// it gives one (200) within a second.
    fn gateway(&self, i: usize, path: &str, body: &str) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", self.members[i].client_port)
            .parse()
            .ok()?;
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream
            .set_write_timeout(Some(Duration::from_secs(1)))
            .ok()?;
        let request = format!(
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n")?;
        // HTTP/1.0: never chunked.
        if !head.lines().next().is_some_and(|l| l.contains(" 200")) {
            return None;
        }
        // The gateway writes 64-bit numbers as strings.
        serde_json::from_str(body.trim()).ok()
    }

    /// Members that answer and know a leader.
    pub fn members_answering(&self) -> usize {
        (0..MEMBERS)
            .filter_map(|i| self.status(i))
            .filter(|s| s.leader != 0)
            .count()
    }

    /// The index of the raft leader, by asking the members. Panics if none
    /// is known within the ready timeout.
    pub fn raft_leader(&self) -> usize {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            for i in 0..MEMBERS {
                let leads = self
                    .status(i)
                    .is_some_and(|s| s.leader != 0 && s.leader == s.id);
                if leads {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no raft leader within {READY_WITHIN:?}\n{}", self.logs());
    }

    /// Waits until every running member answers and knows a leader.
    pub fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let running = self.members.iter().filter(|m| m.child.is_some()).count();
        loop {
            let answering = self.members_answering();
            if answering >= running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{answering} of {running} running etcd members answer with a leader after {within:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills member `i` with SIGKILL (no shutdown at all).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops member `i` with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes member `i` with SIGSTOP: its ports still accept connections
    /// (the kernel queues them) but it answers nothing, as a member stuck in
    /// a long GC pause or on a dead disk does.
    pub fn freeze(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGSTOP);
    }

    /// Resumes a member frozen by [`EtcdCluster::freeze`].
    pub fn thaw(&mut self, i: usize) {
        self.signal(i, nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, i: usize, sig: nix::sys::signal::Signal) {
        if let Some(child) = &self.members[i].child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, sig);
        }
    }

    /// Starts member `i` again with the same flags and data dir; it rejoins
    /// the cluster. Does not wait.
    pub fn start_member(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.launch(i);
    }

    /// The last lines of every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("== {} ({}):\n{tail}", m.name, m.log.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..MEMBERS {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Where member data goes: memory (`/dev/shm`) when it has room, since
/// etcd fsyncs every write and preallocates 64 MiB of log per member; else
/// the temp dir.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let roomy = nix::sys::statvfs::statvfs(shm)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()) > (2 << 30))
        .unwrap_or(false);
    if roomy {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Standard base64 with padding (the gateway's encoding of bytes).
fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, b)| n | u32::from(*b) << (16 - 8 * k));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(DIGITS[(n >> (18 - 6 * k) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `n` distinct ports that were free a moment ago (all bound at once, so
/// they differ, then released for etcd).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}
