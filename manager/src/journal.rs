//! The manager's journal on disk, built so that it cannot lose a committed
//! record without the manager noticing.
//!
//! ```text
//! DATA_DIR/journal/0000000000000001.log   segments, named by their first sequence number
//! DATA_DIR/journal.mark                   the last committed sequence number, kept apart
//! ```
//!
//! A segment starts with a header line (format version, the core's record
//! version, the journal's random id, its first sequence number); every later
//! line is one entry, `SEQ CRC32 JSON`, with sequence numbers rising by one
//! and a checksum over `SEQ JSON`. An entry is one core step's records, or a
//! snapshot of the whole durable state (`Durable`, whose per-slot high-water
//! generations, tokens, probe and boot marks compaction never drops). A new
//! segment begins with a snapshot; older segments are deleted once that
//! snapshot is durable, so the journal stays bounded and a start reads one
//! segment.
//!
//! After each step's entry is fsynced, the mark (two checksummed slots,
//! written alternately, so a torn write leaves the other) records its
//! sequence number. At start the journal must reach the mark: a missing,
//! emptied, truncated or swapped journal is refused with a message that
//! names the way to recover, never taken for a fresh start. Only the last
//! entry may be torn (its step never returned, so nothing it held was acted
//! on); it is cut off in place. The files are never replaced by rename, and
//! every commit checks that the journal and the mark it writes are still the
//! files at their paths (an operator who deletes or replaces them stops the
//! manager instead of silently losing what it writes next).

use crate::shell::Sink;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tally_core::journal::{JOURNAL_VERSION, JOURNAL_VERSION_OLDEST_READ};
use tally_core::{Config, Counters, Durable, Effect, JournalRecord};
use thiserror::Error;

/// The on-disk format of segments and the mark (the records inside are
/// versioned by the core's [`JOURNAL_VERSION`]).
pub const FORMAT_VERSION: u16 = 2;

/// Once the steps of a segment (after its header and snapshot) exceed this,
/// or the snapshot's own size if larger, a new segment starts with a
/// snapshot (compaction): the journal stays within about twice the
/// snapshot plus this, and each byte appended pays for at most one byte of
/// snapshot.
pub const SEGMENT_BYTES_MAX: u64 = 8 << 20;

/// The largest entry line read back (a snapshot of a full ledger is far
/// smaller); a longer line is corruption.
const LINE_BYTES_MAX: usize = 256 << 20;

/// Bytes of one mark slot.
const MARK_SLOT: usize = 64;

/// A journal that cannot be read or written, or that lost records.
#[derive(Debug, Error)]
pub enum JournalError {
    /// An I/O error.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line that fails its checksum or does not decode, before the last.
    #[error(
        "journal {path} line {line} is corrupt ({why}); refusing to start: restore the journal from a backup"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The journal is gone or empty while the data dir says records were
    /// committed.
    #[error(
        "the journal in {dir} is missing or empty, but {why}; refusing to start, since a manager without its journal could reissue a generation and run a singleton twice. {RECOVER}"
    )]
    Missing {
        /// The data dir.
        dir: PathBuf,
        /// What says it existed.
        why: String,
    },
    /// The journal ends before the last committed record.
    #[error(
        "the journal in {dir} ends at record {last} but record {committed} was committed (journal.mark): records were lost (truncated or restored from an old copy); refusing to start. {RECOVER}"
    )]
    Lost {
        /// The data dir.
        dir: PathBuf,
        /// The journal's last complete record.
        last: u64,
        /// The mark.
        committed: u64,
    },
    /// The mark is missing or unreadable while a journal exists, or behind it.
    #[error("{dir}/journal.mark: {why}; refusing to start. {RECOVER}")]
    Mark {
        /// The data dir.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A journal written by another format version.
    #[error(
        "journal {path}: format {found}, records version {records}; this tally reads format {FORMAT_VERSION}, records versions {JOURNAL_VERSION_OLDEST_READ} to {JOURNAL_VERSION}. Run the tally that wrote it, or start a fresh --data-dir once its dynos are stopped"
    )]
    Version {
        /// The segment.
        path: PathBuf,
        /// Its format.
        found: u16,
        /// Its records' version.
        records: u16,
    },
    /// Another manager holds the data dir.
    #[error(
        "another manager is running on {dir} ({holder}): one manager per journal. Stop it first, or give this one another --data-dir"
    )]
    Busy {
        /// The data dir.
        dir: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
    },
    /// The etcd journal or leader key (`tally run --store etcd://...`).
    #[cfg(feature = "etcd")]
    #[error("etcd journal: {0}")]
    Store(#[from] crate::etcd::StoreError),
    /// A record of the etcd journal that is not an entry of this version.
    #[error(
        "journal record {seq} in the store does not decode ({why}); refusing to use the journal: restore it from a backup or an etcd snapshot"
    )]
    Undecodable {
        /// Its sequence number.
        seq: u64,
        /// Why.
        why: String,
    },
    /// The journal or the mark was removed or replaced under a running manager.
    #[error(
        "{path} was removed or replaced while this manager was running; stopping, since what it writes would be lost"
    )]
    Replaced {
        /// The file.
        path: PathBuf,
    },
}

