//! The manager's journal on disk: one line per core step, a JSON array of
//! that step's records, appended and fsynced before the step returns (so
//! before any launch it holds is sent), folded back into the core's
//! `Durable` at start.
//!
//! A crash can tear only the last line; a torn last line is dropped whole
//! (its step never returned, so nothing it held was acted on, and no half of
//! a step is ever recovered). A bad line before the last is corruption, and
//! the manager refuses to start on it.

use crate::shell::Sink;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tally_core::{Effect, JournalRecord};
use thiserror::Error;

/// A journal that cannot be read or written.
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
    /// A line that is not a record, before the last line.
    #[error("journal {path} line {line} is corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The decoder's message.
        why: String,
    },
}

/// The append-only journal file.
pub struct FileJournal {
    path: PathBuf,
    file: File,
    records: u64,
    buf: Vec<u8>,
}

impl FileJournal {
    /// Opens (creating if needed) the journal, returning its records.
    ///
    /// # Errors
    /// The file cannot be opened or read, or a line before the last is corrupt.
    pub fn open(path: &Path) -> Result<(FileJournal, Vec<JournalRecord>), JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let records = if path.exists() {
            read_records(path)?
        } else {
            Vec::new()
        };
        // Rewrite the file without a torn tail, so appends start on a line.
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io)?;
            let mut buf = Vec::new();
            for step in &records {
                serde_json::to_writer(&mut buf, step).map_err(|e| io(std::io::Error::other(e)))?;
                buf.push(b'\n');
            }
            f.write_all(&buf).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)?;
        sync_dir(path).map_err(io)?;
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        let n = records.iter().map(|step| step.len() as u64).sum();
        let records = records.into_iter().flatten().collect();
        Ok((
            FileJournal {
                path: path.to_path_buf(),
                file,
                records: n,
                buf: Vec::new(),
            },
            records,
        ))
    }

    /// Records written so far (recovered ones included).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether the journal holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Appends one step's records as one line, and fsyncs.
    ///
    /// # Errors
    /// The write or the fsync failed.
    pub fn append<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a JournalRecord>,
    ) -> Result<(), JournalError> {
        let step: Vec<&JournalRecord> = records.into_iter().collect();
        let n = step.len() as u64;
        if n == 0 {
            return Ok(());
        }
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &step).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.buf.push(b'\n');
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&self.buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.records += n;
        Ok(())
    }
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

fn read_records(path: &Path) -> Result<Vec<Vec<JournalRecord>>, JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let lines: Vec<String> = reader
        .split(b'\n')
        .map(|l| l.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    let text = std::fs::read(path).map_err(io)?;
    let complete_last = text.last() == Some(&b'\n');
    let mut out = Vec::with_capacity(lines.len());
    let count = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Vec<JournalRecord>>(line) {
            Ok(r) => out.push(r),
            // The last line, unterminated: a write torn by a crash.
            Err(_) if i + 1 == count && !complete_last => break,
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line: i + 1,
                    why: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
