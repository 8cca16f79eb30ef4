//! The highly available manager on etcd (`tally run --store etcd://...`;
//! DESIGN.md, "More than one manager: high availability on an existing
//! store"). Several managers share one etcd prefix; one leads, the others
//! are standbys.
//!
//! ```text
//!  start: connect (refused, naming the endpoints, if etcd is unreachable)
//!         meta (genesis + deployment, created once; refused if it differs), token
//!         bind agent + API listeners, register members/<name> (own lease)
//!  elect: campaign ──lost──▶ standby: refuse agents ("not leader; leader is NAME at ADDR"),
//!            │                        answer the API with 421 + the leader's API address,
//!            │                        watch the leader key, campaign again when it goes
//!           won
//!            ▼
//!  lead:  keep-alive every TTL/3 (LeadershipConfirmed{sent_at}; Deposed → LeadershipLost, exit)
//!         linearizable journal read → fold → Manager::take_over → TermBegan appended fenced
//!         then agents, API and timer feed the core, each step one fenced append
//! ```
//!
//! A leader that is deposed (a failed fenced append, or a keep-alive that
//! finds its lease or key gone) stops acting at once: the shell refuses
//! every input after a failed commit, the core refuses every input outside
//! its guard, and the process exits non-zero so that its supervisor starts
//! it again, as a standby. It never returns to standby in-process: a fresh
//! process carries no state of the term it lost.

use crate::api::{PsManager, PsManagers};
use crate::clock::Moment;
use crate::etcd::{EtcdStore, Leader, Leadership, StoreError, StoreSettings, Term as StoreTerm};
use crate::journal::{self, DirLock, Entry, Journal, JournalError, JournalOptions, Snapshot};
use crate::machine::ManagerMachine;
use crate::server::{
    Clock, Core, Deadline, HELLO_TIMEOUT, HostBindings, LinkContext, Listeners, Meta, PENDING_MAX,
    ServerError, accept_agent, open_data_dir, run_timer, set_fatal, spawn, unix_ms, write_file,
};
use crate::settings::Deployment;
use crate::shell::{Shared, Sink};
use crate::wire::{Frame, HELLO_BYTES_MAX, read_frame_limited, write_frame};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tally_core::config::LeadershipConfig;
use tally_core::journal::JOURNAL_VERSION;
use tally_core::{Config, Counters, Durable, Effect, HostId, JournalRecord, Manager, ManagerInput};

/// The store lease's time to live when `--store-lease-s` is not given.
pub const STORE_LEASE_S_DEFAULT: i64 = 5;

/// The longest wait for one attempt of one store call, by default.
pub const STORE_CALL_TIMEOUT_MS_DEFAULT: u64 = 1_000;

/// Bytes of steps appended since the last snapshot that trigger the next
/// one (or the snapshot's own size, if larger): the journal in etcd stays
/// within about twice the snapshot plus this.
pub const SNAPSHOT_STEPS_BYTES: u64 = 1 << 20;

/// The key prefix when the store URL names none.
pub const PREFIX_DEFAULT: &str = "tally/";

/// Slack between the guard's end and the store lease's, besides the drift
/// (ticks are floored on both ends of the guard): at least this long, and
/// at least two ticks.
const MARGIN_MS: u64 = 100;

/// A `--store` URL, parsed: `etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl {
    /// The members' client URLs (`http://HOST:PORT`).
    pub endpoints: Vec<String>,
    /// The key prefix, ending in `/` (`tally/` by default).
    pub prefix: String,
}

impl StoreUrl {
    /// Parses `etcd://H1:P1,H2:P2/PREFIX`.
    ///
    /// # Errors
    /// Not an `etcd://` URL, or no endpoint.
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let Some(rest) = url.strip_prefix("etcd://") else {
            return Err(format!(
                "--store {url}: not an etcd URL; write etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"
            ));
        };
        let (hosts, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(format!(
                "--store {url}: no etcd endpoint; write etcd://HOST:PORT[,HOST:PORT...]"
            ));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            PREFIX_DEFAULT.to_string()
        } else {
            format!("{prefix}/")
        };
        Ok(StoreUrl { endpoints, prefix })
    }
}

/// How to start one manager of a highly available group.
#[derive(Clone, Debug)]
pub struct HaOptions {
    /// This manager's own data dir: its lock, its addresses, a copy of the
    /// token for the local verbs, dyno logs.
    pub data_dir: PathBuf,
    /// The deployment, as the files say (the leadership is added here).
    pub deployment: Deployment,
    /// Agent link address (port 0 picks one).
    pub agent_listen: SocketAddr,
    /// HTTP API address (port 0 picks one).
    pub api_listen: SocketAddr,
    /// Journal tuning: `segment_bytes_max` bounds the steps between two
    /// snapshots (at most [`SNAPSHOT_STEPS_BYTES`]).
    pub journal: JournalOptions,
    /// The store.
    pub store: StoreSettings,
    /// This manager's name among its peers (default: host name and pid).
    pub name: Option<String>,
}

