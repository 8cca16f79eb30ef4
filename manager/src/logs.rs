//! Dyno output, timestamped and merged: what `tally logs` reads.
//!
//! A dyno writes its output straight into `host-N/logs/<dyno>.log`: its
//! stdout and stderr are that file, so nothing of tally's sits in the path
//! of its output, and a dying agent or a slow reader can never block or
//! kill a dyno. The agent's tailer reads what each file gained every
//! [`POLL_MS`] and appends each complete line to `host-N/logs.txt` as
//! `<unix ms> <dyno> <line>`: the time is when the tailer saw the line,
//! within `POLL_MS` of its writing. `tally logs` merges the hosts' files by
//! that time. A tailer starts at the end of each file: lines written while
//! no agent ran stay in the dyno's own file only.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the tailer looks at the dyno files.
pub const POLL_MS: u64 = 100;

/// The merged, timestamped file in each host's directory.
pub const MERGED: &str = "logs.txt";

/// A line longer than this is cut (and marked): a dyno that writes no
/// newline must not make its reader hold everything it ever wrote.
pub const LINE_MAX: usize = 16 << 10;

/// One line of dyno output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When the tailer saw it, Unix milliseconds.
    pub ms: u64,
    /// `web.1`.
    pub dyno: String,
    /// The text, without its newline.
    pub text: String,
}

impl Line {
    /// Parses a line of a merged file; `None` if it is not one.
    #[must_use]
    pub fn parse(s: &str) -> Option<Line> {
        let (ms, rest) = s.split_once(' ')?;
        let (dyno, text) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(Line {
            ms: ms.parse().ok()?,
            dyno: dyno.to_string(),
            text: text.to_string(),
        })
    }

    /// The dyno's process type: `web` of `web.1`.
    #[must_use]
    pub fn process_type(&self) -> &str {
        self.dyno.rsplit_once('.').map_or(&self.dyno, |(t, _)| t)
    }
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// New bytes of one file, read from `offset`, with the part of a line not
/// yet ended.
#[derive(Default)]
struct Cursor {
    offset: u64,
    partial: Vec<u8>,
}

impl Cursor {
    /// Complete lines appended to `path` since the last call.
    fn read(&mut self, path: &Path) -> io::Result<Vec<String>> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            // Truncated or replaced: start over.
            self.offset = 0;
            self.partial.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(len - self.offset).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(line.get(..end).unwrap_or(&[])).into_owned());
        }
        if self.partial.len() > LINE_MAX {
            let cut: Vec<u8> = std::mem::take(&mut self.partial);
            let mut s = String::from_utf8_lossy(cut.get(..LINE_MAX).unwrap_or(&[])).into_owned();
            s.push_str(" [line cut by tally logs]");
            lines.push(s);
        }
        Ok(lines)
    }
}

/// Copies each dyno file's new lines, timestamped, into the merged file.
pub struct Tailer {
    logs: PathBuf,
    out: File,
    cursors: BTreeMap<String, Cursor>,
    first: bool,
}

impl Tailer {
    /// A tailer of `host_dir/logs/*.log` into `host_dir/logs.txt`.
    ///
    /// # Errors
    /// The merged file cannot be opened.
    pub fn new(host_dir: &Path) -> io::Result<Tailer> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(host_dir.join(MERGED))?;
        Ok(Tailer {
            logs: host_dir.join("logs"),
            out,
            cursors: BTreeMap::new(),
            first: true,
        })
    }

    /// Appends what every dyno file gained, stamped `now_ms`.
    ///
    /// # Errors
    /// The directory or the merged file fails.
    pub fn poll(&mut self, now_ms: u64) -> io::Result<()> {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.logs)? {
            let path = entry?.path();
            let Some(dyno) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
                .map(str::to_string)
            else {
                continue;
            };
            let first = self.first;
            let cursor = self.cursors.entry(dyno.clone()).or_insert_with(|| Cursor {
                // What was there before this agent started was seen (or
                // not) by an earlier one.
                offset: if first {
                    path.metadata().map_or(0, |m| m.len())
                } else {
                    0
                },
                partial: Vec::new(),
            });
            let Ok(lines) = cursor.read(&path) else {
                continue;
            };
            for line in lines {
                text.push_str(&format!("{now_ms} {dyno} {line}\n"));
            }
        }
        self.first = false;
        if !text.is_empty() {
            self.out.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

/// Runs a tailer for `host_dir` on its own thread until `stop` is set.
pub fn spawn_tailer(host_dir: &Path, stop: Arc<AtomicBool>) -> io::Result<()> {
    let mut tailer = Tailer::new(host_dir)?;
    std::thread::Builder::new()
        .name("logs".into())
        .spawn(move || {
            let mut failing = false;
            while !stop.load(Ordering::Relaxed) {
                match tailer.poll(unix_ms()) {
                    // Said once per spell of failures, not ten times a second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "tally logs: cannot copy dyno output");
                    }
                    Err(_) => {}
                    Ok(()) => failing = false,
                }
                std::thread::sleep(Duration::from_millis(POLL_MS));
            }
            let _ = tailer.poll(unix_ms());
        })?;
    Ok(())
}

/// The merged files of every host under `data_dir`.
fn merged_files(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let path = entry?.path();
        let host = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("host-"));
        if host && path.join(MERGED).is_file() {
            out.push(path.join(MERGED));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the merged files of every host under `data_dir`, from where it
/// left off, each line once.
#[derive(Default)]
pub struct Reader {
    cursors: BTreeMap<PathBuf, Cursor>,
}

impl Reader {
    /// The lines every host's merged file gained since the last call (all
    /// of them the first time), in time order.
    ///
    /// # Errors
    /// `data_dir` cannot be read.
    pub fn poll(&mut self, data_dir: &Path) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        for file in merged_files(data_dir)? {
            let cursor = self.cursors.entry(file.clone()).or_default();
            if let Ok(new) = cursor.read(&file) {
                lines.extend(new.iter().filter_map(|l| Line::parse(l)));
            }
        }
        // Stable: one host's lines of one instant keep their order.
        lines.sort_by_key(|l| l.ms);
        Ok(lines)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_copied_once_stamped_and_merged_in_time_order() {
        let dir = std::env::temp_dir().join(format!("tally-logs-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for h in ["host-0", "host-1"] {
            std::fs::create_dir_all(dir.join(h).join("logs")).unwrap();
        }
        let append = |h: &str, dyno: &str, s: &str| {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(h).join("logs").join(format!("{dyno}.log")))
                .unwrap();
            f.write_all(s.as_bytes()).unwrap();
        };
        append("host-0", "web.1", "before the agent\n");
        let mut t0 = Tailer::new(&dir.join("host-0")).unwrap();
        let mut t1 = Tailer::new(&dir.join("host-1")).unwrap();
        t0.poll(1).unwrap();
        t1.poll(1).unwrap();
        append("host-0", "web.1", "one\ntw");
        append("host-1", "clock.1", "tick\n");
        t0.poll(10).unwrap();
        t1.poll(5).unwrap();
        append("host-0", "web.1", "o\n");
        t0.poll(20).unwrap();
        let mut r = Reader::default();
        let got: Vec<(u64, String, String)> = r
            .poll(&dir)
            .unwrap()
            .into_iter()
            .map(|l| (l.ms, l.dyno, l.text))
            .collect();
        assert_eq!(
            got,
            [
                (5, "clock.1".to_string(), "tick".to_string()),
                (10, "web.1".to_string(), "one".to_string()),
                (20, "web.1".to_string(), "two".to_string()),
            ]
        );
        // Nothing twice.
        assert!(r.poll(&dir).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
