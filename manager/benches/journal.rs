//! The file journal's costs, printed: append latency per step (write, fsync,
//! mark), compaction, and recovery time and memory for a large ledger.
//!
//! `cargo bench -p tally-manager --bench journal` (figures in
//! BENCHMARKS.md). `JOURNAL_INSTANCES` (default 100,000) sizes the ledger
//! that is recovered; `JOURNAL_STEPS` (default 2,000) the appends timed.
//!
//! Recovery is measured in a fresh process (this binary run with `recover
//! DIR`), so its peak memory is its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::time::Instant;
use tally_core::{
    Config, Durable, Generation, HostId, InstanceId, JournalRecord, SlotId, Tick, TypeId,
};
use tally_manager::journal::{DirLock, FileJournal, JournalOptions};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn launched(index: u16, generation: u32, host: u16) -> JournalRecord {
    JournalRecord::InstanceLaunched {
        instance: InstanceId {
            slot: SlotId {
                process_type: TypeId(0),
                index,
            },
            generation: Generation(generation),
        },
        host: HostId(host),
        free: false,
    }
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir.join("journal")).unwrap().flatten() {
        total += e.metadata().unwrap().len();
    }
    total
}

fn recover(dir: &Path) {
    let cfg = Config::example();
    let start = Instant::now();
    let (_, r) = FileJournal::open(
        DirLock::acquire(dir).unwrap(),
        dir,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        JournalOptions::default(),
    )
    .unwrap();
    let took = start.elapsed();
    println!(
        "recover: {} instances, {} entries read, {:.1} ms, peak RSS {} kB",
        r.durable.instances.len(),
        r.entries_read,
        took.as_secs_f64() * 1e3,
        peak_rss_kb()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let (Some("recover"), Some(dir)) = (args.get(1).map(String::as_str), args.get(2)) {
        recover(Path::new(dir));
        return;
    }
    let instances = env("JOURNAL_INSTANCES", 100_000);
    let steps = env("JOURNAL_STEPS", 2_000);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("tally-journal-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = Config::example();
    let mut j = FileJournal::create(
        DirLock::acquire(&dir).unwrap(),
        &dir,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        JournalOptions::default(),
    )
    .unwrap();

    // Per-step latency of a typical step (one record): write + fsync + mark.
    let mut lat = Vec::with_capacity(usize::try_from(steps).unwrap());
    for g in 1..=steps {
        let r = launched(0, u32::try_from(g).unwrap(), 0);
        let t = Instant::now();
        j.append([&r]).unwrap();
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() - 1) * p / 100];
    println!(
        "append (file, fsync + mark fsync), {steps} one-record steps: p50 {} us, p90 {} us, p99 {} us, max {} us",
        pct(50),
        pct(90),
        pct(99),
        lat[lat.len() - 1]
    );

    // A long history: launches and stops of short-lived instances, in steps
    // of 1,000 records, far more than a segment; compaction keeps the
    // journal to the live ledger's snapshot plus at most a segment of steps.
    let history = env("JOURNAL_HISTORY_RECORDS", 1_000_000);
    let t = Instant::now();
    let (mut appended, mut g, mut done) = (0u64, 0u32, 0u64);
    while done < history {
        let mut batch = Vec::with_capacity(1_000);
        for _ in 0..500 {
            g += 1;
            let r = launched(60_001, g, 1);
            let JournalRecord::InstanceLaunched { instance, .. } = r else {
                unreachable!()
            };
            batch.push(r);
            batch.push(JournalRecord::InstanceStopped { instance });
        }
        appended += serde_json::to_vec(&batch).unwrap().len() as u64;
        j.append(batch.iter()).unwrap();
        done += batch.len() as u64;
    }
    println!(
        "history of {done} records (about {} MB of JSON) journaled in {:.1} s; journal now {} kB on disk",
        appended / 1_000_000,
        t.elapsed().as_secs_f64(),
        dir_bytes(&dir) / 1024
    );

    // A large ledger, in steps of 1,000 launches, with compaction as it fills.
    let t = Instant::now();
    let mut written = 0u64;
    while written < instances {
        let batch: Vec<JournalRecord> = (0..1_000u64.min(instances - written))
            .map(|i| {
                let n = written + i;
                g += 1;
                launched(
                    u16::try_from(n % 60_000).unwrap(),
                    g,
                    u16::try_from(n % 10_000).unwrap(),
                )
            })
            .collect();
        j.append(batch.iter()).unwrap();
        written += batch.len() as u64;
    }
    println!(
        "ledger of {instances} instances journaled in {:.1} s; journal now {} kB on disk (segments of at most {} kB, then a snapshot)",
        t.elapsed().as_secs_f64(),
        dir_bytes(&dir) / 1024,
        tally_manager::journal::SEGMENT_BYTES_MAX / 1024
    );
    drop(j);
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .arg("recover")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
