//! The traces the Explorer shows: where each comes from (a `--trace` file, a
//! trace directory, an upload, a hunt), and the check that a trace is one this
//! build of the model would write, so that every step's link leads to the
//! same state in stateright's Explorer.

use crate::Problem;
use serde::Deserialize;
use serde_json::Value;
use stateright::Model;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tally_model::{Action, ModelConfig, TallyModel, World};
use tally_verification::checked::CheckedModel;
use tally_verification::properties;
use tally_verification::trace::{self, TRACE_VERSION};

/// The largest trace file read, in bytes.
pub const TRACE_BYTES_MAX: u64 = 64 << 20;
/// The most steps a trace may have.
pub const TRACE_STEPS_MAX: usize = 10_000;
/// The most traces kept in memory (uploads and hunts); the oldest goes first.
pub const MEMORY_TRACES_MAX: usize = 64;

/// A trace checked against the model.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The trace as read.
    pub json: Value,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its number of steps.
    pub steps: usize,
    /// The step where its property breaks.
    pub broken_at: usize,
    /// What the page shows beside the trace, computed from the replayed
    /// states by the model's and the properties' own functions (see
    /// [`analysis`]).
    pub analysis: Value,
}

#[derive(Deserialize)]
struct Head {
    config: ModelConfig,
    property: String,
    broken_at: usize,
    steps: Vec<StepHead>,
}

#[derive(Deserialize)]
struct StepHead {
    explorer_path: Option<String>,
}

/// Where a trace kept in memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Opened from the browser (`POST /traces`).
    Uploaded,
    /// Found by `/hunt/<mutation>`.
    Hunted(tally_core::Mutation),
}

/// Where a listed trace comes from, in a word for the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `--trace` file.
    File,
    /// A file of the `--trace-dir`.
    Dir,
    /// Kept in memory.
    Memory(Origin),
}

impl Source {
    /// `file`, `directory`, `opened here`, `hunted here`.
    #[must_use]
    pub fn words(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Dir => "directory",
            Source::Memory(Origin::Uploaded) => "opened here",
            Source::Memory(Origin::Hunted(_)) => "hunted here",
        }
    }
}

struct Kept {
    name: String,
    text: Arc<str>,
    origin: Origin,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.name, self.origin)
    }
}

/// Where the traces come from. A name, once it shows a trace, keeps showing
/// that trace (a `?step=N` link in a ticket keeps its meaning) while the
/// trace is known: a trace kept in memory gets a name no file had then
/// ([`Store::remember`]) and is read before any file that takes the name
/// later. Memory keeps the latest [`MEMORY_TRACES_MAX`] traces; an evicted
/// trace's name may be given again.
#[derive(Debug, Default)]
pub struct Store {
    files: BTreeMap<String, PathBuf>,
    dir: Option<PathBuf>,
    memory: Mutex<Vec<Kept>>,
}

