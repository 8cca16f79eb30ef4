//! The file journal against a hostile operator and a crash at any byte:
//! what it recovers, what it cuts off, and what it refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use tally_core::{
    Config, Durable, Effect, Generation, HostId, InstanceId, JournalRecord, Manager, SlotId, Tick,
    TypeId,
};
use tally_manager::journal::{DirLock, FileJournal, JournalError, JournalOptions, Recovered};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tally-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn launched(slot: u16, generation: u32) -> JournalRecord {
    JournalRecord::InstanceLaunched {
        instance: InstanceId {
            slot: SlotId {
                process_type: TypeId(0),
                index: slot,
            },
            generation: Generation(generation),
        },
        host: HostId(0),
        free: false,
    }
}

fn stopped(slot: u16, generation: u32) -> JournalRecord {
    JournalRecord::InstanceStopped {
        instance: InstanceId {
            slot: SlotId {
                process_type: TypeId(0),
                index: slot,
            },
            generation: Generation(generation),
        },
    }
}

fn create(d: &Path, opts: JournalOptions) -> FileJournal {
    let cfg = Config::example();
    FileJournal::create(
        DirLock::acquire(d).unwrap(),
        d,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        opts,
    )
    .unwrap()
}

fn open(d: &Path) -> Result<(FileJournal, Recovered), JournalError> {
    let cfg = Config::example();
    FileJournal::open(
        DirLock::acquire(d)?,
        d,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        JournalOptions::default(),
    )
}

/// Writes `steps` steps of one launch and one stop each, then drops it.
fn write_steps(d: &Path, steps: u32, opts: JournalOptions) {
    let mut j = create(d, opts);
    for g in 1..=steps {
        j.append([&launched(0, g)]).unwrap();
        j.append([&stopped(0, g)]).unwrap();
    }
}

