//! The etcd journal of the highly available manager
//! (`tally_manager::ha::EtcdJournal`) against a real three-member etcd
//! cluster: what a leader appends, a later leader folds back; snapshots
//! keep it bounded; a deposed leader's append is refused. The `#[ignore]`d
//! `measure_...` test prints the figures of BENCHMARKS.md ("A highly
//! available manager on etcd"): run it by hand with
//! `cargo test --release -p tally-manager --features etcd --test etcd_journal -- --ignored --nocapture`.
#![cfg(feature = "etcd")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support/etcd_cluster.rs"]
mod etcd_cluster;

use etcd_cluster::EtcdCluster;
use std::time::{Duration, Instant};
use tally_core::{
    Config, Durable, Generation, HostId, InstanceId, JournalRecord, SlotId, Tick, TypeId,
};
use tally_manager::etcd::{EtcdStore, StoreError, StoreSettings};
use tally_manager::ha::EtcdJournal;
use tally_manager::journal::{DirLock, FileJournal, JournalError, JournalOptions};

fn store(cluster: &EtcdCluster, prefix: &str) -> EtcdStore {
    EtcdStore::connect(StoreSettings {
        call_timeout: Duration::from_secs(1),
        attempts_max: 5,
        lease_ttl_s: 5,
        ..StoreSettings::new(cluster.endpoints(), prefix)
    })
    .unwrap()
}

fn launched(index: u16, generation: u32) -> JournalRecord {
    JournalRecord::InstanceLaunched {
        instance: InstanceId {
            slot: SlotId {
                process_type: TypeId(0),
                index,
            },
            generation: Generation(generation),
        },
        host: HostId(0),
        free: false,
    }
}

fn stopped(index: u16, generation: u32) -> JournalRecord {
    JournalRecord::InstanceStopped {
        instance: InstanceId {
            slot: SlotId {
                process_type: TypeId(0),
                index,
            },
            generation: Generation(generation),
        },
    }
}

#[test]
fn a_later_leader_folds_back_what_was_appended_and_snapshots_bound_the_journal() {
    let cluster = EtcdCluster::start();
    let cfg = Config::example();
    let mut first = store(&cluster, "fold/");
    let lead = first.campaign("one").unwrap().unwrap();
    let (mut j, recovered) = EtcdJournal::open(
        first,
        lead.term,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        4 << 10,
    )
    .unwrap();
    assert!(recovered.empty);
    let mut expected = Durable::genesis(&cfg, Tick(0));
    let mut peak = 0;
    for g in 1..=300u32 {
        let step = [launched(0, g), stopped(0, g)];
        j.append(&step.iter().collect::<Vec<_>>()).unwrap();
        for r in &step {
            expected.apply(r);
        }
        if g % 50 == 0 {
            peak = peak.max(j.bytes_in_store().unwrap());
        }
    }
    assert_eq!(j.seq(), 300);
    // Steps of about 200 bytes: 300 of them unsnapshotted would be 60 KB.
    assert!(peak < 24 << 10, "the journal grew to {peak} bytes");
    j.store().resign(&lead).unwrap();

    let mut second = store(&cluster, "fold/");
    let lead2 = second.campaign("two").unwrap().unwrap();
    let (j2, recovered) = EtcdJournal::open(
        second,
        lead2.term,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        4 << 10,
    )
    .unwrap();
    assert!(!recovered.empty);
    assert_eq!(recovered.seq, 300);
    assert!(recovered.records < 300, "no snapshot replaced records");
    assert_eq!(recovered.durable.compacted(&cfg), expected.compacted(&cfg));
    assert_eq!(j2.seq(), 300);
}