const RECOVER: &str = "To recover: restore the data dir's journal/ and journal.mark from a backup; or, only once no dyno launched from this data dir can still run (stop every agent of the deployment, then wait one lease expiry), move the data dir aside and start with a fresh one";

/// The data dir's exclusive lock, held for the manager's life: one manager
/// per journal. It is a `flock` on the data dir itself, so deleting a file
/// cannot release it; `manager.lock` only names the holder for the message
/// a second manager prints. Close-on-exec, so no dyno or fence inherits it.
pub struct DirLock {
    dir: Flock<File>,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock, or says who holds it.
    ///
    /// # Errors
    /// Another process holds it, or the data dir cannot be opened.
    pub fn acquire(data_dir: &Path) -> Result<DirLock, JournalError> {
        let path = data_dir.join("manager.lock");
        let dir = File::open(data_dir).map_err(io_at(data_dir))?;
        let dir = match Flock::lock(dir, FlockArg::LockExclusiveNonblock) {
            Ok(d) => d,
            Err(_) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(JournalError::Busy {
                    dir: data_dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "its lock is held".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
            .map_err(io_at(&path))?;
        file.write_all(format!("pid {}\n", std::process::id()).as_bytes())
            .map_err(io_at(&path))?;
        Ok(DirLock {
            dir,
            path: data_dir.to_path_buf(),
        })
    }

    /// The locked data dir.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The whole durable state at one sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The fold of every record so far (compacted by the core's rule).
    pub durable: Durable,
    /// The counters so far (the core's [`Counters`], folded from every
    /// record; a snapshot keeps them, so compaction loses no count).
    pub counters: Counters,
}

/// One journal entry: a segment line's JSON, and the value of one record
/// key of the etcd journal (`ha`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entry {
    /// One core step's records.
    Step(Vec<JournalRecord>),
    /// Everything so far.
    Snapshot(Box<Snapshot>),
}

impl Entry {
    /// Decodes an entry's JSON (as [`encode_step`] and [`encode_snapshot`]
    /// write it).
    ///
    /// # Errors
    /// The bytes are not an entry of this records version.
    pub fn decode(bytes: &[u8]) -> Result<Entry, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// One step's records as one entry's JSON, exactly as a segment line
/// carries it after its sequence number and checksum.
///
/// # Errors
/// A record does not serialize (never for the core's records).
pub fn encode_step(records: &[&JournalRecord]) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EntryRef::Step(records))
}

/// A snapshot as one entry's JSON.
///
/// # Errors
/// The state does not serialize (never for the core's state).
pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EntryRef::Snapshot(snapshot))
}

/// Serialized borrow of a step, so a commit copies no record.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum EntryRef<'a> {
    Step(&'a [&'a JournalRecord]),
    Snapshot(&'a Snapshot),
}

/// A segment's first line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    tally_journal: u16,
    records_version: u16,
    journal_id: String,
    first_seq: u64,
}

