//! `tally`: model-check Tally's core, serve the Explorer, simulate a fleet,
//! and run real dynos. This file holds the command line and the dispatch
//! only; each verb group lives in a module of its own, its clap arguments
//! beside its handler, and every handler has one shape:
//! `fn(&Args) -> Result<ExitCode, CliError>`. An error is printed once,
//! here, as `tally: ...`, and exits 2.

mod check;
mod error;
mod ops;
mod run;
mod simulate;

use clap::{Parser, Subcommand};
use error::CliError;
use std::process::ExitCode;

/// The model checker clones and drops a world per generated state; glibc's
/// allocator spent a third of the search in `malloc`/`free` (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tally: dyno accounting whose safety is model-checked.
#[derive(Parser)]
#[command(name = "tally", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Model-check every property; exit 0 only when all hold.
    Check(check::CheckArgs),
    /// Serve, on loopback, the counterexample timeline and stateright's
    /// Explorer for each configuration a trace was found in.
    Explore(check::ExploreArgs),
    /// Replay a fleet scenario (e.g. incident-2012) under the naive-2012 and
    /// tally policies (noisy-neighbour adds fleet-wide and
    /// tally-no-bad-apps), print the comparison and write series and plots.
    ///
    /// The policies run side by side, one thread each, when there is more
    /// than one core; every run is deterministic for its seed either way.
    /// The full incident-2012 (10,000 hosts, 1,000,000 dynos, 24 h) needs
    /// about 1.6 GB of memory for both runs.
    Simulate(simulate::SimulateArgs),
    /// List the mutations and the property each must break.
    Mutations(check::MutationsArgs),
    /// Run real dynos from a Procfile: the manager, its journal and API, and
    /// N local host agents.
    Run(run::RunArgs),
    /// Run one host agent as its own process, attached to a manager.
    Agent(run::AgentArgs),
    /// Show the dynos, the formation, the budget and the breaker, and why.
    Ps(ops::PsArgs),
    /// Set desired counts, all or none: `tally scale web=4 clock=1`.
    Scale(ops::ScaleArgs),
    /// Replace one dyno (`web.1`), the dynos of one type, or all (refused
    /// under lockdown).
    Restart(ops::RestartArgs),
    /// Every dyno's output, interleaved by time, with its time and dyno;
    /// `-f` follows (`--dyno web.1`, `--type web` to filter).
    Logs(ops::LogsArgs),
    /// Stop one dyno (`web.1`): the formation, which still asks for it,
    /// replaces it, as on Heroku (scale down to remove it; refused under
    /// lockdown).
    Stop(ops::StopArgs),
    /// App-management lockdown on or off.
    Lockdown(ops::LockdownArgs),
    /// Open or close the launch breaker by hand.
    Breaker(ops::BreakerArgs),
    /// Pause launches on one host or everywhere.
    Pause(ops::PauseArgs),
    /// Resume launches on one host or everywhere.
    Resume(ops::PauseArgs),
    /// Internal: the lease fence an agent starts around each dyno.
    #[command(hide = true)]
    Fence(run::FenceArgs),
    /// Print a preset's configurations as JSON, to start a config file from.
    ShowPreset(check::ShowPresetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Check(args) => check::check(args),
        Command::Explore(args) => check::explore(args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Mutations(args) => check::mutations(args),
        Command::ShowPreset(args) => check::show_preset(args),
        Command::Run(args) => run::run(args),
        Command::Agent(args) => run::agent(args),
        Command::Fence(args) => run::fence(args),
        Command::Ps(args) => ops::ps(args),
        Command::Scale(args) => ops::scale(args),
        Command::Restart(args) => ops::restart(args),
        Command::Stop(args) => ops::stop(args),
        Command::Logs(args) => ops::logs(args),
        Command::Lockdown(args) => ops::lockdown(args),
        Command::Breaker(args) => ops::breaker(args),
        Command::Pause(args) => ops::pause(args),
        Command::Resume(args) => ops::resume(args),
    };
    result.unwrap_or_else(|e: CliError| {
        eprintln!("tally: {e}");
        ExitCode::from(2)
    })
}
