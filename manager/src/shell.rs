//! The only state the manager's threads share: the core behind one lock.
//!
//! API handlers, agent links and the timer all feed inputs through
//! [`Shared::apply`]. Under one lock it clamps time so that it never runs
//! backwards, steps the core, and hands the step's effects to the [`Sink`]
//! (which makes the journal records durable) before anything is returned to
//! the caller, so a launch can only be sent after its record is on disk.
//! Inputs are therefore applied one at a time, in the order of their sequence
//! numbers, and each step's effects reach exactly one caller, once.
//!
//! The module is generic over the state machine and the sink, and uses
//! `loom`'s primitives under `--cfg loom`, so that `tests/loom.rs` explores
//! every interleaving of concurrent callers against the real core.

#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::Mutex;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use tally_core::Tick;
use thiserror::Error;

/// A sans-IO state machine the shell drives (the core's manager, with its
/// configuration).
pub trait Machine {
    /// One input.
    type Input;
    /// One effect.
    type Effect;
    /// Why an input was refused (the state is then unchanged).
    type Refusal;

    /// Applies `input` at `now`, appending effects to `out`.
    ///
    /// # Errors
    /// A refused input; the state must be exactly as before.
    fn step(
        &mut self,
        now: Tick,
        input: Self::Input,
        out: &mut Vec<Self::Effect>,
    ) -> Result<(), Self::Refusal>;

    /// Called once the steps so far are committed to the sink: what the
    /// machine reports about them (log lines) may now go out. A batch run on
    /// a copy and then discarded never reaches this.
    fn committed(&mut self) {}

    /// Called after the sink committed one step's `effects` (sent to the
    /// sink at `now` or later): the core's `append_committed` for a
    /// journaled step. Nothing by default.
    fn appended(&mut self, _now: Tick, _effects: &[Self::Effect]) {}
}

/// Where a step's effects go before the caller sees them: the journal.
pub trait Sink<E> {
    /// Why the effects could not be made durable.
    type Error;

    /// Makes the durable part of `effects` durable (write and fsync).
    ///
    /// # Errors
    /// The records are not known to be durable.
    fn commit(&mut self, seq: u64, effects: &[E]) -> Result<(), Self::Error>;
}

/// One applied input.
#[derive(Debug)]
pub struct Applied<E, R> {
    /// Its place in the single order of applied inputs (from 1).
    pub seq: u64,
    /// The time it was applied at (never below an earlier input's).
    pub now: Tick,
    /// The core's answer: refused inputs changed nothing.
    pub outcome: Result<(), R>,
    /// Its effects, durable ones already committed.
    pub effects: Vec<E>,
}

/// Why an input could not be applied at all.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShellError<S> {
    /// The sink failed earlier: the manager must restart from its journal,
    /// since its memory may hold steps the journal lacks.
    #[error("the journal failed earlier; restart the manager to recover from it")]
    Failed,
    /// The sink failed on this step: nothing of it may be acted on.
    #[error("journal write failed: {0}")]
    Sink(S),
    /// A thread panicked while holding the lock.
    #[error("the manager's state lock is poisoned")]
    Poisoned,
}

/// What [`Shared::apply`] returns for machine `M` and sink `S`.
pub type ApplyResult<M, S> = Result<
    Applied<<M as Machine>::Effect, <M as Machine>::Refusal>,
    ShellError<<S as Sink<<M as Machine>::Effect>>::Error>,
>;

/// What [`Shared::apply_all`] returns.
pub type ApplyAllResult<M, S> = Result<
    Vec<Applied<<M as Machine>::Effect, <M as Machine>::Refusal>>,
    ShellError<<S as Sink<<M as Machine>::Effect>>::Error>,
>;

struct Inner<M, S> {
    machine: M,
    sink: S,
    last_now: Tick,
    failed: bool,
}

/// The machine, its sink, and the order of applied inputs, behind one lock.
pub struct Shared<M, S> {
    inner: Mutex<Inner<M, S>>,
    applied: AtomicU64,
}