/// What the data dir holds, as the journal found it.
#[derive(Clone, Debug)]
pub struct Recovered {
    /// The durable state: the latest snapshot (or genesis) and every step
    /// after it.
    pub durable: Durable,
    /// The counters.
    pub counters: Counters,
    /// Sequence number of the last committed entry (0: none).
    pub seq: u64,
    /// Entries read at start (snapshot included).
    pub entries_read: u64,
    /// Whether a torn last entry was cut off.
    pub torn_tail_dropped: bool,
}

/// Tuning (tests use small segments).
#[derive(Clone, Copy, Debug)]
pub struct JournalOptions {
    /// Segment size that triggers a new segment with a snapshot.
    pub segment_bytes_max: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX,
        }
    }
}

/// The append-only, checksummed, segmented journal.
pub struct FileJournal {
    lock: DirLock,
    dir: PathBuf,
    id: String,
    cfg: Config,
    opts: JournalOptions,
    segment_path: PathBuf,
    segment: File,
    segment_bytes: u64,
    /// Bytes of the segment's header and snapshot: the steps after them may
    /// grow to this much (or the configured maximum, whichever is larger)
    /// before the next compaction, so a ledger whose snapshot alone exceeds
    /// the maximum is not snapshotted again at every step.
    segment_base_bytes: u64,
    mark_path: PathBuf,
    mark: File,
    seq: u64,
    /// The fold of everything committed: what a snapshot writes.
    fold: Snapshot,
    buf: Vec<u8>,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join("journal.mark")
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:016}.log")
}

/// Whether the data dir holds any part of a journal.
#[must_use]
pub fn exists(data_dir: &Path) -> bool {
    mark_path(data_dir).exists() || journal_dir(data_dir).exists()
}

/// Removes a journal that never committed a step (an interrupted first
/// start). Refuses one that did.
///
/// # Errors
/// The journal committed records, or cannot be removed.
pub fn remove_unused(data_dir: &Path) -> Result<(), JournalError> {
    // A first start writes meta.json only after its genesis step (seq 1) is
    // committed, and nothing listens before then: a journal without
    // meta.json that holds at most that step was never acted on. More than
    // that means meta.json was removed from a data dir in use.
    let in_use = || JournalError::Mark {
        dir: data_dir.to_path_buf(),
        why: "a journal with committed records exists but meta.json is missing".into(),
    };
    // An unreadable mark can only be one cut short while being created.
    if read_mark(data_dir)
        .ok()
        .flatten()
        .is_some_and(|(_, seq)| seq > 1)
    {
        return Err(in_use());
    }
    let segments = list_segments(data_dir)?;
    for (first, path) in &segments {
        let beyond_genesis = match read_segment(path) {
            Ok(r) => r.last_seq > 1,
            // Torn while being created.
            Err(_) => false,
        };
        if *first > 1 || beyond_genesis {
            return Err(in_use());
        }
    }
    for (_, path) in &segments {
        std::fs::remove_file(path).map_err(io_at(path))?;
    }
    let dir = journal_dir(data_dir);
    let _ = std::fs::remove_dir(&dir);
    let mark = mark_path(data_dir);
    if mark.exists() {
        std::fs::remove_file(&mark).map_err(io_at(&mark))?;
    }
    sync_dir(data_dir)
}

