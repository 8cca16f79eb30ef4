//! [`CliError`]: every way a verb fails, printed once by `main` as
//! `tally: ...` (exit 2). The libraries' errors pass through unchanged.

use thiserror::Error;

/// Why a verb failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// An unknown mutation, or a core configuration refused.
    #[error(transparent)]
    Core(#[from] tally_core::ConfigError),
    /// A configuration file or preset the model refuses.
    #[error(transparent)]
    Model(#[from] tally_model::ModelConfigError),
    /// A check that could not run.
    #[error(transparent)]
    Check(#[from] tally_verification::check::CheckError),
    /// The Explorer could not start.
    #[error(transparent)]
    Explore(#[from] tally_explorer::ExploreError),
    /// The simulator's arguments, scenario or outputs.
    #[error(transparent)]
    Simulate(#[from] tally_sim::SimError),
    /// The manager or an agent could not start, or stopped.
    #[error(transparent)]
    Process(#[from] tally_manager::process::ProcessError),
    /// A call to the manager's API.
    #[error(transparent)]
    Client(#[from] tally_manager::client::ClientError),
    /// A `tally scale` argument.
    #[error(transparent)]
    Scale(#[from] crate::ops::ScaleError),
    /// `--index` past the preset's configurations.
    #[error("--index {index}: preset {preset} has {configs} configuration(s)")]
    Index {
        /// The index given.
        index: usize,
        /// The preset's name.
        preset: String,
        /// How many configurations it has.
        configs: usize,
    },
    /// A hunt (`tally check --mutation`) asked for something it cannot do.
    #[error("{0}")]
    Hunt(String),
    /// `tally logs` without a data dir to read.
    #[error("no dyno logs in {0}: start `tally run` first, or give --data-dir")]
    NoLogs(String),
    /// Writing to stdout.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Writing JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