impl<M, S> Shared<M, S>
where
    M: Machine + Clone,
    M::Input: Clone,
    S: Sink<M::Effect>,
{
    /// Wraps a machine whose state is already durable in `sink`.
    pub fn new(machine: M, sink: S, now: Tick) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                machine,
                sink,
                last_now: now,
                failed: false,
            }),
            applied: AtomicU64::new(0),
        }
    }

    /// Applies one input at `now` (clamped to the latest time seen).
    ///
    /// # Errors
    /// The journal failed, now or before: nothing may be acted on.
    pub fn apply(&self, now: Tick, input: M::Input) -> ApplyResult<M, S> {
        let mut applied = self.apply_all(now, vec![input])?;
        Ok(applied.pop().unwrap_or(Applied {
            seq: 0,
            now,
            outcome: Ok(()),
            effects: Vec::new(),
        }))
    }

    /// Applies `inputs` atomically: all of them, one after another with no
    /// other input between, or (if the core refuses any) none of them.
    /// On refusal, the one returned `Applied` carries the refusal.
    ///
    /// # Errors
    /// The journal failed, now or before: nothing may be acted on.
    pub fn apply_all(&self, now: Tick, inputs: Vec<M::Input>) -> ApplyAllResult<M, S> {
        let mut guard = self.inner.lock().map_err(|_| ShellError::Poisoned)?;
        let inner = &mut *guard;
        if inner.failed {
            return Err(ShellError::Failed);
        }
        let now = if now < inner.last_now {
            inner.last_now
        } else {
            now
        };
        inner.last_now = now;
        // A batch runs on a copy first so that a refusal half-way leaves
        // nothing behind; a single input needs no copy (refusals change nothing).
        let batch = inputs.len() > 1;
        let mut work = if batch {
            Some(inner.machine.clone())
        } else {
            None
        };
        let mut steps = Vec::with_capacity(inputs.len());
        let mut refused_input = None;
        for input in inputs {
            let machine = work.as_mut().unwrap_or(&mut inner.machine);
            let mut effects = Vec::new();
            if batch {
                refused_input = Some(input.clone());
            }
            let outcome = machine.step(now, input, &mut effects);
            let refused = outcome.is_err();
            steps.push((outcome, effects));
            if refused && batch {
                // Discard the copy and everything the batch did; the refused
                // input alone changes nothing in the core, so it is run again
                // on the real machine for its notes (a lockdown refusal).
                steps.clear();
                work = None;
                if let Some(input) = refused_input.take() {
                    let mut effects = Vec::new();
                    let outcome = inner.machine.step(now, input, &mut effects);
                    steps.push((outcome, effects));
                }
                break;
            }
        }
        if let Some(machine) = work {
            inner.machine = machine;
        }
        let mut out = Vec::with_capacity(steps.len());
        for (outcome, effects) in steps {
            let seq = self.applied.load(Ordering::SeqCst) + 1;
            if let Err(e) = inner.sink.commit(seq, &effects) {
                inner.failed = true;
                return Err(ShellError::Sink(e));
            }
            self.applied.store(seq, Ordering::SeqCst);
            inner.machine.appended(now, &effects);
            out.push(Applied {
                seq,
                now,
                outcome,
                effects,
            });
        }
        inner.machine.committed();
        Ok(out)
    }

    /// Reads the machine under the lock.
    ///
    /// # Errors
    /// The lock is poisoned.
    pub fn read<T>(&self, f: impl FnOnce(&M, Tick) -> T) -> Result<T, ShellError<S::Error>> {
        let guard = self.inner.lock().map_err(|_| ShellError::Poisoned)?;
        Ok(f(&guard.machine, guard.last_now))
    }

    /// Runs a check of the sink under the lock; if it fails, nothing more is
    /// applied (as after a failed commit).
    ///
    /// # Errors
    /// The check failed (now or before), or the lock is poisoned.
    pub fn check_sink(
        &self,
        check: impl FnOnce(&S) -> Result<(), S::Error>,
    ) -> Result<(), ShellError<S::Error>> {
        let mut guard = self.inner.lock().map_err(|_| ShellError::Poisoned)?;
        if guard.failed {
            return Err(ShellError::Failed);
        }
        check(&guard.sink).map_err(|e| {
            guard.failed = true;
            ShellError::Sink(e)
        })
    }

    /// Reads the sink under the lock (tests compare it with a replay).
    ///
    /// # Errors
    /// The lock is poisoned.
    pub fn read_sink<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, ShellError<S::Error>> {
        let guard = self.inner.lock().map_err(|_| ShellError::Poisoned)?;
        Ok(f(&guard.sink))
    }

    /// Inputs applied so far.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }
}