fn random_id() -> Result<String, JournalError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_at(Path::new("/dev/urandom")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn crc_line(seq: u64, json: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(seq.to_string().as_bytes());
    h.update(b" ");
    h.update(json);
    h.finalize()
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn list_segments(data_dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let dir = journal_dir(data_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(&dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at(&dir))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((first, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// One mark slot: `ID SEQ CRC`, padded.
fn mark_slot(id: &str, seq: u64) -> [u8; MARK_SLOT] {
    let body = format!("{id} {seq:020}");
    let crc = crc32fast::hash(body.as_bytes());
    let text = format!("{body} {crc:08x}\n");
    let mut slot = [b' '; MARK_SLOT];
    for (d, s) in slot.iter_mut().zip(text.bytes()) {
        *d = s;
    }
    slot
}

fn parse_mark_slot(slot: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(slot).ok()?.trim_end();
    let (body, crc) = text.rsplit_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let (id, seq) = body.split_once(' ')?;
    Some((id.to_string(), seq.parse().ok()?))
}

/// The mark's journal id and committed sequence number; `None` without a
/// mark file.
fn read_mark(data_dir: &Path) -> Result<Option<(String, u64)>, JournalError> {
    let path = mark_path(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(&path)(e)),
    };
    let best = bytes
        .chunks(MARK_SLOT)
        .take(2)
        .filter_map(parse_mark_slot)
        .max_by_key(|(_, seq)| *seq);
    match best {
        Some(m) => Ok(Some(m)),
        None => Err(JournalError::Mark {
            dir: data_dir.to_path_buf(),
            why: "unreadable (both slots fail their checksum)".into(),
        }),
    }
}

/// What reading one segment found.
struct SegmentRead {
    header: Header,
    base: Option<Snapshot>,
    steps: Vec<(u64, Vec<JournalRecord>)>,
    last_seq: u64,
    /// Byte length of the good prefix (everything after is a torn entry).
    good_len: u64,
    /// Byte length of the header and the snapshot (if any).
    base_len: u64,
    torn: bool,
    entries: u64,
}

/// Reads a segment. Only its last line may be bad (torn); a bad line before
/// it is corruption.
fn read_segment(path: &Path) -> Result<SegmentRead, JournalError> {
    let file = File::open(path).map_err(io_at(path))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let corrupt = |line: usize, why: String| JournalError::Corrupt {
        path: path.to_path_buf(),
        line,
        why,
    };
    let n = (&mut reader)
        .take(LINE_BYTES_MAX as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(io_at(path))?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(corrupt(1, "no complete header".into()));
    }
    let header = parse_header(&line).map_err(|why| corrupt(1, why))?;
    let records = JOURNAL_VERSION_OLDEST_READ..=JOURNAL_VERSION;
    if header.tally_journal != FORMAT_VERSION || !records.contains(&header.records_version) {
        return Err(JournalError::Version {
            path: path.to_path_buf(),
            found: header.tally_journal,
            records: header.records_version,
        });
    }
    let mut read = SegmentRead {
        last_seq: header.first_seq.saturating_sub(1),
        header,
        base: None,
        steps: Vec::new(),
        good_len: u64::try_from(n).unwrap_or(u64::MAX),
        base_len: u64::try_from(n).unwrap_or(u64::MAX),
        torn: false,
        entries: 0,
    };
    // One line behind, so that a bad line can be judged by whether another
    // follows it.
    let mut pending: Option<(usize, Vec<u8>)> = None;
    let mut number = 1;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io_at(path))?;
        if let Some((at, prev)) = pending.take() {
            let last = n == 0;
            // Only a line with its newline is complete; an unterminated one
            // can only be the last, torn by a crash mid-write.
            let parsed = if prev.last() == Some(&b'\n') {
                parse_entry(&prev, read.last_seq.saturating_add(1))
            } else {
                Err("unterminated".into())
            };
            match parsed {
                Ok(entry) => {
                    read.last_seq = read.last_seq.saturating_add(1);
                    read.entries += 1;
                    read.good_len += prev.len() as u64;
                    match entry {
                        Entry::Snapshot(s) if read.entries == 1 => {
                            read.base = Some(*s);
                            read.base_len = read.good_len;
                        }
                        Entry::Snapshot(_) => {
                            return Err(corrupt(at, "a snapshot inside a segment".into()));
                        }
                        Entry::Step(records) => read.steps.push((read.last_seq, records)),
                    }
                }
                // The last line, torn by a crash mid-write: its step never
                // returned. Anything after it would make it corruption.
                Err(_) if last && prev.last() != Some(&b'\n') => read.torn = true,
                Err(why) if last => {
                    // Complete but bad: a torn write that happened to end
                    // in a newline is possible only for the last entry too.
                    read.torn = true;
                    tracing::warn!(
                        "{} line {at}: {why}; taken as a torn last entry",
                        path.display()
                    );
                }
                Err(why) => return Err(corrupt(at, why)),
            }
        }
        if n == 0 {
            break;
        }
        if line.len() > LINE_BYTES_MAX {
            return Err(corrupt(number + 1, "line too long".into()));
        }
        number += 1;
        pending = Some((number, std::mem::take(&mut line)));
    }
    if read.header.first_seq > 1 && read.base.is_none() {
        return Err(corrupt(
            2,
            "a segment after the first must start with a snapshot".into(),
        ));
    }
    Ok(read)
}

fn parse_header(line: &[u8]) -> Result<Header, String> {
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let rest = text
        .strip_prefix("h ")
        .ok_or("not a journal header (written by an older tally?)")?;
    let (crc, json) = rest.split_once(' ').ok_or("header without checksum")?;
    let json = json.trim_end_matches('\n');
    let crc = u32::from_str_radix(crc, 16).map_err(|e| e.to_string())?;
    if crc != crc32fast::hash(json.as_bytes()) {
        return Err("header checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}

fn parse_entry(line: &[u8], expected_seq: u64) -> Result<Entry, String> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let mut parts = text.splitn(3, ' ');
    let (Some(seq), Some(crc), Some(json)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("incomplete entry".into());
    };
    let seq: u64 = seq.parse().map_err(|_| "bad sequence number".to_string())?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| "bad checksum field".to_string())?;
    if crc != crc_line(seq, json.as_bytes()) {
        return Err(format!("checksum mismatch in entry {seq}"));
    }
    if seq != expected_seq {
        return Err(format!("entry {seq} where {expected_seq} was expected"));
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}

impl FileJournal {
    /// Creates the journal of a fresh data dir: an empty first segment and
    /// a mark at 0. Refuses if any part of a journal exists.
    ///
    /// # Errors
    /// A journal exists, or the files cannot be written.
    pub fn create(
        lock: DirLock,
        data_dir: &Path,
        cfg: &Config,
        durable: Durable,
        opts: JournalOptions,
    ) -> Result<FileJournal, JournalError> {
        if exists(data_dir) {
            return Err(JournalError::Mark {
                dir: data_dir.to_path_buf(),
                why: "a journal already exists".into(),
            });
        }
        let id = random_id()?;
        let dir = journal_dir(data_dir);
        std::fs::create_dir(&dir).map_err(io_at(&dir))?;
        let fold = Snapshot {
            durable,
            counters: Counters::default(),
        };
        let (segment_path, segment, segment_bytes) = new_segment(&dir, &id, 1, None)?;
        let mark_path = mark_path(data_dir);
        let mark = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&mark_path)
            .map_err(io_at(&mark_path))?;
        let mut j = FileJournal {
            lock,
            dir: data_dir.to_path_buf(),
            id,
            cfg: cfg.clone(),
            opts,
            segment_path,
            segment,
            segment_bytes,
            segment_base_bytes: segment_bytes,
            mark_path,
            mark,
            seq: 0,
            fold,
            buf: Vec::new(),
        };
        // Both slots say "nothing committed yet".
        j.write_mark_slot(0, 0)?;
        j.write_mark_slot(1, 0)?;
        j.mark.sync_all().map_err(io_at(&j.mark_path))?;
        sync_dir(data_dir)?;
        Ok(j)
    }

    /// Opens an existing journal: reads its newest segment, checks it against
    /// the mark, and cuts off a torn last entry in place. `genesis` is the
    /// state before any record (used when no snapshot was taken yet).
    ///
    /// # Errors
    /// The journal is missing, short of the mark, corrupt, or unreadable.
    pub fn open(
        lock: DirLock,
        data_dir: &Path,
        cfg: &Config,
        genesis: Durable,
        opts: JournalOptions,
    ) -> Result<(FileJournal, Recovered), JournalError> {
        let mark = read_mark(data_dir)?;
        let mut segments = list_segments(data_dir)?;
        let Some((mark_id, committed)) = mark else {
            return Err(if segments.is_empty() {
                JournalError::Missing {
                    dir: data_dir.to_path_buf(),
                    why: "meta.json says this data dir was started before (journal/ and journal.mark are both gone)".into(),
                }
            } else {
                JournalError::Mark {
                    dir: data_dir.to_path_buf(),
                    why: "missing while journal/ exists, so the journal cannot be checked for lost records".into(),
                }
            });
        };
        // The newest segment whose header and snapshot are complete; a newer
        // one cut short while it was being started (a crash mid-compaction)
        // is removed, and older ones are leftovers of a compaction.
        let mut read = None;
        while let Some((first, path)) = segments.pop() {
            let empty = std::fs::metadata(&path).map_err(io_at(&path))?.len() == 0;
            if empty && segments.is_empty() {
                return Err(JournalError::Missing {
                    dir: data_dir.to_path_buf(),
                    why: format!("journal.mark says {committed} records were committed"),
                });
            }
            match read_segment(&path) {
                Ok(r) if r.header.first_seq != first => {
                    return Err(JournalError::Corrupt {
                        path,
                        line: 1,
                        why: format!("its header says it starts at entry {}", r.header.first_seq),
                    });
                }
                Ok(r) => {
                    read = Some((path, r));
                    break;
                }
                Err(e) if first > committed && segments.last().is_some() => {
                    tracing::warn!("{e}; an interrupted compaction: removing it");
                    std::fs::remove_file(&path).map_err(io_at(&path))?;
                }
                Err(e) => return Err(e),
            }
        }
        let Some((segment_path, read)) = read else {
            return Err(JournalError::Missing {
                dir: data_dir.to_path_buf(),
                why: format!("journal.mark says {committed} records were committed"),
            });
        };
        if read.header.journal_id != mark_id {
            return Err(JournalError::Mark {
                dir: data_dir.to_path_buf(),
                why: format!(
                    "belongs to journal {mark_id}, but journal/ holds journal {} (files from two data dirs mixed)",
                    read.header.journal_id
                ),
            });
        }
        if read.last_seq < committed {
            return Err(if read.last_seq == 0 {
                JournalError::Missing {
                    dir: data_dir.to_path_buf(),
                    why: format!("journal.mark says {committed} records were committed"),
                }
            } else {
                JournalError::Lost {
                    dir: data_dir.to_path_buf(),
                    last: read.last_seq,
                    committed,
                }
            });
        }
        // The mark is written after the entry: a crash between leaves the
        // journal one ahead, never more.
        if read.last_seq > committed.saturating_add(1) {
            return Err(JournalError::Mark {
                dir: data_dir.to_path_buf(),
                why: format!(
                    "says record {committed} is the last committed, but the journal holds {} (an old copy of the mark?)",
                    read.last_seq
                ),
            });
        }
        for (first, path) in segments {
            tracing::info!(
                first,
                "removing a segment compacted away before the last stop"
            );
            std::fs::remove_file(&path).map_err(io_at(&path))?;
        }
        let mut fold = read.base.clone().unwrap_or(Snapshot {
            durable: genesis,
            counters: Counters::default(),
        });
        for (_, records) in &read.steps {
            for r in records {
                fold.durable.apply(r);
                fold.counters.apply(r);
            }
        }
        let mut segment = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&segment_path)
            .map_err(io_at(&segment_path))?;
        if read.torn {
            tracing::warn!(
                "journal {}: a torn last entry (its step never returned) is cut off",
                segment_path.display()
            );
            segment
                .set_len(read.good_len)
                .map_err(io_at(&segment_path))?;
            segment.sync_all().map_err(io_at(&segment_path))?;
        }
        segment
            .seek(SeekFrom::End(0))
            .map_err(io_at(&segment_path))?;
        let mark_file_path = mark_path(data_dir);
        let mark = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&mark_file_path)
            .map_err(io_at(&mark_file_path))?;
        let recovered = Recovered {
            durable: fold.durable.clone(),
            counters: fold.counters.clone(),
            seq: read.last_seq,
            entries_read: read.entries,
            torn_tail_dropped: read.torn,
        };
        let mut j = FileJournal {
            lock,
            dir: data_dir.to_path_buf(),
            id: read.header.journal_id,
            cfg: cfg.clone(),
            opts,
            segment_path,
            segment,
            segment_bytes: read.good_len,
            segment_base_bytes: read.base_len,
            mark_path: mark_file_path,
            mark,
            seq: read.last_seq,
            fold,
            buf: Vec::new(),
        };
        if j.seq > committed {
            j.write_mark(j.seq)?;
        }
        Ok((j, recovered))
    }

    /// Replaces the journal's own fold with the manager's durable state (so
    /// that snapshots are exactly what the manager holds).
    pub fn rebase(&mut self, durable: Durable) {
        self.fold.durable = durable;
    }

    /// The sequence number of the last committed entry.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The counters so far.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.fold.counters.clone()
    }

    /// Bytes of the current segment.
    #[must_use]
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Appends one step's records as one entry, fsyncs it, then the mark;
    /// starts a new segment with a snapshot when this one is full.
    ///
    /// # Errors
    /// The write or an fsync failed, or the files were replaced.
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a JournalRecord>,
    ) -> Result<(), JournalError> {
        let step: Vec<&JournalRecord> = records.into_iter().collect();
        if step.is_empty() {
            return Ok(());
        }
        self.check_files()?;
        let seq = self.seq + 1;
        self.write_entry(seq, &EntryRef::Step(&step))?;
        for r in step {
            self.fold.durable.apply(r);
            self.fold.counters.apply(r);
        }
        self.write_mark(seq)?;
        self.seq = seq;
        let steps_bytes = self.segment_bytes.saturating_sub(self.segment_base_bytes);
        if steps_bytes > self.opts.segment_bytes_max.max(self.segment_base_bytes) {
            self.compact()?;
        }
        Ok(())
    }

    fn write_entry(&mut self, seq: u64, entry: &EntryRef<'_>) -> Result<(), JournalError> {
        let path = self.segment_path.clone();
        let buf = encode_entry(&mut self.buf, seq, entry).map_err(io_at(&path))?;
        self.segment.write_all(buf).map_err(io_at(&path))?;
        self.segment.sync_data().map_err(io_at(&path))?;
        self.segment_bytes += buf.len() as u64;
        Ok(())
    }

    /// Writes `seq` into one of the two slots; alternating by `seq % 2`
    /// leaves the other slot whole if this write is torn.
    fn write_mark_slot(&mut self, slot_index: u64, seq: u64) -> Result<(), JournalError> {
        let slot = mark_slot(&self.id, seq);
        let offset = (slot_index % 2) * MARK_SLOT as u64;
        self.mark
            .write_all_at(&slot, offset)
            .map_err(io_at(&self.mark_path))
    }

    fn write_mark(&mut self, seq: u64) -> Result<(), JournalError> {
        self.write_mark_slot(seq, seq)?;
        self.mark.sync_data().map_err(io_at(&self.mark_path))
    }

    /// Refuses to go on if the journal, the mark or the locked data dir is
    /// no longer the one at its path (deleted, or replaced by another): a
    /// second manager could then take the data dir.
    ///
    /// # Errors
    /// A file was removed or replaced.
    pub fn check_files(&self) -> Result<(), JournalError> {
        for (file, path) in [
            (&self.segment, &self.segment_path),
            (&self.mark, &self.mark_path),
            (&*self.lock.dir, &self.lock.path),
        ] {
            let open = file.metadata().map_err(io_at(path))?;
            let same = std::fs::metadata(path)
                .is_ok_and(|at| at.ino() == open.ino() && at.dev() == open.dev());
            // A directory's link count is never 0 while it has entries;
            // its replacement shows as another inode at the path.
            if (open.nlink() == 0 && !open.is_dir()) || !same {
                return Err(JournalError::Replaced { path: path.clone() });
            }
        }
        Ok(())
    }

    /// A new segment starting with a snapshot of everything so far; older
    /// segments are deleted once it is durable.
    fn compact(&mut self) -> Result<(), JournalError> {
        let seq = self.seq + 1;
        let snapshot = Snapshot {
            durable: self.fold.durable.compacted(&self.cfg),
            counters: self.fold.counters.clone(),
        };
        let dir = journal_dir(&self.dir);
        let (path, file, bytes) = new_segment(&dir, &self.id, seq, Some(&snapshot))?;
        let old = std::mem::replace(&mut self.segment_path, path);
        self.segment = file;
        self.segment_bytes = bytes;
        self.segment_base_bytes = bytes;
        self.fold = snapshot;
        self.write_mark(seq)?;
        self.seq = seq;
        // Only now may the segments it replaces go.
        for (first, p) in list_segments(&self.dir)? {
            if first < seq {
                std::fs::remove_file(&p).map_err(io_at(&p))?;
            }
        }
        sync_dir(&dir)?;
        tracing::info!(
            seq,
            bytes,
            replaced = %old.display(),
            "journal compacted: a new segment starts with a snapshot"
        );
        Ok(())
    }
}

