//! The etcd store (`tally_manager::etcd`) against a real three-member etcd
//! cluster on loopback: leadership and terms, fenced appends, snapshots
//! that delete old records, refusal of unreachable endpoints, and appends
//! that survive losing etcd's raft leader. Needs `/usr/bin/etcd` (Debian's
//! etcd-server); without it every test here fails and says so.
#![cfg(feature = "etcd")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/etcd_cluster.rs"]
mod etcd_cluster;

use etcd_cluster::EtcdCluster;
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tally_manager::etcd::{
    EtcdStore, Leader, LeaderNow, Leadership, StoreError, StoreSettings, Term, VALUE_BYTES_MAX,
};

fn settings(endpoints: Vec<String>, prefix: &str, lease_ttl_s: i64) -> StoreSettings {
    StoreSettings {
        call_timeout: Duration::from_secs(1),
        attempts_max: 5,
        lease_ttl_s,
        ..StoreSettings::new(endpoints, prefix)
    }
}

fn store(cluster: &EtcdCluster, prefix: &str, lease_ttl_s: i64) -> EtcdStore {
    EtcdStore::connect(settings(cluster.endpoints(), prefix, lease_ttl_s)).unwrap()
}

fn seqs(read: &tally_manager::etcd::JournalRead) -> Vec<u64> {
    read.records.iter().map(|r| r.seq).collect()
}

#[test]
fn campaign_wins_once_and_terms_increase() {
    let cluster = EtcdCluster::start();
    let mut a = store(&cluster, "t1/", 2);
    let mut b = store(&cluster, "t1/", 2);

    let la = a
        .campaign("manager-a@127.0.0.1:7000")
        .unwrap()
        .expect("a wins");
    assert!(la.lease_ttl_s >= 2);
    assert!(b.campaign("manager-b@127.0.0.1:7001").unwrap().is_none());
    let leader = Leader {
        name: "manager-a@127.0.0.1:7000".to_string(),
        term: la.term,
    };
    assert_eq!(b.leader().unwrap(), Some(leader.clone()));
    let kept = a.keep_alive(&la).unwrap();
    assert!(kept >= la.sent_at);

    // A standby waiting for a change sees no change while a leads...
    let waited = Instant::now();
    let same = b
        .wait_leader_change(Some(la.term), Duration::from_millis(300))
        .unwrap();
    assert_eq!(same, Some(leader));
    assert!(waited.elapsed() >= Duration::from_millis(300));
    // ...and the deletion as soon as a resigns.
    a.resign(&la).unwrap();
    assert_eq!(
        b.wait_leader_change(Some(la.term), Duration::from_secs(5))
            .unwrap(),
        None
    );

    let lb = b
        .campaign("manager-b@127.0.0.1:7001")
        .unwrap()
        .expect("b wins");
    assert!(
        lb.term > la.term,
        "terms increase: {:?} then {:?}",
        la.term,
        lb.term
    );
    assert!(matches!(
        a.keep_alive(&la),
        Err(StoreError::Deposed { term, now: LeaderNow::Held(_) }) if term == la.term
    ));
    a.resign(&la).unwrap(); // a lease already gone: still fine

    b.resign(&lb).unwrap();
    let lc = a
        .campaign("manager-a@127.0.0.1:7000")
        .unwrap()
        .expect("a wins again");
    assert!(lc.term > lb.term);
}