/// `deployment` with the leadership of a store lease of `lease_ttl_s`: the
/// core's guard then applies (DESIGN.md, HA rule 2).
///
/// # Errors
/// The lease leaves no room for a guard at this tick and drift.
pub fn with_leadership(
    deployment: &Deployment,
    lease_ttl_s: i64,
) -> Result<Deployment, ServerError> {
    let tick_ms = deployment.tick_ms.max(1);
    let lease_ms = u64::try_from(lease_ttl_s).unwrap_or(0).saturating_mul(1000);
    let mut d = deployment.clone();
    d.config.leadership = Some(LeadershipConfig {
        lease_ticks: lease_ms / tick_ms,
        margin_ticks: MARGIN_MS.div_ceil(tick_ms).max(2),
    });
    d.config
        .validate()
        .map_err(|source| ServerError::StoreLease {
            lease_s: lease_ttl_s,
            tick_ms,
            source,
        })?;
    Ok(d)
}

/// What the store keeps under `meta`: the journal's genesis and the
/// deployment every manager must run.
#[derive(Serialize, Deserialize)]
struct StoreMeta {
    /// The core's records version of the journal.
    records_version: u16,
    /// Tick 0 and the deployment.
    #[serde(flatten)]
    meta: Meta,
}

/// What each manager registers under `members/<name>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Registration {
    agent: String,
    api: String,
    pid: u32,
}

/// The leader's journal in etcd: one fenced transaction per journaled step
/// (the step's records, encoded as a segment line of the file journal),
/// and a snapshot plus deletion of older records once enough has been
/// appended since the last one.
pub struct EtcdJournal {
    store: EtcdStore,
    term: StoreTerm,
    seq: u64,
    cfg: Config,
    fold: Snapshot,
    steps_bytes: u64,
    snapshot_bytes: u64,
    steps_bytes_max: u64,
}

impl std::fmt::Debug for EtcdJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdJournal")
            .field("term", &self.term)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// The journal as a new leader read it.
#[derive(Clone, Debug)]
pub struct EtcdRecovered {
    /// The durable state: the snapshot (or `genesis`) and every record
    /// after it.
    pub durable: Durable,
    /// The counters.
    pub counters: Counters,
    /// The last sequence number appended (0: none).
    pub seq: u64,
    /// Records read after the snapshot.
    pub records: usize,
    /// Whether the journal holds nothing at all (a new deployment, or a
    /// lost prefix).
    pub empty: bool,
}

/// The journal as read, before it is folded into a manager.
struct JournalFold {
    fold: Snapshot,
    seq: u64,
    empty: bool,
    records: usize,
}

impl EtcdJournal {
    /// Opens the journal for the leader of `term` (who must hold the leader
    /// key): reads it with a linearizable read and folds it onto
    /// `genesis`. `steps_bytes_max` bounds the steps between snapshots
    /// (see [`SNAPSHOT_STEPS_BYTES`]).
    ///
    /// # Errors
    /// The store did not answer, or holds records this tally cannot read.
    pub fn open(
        mut store: EtcdStore,
        term: StoreTerm,
        cfg: &Config,
        genesis: Durable,
        steps_bytes_max: u64,
    ) -> Result<(EtcdJournal, EtcdRecovered), JournalError> {
        let read = EtcdJournal::read(&mut store, genesis)?;
        let recovered = EtcdRecovered {
            durable: read.fold.durable.clone(),
            counters: read.fold.counters.clone(),
            seq: read.seq,
            records: read.records,
            empty: read.empty,
        };
        let journal = EtcdJournal {
            store,
            term,
            seq: read.seq,
            cfg: cfg.clone(),
            fold: read.fold,
            steps_bytes: 0,
            snapshot_bytes: 0,
            steps_bytes_max,
        };
        Ok((journal, recovered))
    }

    /// Replaces the journal's own fold with the manager's durable state (so
    /// that snapshots are exactly what the manager holds).
    pub fn rebase(&mut self, durable: Durable) {
        self.fold.durable = durable;
    }

    /// The store this journal writes to (tests and measurements).
    pub fn store(&mut self) -> &mut EtcdStore {
        &mut self.store
    }

    /// Reads the whole journal (linearizable, after the leader key was
    /// taken) and folds it onto `genesis`.
    fn read(store: &mut EtcdStore, genesis: Durable) -> Result<JournalFold, JournalError> {
        let read = store.persistently("reading the journal", EtcdStore::read_journal)?;
        let mut fold = Snapshot {
            durable: genesis,
            counters: Counters::default(),
        };
        let mut seq = 0;
        let empty = read.snapshot.is_none() && read.records.is_empty() && read.head.is_none();
        if let Some(s) = &read.snapshot {
            match Entry::decode(&s.bytes) {
                Ok(Entry::Snapshot(snapshot)) => fold = *snapshot,
                Ok(Entry::Step(_)) => {
                    return Err(JournalError::Undecodable {
                        seq: s.seq,
                        why: "a step where the snapshot belongs".into(),
                    });
                }
                Err(e) => {
                    return Err(JournalError::Undecodable {
                        seq: s.seq,
                        why: e.to_string(),
                    });
                }
            }
            seq = s.seq;
        }
        for r in &read.records {
            match Entry::decode(&r.bytes) {
                Ok(Entry::Step(records)) => {
                    for record in &records {
                        fold.durable.apply(record);
                        fold.counters.apply(record);
                    }
                }
                Ok(Entry::Snapshot(_)) => {
                    return Err(JournalError::Undecodable {
                        seq: r.seq,
                        why: "a snapshot among the records".into(),
                    });
                }
                Err(e) => {
                    return Err(JournalError::Undecodable {
                        seq: r.seq,
                        why: e.to_string(),
                    });
                }
            }
            seq = r.seq;
        }
        Ok(JournalFold {
            fold,
            seq: seq.max(read.head.unwrap_or(0)),
            empty,
            records: read.records.len(),
        })
    }

