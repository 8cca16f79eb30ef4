//! The manager's leadership and journal on etcd, for a highly available
//! manager (`DESIGN.md`, "More than one manager"). This module owns the key
//! layout, the fenced writes and the blocking API over etcd's async client.
//!
//! ```text
//! PREFIX leader          "name" of the leader, attached to its store lease; create revision = term
//! PREFIX leader-lease    decimal id of the leader's store lease, attached to it (it outlives the leader key only if somebody deleted that)
//! PREFIX head            decimal seq of the last appended record
//! PREFIX j/<seq:020>     one journal record per key (zero-padded, so key order = seq order)
//! PREFIX snap/data       the latest snapshot's bytes
//! PREFIX snap/seq        the decimal seq the snapshot covers (records <= it are deleted)
//! PREFIX meta, token     shared state every manager reads (created once, if absent)
//! PREFIX hosts           the host bindings (written fenced by the leader)
//! PREFIX members/<name>  each running manager, attached to its own lease
//! ```
//!
//! Every write a leader makes is one transaction that compares the leader
//! key's create revision with the writer's [`Term`] (rule 1), so a deposed
//! manager can never add to the journal. A record's transaction also
//! requires the record key not to exist, which makes retrying after an
//! unknown outcome (a timeout) safe: a retry that finds its own bytes
//! already there succeeds.
//!
//! The crate is synchronous, so [`EtcdStore`] owns a private current-thread
//! tokio runtime and blocks on it. Background tasks of the gRPC channel run
//! only inside a call, which is enough: nothing here needs to progress
//! between calls. Every call has a timeout per attempt and a time budget
//! ([`StoreSettings`]); nothing blocks forever.
//!
//! Each member has its own client (its own connection), and a call that
//! fails on one member moves to the next at once. A balanced channel over
//! all members would not do: it keeps sending a share of the attempts to a
//! member that is dead (refused at once) or frozen (answers nothing until
//! the timeout), and one append in a few dozen found that member on every
//! attempt, failed, and stopped the manager.
//!
//! Architecture Invariant: this module knows nothing about the core's
//! records: it stores opaque bytes under sequence numbers. Deciding when to
//! act (the leadership guard of rule 2) is the caller's, from the send
//! times this module reports.

use crate::clock::Moment;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The largest value (record or snapshot) written. etcd refuses requests
/// over `--max-request-bytes` (1.5 MiB by default) with an error that does
/// not say which write was too big; this leaves room for keys and framing.
pub const VALUE_BYTES_MAX: usize = 1_468_006; // 1.4 MiB

/// Keys per range read. A page of this many maximal values stays under
/// [`RESPONSE_BYTES_MAX`].
const PAGE_KEYS_MAX: i64 = 128;

/// The largest response decoded (the client's default is 4 MiB, less than
/// one page of large records).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// Record keys deleted per transaction when a snapshot replaces them
/// (etcd allows 128 operations per transaction; each batch is one ranged
/// delete over at most this many keys).
const DELETE_BATCH_KEYS: i64 = 128;

/// The most records [`EtcdStore::read_journal`] accepts: a journal longer
/// than this was not snapshotted, and reading it would take minutes.
pub const RECORDS_READ_MAX: usize = 1_000_000;

/// Times a whole journal read restarts when a compaction (by a deposed
/// leader finishing its snapshot) removed the revision it was pinned to.
const READ_RESTARTS_MAX: u32 = 3;

/// The longest call timeout accepted: longer ones make every wait absurd.
const CALL_TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// The most attempts' worth of time a call may have.
const ATTEMPTS_MAX: u32 = 100;

/// The longest store lease accepted, in seconds.
const LEASE_TTL_S_MAX: i64 = 3600;

/// Pause after every member failed an attempt of a call once; it doubles
/// per such round up to [`BACKOFF_MAX`]. (Moving to the next member after
/// one failed needs no pause.)
const BACKOFF_FIRST: Duration = Duration::from_millis(50);

/// The longest pause between attempts.
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// gRPC status codes (`tonic::Code` as `i32`) that mean "try again,
/// possibly on another member": cancelled, unknown (a broken connection),
/// deadline exceeded, aborted, unavailable (etcd's "no leader", "leader
/// changed", "request timed out").
const GRPC_TRANSIENT_CODES: [i32; 5] = [1, 2, 4, 10, 14];

/// gRPC `NotFound`: etcd's "requested lease not found".
const GRPC_NOT_FOUND: i32 = 5;

/// gRPC `OutOfRange`: etcd's "required revision has been compacted".
const GRPC_OUT_OF_RANGE: i32 = 11;

/// gRPC `ResourceExhausted`: etcd's "too many requests" (its raft log is
/// too far ahead of what it applied: a slow disk), which passes, and its
/// "database space exceeded", which does not.
const GRPC_RESOURCE_EXHAUSTED: i32 = 8;

/// How to reach the store and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Client URLs of the etcd members (`http://10.0.0.1:2379` or
    /// `10.0.0.1:2379`). Calls go to the member that last answered and move
    /// to the next when it fails.
    pub endpoints: Vec<String>,
    /// Prefix of every key this manager group uses, e.g. `tally/`; several
    /// groups can share one cluster under different prefixes.
    pub prefix: String,
    /// The longest wait for one attempt of one call.
    pub call_timeout: Duration,
    /// A call's time budget in attempts' timeouts (at least 1): a call tries
    /// member after member until it succeeds, meets an error that is not
    /// transient, or `attempts_max * call_timeout` has passed, and blocks
    /// no longer than that. Attempts that fail at once (a refused
    /// connection, a member without a raft leader) cost little of it.
    pub attempts_max: u32,
    /// Time to live of the leader's store lease, in seconds. etcd may grant
    /// more (its minimum is 1.5 election timeouts, rounded up); the granted
    /// value is in [`Leadership::lease_ttl_s`].
    pub lease_ttl_s: i64,
}