/// Whether `name` may name a trace (and cannot climb out of a directory).
#[must_use]
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The name a trace file is shown under: its file name without `.json`.
#[must_use]
pub fn name_of(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".json").unwrap_or(&stem);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Store {
    /// A store of these files (by [`name_of`]) and this directory.
    #[must_use]
    pub fn new(files: &[PathBuf], dir: Option<PathBuf>) -> Store {
        Store {
            files: files.iter().map(|p| (name_of(p), p.clone())).collect(),
            dir,
            memory: Mutex::new(Vec::new()),
        }
    }

    /// Keeps `text` in memory under `name`, or under `name-2`, `name-3`...
    /// when a file or another trace in memory already has that name (the
    /// same text from the same origin keeps its name); returns the name
    /// given. The oldest trace in memory goes past [`MEMORY_TRACES_MAX`].
    pub fn remember(&self, name: &str, text: Arc<str>, origin: Origin) -> String {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let mut given = name.to_string();
        for n in 2.. {
            let kept = memory.iter().find(|k| k.name == given);
            if let Some(k) = kept
                && k.text == text
                && k.origin == origin
            {
                return given;
            }
            if kept.is_none() && self.file(&given).is_none() {
                break;
            }
            given = format!("{name}-{n}");
        }
        if memory.len() >= MEMORY_TRACES_MAX {
            memory.remove(0);
        }
        memory.push(Kept {
            name: given.clone(),
            text,
            origin,
        });
        given
    }

    /// The name of the trace a hunt for `m` found, if it is in memory.
    #[must_use]
    pub fn hunted(&self, m: tally_core::Mutation) -> Option<String> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory
            .iter()
            .find(|k| k.origin == Origin::Hunted(m))
            .map(|k| k.name.clone())
    }

    /// Every trace known, sorted by name, with where it comes from.
    #[must_use]
    pub fn list(&self) -> Vec<(String, Source)> {
        let mut out: Vec<(String, Source)> = self
            .files
            .keys()
            .map(|n| (n.clone(), Source::File))
            .collect();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            out.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .map(|p| (name_of(&p), Source::Dir))
                    .take(1000),
            );
        }
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept: Vec<(String, Source)> = memory
            .iter()
            .map(|k| (k.name.clone(), Source::Memory(k.origin)))
            .collect();
        drop(memory);
        // A name is its first source's: memory (as `text` reads it), then
        // the `--trace` files, then the directory.
        kept.append(&mut out);
        let mut out = kept;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|later, first| later.0 == first.0);
        out
    }

    /// Every trace name known, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.list().into_iter().map(|(n, _)| n).collect()
    }

    /// The file of trace `name`: a `--trace` file, else one of the
    /// directory.
    fn file(&self, name: &str) -> Option<PathBuf> {
        self.files.get(name).cloned().or_else(|| {
            self.dir
                .as_ref()
                .map(|d| d.join(format!("{name}.json")))
                .filter(|p| p.is_file())
        })
    }

    /// The text of trace `name`.
    pub fn text(&self, name: &str) -> Result<Arc<str>, Problem> {
        if !valid_name(name) {
            return Err(Problem::bad_request(format!(
                "{name:?} is not a trace name: use letters, digits, '-', '_' and '.'"
            )));
        }
        // Memory first: a name given to a trace in memory was no file's
        // then, and a file that takes it later must not change its meaning.
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kept) = memory.iter().find(|k| k.name == name) {
            return Ok(Arc::clone(&kept.text));
        }
        drop(memory);
        let Some(file) = self.file(name) else {
            return Err(Problem::not_found(
                "unknown trace",
                format!("no trace is named {name:?}; the known ones are listed at /traces"),
            ));
        };
        read_limited(&file).map(Arc::from)
    }
}

fn read_limited(file: &Path) -> Result<String, Problem> {
    use std::io::Read;
    let cannot =
        |e: std::io::Error| Problem::unprocessable(format!("cannot read {}: {e}", file.display()));
    let mut text = String::new();
    std::fs::File::open(file)
        .map_err(cannot)?
        .take(TRACE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    if text.len() as u64 > TRACE_BYTES_MAX {
        return Err(Problem::unprocessable(format!(
            "{} is larger than {TRACE_BYTES_MAX} bytes",
            file.display()
        )));
    }
    Ok(text)
}

/// Reads `text` as a trace and checks it: the format version, the shape, and
/// that replaying each step's Explorer path in its configuration gives back
/// the very steps written (so each link leads to the state shown).
pub fn check(text: &str) -> Result<Checked, String> {
    let json: Value =
        serde_json::from_str(text).map_err(|e| format!("the trace is not valid JSON: {e}"))?;
    match json.get("version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(TRACE_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "trace format version {v} is not the one this tally reads ({TRACE_VERSION}): \
                 write it again with `tally check --trace-out`"
            ));
        }
        None => return Err("this is not a tally trace: it has no \"version\"".to_string()),
    }
    let head: Head = serde_json::from_value(json.clone())
        .map_err(|e| format!("this is not a tally trace: {e}"))?;
    if head.steps.is_empty() || head.steps.len() > TRACE_STEPS_MAX {
        return Err(format!(
            "a trace has 1 to {TRACE_STEPS_MAX} steps; this one has {}",
            head.steps.len()
        ));
    }
    if head.broken_at >= head.steps.len() {
        return Err(format!(
            "broken_at {} is past the last step ({})",
            head.broken_at,
            head.steps.len() - 1
        ));
    }
    let model = TallyModel::new(head.config.clone())
        .map(CheckedModel::new)
        .map_err(|e| format!("the trace's configuration is invalid: {e}"))?;
    let paths: Vec<Option<String>> = head.steps.iter().map(|s| s.explorer_path.clone()).collect();
    let replayed = replay(&model, &paths)?;
    compare(&head, &json, &replayed)?;
    Ok(Checked {
        steps: head.steps.len(),
        broken_at: head.broken_at,
        analysis: analysis(&head.config, &replayed),
        config: head.config,
        json,
    })
}