    /// Appends one step's records in one transaction fenced by the term
    /// (nothing for a step without records), then snapshots when due.
    ///
    /// # Errors
    /// The append failed: [`StoreError::Deposed`] when the leader key is
    /// no longer this term's; a timeout leaves its outcome unknown. Either
    /// way nothing of the step may be acted on.
    pub fn append(&mut self, records: &[&JournalRecord]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes = journal::encode_step(records).map_err(|e| JournalError::Undecodable {
            seq: self.seq.saturating_add(1),
            why: e.to_string(),
        })?;
        let seq = self.seq.saturating_add(1);
        let term = self.term;
        // Numbered and fenced, so a retry cannot apply the record twice.
        self.store
            .persistently("appending to the journal", |store| {
                store.append(term, seq, &bytes)
            })?;
        self.seq = seq;
        for r in records {
            self.fold.durable.apply(r);
            self.fold.counters.apply(r);
        }
        self.steps_bytes = self
            .steps_bytes
            .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
        if self.steps_bytes > self.steps_bytes_max.max(self.snapshot_bytes) {
            self.snapshot()?;
        }
        Ok(())
    }

    /// Stores a snapshot of everything so far (fenced), which deletes the
    /// records it covers. A failure other than deposition only delays it:
    /// the records stay, and the next snapshot covers them.
    fn snapshot(&mut self) -> Result<(), JournalError> {
        let snapshot = Snapshot {
            durable: self.fold.durable.compacted(&self.cfg),
            counters: self.fold.counters.clone(),
        };
        let bytes = journal::encode_snapshot(&snapshot).map_err(|e| JournalError::Undecodable {
            seq: self.seq,
            why: e.to_string(),
        })?;
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        match self.store.write_snapshot(self.term, self.seq, &bytes) {
            Ok(()) => {
                tracing::info!(
                    seq = self.seq,
                    bytes = size,
                    "etcd journal snapshotted: older records deleted and the history compacted"
                );
                self.fold = snapshot;
                self.snapshot_bytes = size;
                self.steps_bytes = 0;
                Ok(())
            }
            Err(e @ StoreError::Deposed { .. }) => Err(e.into()),
            Err(e) => {
                tracing::warn!(
                    seq = self.seq,
                    "etcd journal snapshot failed: {e}; the records stay, and the snapshot is tried again after as many more"
                );
                self.steps_bytes = 0;
                Ok(())
            }
        }
    }

    /// Writes the host bindings (`hosts`), fenced by the term.
    ///
    /// # Errors
    /// The write failed, or this manager is deposed.
    pub fn save_bindings(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.store.put_fenced(self.term, "hosts", bytes)
    }

    /// The sequence number of the last appended record.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The counters so far.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.fold.counters.clone()
    }

    /// Bytes of the journal in the store now (records and snapshot).
    ///
    /// # Errors
    /// The store did not answer.
    pub fn bytes_in_store(&mut self) -> Result<u64, StoreError> {
        self.store.journal_bytes()
    }
}

impl Sink<Effect> for EtcdJournal {
    type Error = JournalError;

    fn commit(&mut self, _seq: u64, effects: &[Effect]) -> Result<(), JournalError> {
        let records: Vec<&JournalRecord> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Persist(r) => Some(r),
                _ => None,
            })
            .collect();
        self.append(&records)
    }
}

/// The leader's core and agent links, once it leads.
struct Role {
    core: Arc<Core>,
    link: Arc<LinkContext>,
}