impl StoreSettings {
    /// Settings for `endpoints` under `prefix` with the defaults: 2 s per
    /// attempt, 3 attempts, a 5 s lease.
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> StoreSettings {
        StoreSettings {
            endpoints,
            prefix: prefix.into(),
            call_timeout: Duration::from_secs(2),
            attempts_max: 3,
            lease_ttl_s: 5,
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        let why = if self.endpoints.is_empty() {
            "no etcd endpoints given"
        } else if self.prefix.is_empty() {
            "the key prefix is empty (use e.g. \"tally/\")"
        } else if self.call_timeout.is_zero() {
            "the call timeout is zero"
        } else if self.attempts_max == 0 {
            "attempts_max is zero"
        } else if self.call_timeout > CALL_TIMEOUT_MAX {
            "the call timeout is over 10 minutes"
        } else if self.attempts_max > ATTEMPTS_MAX {
            "attempts_max is over 100"
        } else if self.lease_ttl_s < 1 {
            "the lease time to live is under 1 s"
        } else if self.lease_ttl_s > LEASE_TTL_S_MAX {
            "the lease time to live is over an hour (a standby would wait that long for a dead leader)"
        } else {
            return Ok(());
        };
        Err(StoreError::InvalidSettings {
            why: why.to_string(),
        })
    }
}

/// A leader's term: the store revision at which it created the leader key.
/// Revisions only grow, so a later leader always has a larger term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Term {
    /// As an etcd revision. A term is always a revision, so it fits; one
    /// that does not can match no key, and `i64::MAX` matches none either.
    fn revision(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

/// Who holds the leader key, as read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// The value the leader campaigned with, e.g. `manager-a@10.0.0.1:7000`.
    pub name: String,
    /// Its term.
    pub term: Term,
}

/// A won campaign: what the leader needs to keep and prove its leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The term, to put in every fenced write and every reply.
    pub term: Term,
    /// The store lease the leader key is attached to.
    pub lease_id: i64,
    /// The lease's time to live as granted by etcd (at least the requested).
    pub lease_ttl_s: i64,
    /// When the lease grant request was sent (before etcd started the
    /// lease's clock): the leadership guard starts here (rule 2).
    pub sent_at: Moment,
}

/// What one campaign transaction found.
enum Campaign {
    Won(Leadership),
    /// Another manager holds the leader key.
    Lost,
    /// The leader key is gone but its lease is not.
    Orphaned,
}

/// A journal entry as stored: a sequence number and opaque bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number.
    pub seq: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The journal read at one store revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRead {
    /// The latest snapshot, if any.
    pub snapshot: Option<Entry>,
    /// The records after the snapshot, in sequence order, without gaps.
    pub records: Vec<Entry>,
    /// The sequence number of the last record appended (kept with every
    /// append; it may be below the snapshot's when a snapshot covers more).
    pub head: Option<u64>,
    /// The store revision the read was pinned to.
    pub revision: i64,
}

/// A store call that failed. Messages name what was being done and what an
/// operator can do.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The settings cannot work.
    #[error("etcd settings are invalid: {why}")]
    InvalidSettings {
        /// What is wrong.
        why: String,
    },
    /// No member answered at connection time.
    #[error(
        "cannot reach etcd at {endpoints}: {reason}; check that the members run and that these are their client URLs"
    )]
    Unreachable {
        /// The endpoints tried, comma separated.
        endpoints: String,
        /// What the last attempt saw.
        reason: String,
    },
    /// No answer within the call timeout, on every attempt. A write's
    /// outcome is unknown: it may have committed.
    #[error(
        "etcd did not answer {what} within {after:?} ({attempts} attempts); the outcome is unknown"
    )]
    Timeout {
        /// The call.
        what: &'static str,
        /// How long the call tried.
        after: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The leader key no longer has this term: another manager leads, or
    /// the lease expired. The caller must stop acting.
    #[error("deposed: leadership of term {term} is lost (the leader key now has {now})")]
    Deposed {
        /// The term that was lost.
        term: Term,
        /// What the leader key holds now.
        now: LeaderNow,
    },
    /// A record with this sequence number exists with different bytes.
    #[error(
        "journal record {seq} already exists with different bytes ({existing} bytes, not {offered}); two writers used the same sequence number"
    )]
    Conflict {
        /// The sequence number.
        seq: u64,
        /// Length of the stored bytes.
        existing: usize,
        /// Length of the bytes offered.
        offered: usize,
    },
    /// A key holds something this module never writes.
    #[error(
        "etcd key {key} is corrupt ({why}); refusing to use the journal: restore it from a backup or an etcd snapshot"
    )]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A value or a journal over the limits, refused before asking etcd.
    #[error("{what} is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// etcd refused the call, or kept failing it transiently.
    #[error("etcd failed {what}: {source}")]
    Etcd {
        /// The call.
        what: &'static str,
        /// The client's error.
        source: etcd_client::Error,
    },
    /// Another running manager of the group has this name (its
    /// registration lives on its own lease).
    #[error(
        "another manager named {name:?} is running ({holder}); give each manager of a group its own --name"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// What the other manager registered (its addresses and pid).
        holder: String,
        /// The lease its registration lives on.
        lease: i64,
    },
    /// The private runtime could not start.
    #[error("cannot start the etcd client runtime: {0}")]
    Runtime(std::io::Error),
}

impl StoreError {
    /// Whether the store left the call unanswered (a timeout, or transient
    /// errors until the budget ran out): its outcome is unknown, and the
    /// same idempotent call may succeed later.
    #[must_use]
    pub fn is_unanswered(&self) -> bool {
        match self {
            StoreError::Timeout { .. } => true,
            StoreError::Etcd { source, .. } => is_transient(source),
            _ => false,
        }
    }
}

/// The leader key's state when a write found it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderNow {
    /// No leader key: the lease expired or was revoked.
    Absent,
    /// Another term holds it.
    Held(Leader),
}

impl fmt::Display for LeaderNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaderNow::Absent => write!(f, "no leader"),
            LeaderNow::Held(l) => write!(f, "term {} held by {}", l.term, l.name),
        }
    }
}

/// The key layout under one prefix.
#[derive(Clone, Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn key(&self, suffix: &str) -> Vec<u8> {
        format!("{}{suffix}", self.prefix).into_bytes()
    }
    fn leader(&self) -> Vec<u8> {
        self.key("leader")
    }
    fn leader_lease(&self) -> Vec<u8> {
        self.key("leader-lease")
    }
    fn head(&self) -> Vec<u8> {
        self.key("head")
    }
    fn records(&self) -> Vec<u8> {
        self.key("j/")
    }
    fn record(&self, seq: u64) -> Vec<u8> {
        self.key(&format!("j/{seq:020}"))
    }
    fn snapshot_dir(&self) -> Vec<u8> {
        self.key("snap/")
    }
    fn snapshot_data(&self) -> Vec<u8> {
        self.key("snap/data")
    }
    fn snapshot_seq(&self) -> Vec<u8> {
        self.key("snap/seq")
    }

    /// The sequence number of a record key.
    fn record_seq(&self, key: &[u8]) -> Result<u64, StoreError> {
        let records = self.records();
        key.strip_prefix(records.as_slice())
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse().ok())
            .ok_or_else(|| corrupt(key, "not a record key j/<20 digits>"))
    }
}

fn corrupt(key: &[u8], why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        why: why.into(),
    }
}

fn parse_seq(kv: &KeyValue) -> Result<u64, StoreError> {
    std::str::from_utf8(kv.value())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt(kv.key(), "not a decimal sequence number"))
}