fn encode_entry<'b>(
    buf: &'b mut Vec<u8>,
    seq: u64,
    entry: &EntryRef<'_>,
) -> std::io::Result<&'b [u8]> {
    let json = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    let crc = crc_line(seq, &json);
    buf.clear();
    write!(buf, "{seq} {crc:08x} ")?;
    buf.extend_from_slice(&json);
    buf.push(b'\n');
    Ok(buf)
}

/// Writes a segment's header (and its snapshot), fsyncs it and its
/// directory, and returns it open for appends.
fn new_segment(
    dir: &Path,
    id: &str,
    first_seq: u64,
    snapshot: Option<&Snapshot>,
) -> Result<(PathBuf, File, u64), JournalError> {
    let path = dir.join(segment_name(first_seq));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_at(&path))?;
    let header = Header {
        tally_journal: FORMAT_VERSION,
        records_version: JOURNAL_VERSION,
        journal_id: id.to_string(),
        first_seq,
    };
    let json =
        serde_json::to_string(&header).map_err(|e| io_at(&path)(std::io::Error::other(e)))?;
    let mut buf = format!("h {:08x} {json}\n", crc32fast::hash(json.as_bytes())).into_bytes();
    if let Some(s) = snapshot {
        let mut entry = Vec::new();
        let line =
            encode_entry(&mut entry, first_seq, &EntryRef::Snapshot(s)).map_err(io_at(&path))?;
        buf.extend_from_slice(line);
    }
    file.write_all(&buf).map_err(io_at(&path))?;
    file.sync_all().map_err(io_at(&path))?;
    sync_dir(dir)?;
    Ok((path, file, buf.len() as u64))
}