/// What the threads of one manager of the group share.
struct HaContext {
    name: String,
    deployment: Deployment,
    store: StoreSettings,
    journal: JournalOptions,
    clock: Clock,
    token: String,
    fatal: Arc<Mutex<Option<String>>>,
    /// Set once, when this manager starts to lead.
    role: OnceLock<Role>,
    /// The group as the registration thread last read it.
    managers: Arc<Mutex<PsManagers>>,
    /// Standby connections not yet answered.
    pending: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl HaContext {
    fn fail(&self, why: String) {
        tracing::error!("{why}");
        if let Ok(mut guard) = self.fatal.lock() {
            guard.get_or_insert(why);
        }
    }

    /// The leader in words, and its agent and API addresses, as last read.
    fn leader(&self) -> Option<PsManager> {
        self.managers.lock().ok().and_then(|m| m.leader.clone())
    }

    fn not_leader(&self) -> String {
        match self.leader() {
            // Elected, and not serving yet.
            Some(l) if l.name == self.name => format!(
                "taking over as the leader of term {}: reading the journal (a new one first holds launches for a dyno lease and a store lease); it serves within seconds, try again",
                l.term.unwrap_or(0)
            ),
            Some(l) if !l.agent.is_empty() => format!(
                "not leader; leader is {} (term {}) at {} (API {})",
                l.name,
                l.term.unwrap_or(0),
                l.agent,
                l.api
            ),
            Some(l) => format!(
                "not leader; leader is {} (term {}), whose addresses are not registered",
                l.name,
                l.term.unwrap_or(0)
            ),
            None => "not leader; no manager leads now (an election is under way)".to_string(),
        }
    }
}

/// A started manager of a highly available group: a standby until it wins
/// an election, then the leader until it is deposed or stopped.
pub struct HaServer {
    /// This manager's name among its peers.
    pub name: String,
    /// The agent link's address.
    pub agent_addr: SocketAddr,
    /// The API's address.
    pub api_addr: SocketAddr,
    /// The local copy of the token (the store holds the original).
    pub token_path: PathBuf,
    /// The token (API and agent link).
    pub token: String,
    /// The store, in words.
    pub store: String,
    ctx: Arc<HaContext>,
    _lock: DirLock,
}

fn random_hex() -> Result<String, ServerError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| ServerError::Io {
            path: PathBuf::from("/dev/urandom"),
            source,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "manager".into());
    format!("{host}-{}", std::process::id())
}

fn meta_error(key: &str, why: impl Into<String>) -> ServerError {
    ServerError::StoreMeta {
        key: key.to_string(),
        why: why.into(),
    }
}