#[test]
fn fenced_append_deposes_an_expired_leader_and_retries_are_idempotent() {
    let cluster = EtcdCluster::start();
    let mut a = store(&cluster, "t2/", 1);
    let mut b = store(&cluster, "t2/", 1);

    let la = a.campaign("manager-a").unwrap().expect("a wins");
    a.append(la.term, 1, b"one").unwrap();
    a.append(la.term, 2, b"two").unwrap();

    // a stops keeping its lease alive; b takes over once it expires.
    let gone = b
        .wait_leader_change(Some(la.term), Duration::from_secs(10))
        .unwrap();
    assert_eq!(gone, None);
    eprintln!(
        "a lease of {} s (granted {} s) was deleted {:?} after its grant was sent",
        1,
        la.lease_ttl_s,
        la.sent_at.instant.elapsed()
    );
    let lb = b.campaign("manager-b").unwrap().expect("b wins");
    assert!(lb.term > la.term);

    match a.append(la.term, 3, b"three from a") {
        Err(StoreError::Deposed {
            term,
            now: LeaderNow::Held(l),
        }) => {
            assert_eq!(term, la.term);
            assert_eq!(l.term, lb.term);
        }
        other => panic!("a deposed leader's append must fail: {other:?}"),
    }
    assert!(matches!(a.keep_alive(&la), Err(StoreError::Deposed { .. })));

    b.append(lb.term, 3, b"three").unwrap();
    // The retry of an append whose outcome was unknown: same bytes, fine.
    b.append(lb.term, 3, b"three").unwrap();
    assert!(matches!(
        b.append(lb.term, 3, b"other bytes"),
        Err(StoreError::Conflict { seq: 3, .. })
    ));
    // The old term stays refused even for a record that exists.
    assert!(matches!(
        a.append(la.term, 3, b"three"),
        Err(StoreError::Deposed { .. })
    ));

    let read = b.read_journal().unwrap();
    assert_eq!(seqs(&read), vec![1, 2, 3]);
    assert_eq!(read.records[2].bytes, b"three".to_vec());
    assert_eq!(read.head, Some(3));
    assert_eq!(read.snapshot, None);
}