fn leader_of(kv: &KeyValue) -> Result<Leader, StoreError> {
    let name = std::str::from_utf8(kv.value())
        .map_err(|_| corrupt(kv.key(), "leader name is not UTF-8"))?
        .to_string();
    let term = u64::try_from(kv.create_revision())
        .map_err(|_| corrupt(kv.key(), "negative create revision"))?;
    Ok(Leader {
        name,
        term: Term(term),
    })
}

fn is_transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => transient_status(i32::from(s.code()), s.message()),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Whether a gRPC status (code and message) may pass if tried again.
fn transient_status(code: i32, message: &str) -> bool {
    GRPC_TRANSIENT_CODES.contains(&code)
        || (code == GRPC_RESOURCE_EXHAUSTED && message.contains("too many requests"))
}

fn grpc_code(e: &etcd_client::Error) -> Option<i32> {
    match e {
        etcd_client::Error::GRpcStatus(s) => Some(i32::from(s.code())),
        _ => None,
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// The key-values of the `n`-th operation's range response in a txn.
fn txn_range(resp: &TxnResponse, n: usize) -> Vec<KeyValue> {
    match resp.op_responses().into_iter().nth(n) {
        Some(TxnOpResponse::Get(get)) => get.kvs().to_vec(),
        _ => Vec::new(),
    }
}

/// A blocking client for the manager's leadership and journal on etcd.
pub struct EtcdStore {
    runtime: tokio::runtime::Runtime,
    /// One client per endpoint, in the order of the settings.
    clients: Vec<Client>,
    /// The first endpoint's client (`clients` is never empty; this spares
    /// an index that could fail).
    first: Client,
    /// The member calls go to first: the last one that answered, or the
    /// next after the last one that failed.
    current: AtomicUsize,
    keys: Keys,
    settings: StoreSettings,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects and proves that the cluster serves linearizable reads (a
    /// read of the leader key). Refuses with [`StoreError::Unreachable`],
    /// naming the endpoints, when no attempt succeeds in time.
    pub fn connect(settings: StoreSettings) -> Result<EtcdStore, StoreError> {
        settings.check()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::Runtime)?;
        let endpoints = settings.endpoints.join(",");
        let unreachable = |reason: String| StoreError::Unreachable {
            endpoints: endpoints.clone(),
            reason,
        };
        // `require_leader`: a member cut off from the raft leader refuses
        // at once (and the call moves on) rather than serving stale reads.
        let options = ConnectOptions::new()
            .with_connect_timeout(settings.call_timeout)
            .with_require_leader(true);
        let mut clients = Vec::with_capacity(settings.endpoints.len());
        for endpoint in &settings.endpoints {
            // Connecting is lazy: a dead member fails its calls, not this.
            let connecting = Client::connect([endpoint.as_str()], Some(options.clone()));
            match block_with_timeout(&runtime, settings.call_timeout, connecting) {
                Ok(Ok(client)) => clients.push(client),
                Ok(Err(e)) => return Err(unreachable(format!("{endpoint}: {e}"))),
                Err(_) => {
                    return Err(unreachable(format!(
                        "{endpoint}: no answer in {:?}",
                        settings.call_timeout
                    )));
                }
            }
        }
        let Some(first) = clients.first().cloned() else {
            return Err(StoreError::InvalidSettings {
                why: "no etcd endpoints given".to_string(),
            });
        };
        let keys = Keys {
            prefix: settings.prefix.clone(),
        };
        let mut store = EtcdStore {
            runtime,
            clients,
            first,
            current: AtomicUsize::new(0),
            keys,
            settings,
        };
        match store.leader() {
            Ok(_) => Ok(store),
            Err(StoreError::Timeout {
                after, attempts, ..
            }) => Err(unreachable(format!(
                "no member answered a read in {after:?} ({attempts} attempts)"
            ))),
            Err(StoreError::Etcd { source, .. }) => Err(unreachable(source.to_string())),
            Err(other) => Err(other),
        }
    }

    /// The settings this store was connected with.
    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Runs `call` (idempotent) again while the store leaves it unanswered
    /// ([`StoreError::is_unanswered`]), starting no new call once the store
    /// lease's time to live has passed since the first unanswered one (so
    /// it blocks for at most about a lease and two calls' budgets). A leader uses it for the writes it
    /// cannot act without: within that time the store either commits the
    /// write, refuses it (the lease expired: [`StoreError::Deposed`]), or
    /// stays unreachable for longer than a lease, when nobody can tell
    /// whether this manager still leads and it must step down. One call's
    /// budget is too short for that: a raft election among the members,
    /// or a frozen member's timeout followed by one, takes about as long.
    ///
    /// # Errors
    /// The last error of `call`, once it is not unanswered or the time is
    /// up.
    pub fn persistently<T>(
        &mut self,
        what: &str,
        mut call: impl FnMut(&mut EtcdStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let ttl = Duration::from_secs(u64::try_from(self.settings.lease_ttl_s).unwrap_or(1));
        let mut give_up: Option<Instant> = None;
        loop {
            match call(self) {
                Err(e) if e.is_unanswered() => {
                    let give_up = *give_up.get_or_insert_with(|| Instant::now() + ttl);
                    if Instant::now() >= give_up {
                        return Err(e);
                    }
                    tracing::warn!(
                        member = self.endpoint_in_use(),
                        "{what}: {e}; trying again (for up to the store lease, {ttl:?})"
                    );
                }
                done => return done,
            }
        }
    }

    /// The endpoint calls go to now (the member that last answered).
    #[must_use]
    pub fn endpoint_in_use(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.clients.len().max(1);
        self.settings.endpoints.get(i).map_or("", String::as_str)
    }

    /// The client of the member calls go to now.
    fn client(&self) -> (usize, Client) {
        let i = self.current.load(Ordering::Relaxed) % self.clients.len().max(1);
        (i, self.clients.get(i).unwrap_or(&self.first).clone())
    }

    /// Moves calls away from member `i`, which just failed one (unless an
    /// earlier failure already moved them).
    fn leave(&self, i: usize) {
        let next = i.saturating_add(1) % self.clients.len().max(1);
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs one call: each attempt on the current member with the call
    /// timeout; a timeout or a transient error moves to the next member and
    /// tries again, with a backoff after each round of members, until the
    /// budget of `attempts_max` timeouts has passed. Returns the value and
    /// when the successful attempt started (before its request was sent).
    fn call<T, F, Fut>(&self, what: &'static str, mut attempt: F) -> Result<(T, Moment), StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.settings.call_timeout;
        let began = Instant::now();
        let deadline = began + timeout.saturating_mul(self.settings.attempts_max);
        let mut backoff = BACKOFF_FIRST;
        let mut failed_this_round = 0;
        let mut n: u32 = 0;
        loop {
            n = n.saturating_add(1);
            let (member, client) = self.client();
            let limit = timeout.min(deadline.saturating_duration_since(Instant::now()));
            let started = Moment::now();
            let outcome = block_with_timeout(&self.runtime, limit, attempt(client));
            let failure = match outcome {
                Ok(Ok(value)) => return Ok((value, started)),
                Ok(Err(source)) if is_transient(&source) => StoreError::Etcd { what, source },
                Ok(Err(source)) => return Err(StoreError::Etcd { what, source }),
                Err(_elapsed) => StoreError::Timeout {
                    what,
                    after: began.elapsed(),
                    attempts: n,
                },
            };
            tracing::debug!(what, attempt = n, member, error = %failure, "etcd call failed");
            self.leave(member);
            failed_this_round += 1;
            if failed_this_round >= self.clients.len() {
                failed_this_round = 0;
                let left = deadline.saturating_duration_since(Instant::now());
                sleep(&self.runtime, backoff.min(left));
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            if Instant::now() >= deadline {
                return Err(match failure {
                    StoreError::Timeout { .. } => StoreError::Timeout {
                        what,
                        after: began.elapsed(),
                        attempts: n,
                    },
                    other => other,
                });
            }
        }
    }

    /// A linearizable read of one key: its key-value, if it exists, and the
    /// store revision of the read.
    fn get(&self, what: &'static str, key: Vec<u8>) -> Result<(Option<KeyValue>, i64), StoreError> {
        let (mut resp, _) = self.call(what, |mut c| {
            let key = key.clone();
            async move { c.get(key, None).await }
        })?;
        let revision = header_revision(resp.header());
        Ok((resp.take_kvs().into_iter().next(), revision))
    }

    /// Runs a transaction (retried as a whole, so it must be idempotent).
    fn txn(&self, what: &'static str, txn: Txn) -> Result<TxnResponse, StoreError> {
        let (resp, _) = self.call(what, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })?;
        Ok(resp)
    }

    /// Campaigns for leadership as `me`: grants a lease of `lease_ttl_s`
    /// and creates the leader key and `leader-lease`, both attached to it,
    /// if neither exists. Returns `None` (and revokes the lease) when
    /// another manager leads. `leader-lease` without the leader key means
    /// somebody deleted the key under a live lease: its leader may act
    /// until its guard runs out, so this waits for that lease first
    /// ([`EtcdStore::wait_orphaned_lease`]) and campaigns again.
    pub fn campaign(&mut self, me: &str) -> Result<Option<Leadership>, StoreError> {
        loop {
            match self.campaign_once(me)? {
                Campaign::Won(leadership) => return Ok(Some(leadership)),
                Campaign::Lost => return Ok(None),
                Campaign::Orphaned => {
                    self.wait_orphaned_lease()?;
                }
            }
        }
    }

    fn campaign_once(&mut self, me: &str) -> Result<Campaign, StoreError> {
        let ttl = self.settings.lease_ttl_s;
        let (grant, sent_at) = self.call("grant a leader lease", |mut c| async move {
            c.lease_grant(ttl, None).await
        })?;
        let lease_id = grant.id();
        let key = self.keys.leader();
        let lease_key = self.keys.leader_lease();
        let attached = || Some(PutOptions::new().with_lease(lease_id));
        // The failure branch reads both keys, so a retry after an unknown
        // outcome recognises its own win by the lease.
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Compare::create_revision(lease_key.clone(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(key.clone(), me, attached()),
                TxnOp::put(lease_key.clone(), lease_id.to_string(), attached()),
            ])
            .or_else([TxnOp::get(key, None), TxnOp::get(lease_key, None)]);
        let resp = match self.txn("campaign for the leader key", txn) {
            Ok(resp) => resp,
            Err(e) => {
                self.revoke_quietly(lease_id);
                return Err(e);
            }
        };
        let won = |term: Option<u64>| match term {
            Some(term) if term > 0 => Some(Campaign::Won(Leadership {
                term: Term(term),
                lease_id,
                lease_ttl_s: grant.ttl(),
                sent_at,
            })),
            _ => None,
        };
        if resp.succeeded() {
            if let Some(w) = won(u64::try_from(header_revision(resp.header())).ok()) {
                return Ok(w);
            }
        }
        let leader = txn_range(&resp, 0).into_iter().next();
        if let Some(kv) = leader.as_ref().filter(|kv| kv.lease() == lease_id) {
            if let Some(w) = won(u64::try_from(kv.create_revision()).ok()) {
                return Ok(w);
            }
        }
        self.revoke_quietly(lease_id);
        let orphan = leader.is_none() && !txn_range(&resp, 1).is_empty();
        Ok(if orphan {
            Campaign::Orphaned
        } else {
            Campaign::Lost
        })
    }

    /// `leader-lease` while the leader key is gone: its lease and mod
    /// revision.
    fn orphan(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let txn = Txn::new().and_then([
            TxnOp::get(self.keys.leader(), None),
            TxnOp::get(self.keys.leader_lease(), None),
        ]);
        let resp = self.txn("read the leader key and its lease", txn)?;
        if !txn_range(&resp, 0).is_empty() {
            return Ok(None);
        }
        Ok(txn_range(&resp, 1)
            .first()
            .map(|kv| (kv.lease(), kv.mod_revision())))
    }

    /// The store lease of the last elected leader, if it still lives although
    /// the leader key is gone: `(id, seconds left)`. Both keys go with their
    /// lease when it expires or the leader resigns (revokes it); the leader
    /// key alone gone means somebody else deleted it (an operator's
    /// `etcdctl del`), and its leader, which does not know yet, may act
    /// until its guard runs out, within that lease.
    ///
    /// # Errors
    /// The store did not answer.
    pub fn orphaned_lease(&mut self) -> Result<Option<(i64, i64)>, StoreError> {
        let Some((id, _)) = self.orphan()? else {
            return Ok(None);
        };
        let ttl = self.time_to_live(id)?;
        Ok((ttl >= 0).then_some((id, ttl)))
    }

    /// Seconds left of lease `id` (etcd rounds down, so 0 still lives);
    /// -1 when it is gone.
    fn time_to_live(&self, id: i64) -> Result<i64, StoreError> {
        let (resp, _) = self.call("ask a lease's time to live", |mut c| async move {
            c.lease_time_to_live(id, None).await
        })?;
        Ok(resp.ttl())
    }

    /// Waits while `leader-lease` outlives the leader key, until its lease
    /// ends or for one store lease (plus a second: etcd rounds down) from
    /// when this manager first saw it: by then that leader's guard, which
    /// its last confirmed keep-alive started before the key was deleted,
    /// has run out even if it never noticed (a group's managers all have
    /// this lease, and the guard is shorter), and the key is deleted. A
    /// `leader-lease` without a lease (not written by a campaign) is
    /// deleted at once. Returns the lease waited for, if any.
    ///
    /// # Errors
    /// The store did not answer.
    pub fn wait_orphaned_lease(&mut self) -> Result<Option<i64>, StoreError> {
        let ttl = Duration::from_secs(u64::try_from(self.settings.lease_ttl_s).unwrap_or(0));
        let mut waited: Option<(i64, Instant)> = None;
        while let Some((id, mod_revision)) = self.orphan()? {
            let until = match waited {
                Some((seen, until)) if seen == id => until,
                _ if id == 0 => Instant::now(),
                _ => {
                    tracing::warn!(
                        lease = id,
                        "the leader key is gone but its store lease lives: somebody deleted the key; its leader may act until its guard runs out, so no campaign until that lease ends (at most {:?})",
                        ttl + Duration::from_secs(1)
                    );
                    let until = Instant::now() + ttl + Duration::from_secs(1);
                    waited = Some((id, until));
                    until
                }
            };
            if Instant::now() >= until {
                self.delete_orphan(mod_revision)?;
            } else {
                sleep(&self.runtime, BACKOFF_FIRST * 2);
            }
        }
        Ok(waited.map(|(id, _)| id))
    }

    /// Deletes `leader-lease` if it is still the one at `mod_revision` and
    /// the leader key is still gone.
    fn delete_orphan(&self, mod_revision: i64) -> Result<(), StoreError> {
        let lease_key = self.keys.leader_lease();
        let txn = Txn::new()
            .when([
                Compare::create_revision(self.keys.leader(), CompareOp::Equal, 0),
                Compare::mod_revision(lease_key.clone(), CompareOp::Equal, mod_revision),
            ])
            .and_then([TxnOp::delete(lease_key, None)]);
        self.txn("delete an orphaned leader-lease", txn).map(|_| ())
    }

    /// Revokes a lease nobody needs; a failure only leaves it to expire.
    fn revoke_quietly(&self, lease_id: i64) {
        if let Err(e) = self.revoke(lease_id) {
            tracing::warn!(lease_id, error = %e, "could not revoke an unused etcd lease; it will expire");
        }
    }

    fn revoke(&self, lease_id: i64) -> Result<(), StoreError> {
        let revoked = self.call("revoke the leader lease", |mut c| async move {
            c.lease_revoke(lease_id).await
        });
        match revoked {
            Ok(_) => Ok(()),
            Err(StoreError::Etcd { source, .. }) if grpc_code(&source) == Some(GRPC_NOT_FOUND) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// One keep-alive round trip for the leader's lease, then a check that
    /// the leader key still has its term. Returns when the successful
    /// keep-alive was sent: the leadership guard restarts from there.
    /// [`StoreError::Deposed`] when the lease is gone or the key changed.
    pub fn keep_alive(&mut self, leadership: &Leadership) -> Result<Moment, StoreError> {
        let lease_id = leadership.lease_id;
        let kept = self.call("keep the leader lease alive", |mut c| async move {
            c.lease_keep_alive(lease_id).await.map(|_| ())
        });
        let sent_at = match kept {
            Ok(((), sent_at)) => sent_at,
            // The client reports a lease that etcd answers with TTL <= 0
            // (expired or revoked) this way.
            Err(StoreError::Etcd {
                source: etcd_client::Error::LeaseKeepAliveError(_),
                ..
            }) => {
                return Err(StoreError::Deposed {
                    term: leadership.term,
                    now: self.leader_now()?,
                });
            }
            Err(e) => return Err(e),
        };
        let now = self.leader_now()?;
        match &now {
            LeaderNow::Held(l) if l.term == leadership.term => Ok(sent_at),
            _ => Err(StoreError::Deposed {
                term: leadership.term,
                now,
            }),
        }
    }

    fn leader_now(&self) -> Result<LeaderNow, StoreError> {
        let (kv, _) = self.get("read the leader key", self.keys.leader())?;
        Ok(match kv {
            Some(kv) => LeaderNow::Held(leader_of(&kv)?),
            None => LeaderNow::Absent,
        })
    }

    /// The current leader, by a linearizable read.
    pub fn leader(&mut self) -> Result<Option<Leader>, StoreError> {
        Ok(match self.leader_now()? {
            LeaderNow::Held(l) => Some(l),
            LeaderNow::Absent => None,
        })
    }

    /// Appends record `seq` in one transaction fenced by `term`. A retry of
    /// the same bytes after an unknown outcome succeeds; different bytes
    /// under the same number are a [`StoreError::Conflict`]. On
    /// [`StoreError::Timeout`] the record may or may not be committed: the
    /// caller releases no effect of it and retries or stops.
    pub fn append(&mut self, term: Term, seq: u64, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > VALUE_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "a journal record",
                size: value.len(),
                max: VALUE_BYTES_MAX,
            });
        }
        let leader = self.keys.leader();
        let record = self.keys.record(seq);
        let txn = Txn::new()
            .when([
                Compare::create_revision(leader.clone(), CompareOp::Equal, term.revision()),
                Compare::create_revision(record.clone(), CompareOp::Equal, 0),
            ])
            .and_then([
                TxnOp::put(record.clone(), value, None),
                TxnOp::put(self.keys.head(), seq.to_string(), None),
            ])
            .or_else([TxnOp::get(leader, None), TxnOp::get(record, None)]);
        let resp = self.txn("append a journal record", txn)?;
        if resp.succeeded() {
            return Ok(());
        }
        self.check_term(term, txn_range(&resp, 0).first())?;
        match txn_range(&resp, 1).first() {
            Some(kv) if kv.value() == value => Ok(()),
            Some(kv) => Err(StoreError::Conflict {
                seq,
                existing: kv.value().len(),
                offered: value.len(),
            }),
            // Both compares held when read back: impossible within one
            // transaction, so the store misbehaves.
            None => Err(corrupt(
                &self.keys.record(seq),
                "append failed although the record is absent",
            )),
        }
    }

    /// `Deposed` unless the leader key read in a failed transaction (`kv`)
    /// still has `term`.
    fn check_term(&self, term: Term, kv: Option<&KeyValue>) -> Result<(), StoreError> {
        let now = match kv {
            Some(kv) => LeaderNow::Held(leader_of(kv)?),
            None => LeaderNow::Absent,
        };
        match &now {
            LeaderNow::Held(l) if l.term == term => Ok(()),
            _ => Err(StoreError::Deposed { term, now }),
        }
    }

    /// Reads every key in `[start, end)` at `revision` (0: the latest), in
    /// pages. Returns the key-values and the revision read at.
    fn range(
        &self,
        what: &'static str,
        start: Vec<u8>,
        end: Vec<u8>,
        revision: i64,
    ) -> Result<(Vec<KeyValue>, i64), StoreError> {
        let mut kvs: Vec<KeyValue> = Vec::new();
        let mut from = start;
        let mut revision = revision;
        let pages_max = RECORDS_READ_MAX / usize::try_from(PAGE_KEYS_MAX).unwrap_or(1) + 1;
        for _ in 0..pages_max {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE_KEYS_MAX)
                .with_revision(revision);
            let (mut resp, _) = self.call(what, |c| {
                let (from, options) = (from.clone(), options.clone());
                let mut kv = c.kv_client().max_decoding_message_size(RESPONSE_BYTES_MAX);
                async move { kv.get(from, Some(options)).await }
            })?;
            if revision == 0 {
                revision = header_revision(resp.header());
            }
            let more = resp.more();
            let page = resp.take_kvs();
            if let Some(last) = page.last() {
                from = last.key().to_vec();
                from.push(0);
            }
            kvs.extend(page);
            if !more {
                return Ok((kvs, revision));
            }
        }
        Err(StoreError::TooLarge {
            what: "the journal (records)",
            size: kvs.len(),
            max: RECORDS_READ_MAX,
        })
    }

    /// Reads the snapshot, the head and the records after the snapshot at
    /// one store revision (linearizable, so everything committed before the
    /// call is seen). Checks that records follow the snapshot without gaps
    /// and reach the head: a lost record is [`StoreError::Corrupt`].
    pub fn read_journal(&mut self) -> Result<JournalRead, StoreError> {
        let mut restarts = 0;
        loop {
            match self.read_journal_once() {
                Err(StoreError::Etcd { source, .. })
                    if grpc_code(&source) == Some(GRPC_OUT_OF_RANGE)
                        && restarts < READ_RESTARTS_MAX =>
                {
                    restarts += 1;
                    tracing::info!(%source, "journal read raced a compaction; reading again");
                }
                result => return result,
            }
        }
    }

    fn read_journal_once(&self) -> Result<JournalRead, StoreError> {
        let (snap, revision) = self.range(
            "read the journal snapshot",
            self.keys.snapshot_dir(),
            prefix_end(&self.keys.snapshot_dir()),
            0,
        )?;
        let (head, _) = self.range(
            "read the journal head",
            self.keys.head(),
            key_after(&self.keys.head()),
            revision,
        )?;
        let (records, _) = self.range(
            "read the journal records",
            self.keys.records(),
            prefix_end(&self.keys.records()),
            revision,
        )?;
        let snapshot = self.snapshot_of(&snap)?;
        let head = head.first().map(parse_seq).transpose()?;
        let records = records
            .into_iter()
            .map(|kv| {
                let seq = self.keys.record_seq(kv.key())?;
                let (_, bytes) = kv.into_key_value();
                Ok(Entry { seq, bytes })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        assemble(&self.keys, snapshot, head, records, revision)
    }

    /// The snapshot from the key-values under `snap/`.
    fn snapshot_of(&self, kvs: &[KeyValue]) -> Result<Option<Entry>, StoreError> {
        let find = |key: Vec<u8>| kvs.iter().find(|kv| kv.key() == key.as_slice());
        match (
            find(self.keys.snapshot_seq()),
            find(self.keys.snapshot_data()),
        ) {
            (None, None) => Ok(None),
            (Some(seq), Some(data)) => Ok(Some(Entry {
                seq: parse_seq(seq)?,
                bytes: data.value().to_vec(),
            })),
            _ => Err(corrupt(
                &self.keys.snapshot_dir(),
                "snapshot data and seq not both present",
            )),
        }
    }

    /// Stores a snapshot covering every record up to `seq` (fenced by
    /// `term`), then deletes those records in fenced batches, then compacts
    /// the store's history. A failure after the snapshot is stored leaves
    /// old records behind, which [`read_journal`](Self::read_journal) skips
    /// and the next snapshot deletes.
    pub fn write_snapshot(&mut self, term: Term, seq: u64, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > VALUE_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "a journal snapshot",
                size: value.len(),
                max: VALUE_BYTES_MAX,
            });
        }
        let stored = [
            TxnOp::put(self.keys.snapshot_data(), value, None),
            TxnOp::put(self.keys.snapshot_seq(), seq.to_string(), None),
        ];
        let mut revision = self.fenced_write("store a journal snapshot", term, stored)?;
        let batches_max = RECORDS_READ_MAX / usize::try_from(DELETE_BATCH_KEYS).unwrap_or(1) + 1;
        for _ in 0..batches_max {
            let Some(delete) = self.next_covered_batch(seq)? else {
                break;
            };
            revision =
                self.fenced_write("delete journal records a snapshot covers", term, [delete])?;
        }
        self.compact(revision)
    }

    /// One ranged delete of the next (at most [`DELETE_BATCH_KEYS`]) record
    /// keys at or below `seq`, or `None` when none is left.
    fn next_covered_batch(&self, seq: u64) -> Result<Option<TxnOp>, StoreError> {
        let start = self.keys.records();
        let options = GetOptions::new()
            .with_range(self.keys.record(seq.saturating_add(1)))
            .with_limit(DELETE_BATCH_KEYS)
            .with_keys_only();
        let (batch, _) = self.call("list journal records to delete", |mut c| {
            let (start, options) = (start.clone(), options.clone());
            async move { c.get(start, Some(options)).await }
        })?;
        Ok(match (batch.kvs().first(), batch.kvs().last()) {
            (Some(first), Some(last)) => Some(TxnOp::delete(
                first.key().to_vec(),
                Some(DeleteOptions::new().with_range(key_after(last.key()))),
            )),
            _ => None,
        })
    }

    /// Runs `ops` in one transaction that requires the leader key to have
    /// `term`; returns the store revision after it. Idempotent `ops` only:
    /// it is retried after an unknown outcome.
    fn fenced_write(
        &self,
        what: &'static str,
        term: Term,
        ops: impl Into<Vec<TxnOp>>,
    ) -> Result<i64, StoreError> {
        let leader = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(
                leader.clone(),
                CompareOp::Equal,
                term.revision(),
            )])
            .and_then(ops)
            .or_else([TxnOp::get(leader, None)]);
        let resp = self.txn(what, txn)?;
        if !resp.succeeded() {
            self.check_term(term, txn_range(&resp, 0).first())?;
        }
        Ok(header_revision(resp.header()))
    }

    /// Drops the store's history before `revision` (live keys stay).
    fn compact(&self, revision: i64) -> Result<(), StoreError> {
        let compacted = self.call("compact the etcd history", |mut c| async move {
            c.compact(revision, None).await
        });
        match compacted {
            Ok(_) => Ok(()),
            // Someone compacted at or past it already.
            Err(StoreError::Etcd { source, .. })
                if grpc_code(&source) == Some(GRPC_OUT_OF_RANGE) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Gives leadership up: revokes the lease, which deletes the leader key
    /// so a standby can take over at once. Revoking a lease that is already
    /// gone succeeds.
    pub fn resign(&mut self, leadership: &Leadership) -> Result<(), StoreError> {
        self.revoke(leadership.lease_id)
    }

    /// Waits until the leader key's term differs from `known` (a new leader,
    /// or `None` when the key is deleted while `known` is set), or
    /// `max_wait` passes, and returns the leader as last read: it still has
    /// `known`'s term only when the wait ran out. Standbys call this in a
    /// loop to campaign as soon as the key goes.
    pub fn wait_leader_change(
        &mut self,
        known: Option<Term>,
        max_wait: Duration,
    ) -> Result<Option<Leader>, StoreError> {
        let deadline = Instant::now() + max_wait;
        // Bounded: each round either returns or waits out a watch or a
        // backoff, and the deadline ends the loop.
        loop {
            let (kv, revision) = self.get("read the leader key", self.keys.leader())?;
            let current = kv.as_ref().map(leader_of).transpose()?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if current.as_ref().map(|l| l.term) != known || remaining.is_zero() {
                return Ok(current);
            }
            let (member, client) = self.client();
            let watch = watch_change(client, self.keys.leader(), revision + 1, known);
            // A frozen member's watch tells nothing: read again at least
            // once per lease time to live.
            let ttl = Duration::from_secs(u64::try_from(self.settings.lease_ttl_s).unwrap_or(1));
            let watched = block_with_timeout(&self.runtime, remaining.min(ttl), watch);
            match watched {
                Err(_elapsed) => {} // the next round reads and returns
                Ok(Ok(())) => {}    // changed: the next round reads it
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, member, "watch of the leader key broke; reading again");
                    self.leave(member);
                    let pause =
                        BACKOFF_FIRST.min(deadline.saturating_duration_since(Instant::now()));
                    sleep(&self.runtime, pause);
                }
            }
        }
    }

    /// A linearizable read of the value of `PREFIX<suffix>` (`meta`,
    /// `token`, `hosts`).
    pub fn get_value(&mut self, suffix: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (kv, _) = self.get("read a shared key", self.keys.key(suffix))?;
        Ok(kv.map(|kv| kv.value().to_vec()))
    }

    /// Creates `PREFIX<suffix>` with `value` unless it exists, in one
    /// transaction, and returns what the key holds after it: `value`, or
    /// what another manager created first. Retried safely (the read-back
    /// tells).
    pub fn create_if_absent(&mut self, suffix: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if value.len() > VALUE_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "a shared key's value",
                size: value.len(),
                max: VALUE_BYTES_MAX,
            });
        }
        let key = self.keys.key(suffix);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = self.txn("create a shared key", txn)?;
        if resp.succeeded() {
            return Ok(value.to_vec());
        }
        match txn_range(&resp, 0).first() {
            Some(kv) => Ok(kv.value().to_vec()),
            None => Err(corrupt(&key, "neither created nor present")),
        }
    }

    /// Puts `value` at `PREFIX<suffix>` in one transaction fenced by
    /// `term` ([`StoreError::Deposed`] when the leader key has another).
    pub fn put_fenced(&self, term: Term, suffix: &str, value: &[u8]) -> Result<(), StoreError> {
        if value.len() > VALUE_BYTES_MAX {
            return Err(StoreError::TooLarge {
                what: "a shared key's value",
                size: value.len(),
                max: VALUE_BYTES_MAX,
            });
        }
        let put = TxnOp::put(self.keys.key(suffix), value, None);
        self.fenced_write("write a shared key", term, [put])
            .map(drop)
    }

    /// Registers a running manager: `PREFIX members/<name>` = `value`,
    /// attached to a lease of its own (the settings' time to live), so
    /// that it disappears when the manager stops renewing it. Returns the
    /// lease, for [`keep_registered`](Self::keep_registered).
    pub fn register(&mut self, name: &str, value: &[u8]) -> Result<i64, StoreError> {
        let ttl = self.settings.lease_ttl_s;
        let (grant, _) = self.call("grant a registration lease", |mut c| async move {
            c.lease_grant(ttl, None).await
        })?;
        let lease_id = grant.id();
        let key = self.keys.key(&format!("members/{name}"));
        // Only if nobody holds the name; the failure branch reads the key,
        // so a retry after an unknown outcome recognises its own lease.
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease_id)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let held_by = match self.txn("register this manager", txn) {
            Ok(resp) if resp.succeeded() => return Ok(lease_id),
            Ok(resp) => txn_range(&resp, 0).into_iter().next(),
            Err(e) => {
                self.revoke_quietly(lease_id);
                return Err(e);
            }
        };
        match held_by {
            Some(kv) if kv.lease() == lease_id => Ok(lease_id),
            Some(kv) => {
                self.revoke_quietly(lease_id);
                Err(StoreError::NameTaken {
                    name: name.to_string(),
                    holder: String::from_utf8_lossy(kv.value()).into_owned(),
                    lease: kv.lease(),
                })
            }
            // The compare and the read are one transaction.
            None => {
                self.revoke_quietly(lease_id);
                Err(corrupt(
                    &self.keys.key(&format!("members/{name}")),
                    "neither registered nor present",
                ))
            }
        }
    }

    /// Registers as [`EtcdStore::register`] does, waiting while the name's
    /// holder looks dead: the registration of this manager's previous run,
    /// killed a moment ago, lives until etcd expires its lease (a little
    /// after its time to live: etcd checks leases every half second). A
    /// holder whose lease is seen renewed (its time to live went up) runs,
    /// and is refused at once; so is one still there after two store
    /// leases and two seconds.
    ///
    /// # Errors
    /// [`StoreError::NameTaken`] when another manager holds the name; or
    /// the store did not answer.
    pub fn register_when_free(&mut self, name: &str, value: &[u8]) -> Result<i64, StoreError> {
        let lease_s = u64::try_from(self.settings.lease_ttl_s).unwrap_or(0);
        let until =
            Instant::now() + Duration::from_secs(lease_s.saturating_mul(2).saturating_add(2));
        let mut seen: Option<(i64, i64)> = None;
        loop {
            let taken = match self.register(name, value) {
                Err(taken @ StoreError::NameTaken { .. }) => taken,
                done => return done,
            };
            let StoreError::NameTaken { lease, .. } = &taken else {
                return Err(taken);
            };
            let ttl = self.time_to_live(*lease)?;
            let renewed = seen.is_some_and(|(was, left)| was == *lease && ttl > left);
            if renewed || Instant::now() >= until {
                return Err(taken);
            }
            seen = Some((*lease, ttl));
            sleep(&self.runtime, BACKOFF_FIRST * 4);
        }
    }

    /// Renews a registration's lease; `false` when the lease is gone (the
    /// registration with it): register again.
    pub fn keep_registered(&mut self, lease_id: i64) -> Result<bool, StoreError> {
        let kept = self.call("renew this manager's registration", |mut c| async move {
            c.lease_keep_alive(lease_id).await.map(|_| ())
        });
        match kept {
            Ok(_) => Ok(true),
            Err(StoreError::Etcd {
                source: etcd_client::Error::LeaseKeepAliveError(_),
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every registered manager: its name and registration value, by name.
    pub fn members(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let dir = self.keys.key("members/");
        let (kvs, _) = self.range(
            "list the registered managers",
            dir.clone(),
            prefix_end(&dir),
            0,
        )?;
        Ok(kvs
            .into_iter()
            .map(|kv| {
                let name = String::from_utf8_lossy(
                    kv.key().strip_prefix(dir.as_slice()).unwrap_or_default(),
                )
                .into_owned();
                let (_, value) = kv.into_key_value();
                (name, value)
            })
            .collect())
    }

    /// Bytes of the live journal (record and snapshot keys and values), for
    /// measurements.
    pub fn journal_bytes(&mut self) -> Result<u64, StoreError> {
        let (records, revision) = self.range(
            "measure the journal records",
            self.keys.records(),
            prefix_end(&self.keys.records()),
            0,
        )?;
        let (snap, _) = self.range(
            "measure the journal snapshot",
            self.keys.snapshot_dir(),
            prefix_end(&self.keys.snapshot_dir()),
            revision,
        )?;
        let bytes: usize = records
            .iter()
            .chain(snap.iter())
            .map(|kv| kv.key().len() + kv.value().len())
            .sum();
        Ok(u64::try_from(bytes).unwrap_or(u64::MAX))
    }
}

/// Runs `future` on `runtime` for at most `timeout`. (The timer must be
/// made inside the runtime, hence the async block.)
fn block_with_timeout<F: Future>(
    runtime: &tokio::runtime::Runtime,
    timeout: Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    runtime.block_on(async move { tokio::time::timeout(timeout, future).await })
}

/// Sleeps on `runtime`, so the client's connections make progress meanwhile.
fn sleep(runtime: &tokio::runtime::Runtime, pause: Duration) {
    runtime.block_on(async move { tokio::time::sleep(pause).await });
}

/// Watches `key` from `start_revision` until an event changes its term away
/// from `known`. Returns `Ok` on such an event, `Err` when the watch breaks.
async fn watch_change(
    mut client: Client,
    key: Vec<u8>,
    start_revision: i64,
    known: Option<Term>,
) -> Result<(), etcd_client::Error> {
    let options = WatchOptions::new().with_start_revision(start_revision);
    let mut stream = client.watch(key, Some(options)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.canceled() {
            return Err(etcd_client::Error::WatchError(format!(
                "watch canceled: {}",
                resp.cancel_reason()
            )));
        }
        let changed = resp.events().iter().any(|event| match event.event_type() {
            EventType::Delete => known.is_some(),
            EventType::Put => {
                let term = event
                    .kv()
                    .and_then(|kv| u64::try_from(kv.create_revision()).ok());
                term.map(Term) != known
            }
        });
        if changed {
            return Ok(());
        }
    }
    Err(etcd_client::Error::WatchError(
        "watch stream ended".to_string(),
    ))
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the key space.
    vec![0]
}

/// The first key after `key` alone.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// Checks and orders what a journal read found: records at or below the
/// snapshot's seq (left by an interrupted snapshot) are dropped; the rest
/// must follow one another and end at the head.
fn assemble(
    keys: &Keys,
    snapshot: Option<Entry>,
    head: Option<u64>,
    records: Vec<Entry>,
    revision: i64,
) -> Result<JournalRead, StoreError> {
    let covered = snapshot.as_ref().map(|s| s.seq);
    let records: Vec<Entry> = records
        .into_iter()
        .filter(|r| covered.is_none_or(|c| r.seq > c))
        .collect();
    let mut expected = covered.map(|c| c.saturating_add(1));
    for record in &records {
        if expected.is_some_and(|e| record.seq != e) {
            let why = format!(
                "expected record {} next, a record is missing",
                expected.unwrap_or(0)
            );
            return Err(corrupt(&keys.record(record.seq), why));
        }
        expected = Some(record.seq.saturating_add(1));
    }
    let last = records.last().map(|r| r.seq);
    let consistent = match (last, head) {
        (Some(last), Some(head)) => last == head,
        (Some(_), None) => false,
        (None, Some(head)) => covered.is_some_and(|c| head <= c),
        (None, None) => true,
    };
    if !consistent {
        let why = format!(
            "head is {head:?} but the last record is {last:?} after snapshot {covered:?}: records were lost"
        );
        return Err(corrupt(&keys.head(), why));
    }
    Ok(JournalRead {
        snapshot,
        records,
        head,
        revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys {
            prefix: "t/".to_string(),
        }
    }

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            bytes: vec![1],
        }
    }

    #[test]
    fn record_keys_sort_by_seq_and_parse_back() {
        let k = keys();
        assert!(k.record(9) < k.record(10));
        assert!(k.record(u64::MAX) < prefix_end(&k.records()));
        assert_eq!(k.record_seq(&k.record(42)).ok(), Some(42));
        assert!(k.record_seq(b"t/j/42").is_err());
        assert!(k.record_seq(b"t/x/00000000000000000042").is_err());
    }

    #[test]
    fn a_busy_member_is_tried_again_and_a_full_database_is_not() {
        assert!(transient_status(14, "etcdserver: no leader"));
        assert!(transient_status(8, "etcdserver: too many requests"));
        assert!(!transient_status(
            8,
            "etcdserver: mvcc: database space exceeded"
        ));
        assert!(!transient_status(3, "etcdserver: key is not provided"));
    }

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn assemble_drops_covered_records_and_accepts_contiguous_ones() {
        let snap = Some(Entry {
            seq: 3,
            bytes: vec![],
        });
        let read = assemble(&keys(), snap, Some(5), (2..=5).map(entry).collect(), 7);
        let seqs: Vec<u64> = read
            .map(|r| r.records.iter().map(|e| e.seq).collect())
            .unwrap_or_default();
        assert_eq!(seqs, vec![4, 5]);
        assert!(assemble(&keys(), None, None, Vec::new(), 1).is_ok());
    }

    #[test]
    fn assemble_refuses_gaps_and_lost_tails() {
        let gap = vec![entry(1), entry(3)];
        assert!(matches!(
            assemble(&keys(), None, Some(3), gap, 1),
            Err(StoreError::Corrupt { .. })
        ));
        let lost_tail = vec![entry(1), entry(2)];
        assert!(matches!(
            assemble(&keys(), None, Some(3), lost_tail, 1),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            assemble(&keys(), None, Some(1), Vec::new(), 1),
            Err(StoreError::Corrupt { .. })
        ));
        let snap = Some(entry(4));
        assert!(matches!(
            assemble(&keys(), snap, Some(4), vec![entry(6)], 1),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