impl Sink<Effect> for FileJournal {
    type Error = JournalError;

    fn commit(&mut self, _seq: u64, effects: &[Effect]) -> Result<(), JournalError> {
        self.append(effects.iter().filter_map(|e| match e {
            Effect::Persist(r) => Some(r),
            _ => None,
        }))
    }
}

/// The journal a manager writes: the local files (one manager per data
/// dir), or etcd (a leader among standbys, `tally run --store etcd://...`).
// One per manager, made once and never moved after: the sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Journal {
    /// `DATA_DIR/journal/`.
    File(FileJournal),
    /// The fenced etcd journal of the leader.
    #[cfg(feature = "etcd")]
    Etcd(crate::ha::EtcdJournal),
}

impl Journal {
    /// The file journal's [`FileJournal::check_files`]; nothing to check
    /// for etcd (every append is fenced by the leader key instead).
    ///
    /// # Errors
    /// A journal file was removed or replaced.
    pub fn check(&self) -> Result<(), JournalError> {
        match self {
            Journal::File(j) => j.check_files(),
            #[cfg(feature = "etcd")]
            Journal::Etcd(_) => Ok(()),
        }
    }
}

impl Sink<Effect> for Journal {
    type Error = JournalError;

    fn commit(&mut self, seq: u64, effects: &[Effect]) -> Result<(), JournalError> {
        match self {
            Journal::File(j) => j.commit(seq, effects),
            #[cfg(feature = "etcd")]
            Journal::Etcd(j) => j.commit(seq, effects),
        }
    }
}