/// What L1's panel needs and the trace does not carry: the recovery bound
/// `T` (`Config::recovery_bound_ticks`) and the deadline `calm_at + T`;
/// and per replayed step whether it is calm (faults over) and converged
/// (L1's goal), and each vacant slot with its relaunch backoff. Steps past
/// the replayed prefix have no entry.
#[must_use]
pub fn analysis(cfg: &ModelConfig, replayed: &[(World, Option<Action>)]) -> Value {
    let slot_name = |slot: tally_core::SlotId| {
        let t = cfg
            .core
            .process_type(slot.process_type)
            .map_or("?", |p| p.name.as_str());
        format!("{t}.{}", u32::from(slot.index) + 1)
    };
    let steps: Vec<Value> = replayed
        .iter()
        .map(|(w, _)| {
            let vacant: Vec<Value> = w
                .manager
                .vacant_slots()
                .map(|slot| {
                    let b = w.manager.backoff(slot);
                    serde_json::json!({
                        "slot": slot_name(slot),
                        "attempts": b.attempts,
                        "not_before": b.not_before.0,
                    })
                })
                .collect();
            serde_json::json!({
                "calm": w.is_calm(cfg),
                "converged": properties::converged(cfg, w),
                "vacant": vacant,
            })
        })
        .collect();
    serde_json::json!({
        "recovery_bound_ticks": cfg.core.recovery_bound_ticks(),
        "deadline": cfg.recovery_deadline(),
        "calm_at": cfg.calm_at,
        "horizon": cfg.horizon,
        "boots_in_flight_max": cfg.core.boots_in_flight_max,
        "steps": steps,
    })
}

/// The states (and actions) that the steps' Explorer paths lead to: a prefix
/// of the trace, up to the first step without a path.
fn replay(
    model: &CheckedModel,
    paths: &[Option<String>],
) -> Result<Vec<(World, Option<Action>)>, String> {
    let known: Vec<&str> = paths.iter().map_while(|p| p.as_deref()).collect();
    let Some(last) = known.last() else {
        return Ok(Vec::new());
    };
    for (i, pair) in known.windows(2).enumerate() {
        if let [a, b] = pair {
            let extends = b.strip_prefix(a).is_some_and(|rest| rest.starts_with('/'));
            if !extends {
                return Err(format!(
                    "step {}'s explorer_path does not extend step {i}'s",
                    i + 1
                ));
            }
        }
    }
    let indices: Vec<usize> = last
        .split('/')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| format!("explorer_path {last:?} is not a list of action indices"))?;
    if indices.len() != known.len() {
        return Err(format!(
            "explorer_path {last:?} does not have one index per step"
        ));
    }
    let mut iter = indices.into_iter();
    let init = iter.next().unwrap_or_default();
    let mut state = model
        .init_states()
        .into_iter()
        .nth(init)
        .ok_or_else(|| format!("the model has no initial state {init}"))?;
    let mut out = Vec::with_capacity(known.len());
    for (step, index) in iter.enumerate() {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let action = actions
            .get(index)
            .copied()
            .ok_or_else(|| format!("step {step} has no action {index} in this model"))?;
        let next = model
            .next_state(&state, action)
            .ok_or_else(|| format!("step {step}: action {index} changes nothing in this model"))?;
        out.push((state, Some(action)));
        state = next;
    }
    out.push((state, None));
    Ok(out)
}

/// Checks that the trace's steps are those `replayed` gives.
fn compare(head: &Head, json: &Value, replayed: &[(World, Option<Action>)]) -> Result<(), String> {
    if replayed.is_empty() {
        return Ok(());
    }
    let rebuilt = serde_json::to_value(trace::build(&head.config, &head.property, replayed))
        .map_err(|e| format!("cannot rebuild the trace: {e}"))?;
    let empty = Vec::new();
    let ours = rebuilt
        .get("steps")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let theirs = json
        .get("steps")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let whole = replayed.len() == head.steps.len();
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let last = i + 1 == ours.len();
        // The last replayed step's action is unknown unless it ends the trace.
        let same = if last && !whole {
            without_action(a) == without_action(b)
        } else {
            a == b
        };
        if !same {
            return Err(format!(
                "step {i} is not what this build's model gives for its explorer_path \
                 (was the trace written by another version of tally, or edited?)"
            ));
        }
    }
    Ok(())
}

fn without_action(step: &Value) -> Value {
    let mut step = step.clone();
    if let Some(map) = step.as_object_mut() {
        map.remove("action");
        map.remove("action_label");
    }
    step
}
