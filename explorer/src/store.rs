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

/// Where the traces come from.
#[derive(Debug, Default)]
pub struct Store {
    files: BTreeMap<String, PathBuf>,
    dir: Option<PathBuf>,
    memory: Mutex<Vec<(String, Arc<str>)>>,
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

    /// Keeps `text` in memory as `name` (replacing a trace of that name).
    pub fn remember(&self, name: &str, text: Arc<str>) {
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.retain(|(n, _)| n != name);
        if memory.len() >= MEMORY_TRACES_MAX {
            memory.remove(0);
        }
        memory.push((name.to_string(), text));
    }

    /// Whether a trace of this name is in memory.
    #[must_use]
    pub fn in_memory(&self, name: &str) -> bool {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.iter().any(|(n, _)| n == name)
    }

    /// Every trace name known, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.files.keys().cloned().collect();
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        names.extend(memory.iter().map(|(n, _)| n.clone()));
        drop(memory);
        if let Some(dir) = &self.dir {
            if let Ok(entries) = std::fs::read_dir(dir) {
                names.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .map(|p| name_of(&p))
                        .take(1000),
                );
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The text of trace `name`.
    pub fn text(&self, name: &str) -> Result<Arc<str>, Problem> {
        if !valid_name(name) {
            return Err(Problem::bad_request(format!(
                "{name:?} is not a trace name: use letters, digits, '-', '_' and '.'"
            )));
        }
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, text)) = memory.iter().find(|(n, _)| n == name) {
            return Ok(Arc::clone(text));
        }
        drop(memory);
        let file = self.files.get(name).cloned().or_else(|| {
            self.dir
                .as_ref()
                .map(|d| d.join(format!("{name}.json")))
                .filter(|p| p.is_file())
        });
        let Some(file) = file else {
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
        config: head.config,
        json,
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