#[test]
fn a_deposed_leaders_append_is_refused() {
    let cluster = EtcdCluster::start();
    let cfg = Config::example();
    let mut old = store(&cluster, "depose/");
    let lead = old.campaign("old").unwrap().unwrap();
    let (mut j, _) = EtcdJournal::open(
        old,
        lead.term,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        1 << 20,
    )
    .unwrap();
    j.append(&[&launched(0, 1)]).unwrap();
    j.store().resign(&lead).unwrap();
    let mut new = store(&cluster, "depose/");
    assert!(new.campaign("new").unwrap().is_some());
    let refused = j.append(&[&launched(0, 2)]);
    assert!(
        matches!(
            refused,
            Err(JournalError::Store(StoreError::Deposed { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(j.seq(), 1);
}

/// Quorum lost for longer than one call's budget (1.5 s here, as the HA
/// tests run the manager) but shorter than the store lease: the leader's
/// append waits it out and commits, rather than failing (which stops the
/// manager). The members take seconds to come back and elect a leader, so
/// the lease is long enough for that.
#[test]
fn an_append_outlasts_a_lost_quorum_shorter_than_the_store_lease() {
    let mut cluster = EtcdCluster::start();
    let cfg = Config::example();
    let mut s = EtcdStore::connect(StoreSettings {
        call_timeout: Duration::from_millis(500),
        attempts_max: 3,
        lease_ttl_s: 15,
        ..StoreSettings::new(cluster.endpoints(), "quorum/")
    })
    .unwrap();
    let lead = s.campaign("one").unwrap().unwrap();
    let (mut j, _) =
        EtcdJournal::open(s, lead.term, &cfg, Durable::genesis(&cfg, Tick(0)), 1 << 20).unwrap();
    j.append(&[&launched(0, 1)]).unwrap();

    let raft = cluster.raft_leader();
    let others: Vec<usize> = (0..etcd_cluster::MEMBERS).filter(|i| *i != raft).collect();
    for i in &others {
        cluster.stop(*i);
    }
    let stopped_at = Instant::now();
    let cluster = std::thread::scope(|scope| {
        let back = scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            for i in &others {
                cluster.start_member(*i);
            }
            cluster
        });
        let appended = Instant::now();
        j.append(&[&launched(0, 2)]).unwrap();
        let took = appended.elapsed();
        eprintln!("quorum lost 2.5 s: the append committed after {took:?}");
        assert!(took > Duration::from_millis(1500), "{took:?}");
        back.join().unwrap()
    });
    assert!(stopped_at.elapsed() < Duration::from_secs(30));
    cluster.wait_ready(Duration::from_secs(15)).unwrap();
    assert_eq!(j.seq(), 2);
    j.append(&[&launched(0, 3)]).unwrap();
    assert_eq!(j.seq(), 3);
}

fn percentiles(mut lat: Vec<u64>) -> String {
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() - 1) * p / 100];
    format!(
        "p50 {} us, p99 {} us, max {} us",
        pct(50),
        pct(99),
        lat[lat.len() - 1]
    )
}

/// Append latency per one-record step, file vs etcd, and the etcd
/// journal's size over a long run with snapshots. Figures, not a check.
#[test]
#[ignore = "a measurement for BENCHMARKS.md; run by hand"]
fn measure_append_latency_and_journal_size() {
    let steps: u32 = std::env::var("HA_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let history: u32 = std::env::var("HA_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let cfg = Config::example();

    let dir = std::env::temp_dir().join(format!("tally-ha-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = FileJournal::create(
        DirLock::acquire(&dir).unwrap(),
        &dir,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        JournalOptions::default(),
    )
    .unwrap();
    let mut lat = Vec::new();
    for g in 1..=steps {
        let r = launched(0, g);
        let t = Instant::now();
        file.append([&r]).unwrap();
        lat.push(t.elapsed().as_micros() as u64);
    }
    println!(
        "append, file journal (write + fsync + mark fsync), {steps} one-record steps: {}",
        percentiles(lat)
    );
    let _ = std::fs::remove_dir_all(&dir);

    let cluster = EtcdCluster::start();
    let mut s = store(&cluster, "bench/");
    let lead = s.campaign("bench").unwrap().unwrap();
    let (mut j, _) = EtcdJournal::open(
        s,
        lead.term,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        tally_manager::ha::SNAPSHOT_STEPS_BYTES,
    )
    .unwrap();
    // The leader lease (5 s) is kept alive between appends, as the
    // manager's keep-alive thread does.
    let mut kept = Instant::now();
    let mut keep = |j: &mut EtcdJournal| {
        if kept.elapsed() > Duration::from_secs(1) {
            j.store().keep_alive(&lead).unwrap();
            kept = Instant::now();
        }
    };
    let mut lat = Vec::new();
    for g in 1..=steps {
        let r = launched(0, g);
        keep(&mut j);
        let t = Instant::now();
        j.append(&[&r]).unwrap();
        lat.push(t.elapsed().as_micros() as u64);
    }
    println!(
        "append, etcd journal (one fenced txn, 3 members on loopback), {steps} one-record steps: {}",
        percentiles(lat)
    );

    // A long run: steps of a launch and a stop of short-lived instances;
    // snapshots every SNAPSHOT_STEPS_BYTES of steps keep it bounded.
    let started = Instant::now();
    let (mut peak, mut g) = (0u64, steps);
    for n in 1..=history {
        g += 1;
        let step = [launched(1, g), stopped(1, g)];
        keep(&mut j);
        j.append(&step.iter().collect::<Vec<_>>()).unwrap();
        if n % 1_000 == 0 {
            let bytes = j.bytes_in_store().unwrap();
            peak = peak.max(bytes);
            println!("  after {n} more steps: etcd journal {bytes} bytes");
        }
    }
    println!(
        "long run: {history} two-record steps in {:?}; etcd journal at most {peak} bytes (snapshot threshold {} bytes of steps)",
        started.elapsed(),
        tally_manager::ha::SNAPSHOT_STEPS_BYTES
    );
}
