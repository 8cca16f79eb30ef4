//! The simulator's errors: all at the I/O edge (scenario files, output
//! directories, arguments); a run itself cannot fail.

use thiserror::Error;

/// Something the simulator could not do.
#[derive(Debug, Error)]
pub enum SimError {
    /// A scenario that does not parse or cannot run.
    #[error("invalid scenario: {message}")]
    Scenario {
        /// What is wrong.
        message: String,
    },
    /// A file or directory that could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        message: String,
    },
    /// A command-line argument out of range.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// An unknown policy name.
    #[error("unknown policy `{name}`; valid policies: {valid}")]
    UnknownPolicy {
        /// The name given.
        name: String,
        /// The valid names.
        valid: String,
    },
}