#[test]
fn snapshot_replaces_older_records_in_batches() {
    let cluster = EtcdCluster::start();
    // A long lease: this test never keeps it alive.
    let mut a = store(&cluster, "t3/", 30);
    let la = a.campaign("manager-a").unwrap().expect("a wins");
    let term = la.term;
    let record = |seq: u64| format!("{seq:0100}").into_bytes();
    let appending = Instant::now();
    for seq in 1..=300 {
        a.append(term, seq, &record(seq)).unwrap();
    }
    eprintln!("300 appends of 100 bytes took {:?}", appending.elapsed());

    let read = a.read_journal().unwrap();
    assert_eq!(seqs(&read), (1..=300).collect::<Vec<_>>());
    assert_eq!(read.records[41].bytes, record(42));
    let before = a.journal_bytes().unwrap();

    // Over two delete batches (128 keys each) and a partial one.
    let snapshot = vec![b's'; 1000];
    a.write_snapshot(term, 290, &snapshot).unwrap();
    let read = a.read_journal().unwrap();
    assert_eq!(read.snapshot.as_ref().map(|s| s.seq), Some(290));
    assert_eq!(
        read.snapshot.as_ref().map(|s| s.bytes.clone()),
        Some(snapshot.clone())
    );
    assert_eq!(seqs(&read), (291..=300).collect::<Vec<_>>());
    assert_eq!(read.head, Some(300));
    // Exactly the snapshot and ten records remain: the older keys are gone.
    let record_key = "t3/j/00000000000000000291".len();
    let remaining =
        ("t3/snap/data".len() + 1000) + ("t3/snap/seq".len() + 3) + 10 * (record_key + 100);
    let after = a.journal_bytes().unwrap();
    assert_eq!(after, remaining as u64);
    assert!(after < before / 10, "{after} bytes after, {before} before");

    // Values are limited before etcd sees them, and the limit fits etcd's.
    let too_large = vec![0; VALUE_BYTES_MAX + 1];
    assert!(matches!(
        a.write_snapshot(term, 300, &too_large),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(matches!(
        a.append(term, 301, &too_large),
        Err(StoreError::TooLarge { .. })
    ));
    a.append(term, 301, b"last").unwrap();
    let largest = vec![b'x'; VALUE_BYTES_MAX];
    a.write_snapshot(term, 301, &largest).unwrap();
    let read = a.read_journal().unwrap();
    assert_eq!(
        read.snapshot.map(|s| (s.seq, s.bytes.len())),
        Some((301, VALUE_BYTES_MAX))
    );
    assert!(read.records.is_empty());
    assert_eq!(read.head, Some(301));

    // A snapshot from another term is refused.
    assert!(matches!(
        a.write_snapshot(Term(term.0 - 1), 301, b"stale"),
        Err(StoreError::Deposed { .. })
    ));
}

#[test]
fn connect_to_silent_endpoints_is_refused_in_time() {
    // One port refuses connections; the other accepts them and never answers.
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoints = vec![
        format!("http://{refused}"),
        format!("http://{}", silent.local_addr().unwrap()),
    ];
    let mut s = settings(endpoints.clone(), "t4/", 2);
    s.call_timeout = Duration::from_millis(500);
    s.attempts_max = 2;
    let started = Instant::now();
    let err = EtcdStore::connect(s).expect_err("nothing serves etcd there");
    let took = started.elapsed();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{message}");
    for endpoint in &endpoints {
        assert!(message.contains(endpoint.as_str()), "{message}");
    }
    assert!(took < Duration::from_secs(3), "refused after {took:?}");
    eprintln!("refused after {took:?}: {message}");
}

#[test]
fn appends_survive_losing_the_raft_leader_and_a_member_rejoins() {
    let mut cluster = EtcdCluster::start();
    // Long enough to outlast the seconds without quorum below.
    let mut a = store(&cluster, "t5/", 10);
    let la = a.campaign("manager-a").unwrap().expect("a wins");
    for seq in 1..=5 {
        a.append(la.term, seq, b"before").unwrap();
    }

    let victim = cluster.raft_leader();
    cluster.kill(victim);
    let killed = Instant::now();
    let mut slowest = Duration::ZERO;
    for seq in 6..=25 {
        let started = Instant::now();
        a.append(la.term, seq, b"after").unwrap();
        slowest = slowest.max(started.elapsed());
        a.keep_alive(&la).unwrap();
    }
    let recovered = killed.elapsed();
    eprintln!("raft leader killed: 20 appends took {recovered:?}, the slowest {slowest:?}");
    assert!(recovered < Duration::from_secs(8), "{recovered:?}");

    // A stopped member and the killed one come back and rejoin.
    let other = (victim + 1) % etcd_cluster::MEMBERS;
    cluster.stop(other);
    let refusing = Instant::now();
    let err = a
        .append(la.term, 26, b"two members down")
        .expect_err("no quorum with one member");
    eprintln!(
        "without quorum an append failed after {:?}: {err}",
        refusing.elapsed()
    );
    cluster.start_member(other);
    cluster.start_member(victim);
    let rejoining = Instant::now();
    cluster.wait_ready(Duration::from_secs(10)).unwrap();
    assert_eq!(cluster.members_answering(), etcd_cluster::MEMBERS);
    eprintln!("two members rejoined in {:?}", rejoining.elapsed());

    // The unknown outcome of 26 is resolved by retrying the same bytes.
    a.keep_alive(&la).unwrap();
    a.append(la.term, 26, b"two members down").unwrap();
    a.append(la.term, 27, b"all back").unwrap();
    let read = a.read_journal().unwrap();
    assert_eq!(seqs(&read), (1..=27).collect::<Vec<_>>());
}

/// The settings `tally run --store` uses with `--store-timeout-ms 500` (as
/// the HA tests run it): three attempts' worth of time per call.
fn cli_settings(cluster: &EtcdCluster, prefix: &str) -> StoreSettings {
    StoreSettings {
        call_timeout: Duration::from_millis(500),
        attempts_max: 3,
        lease_ttl_s: 10,
        ..StoreSettings::new(cluster.endpoints(), prefix)
    }
}

/// Appends `seqs` one by one, each followed by a keep-alive, as the leader
/// does: each retried while unanswered for up to a store lease
/// ([`EtcdStore::persistently`]; a frozen raft leader costs an election
/// plus the timeouts of requests forwarded to it, which can exceed one
/// call's budget). Returns the slowest append. Panics naming the first
/// that failed.
fn append_all(
    store: &mut EtcdStore,
    leadership: &Leadership,
    seqs: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for seq in seqs {
        let started = Instant::now();
        let appended = store.persistently("append", |s| {
            s.append(leadership.term, seq, what.as_bytes())
        });
        if let Err(e) = appended {
            panic!(
                "append {seq} ({what}) failed after {:?}: {e}",
                started.elapsed()
            );
        }
        slowest = slowest.max(started.elapsed());
        store
            .persistently("keep-alive", |s| s.keep_alive(leadership))
            .unwrap();
    }
    slowest
}

/// A dead member, a frozen one (SIGSTOP: it accepts connections and
/// answers nothing) and a raft leader's death cost no leader's write under
/// the timeouts the manager runs with: the client must leave a member that
/// fails and not come back to it by chance on every attempt. (The manager
/// exits when an append fails; once, both managers of the HA test did,
/// when every attempt of an append went to the killed member.)
#[test]
fn no_leader_write_fails_while_one_member_is_dead_frozen_or_was_raft_leader() {
    let mut cluster = EtcdCluster::start();
    let mut a = EtcdStore::connect(cli_settings(&cluster, "t8/")).unwrap();
    let la = a.campaign("manager-a").unwrap().expect("a wins");

    // Each fault hits the member the store uses (raft leader or not).
    let endpoints = cluster.endpoints();
    let in_use = |a: &EtcdStore| {
        endpoints
            .iter()
            .position(|e| e == a.endpoint_in_use())
            .unwrap()
    };
    let dead = in_use(&a);
    cluster.kill(dead);
    let slowest = append_all(&mut a, &la, 1..=150, "a member dead");
    eprintln!("member {dead} dead: 150 appends, the slowest {slowest:?}");
    assert_ne!(in_use(&a), dead);
    cluster.start_member(dead);
    cluster.wait_ready(Duration::from_secs(15)).unwrap();

    let frozen = in_use(&a);
    cluster.freeze(frozen);
    let slowest = append_all(&mut a, &la, 151..=200, "a member frozen");
    assert_ne!(in_use(&a), frozen, "calls stayed on the frozen member");
    cluster.thaw(frozen);
    eprintln!("member {frozen} frozen: 50 appends, the slowest {slowest:?}");
    cluster.wait_ready(Duration::from_secs(15)).unwrap();

    let raft = cluster.raft_leader();
    cluster.kill(raft);
    let killed = Instant::now();
    let slowest = append_all(&mut a, &la, 201..=260, "the raft leader dead");
    eprintln!(
        "raft leader {raft} killed: 60 appends in {:?}, the slowest {slowest:?}",
        killed.elapsed()
    );
    let read = a.read_journal().unwrap();
    assert_eq!(seqs(&read), (1..=260).collect::<Vec<_>>());
}

/// An operator deletes the leader key (`etcdctl del`): its lease lives on,
/// and so does its leader's guard. A campaign waits for that lease to end:
/// on its own (nobody renews it), or at once when the deposed leader,
/// whose next keep-alive finds the key gone, resigns. A `leader-lease`
/// without a lease (not a campaign's) holds nobody.
#[test]
fn a_leader_key_deleted_under_a_live_lease_holds_campaigns_until_the_lease_ends() {
    let cluster = EtcdCluster::start();
    let mut a = store(&cluster, "t9/", 3);
    let mut b = store(&cluster, "t9/", 3);
    let la = a.campaign("a").unwrap().expect("a wins");
    assert_eq!(b.orphaned_lease().unwrap(), None, "the key is held");
    assert_eq!(cluster.delete_key("t9/leader"), Some(1));
    let (id, ttl) = b.orphaned_lease().unwrap().expect("the lease lives");
    assert_eq!(id, la.lease_id);
    assert!(ttl >= 0);
    // Nobody renews a's lease: b's campaign waits until it expires.
    let started = Instant::now();
    let lb = b
        .campaign("b")
        .unwrap()
        .expect("b wins once the lease ends");
    let waited = started.elapsed();
    eprintln!("an unrenewed orphaned lease ({ttl} s left) held the campaign {waited:?}");
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(lb.term > la.term);

    // Again under b; b's keep-alive finds its key gone and b resigns.
    assert_eq!(cluster.delete_key("t9/leader"), Some(1));
    assert!(a.orphaned_lease().unwrap().is_some());
    assert!(matches!(
        b.keep_alive(&lb),
        Err(StoreError::Deposed {
            now: LeaderNow::Absent,
            ..
        })
    ));
    b.resign(&lb).unwrap();
    let started = Instant::now();
    assert_eq!(a.wait_orphaned_lease().unwrap(), None);
    let la2 = a.campaign("a").unwrap().expect("a wins at once");
    assert!(started.elapsed() < Duration::from_secs(1));

    // An operator's own `leader-lease` (no lease) is deleted, not obeyed.
    a.resign(&la2).unwrap();
    assert!(cluster.put_key("t9/leader-lease", "12345"));
    let started = Instant::now();
    assert!(b.campaign("b").unwrap().is_some());
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// A manager killed a moment ago leaves its name registered until etcd
/// expires the lease: its restart waits for that and registers. A running
/// holder renews its lease, and a second manager under its name is
/// refused.
#[test]
fn a_name_is_free_again_after_its_holder_dies_and_never_while_it_runs() {
    let cluster = EtcdCluster::start();
    let mut killed = store(&cluster, "t10/", 3);
    killed.register("a", b"first run").unwrap();
    drop(killed); // as SIGKILL: nobody revokes its lease
    let mut restarted = store(&cluster, "t10/", 3);
    let started = Instant::now();
    restarted.register_when_free("a", b"second run").unwrap();
    eprintln!(
        "a killed manager's name was free again after {:?}",
        started.elapsed()
    );

    let mut running = store(&cluster, "t10/", 5);
    let lease = running.register("b", b"running").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper = std::thread::spawn({
        let stop = std::sync::Arc::clone(&stop);
        move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                assert!(running.keep_registered(lease).unwrap());
                std::thread::sleep(Duration::from_millis(1666));
            }
        }
    });
    let mut second = store(&cluster, "t10/", 5);
    let started = Instant::now();
    let refused = second.register_when_free("b", b"second b");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    keeper.join().unwrap();
    assert!(
        matches!(refused, Err(StoreError::NameTaken { .. })),
        "{refused:?}"
    );
    eprintln!(
        "a running holder's name was refused after {:?}",
        started.elapsed()
    );
}

/// Settings that would make waits absurd are refused before anything is
/// sent (the library's own check; the CLI's ranges say the same).
#[test]
fn settings_out_of_range_are_refused() {
    let base = StoreSettings::new(vec!["127.0.0.1:1".to_string()], "t11/");
    for (bad, why) in [
        (
            StoreSettings {
                call_timeout: Duration::from_secs(601),
                ..base.clone()
            },
            "over 10 minutes",
        ),
        (
            StoreSettings {
                attempts_max: 101,
                ..base.clone()
            },
            "over 100",
        ),
        (
            StoreSettings {
                lease_ttl_s: 3601,
                ..base.clone()
            },
            "over an hour",
        ),
    ] {
        let err = EtcdStore::connect(bad).expect_err("refused");
        assert!(
            matches!(err, StoreError::InvalidSettings { .. }) && err.to_string().contains(why),
            "{err}"
        );
    }
}