fn segment(d: &Path) -> PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(d.join("journal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v.pop().unwrap()
}

fn high_water(r: &Recovered) -> Generation {
    r.durable
        .high_water
        .get(&SlotId {
            process_type: TypeId(0),
            index: 0,
        })
        .copied()
        .unwrap_or_default()
}

/// Rewrites the segment's header with `records_version`, checksum and all.
fn set_records_version(d: &Path, version: u16) {
    let seg = segment(d);
    let whole = std::fs::read(&seg).unwrap();
    let end = whole.iter().position(|b| *b == b'\n').unwrap();
    let line = std::str::from_utf8(&whole[..end]).unwrap();
    let json = line.splitn(3, ' ').nth(2).unwrap();
    let mut header: serde_json::Value = serde_json::from_str(json).unwrap();
    header["records_version"] = version.into();
    let json = header.to_string();
    let mut out = format!("h {:08x} {json}", crc32fast::hash(json.as_bytes())).into_bytes();
    out.extend_from_slice(&whole[end..]);
    std::fs::write(&seg, out).unwrap();
}

#[test]
fn a_journal_of_records_version_3_is_read_and_an_older_one_refused() {
    // Version 4 only added `TermBegan`, which a local journal never holds:
    // a data dir written before it still recovers whole.
    let d = dir("version3");
    write_steps(&d, 3, JournalOptions::default());
    set_records_version(&d, 3);
    let (_, r) = open(&d).unwrap();
    assert_eq!((r.seq, high_water(&r)), (6, Generation(3)));
    set_records_version(&d, 2);
    match open(&d) {
        Err(e @ JournalError::Version { .. }) => {
            assert!(e.to_string().contains("records versions 3 to 4"), "{e}");
        }
        other => panic!(
            "records version 2 was not refused: {:?}",
            other.map(|r| r.1.seq)
        ),
    }
}

#[test]
fn a_journal_recovers_everything_it_committed() {
    let d = dir("whole");
    write_steps(&d, 10, JournalOptions::default());
    let (_, r) = open(&d).unwrap();
    assert_eq!(r.seq, 20);
    assert_eq!(high_water(&r), Generation(10));
    assert!(r.durable.instances.is_empty());
    assert_eq!(r.counters.launches, 10);
    assert!(!r.torn_tail_dropped);
}

#[test]
fn a_torn_last_entry_is_cut_off_in_place_and_appends_continue() {
    let d = dir("torn");
    write_steps(&d, 3, JournalOptions::default());
    let seg = segment(&d);
    let whole = std::fs::read(&seg).unwrap();
    // Every cut inside the entry the mark does not cover yet: the crash
    // came between its write and the mark's, or in the middle of it.
    let mut j = open(&d).unwrap().0;
    j.append([&launched(0, 4)]).unwrap();
    drop(j);
    let longer = std::fs::read(&seg).unwrap();
    // Roll the mark back one step, as a crash before the mark write would.
    let mark = std::fs::read(d.join("journal.mark")).unwrap();
    let slot7 = 64; // seq 7 lives in slot 1
    let mut rolled = mark.clone();
    for b in &mut rolled[slot7..slot7 + 64] {
        *b = b' ';
    }
    std::fs::write(d.join("journal.mark"), &rolled).unwrap();
    for cut in whole.len() + 1..longer.len() {
        std::fs::write(&seg, &longer[..cut]).unwrap();
        let (mut j, r) = open(&d).unwrap();
        assert_eq!(r.seq, 6, "cut at {cut}");
        assert!(r.torn_tail_dropped, "cut at {cut}");
        assert_eq!(std::fs::read(&seg).unwrap(), whole, "not cut back in place");
        j.append([&launched(0, 5)]).unwrap();
        drop(j);
        let (_, r) = open(&d).unwrap();
        assert_eq!(r.seq, 7);
        assert_eq!(high_water(&r), Generation(5));
        std::fs::write(&seg, &whole).unwrap();
        std::fs::write(d.join("journal.mark"), &rolled).unwrap();
    }
}

#[test]
fn a_lost_committed_record_is_refused_wherever_the_cut() {
    let d = dir("truncated");
    write_steps(&d, 5, JournalOptions::default());
    let seg = segment(&d);
    let whole = std::fs::read(&seg).unwrap();
    let header = whole.iter().position(|b| *b == b'\n').unwrap() + 1;
    for cut in (header..whole.len()).step_by(7) {
        std::fs::write(&seg, &whole[..cut]).unwrap();
        match open(&d) {
            Err(JournalError::Lost { committed: 10, .. } | JournalError::Missing { .. }) => {}
            Err(e) => panic!("cut at {cut}: {e}"),
            Ok(_) => panic!("cut at {cut} accepted"),
        }
    }
}

#[test]
fn a_deleted_emptied_or_swapped_journal_or_mark_is_refused() {
    let d = dir("deleted");
    write_steps(&d, 2, JournalOptions::default());
    let seg = segment(&d);
    let whole = std::fs::read(&seg).unwrap();

    std::fs::write(&seg, b"").unwrap();
    let e = open(&d).err().unwrap();
    assert!(matches!(e, JournalError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("To recover"), "{e}");

    std::fs::remove_file(&seg).unwrap();
    assert!(matches!(
        open(&d).err().unwrap(),
        JournalError::Missing { .. }
    ));
    std::fs::write(&seg, &whole).unwrap();

    let mark = std::fs::read(d.join("journal.mark")).unwrap();
    std::fs::remove_file(d.join("journal.mark")).unwrap();
    assert!(matches!(open(&d).err().unwrap(), JournalError::Mark { .. }));

    // Another data dir's journal beside this mark.
    let other = dir("deleted-other");
    write_steps(&other, 2, JournalOptions::default());
    std::fs::write(
        d.join("journal.mark"),
        std::fs::read(other.join("journal.mark")).unwrap(),
    )
    .unwrap();
    let e = open(&d).err().unwrap();
    assert!(e.to_string().contains("two data dirs"), "{e}");

    // An old copy of the mark, far behind the journal.
    std::fs::write(d.join("journal.mark"), &mark).unwrap();
    let mut j = open(&d).unwrap().0;
    for g in 3..6 {
        j.append([&launched(0, g)]).unwrap();
    }
    drop(j);
    std::fs::write(d.join("journal.mark"), &mark).unwrap();
    let e = open(&d).err().unwrap();
    assert!(matches!(e, JournalError::Mark { .. }), "{e}");
}

#[test]
fn a_corrupt_entry_before_the_last_is_refused() {
    let d = dir("corrupt");
    write_steps(&d, 3, JournalOptions::default());
    let seg = segment(&d);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a byte inside the second entry.
    let second = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    bytes[second + 20] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let e = open(&d).err().unwrap();
    assert!(matches!(e, JournalError::Corrupt { line: 3, .. }), "{e}");
}

#[test]
fn compaction_keeps_the_journal_bounded_and_forgets_no_generation() {
    let d = dir("compact");
    let opts = JournalOptions {
        segment_bytes_max: 4096,
    };
    write_steps(&d, 500, opts);
    let segments: Vec<_> = std::fs::read_dir(d.join("journal"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(segments.len(), 1, "older segments were not removed");
    let size = std::fs::metadata(segment(&d)).unwrap().len();
    assert!(size < 8192, "segment of {size} bytes");
    let (_, r) = open(&d).unwrap();
    assert!(r.seq > 1_000, "each compaction takes a sequence number too");
    assert_eq!(
        high_water(&r),
        Generation(500),
        "compaction lost the high water"
    );
    assert_eq!(r.counters.launches, 500, "compaction lost the counters");
    assert!(r.durable.instances.is_empty());
}

#[test]
fn an_interrupted_compaction_falls_back_to_the_previous_segment() {
    let d = dir("interrupted");
    write_steps(&d, 3, JournalOptions::default());
    let (j, r) = open(&d).unwrap();
    drop(j);
    // A new segment whose snapshot never became whole.
    let next = d.join("journal").join(format!("{:016}.log", r.seq + 1));
    std::fs::write(&next, b"h 00000000 {\"tally_jou").unwrap();
    let (_, again) = open(&d).unwrap();
    assert_eq!(again.seq, r.seq);
    assert!(!next.exists(), "the torn segment was left behind");
}

#[test]
fn one_manager_per_data_dir() {
    let d = dir("lock");
    let _held = DirLock::acquire(&d).unwrap();
    let e = DirLock::acquire(&d).err().unwrap();
    assert!(
        e.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
}

#[test]
fn a_journal_removed_or_replaced_under_a_running_manager_stops_it() {
    let d = dir("replaced");
    let mut j = create(&d, JournalOptions::default());
    j.append([&launched(0, 1)]).unwrap();
    let seg = segment(&d);
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::remove_file(&seg).unwrap();
    std::fs::write(&seg, &bytes).unwrap();
    assert!(matches!(
        j.check_files(),
        Err(JournalError::Replaced { .. })
    ));
    assert!(matches!(
        j.append([&launched(0, 2)]),
        Err(JournalError::Replaced { .. })
    ));
}

#[test]
fn the_fold_matches_the_manager_it_journals() {
    let d = dir("fold");
    let cfg = Config::example();
    let mut out = Vec::new();
    let m = Manager::new(&cfg, Tick(0), &mut out).unwrap();
    let mut j = FileJournal::create(
        DirLock::acquire(&d).unwrap(),
        &d,
        &cfg,
        Durable::genesis(&cfg, Tick(0)),
        JournalOptions::default(),
    )
    .unwrap();
    j.append(out.iter().filter_map(|e| match e {
        Effect::Persist(r) => Some(r),
        _ => None,
    }))
    .unwrap();
    drop(j);
    let (_, r) = open(&d).unwrap();
    assert_eq!(&r.durable, m.durable());
}

#[test]
fn a_journal_that_committed_nothing_reopens() {
    // A formation of zero everywhere commits no genesis step.
    let d = dir("nothing");
    drop(create(&d, JournalOptions::default()));
    let (_, r) = open(&d).unwrap();
    assert_eq!(r.seq, 0);
}

#[test]
fn an_interrupted_first_start_is_cleared_but_a_journal_in_use_is_not() {
    use tally_manager::journal::{exists, remove_unused};
    let d = dir("firststart");
    // The genesis step committed, then a crash before meta.json.
    let mut j = create(&d, JournalOptions::default());
    j.append([&launched(0, 1)]).unwrap();
    drop(j);
    remove_unused(&d).unwrap();
    assert!(!exists(&d));
    // A crash before the mark's first write: an empty mark.
    drop(create(&d, JournalOptions::default()));
    std::fs::write(d.join("journal.mark"), b"").unwrap();
    remove_unused(&d).unwrap();
    assert!(!exists(&d));
    // More than the genesis step: meta.json was removed from a data dir in use.
    write_steps(&d, 2, JournalOptions::default());
    let e = remove_unused(&d).err().unwrap();
    assert!(e.to_string().contains("meta.json is missing"), "{e}");
    assert!(exists(&d));
}
