//! The agent link: length-prefixed JSON frames over TCP.
//!
//! An agent connects, says `Hello` with its host, incarnation and the
//! manager's token, and gets the deployment in `Welcome`; then it sends the core's reports and gets
//! the core's replies. Any frame may be lost with the connection: the core's
//! protocol tolerates loss, so the link never retries a frame.

use crate::settings::Deployment;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use tally_core::{HostId, Incarnation, InstanceId, Message};
use thiserror::Error;

/// The largest frame accepted (a report of a full host is far smaller).
pub const FRAME_MAX: u32 = 16 << 20;

/// The largest frame read before the token is checked: a hello is tiny, so
/// an unauthenticated peer cannot make the manager hold a large buffer.
pub const HELLO_BYTES_MAX: u32 = 4 << 10;

/// Link protocol version (2: the hello names the agent's machine; 3: the
/// agent reports its dynos' processes in `Dynos`).
pub const LINK_VERSION: u16 = 3;

/// The oldest link version a manager accepts.
pub const LINK_VERSION_OLDEST: u16 = 2;

/// The most exits a `Dynos` frame repeats (the host's latest).
pub const EXITS_KEPT: usize = 32;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "frame")]
pub enum Frame {
    /// Agent to manager, first.
    Hello {
        /// Link version.
        version: u16,
        /// The host.
        host: HostId,
        /// The agent's incarnation.
        incarnation: Incarnation,
        /// The agent's machine identity (random, kept in its data dir): a
        /// host id cannot pass to another machine while its dynos may run.
        machine: String,
        /// Random per agent process: a reconnect of the same agent carries
        /// the same, a copy of its data dir on another machine (a cloned
        /// image: same machine id and incarnation) does not.
        session: String,
        /// The manager's agent token (the data dir's `token`).
        token: String,
    },
    /// Manager to agent, after `Hello`.
    Welcome {
        /// What to run and how.
        deployment: Deployment,
    },
    /// Manager to agent: the hello was refused.
    Refused {
        /// Why.
        why: String,
        /// Whether trying again later may succeed.
        retry: bool,
    },
    /// Manager to agent, after `Hello`: this manager is a standby of a
    /// highly available deployment (`tally run --store etcd://...`); the
    /// agent tries the leader, or the next manager address it knows.
    NotLeader {
        /// In words: "not leader; leader is NAME at ADDR", or that none
        /// leads now.
        why: String,
        /// The leader's agent address, when known.
        leader: Option<String>,
    },
    /// A core message.
    Core(Message),
    /// Agent to manager: its dynos' processes as the operating system sees
    /// them, for `tally ps` only. Nothing the core decides depends on it:
    /// the core's reports alone say what runs and what exited.
    Dynos(DynoFacts),
}

/// What an agent knows of its dynos' processes beyond the core's report:
/// sent whole after any change and after each (re)connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynoFacts {
    /// The dynos running on the host.
    pub running: Vec<DynoProcess>,
    /// The host's latest exits, newest last (at most [`EXITS_KEPT`]).
    pub exits: Vec<DynoExit>,
}

/// One running dyno's process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynoProcess {
    /// The instance.
    pub instance: InstanceId,
    /// The dyno's process id (its group's leader), once its fence said it.
    pub pid: Option<u32>,
    /// The port given to it in `$PORT`.
    pub port: u16,
}

/// One dyno's exit, as its fence saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynoExit {
    /// The instance.
    pub instance: InstanceId,
    /// In words: `exit 137`, `signal 9 (SIGKILL)`, `stopped by tally`.
    pub status: String,
}

/// Puts a fence's `exited STATUS` word into the words `ps` shows.
#[must_use]
pub fn exit_status_words(fence_said: &str) -> String {
    let s = fence_said.trim();
    if let Some(code) = s.strip_prefix("exit status: ") {
        return format!("exit {code}");
    }
    if let Some(sig) = s.strip_prefix("signal: ") {
        return format!("signal {sig}");
    }
    match s {
        "stopped" => "stopped by tally".into(),
        "fenced" => "killed by its fence: lease ran out".into(),
        "never-started" => "never started".into(),
        "empty-command" => "not started: empty command".into(),
        "spawn-failed" => "not started: the command could not be run".into(),
        "fence-failed" => "its fence failed".into(),
        "" | "unknown" => "exit status unknown".into(),
        other => other.into(),
    }
}

/// A link failure.
#[derive(Debug, Error)]
pub enum WireError {
    /// The connection failed or closed.
    #[error("link I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A frame too large.
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(u32),
    /// A frame that does not decode.
    #[error("undecodable frame: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Writes one frame.
///
/// # Errors
/// I/O failure, or a frame over the limit.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<(), WireError> {
    let body = serde_json::to_vec(frame)?;
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    if len > FRAME_MAX {
        return Err(WireError::TooLarge(len));
    }
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame.
///
/// # Errors
/// I/O failure (end of stream included), a frame over the limit, or one
/// that does not decode.
pub fn read_frame(r: &mut impl Read) -> Result<Frame, WireError> {
    read_frame_limited(r, FRAME_MAX)
}

/// Reads one frame of at most `max` bytes.
///
/// # Errors
/// As [`read_frame`], with `max` as the limit.
pub fn read_frame_limited(r: &mut impl Read, max: u32) -> Result<Frame, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(WireError::TooLarge(len));
    }
    // Grown as bytes arrive, so a bogus length costs nothing up front.
    let mut body = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut body)?;
    if body.len() != len as usize {
        return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::exit_status_words;

    #[test]
    fn a_fences_exit_words_read_as_heroku_says_them() {
        assert_eq!(exit_status_words("exit status: 137"), "exit 137");
        assert_eq!(
            exit_status_words("signal: 9 (SIGKILL)"),
            "signal 9 (SIGKILL)"
        );
        assert_eq!(exit_status_words("stopped"), "stopped by tally");
        assert_eq!(exit_status_words("unknown"), "exit status unknown");
    }
}