impl HaServer {
    /// Connects to the store (refusing, with the endpoints named, when it
    /// does not answer), checks or creates the shared state, binds the
    /// listeners and starts the election; returns while still a standby.
    ///
    /// # Errors
    /// The store is unreachable or holds another deployment; the data dir
    /// or the listeners cannot be used; the store lease is too short.
    pub fn start(opts: HaOptions) -> Result<HaServer, ServerError> {
        let deployment = with_leadership(&opts.deployment, opts.store.lease_ttl_s)?;
        let name = opts.name.clone().unwrap_or_else(default_name);
        if name.is_empty() || name.len() > 64 || name.contains(['/', ' ']) {
            return Err(ServerError::DataDir {
                dir: opts.data_dir.clone(),
                why: format!("--name {name:?}: give 1 to 64 characters, without '/' or spaces"),
            });
        }
        let dir = &opts.data_dir;
        open_data_dir(dir)?;
        let lock = DirLock::acquire(dir)?;
        let endpoints = opts.store.endpoints.join(",");
        let mut elector = EtcdStore::connect(opts.store.clone())?;
        let keeper = EtcdStore::connect(opts.store.clone())?;
        let registry = EtcdStore::connect(opts.store.clone())?;

        // The journal's genesis and deployment: created once, the same for
        // every manager of the group.
        let mine = StoreMeta {
            records_version: JOURNAL_VERSION,
            meta: Meta {
                genesis_unix_ms: unix_ms(),
                deployment: deployment.clone(),
            },
        };
        let bytes = serde_json::to_vec(&mine).map_err(|e| meta_error("meta", e.to_string()))?;
        let stored = elector.create_if_absent("meta", &bytes)?;
        let stored: StoreMeta = serde_json::from_slice(&stored)
            .map_err(|e| meta_error(&format!("{}meta", opts.store.prefix), e.to_string()))?;
        if stored.records_version != JOURNAL_VERSION {
            return Err(meta_error(
                &format!("{}meta", opts.store.prefix),
                format!(
                    "the journal has records version {}; this tally writes {JOURNAL_VERSION}. Run the tally that wrote it",
                    stored.records_version
                ),
            ));
        }
        if !stored.meta.deployment.same_core(&deployment) {
            return Err(ServerError::StoreDeploymentChanged {
                endpoints,
                prefix: opts.store.prefix.clone(),
            });
        }
        let clock = Clock::start(stored.meta.genesis_unix_ms, deployment.tick_ms);

        // The token: created once in the store; each manager keeps a copy
        // for the local verbs and agents.
        let token = elector.create_if_absent("token", format!("{}\n", random_hex()?).as_bytes())?;
        let token = String::from_utf8_lossy(&token).trim().to_string();
        if token.len() < 32 {
            return Err(meta_error(
                &format!("{}token", opts.store.prefix),
                "shorter than 32 characters",
            ));
        }
        let token_path = dir.join("token");
        write_file(&token_path, format!("{token}\n").as_bytes(), 0o600)?;

        let Listeners {
            agents,
            agent_addr,
            api,
            api_addr,
        } = Listeners::bind(dir, opts.agent_listen, opts.api_listen)?;

        let hosts: Vec<&str> = opts
            .store
            .endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://"))
            .collect();
        let store_words = format!("etcd://{}/{}", hosts.join(","), opts.store.prefix);
        let ctx = Arc::new(HaContext {
            name: name.clone(),
            deployment,
            store: opts.store.clone(),
            journal: opts.journal,
            clock,
            token: token.clone(),
            fatal: Arc::new(Mutex::new(None)),
            role: OnceLock::new(),
            managers: Arc::new(Mutex::new(PsManagers {
                store: store_words.clone(),
                leader: None,
                standbys: Vec::new(),
            })),
            pending: AtomicUsize::new(0),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let registration = Registration {
            agent: agent_addr.to_string(),
            api: api_addr.to_string(),
            pid: std::process::id(),
        };
        // A name names one manager: `ps`, the standbys' redirects and the
        // leader key all go by it.
        let value = serde_json::to_vec(&registration).map_err(|e| {
            meta_error(
                &format!("{}members/{name}", opts.store.prefix),
                e.to_string(),
            )
        })?;
        let mut registry = registry;
        let lease = registry.register_when_free(&name, &value)?;
        spawn("registry", {
            let ctx = Arc::clone(&ctx);
            move || run_registry(&ctx, registry, &registration, lease)
        })?;
        spawn("agent-listener", {
            let ctx = Arc::clone(&ctx);
            move || accept_agents(&agents, &ctx)
        })?;
        let api = Arc::new(api);
        for worker in 0..4 {
            let (ctx, api) = (Arc::clone(&ctx), Arc::clone(&api));
            spawn(&format!("api-{worker}"), move || serve_api(&api, &ctx))?;
        }
        // Registered before the first campaign, so that a leader is never
        // shown without its addresses for long.
        if let Ok(mut m) = ctx.managers.lock() {
            m.standbys.push(PsManager {
                name: name.clone(),
                term: None,
                agent: agent_addr.to_string(),
                api: api_addr.to_string(),
            });
        }
        spawn("election", {
            let ctx = Arc::clone(&ctx);
            move || run_election(&ctx, elector, keeper)
        })?;
        tracing::info!(
            name = %name,
            store = %store_words,
            "manager started as a standby; campaigning for the leader key"
        );
        Ok(HaServer {
            name,
            agent_addr,
            api_addr,
            token_path,
            token,
            store: store_words,
            ctx,
            _lock: lock,
        })
    }

    /// Blocks until this manager must stop: deposed, or its journal or
    /// store failed. The caller exits non-zero, so that a supervisor starts
    /// it again, as a standby.
    #[must_use]
    pub fn wait(&self) -> ServerError {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(guard) = self.ctx.fatal.lock() {
                if let Some(why) = guard.as_ref() {
                    return ServerError::Fatal(why.clone());
                }
            }
        }
    }

    /// Whether this manager leads now (it has won an election and is not
    /// yet deposed).
    #[must_use]
    pub fn leads(&self) -> bool {
        self.ctx.role.get().is_some_and(|r| {
            r.core
                .read(|m, _| m.manager.leads(&m.deployment.config, self.ctx.clock.now()))
                .unwrap_or(false)
        })
    }

    /// Stops the timer (tests).
    pub fn stop(&self) {
        self.ctx.stop.store(true, Ordering::SeqCst);
    }
}

/// A third of the store lease: the keep-alive and registration period.
fn renew_period(store: &StoreSettings) -> Duration {
    let ttl_ms = u64::try_from(store.lease_ttl_s)
        .unwrap_or(1)
        .saturating_mul(1000);
    Duration::from_millis((ttl_ms / 3).max(100))
}

/// Keeps this manager registered and the group's view fresh.
fn run_registry(ctx: &HaContext, mut store: EtcdStore, me: &Registration, lease: i64) {
    let value = serde_json::to_vec(me).unwrap_or_default();
    let mut lease: Option<i64> = Some(lease);
    let mut failing = false;
    let period = renew_period(&ctx.store);
    loop {
        let round = (|| -> Result<(), StoreError> {
            let kept = match lease {
                Some(id) => store.keep_registered(id)?,
                None => false,
            };
            if !kept {
                lease = Some(store.register(&ctx.name, &value)?);
            }
            let leader = store.leader()?;
            let members = store.members()?;
            let view = group_view(leader.as_ref(), &members);
            if let Ok(mut m) = ctx.managers.lock() {
                m.leader = view.0;
                m.standbys = view.1;
            }
            Ok(())
        })();
        match round {
            Ok(()) if failing => {
                tracing::info!("etcd answers the registration again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::warn!("registration in etcd failed: {e}; retrying");
                failing = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(period);
    }
}

/// The leader (with its registered addresses) and the other registered
/// managers.
fn group_view(
    leader: Option<&Leader>,
    members: &[(String, Vec<u8>)],
) -> (Option<PsManager>, Vec<PsManager>) {
    let registered: BTreeMap<&str, Registration> = members
        .iter()
        .filter_map(|(name, v)| Some((name.as_str(), serde_json::from_slice(v).ok()?)))
        .collect();
    let of = |name: &str, term: Option<u64>| {
        let r = registered.get(name);
        PsManager {
            name: name.to_string(),
            term,
            agent: r.map(|r| r.agent.clone()).unwrap_or_default(),
            api: r.map(|r| r.api.clone()).unwrap_or_default(),
        }
    };
    let leader = leader.map(|l| of(&l.name, Some(l.term.0)));
    let standbys = registered
        .keys()
        .filter(|n| leader.as_ref().is_none_or(|l| l.name != **n))
        .map(|n| of(n, None))
        .collect();
    (leader, standbys)
}

/// Campaigns; as a standby, watches the leader key and campaigns again
/// when it goes; once elected, leads (until deposed: the process exits).
fn run_election(ctx: &Arc<HaContext>, mut store: EtcdStore, keeper: EtcdStore) {
    let mut known: Option<StoreTerm> = None;
    let mut keeper = Some(keeper);
    loop {
        match store.campaign(&ctx.name) {
            Ok(Some(leadership)) => {
                let Some(keeper) = keeper.take() else {
                    return;
                };
                if let Err(e) = lead(ctx, store, keeper, leadership) {
                    ctx.fail(format!("cannot take over as leader: {e}"));
                }
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("campaign for the leader key failed: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        }
        // Standby until the leader key goes.
        loop {
            match store.wait_leader_change(known, Duration::from_secs(10)) {
                Ok(Some(l)) => {
                    if Some(l.term) != known {
                        tracing::info!(
                            leader = %l.name,
                            term = l.term.0,
                            "standby: {} leads in term {}",
                            l.name,
                            l.term
                        );
                        known = Some(l.term);
                    }
                }
                Ok(None) => {
                    if known.is_some() {
                        tracing::info!("the leader key is gone: campaigning");
                    }
                    known = None;
                    break;
                }
                Err(e) => {
                    tracing::warn!("watching the leader key failed: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
}

/// What the keep-alive thread and the new leader share.
struct Leading {
    /// The latest send time of a keep-alive (or the campaign) the store
    /// answered.
    confirmed: Mutex<Moment>,
    /// The core, once taken over.
    core: OnceLock<Arc<Core>>,
}

/// Takes over: keep-alives from now on, the journal read after taking the
/// key, the restart rule, `TermBegan` appended fenced, then the agents, the
/// API and the timer.
fn lead(
    ctx: &Arc<HaContext>,
    mut store: EtcdStore,
    keeper: EtcdStore,
    leadership: Leadership,
) -> Result<(), ServerError> {
    let cfg = &ctx.deployment.config;
    let term = leadership.term;
    tracing::info!(
        name = %ctx.name,
        term = term.0,
        lease_s = leadership.lease_ttl_s,
        guard_ticks = cfg.leadership_guard_ticks().unwrap_or(0),
        "elected: took the leader key in term {term}; reading the journal"
    );
    let lease_ttl_s = leadership.lease_ttl_s;
    let leading = Arc::new(Leading {
        confirmed: Mutex::new(leadership.sent_at),
        core: OnceLock::new(),
    });
    spawn("keep-alive", {
        let (ctx, leading) = (Arc::clone(ctx), Arc::clone(&leading));
        move || keep_alive(&ctx, &leading, keeper, leadership)
    })?;
    let hosts = store.persistently("reading the host bindings", |s| s.get_value("hosts"))?;
    let bindings: BTreeMap<HostId, String> = match hosts {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| meta_error(&format!("{}hosts", ctx.store.prefix), e.to_string()))?,
        None => BTreeMap::new(),
    };
    let (mut journal, read) = EtcdJournal::open(
        store,
        term,
        cfg,
        Durable::genesis(cfg, ctx.clock.now()),
        ctx.journal.segment_bytes_max.min(SNAPSHOT_STEPS_BYTES),
    )?;
    let EtcdRecovered {
        mut durable,
        empty,
        records,
        ..
    } = read;
    let mut genesis_records = Vec::new();
    if empty {
        // As for a new data dir: dynos of a lost journal may still run.
        // If the journal was wiped with its `leader-lease` key, its leader
        // may renew them for up to one store lease more before it notices.
        let store_lease_ms = u64::try_from(lease_ttl_s).unwrap_or(0).saturating_mul(1000);
        let hold_ms = cfg
            .lease_expiry_ticks()
            .saturating_mul(ctx.deployment.tick_ms)
            .saturating_add(store_lease_ms);
        tracing::info!(
            "the etcd journal is empty: holding launches for one dyno lease expiry and one store lease ({hold_ms} ms), in case dynos of a lost journal still run, renewed by a leader that has not noticed"
        );
        std::thread::sleep(Duration::from_millis(hold_ms));
        let now = ctx.clock.now();
        let mut out = Vec::new();
        let genesis = Manager::new(cfg, now, &mut out)?;
        genesis_records = out
            .into_iter()
            .filter_map(|e| match e {
                Effect::Persist(r) => Some(r),
                _ => None,
            })
            .collect();
        durable = genesis.durable().clone();
    }
    let now = ctx.clock.now();
    let sent_at = leading
        .confirmed
        .lock()
        .map(|i| ctx.clock.tick_of(*i))
        .unwrap_or(now);
    let mut out = Vec::new();
    let mut manager = Manager::take_over(
        cfg,
        durable,
        (now, sent_at),
        tally_core::Term(term.0),
        &mut out,
    )?;
    // `TermBegan` first (then, for a new journal, the genesis), in one
    // fenced append before anything else.
    let first: Vec<&JournalRecord> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(r) => Some(r),
            _ => None,
        })
        .chain(genesis_records.iter())
        .collect();
    journal.append(&first)?;
    manager.append_committed(cfg, now);
    journal.rebase(manager.durable().clone());
    tracing::info!(
        term = term.0,
        records,
        seq = journal.seq(),
        instances = manager.ledger_len(),
        "leading in term {term}: journal recovered from etcd; every instance is held for a full lease expiry"
    );
    let mut machine = ManagerMachine::new(
        Arc::new(ctx.deployment.clone()),
        manager,
        journal.counters(),
    );
    machine.managers = Some(Arc::clone(&ctx.managers));
    let core = Arc::new(Shared::new(machine, Journal::Etcd(journal), now));
    let _ = leading.core.set(Arc::clone(&core));
    let link = Arc::new(LinkContext::new(
        Arc::clone(&core),
        ctx.clock,
        ctx.deployment.clone(),
        ctx.token.clone(),
        Arc::clone(&ctx.fatal),
        HostBindings::in_store(bindings),
    ));
    spawn("timer", {
        let (core, ctx2) = (Arc::clone(&core), Arc::clone(ctx));
        let period = Duration::from_millis(ctx.deployment.tick_ms);
        move || {
            if let Err(e) = run_timer(&core, ctx2.clock, period, &ctx2.stop) {
                set_fatal(&ctx2.fatal, &e);
            }
        }
    })?;
    if let Ok(mut m) = ctx.managers.lock() {
        let me = m
            .standbys
            .iter()
            .position(|s| s.name == ctx.name)
            .map(|i| m.standbys.remove(i));
        m.leader = Some(PsManager {
            term: Some(term.0),
            ..me.unwrap_or(PsManager {
                name: ctx.name.clone(),
                ..PsManager::default()
            })
        });
    }
    let _ = ctx.role.set(Role { core, link });
    tracing::info!(term = term.0, "leading: serving agents and the API");
    Ok(())
}

/// Renews the leader lease every third of its life: each success confirms
/// the leadership from the keep-alive's send time; deposition steps down.
fn keep_alive(
    ctx: &Arc<HaContext>,
    leading: &Arc<Leading>,
    mut store: EtcdStore,
    leadership: Leadership,
) {
    let period = renew_period(&ctx.store);
    let mut next = leadership.sent_at.instant + period;
    // Confirmations reach the core through their own thread: the core's
    // lock can be held for seconds (an append retried while etcd elects),
    // and the lease must be renewed meanwhile.
    let (confirm, confirmations) = std::sync::mpsc::channel::<Moment>();
    let confirmer = spawn("confirmer", {
        let (ctx, leading) = (Arc::clone(ctx), Arc::clone(leading));
        move || confirm_leadership(&ctx, &leading, &confirmations)
    });
    if let Err(e) = confirmer {
        ctx.fail(format!("cannot start the confirmer thread: {e}"));
        return;
    }
    loop {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next = Instant::now() + period;
        match store.keep_alive(&leadership) {
            Ok(sent) => {
                if let Ok(mut c) = leading.confirmed.lock() {
                    *c = (*c).max(sent);
                }
                next = sent.instant + period;
                if confirm.send(sent).is_err() {
                    return;
                }
            }
            Err(e @ StoreError::Deposed { .. }) => {
                let why = format!(
                    "{e}: a keep-alive found the leadership gone; stepping down: this manager acts no more and exits (its supervisor starts it again as a standby)"
                );
                tracing::error!("{why}");
                if let Some(core) = leading.core.get() {
                    let _ = core.apply(ctx.clock.now(), ManagerInput::LeadershipLost);
                    // The core acts no more: end the lease, so that a
                    // standby waiting for it (the key was deleted under
                    // it) goes now. (Before the core exists the takeover
                    // may still start it: the lease then expires.)
                    if let Err(e) = store.resign(&leadership) {
                        tracing::warn!(
                            "could not revoke the lost leadership's lease: {e}; it will expire"
                        );
                    }
                }
                if let Ok(mut fatal) = ctx.fatal.lock() {
                    fatal.get_or_insert(why);
                }
                return;
            }
            Err(e) => tracing::warn!(
                "keep-alive of the leader lease failed: {e}; this manager stops acting when its guard runs out, unless a later keep-alive succeeds"
            ),
        }
    }
}

/// Steps the core with the latest confirmation sent (older ones that
/// queued while the core was busy add nothing).
fn confirm_leadership(
    ctx: &HaContext,
    leading: &Leading,
    confirmations: &std::sync::mpsc::Receiver<Moment>,
) {
    while let Ok(mut sent) = confirmations.recv() {
        while let Ok(later) = confirmations.try_recv() {
            sent = sent.max(later);
        }
        let Some(core) = leading.core.get() else {
            continue;
        };
        let input = ManagerInput::LeadershipConfirmed {
            sent_at: ctx.clock.tick_of(sent),
        };
        if let Err(e) = core.apply(ctx.clock.now(), input) {
            set_fatal(&ctx.fatal, &e);
            return;
        }
    }
}

/// The agent listener: the leader's links once it leads; before that, a
/// standby's refusal naming the leader.
fn accept_agents(listener: &TcpListener, ctx: &Arc<HaContext>) {
    for (n, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if let Some(role) = ctx.role.get() {
            accept_agent(stream, &role.link, n as u64);
            continue;
        }
        if ctx.pending.fetch_add(1, Ordering::SeqCst) >= PENDING_MAX {
            ctx.pending.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let ctx2 = Arc::clone(ctx);
        let spawned = std::thread::Builder::new()
            .name("standby-link".into())
            .spawn(move || {
                refuse_as_standby(&stream, &ctx2);
                ctx2.pending.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            ctx.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Reads a hello (small and quick, as the leader does) and answers that
/// this manager does not lead, naming the leader.
fn refuse_as_standby(stream: &TcpStream, ctx: &HaContext) {
    let mut deadline = Deadline {
        stream,
        until: Instant::now() + HELLO_TIMEOUT,
    };
    let Ok(Frame::Hello { token, .. }) = read_frame_limited(&mut deadline, HELLO_BYTES_MAX) else {
        return;
    };
    let mut writer = stream;
    let frame = if crate::api::same(&token, &ctx.token) {
        Frame::NotLeader {
            why: ctx.not_leader(),
            leader: ctx.leader().map(|l| l.agent).filter(|a| !a.is_empty()),
        }
    } else {
        Frame::Refused {
            why: "wrong agent token (give a manager data dir's `token` file)".into(),
            retry: false,
        }
    };
    let _ = write_frame(&mut writer, &frame);
}

/// One API worker: a standby's answers until this manager leads, then the
/// leader's API.
fn serve_api(api: &tiny_http::Server, ctx: &HaContext) {
    loop {
        if let Some(role) = ctx.role.get() {
            let link = Arc::clone(&role.link);
            let known = move |h: HostId| link.host_known(h);
            crate::api::serve(api, &role.core, ctx.clock, &ctx.token, &ctx.fatal, &known);
            return;
        }
        match api.recv_timeout(Duration::from_millis(100)) {
            // The role is read again: this manager may have started to
            // lead while the worker waited.
            Ok(Some(request)) => match ctx.role.get() {
                Some(role) => {
                    let link = Arc::clone(&role.link);
                    let known = move |h: HostId| link.host_known(h);
                    crate::api::answer(
                        request, &role.core, ctx.clock, &ctx.token, &ctx.fatal, &known,
                    );
                }
                None => answer_as_standby(request, ctx),
            },
            Ok(None) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A standby's API: `/health` says so; every other call, with the token,
/// is refused with 421 and the leader's API address (the CLI follows it).
fn answer_as_standby(request: tiny_http::Request, ctx: &HaContext) {
    let authorized = request.headers().iter().any(|h| {
        h.field.equiv("Authorization")
            && h.value
                .as_str()
                .strip_prefix("Bearer ")
                .is_some_and(|t| crate::api::same(t.trim(), &ctx.token))
    });
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let (status, body) = if path == "/health" {
        (
            200,
            serde_json::json!({ "status": "standby", "name": ctx.name }),
        )
    } else if !authorized {
        (
            401,
            serde_json::json!({ "error": "missing or wrong bearer token (see the data dir's `token` file)" }),
        )
    } else {
        let leader = ctx.leader();
        (
            421,
            serde_json::json!({
                "error": if leader.as_ref().is_some_and(|l| l.name == ctx.name) {
                    format!("{} is {}", ctx.name, ctx.not_leader())
                } else {
                    format!("{} is a standby: {}", ctx.name, ctx.not_leader())
                },
                "leader_api": leader.map(|l| l.api).filter(|a| !a.is_empty()),
            }),
        )
    };
    let json = serde_json::to_string_pretty(&body).unwrap_or_default();
    let mut response = tiny_http::Response::from_string(json).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        response = response.with_header(h);
    }
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_with_and_without_a_prefix() {
        let u = StoreUrl::parse("etcd://a:1,b:2").ok();
        assert_eq!(
            u,
            Some(StoreUrl {
                endpoints: vec!["http://a:1".into(), "http://b:2".into()],
                prefix: "tally/".into()
            })
        );
        let u = StoreUrl::parse("etcd://a:1/blue/").ok();
        assert_eq!(u.map(|u| u.prefix), Some("blue/".to_string()));
        assert!(StoreUrl::parse("http://a:1").is_err());
        assert!(StoreUrl::parse("etcd://").is_err());
    }
}
