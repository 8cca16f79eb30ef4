//! `tally`: model-check Tally's core, and serve the Explorer.

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use tally_core::Mutation;
use tally_model::ModelConfig;
use tally_model::config::{Preset, preset};
use tally_verification::check::{CheckOptions, Search, check_config, print_summary};

/// Tally: dyno accounting whose safety is model-checked.
#[derive(Parser)]
#[command(name = "tally", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum PresetName {
    /// Seconds: one singleton, two hosts, a few faults.
    Smoke,
    /// Three hosts, clock + web=2, every fault class on across its configurations.
    Ci,
    /// Larger fault budgets and horizon, for a nightly run.
    Deep,
}

impl PresetName {
    fn name(self) -> &'static str {
        match self {
            PresetName::Smoke => "smoke",
            PresetName::Ci => "ci",
            PresetName::Deep => "deep",
        }
    }
}

#[derive(clap::Args)]
struct Target {
    /// A named preset (a set of configurations, each checked exhaustively).
    /// Default: `ci`, or with one --mutation and no preset, that mutation's
    /// small hunting configuration.
    #[arg(long, value_enum, conflicts_with = "config")]
    preset: Option<PresetName>,
    /// A configuration file: TOML, or JSON holding one configuration or an
    /// array of them as `tally show-preset` prints (see examples/model.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Switch on a mutation that re-creates a 2012 bug or an unsafe shortcut
    /// (repeatable; `tally mutations` lists them).
    #[arg(long = "mutation", value_name = "NAME")]
    mutations: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Model-check every property; exit 0 only when all hold.
    Check {
        #[command(flatten)]
        target: Target,
        /// Checker threads.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        threads: u16,
        /// Breadth-first search without symmetry: slower, but every
        /// counterexample found is a shortest one. The default is the
        /// exhaustive proof: depth-first with host symmetry reduction.
        #[arg(long)]
        bfs: bool,
        /// Skip the L1 convergence graph check.
        #[arg(long)]
        no_liveness: bool,
        /// Write each counterexample as a JSON trace into this directory.
        #[arg(long, value_name = "DIR")]
        trace_out: Option<PathBuf>,
    },
    /// Serve, on loopback, the counterexample timeline and stateright's
    /// Explorer for each configuration a trace was found in.
    Explore {
        #[command(flatten)]
        target: Target,
        /// Which configuration of the preset (0-based).
        #[arg(long, default_value_t = 0)]
        index: usize,
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// A JSON trace written by `tally check --trace-out`, opened first
        /// (repeatable). Without --preset, --config or --mutation, the
        /// configuration served is the trace's.
        #[arg(long = "trace", value_name = "FILE")]
        traces: Vec<PathBuf>,
        /// A directory of traces (`tally check --trace-out DIR`), listed and
        /// read as they are asked for.
        #[arg(long, value_name = "DIR")]
        trace_dir: Option<PathBuf>,
    },
    /// Replay a fleet scenario (e.g. incident-2012) under the naive-2012 and
    /// tally policies, print the comparison and write series and plots.
    ///
    /// The policies run side by side, one thread each, when there is more
    /// than one core; every run is deterministic for its seed either way.
    /// The full incident-2012 (10,000 hosts, 1,000,000 dynos, 24 h) needs
    /// about 1.6 GB of memory for both runs.
    Simulate {
        /// A built-in scenario (incident-2012, host-crash-wave, partition,
        /// crash-loop) or a path to a scenario TOML file.
        scenario: String,
        /// Policy to run (repeatable; default: naive-2012 and tally).
        #[arg(long = "policy", value_name = "NAME")]
        policies: Vec<String>,
        /// Seed (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Write summary.json, CSV/JSON series and SVG plots here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Override the fleet size: hosts.
        #[arg(long, requires_all = ["apps", "dynos"])]
        hosts: Option<u32>,
        /// Override the fleet size: apps.
        #[arg(long)]
        apps: Option<u32>,
        /// Override the fleet size: dynos.
        #[arg(long)]
        dynos: Option<u64>,
        /// Override the simulated length, in hours.
        #[arg(long)]
        hours: Option<f64>,
    },
    /// List the mutations and the property each must break.
    Mutations,
    /// Run real dynos from a Procfile: the manager, its journal and API, and
    /// N local host agents.
    Run(tally_manager::cli::RunArgs),
    /// Run one host agent as its own process, attached to a manager.
    Agent(tally_manager::cli::AgentArgs),
    /// Show the dynos, the formation, the budget and the breaker, and why.
    Ps(tally_manager::cli::PsArgs),
    /// Set desired counts, all or none: `tally scale web=4 clock=1`.
    Scale(tally_manager::cli::ScaleArgs),
    /// Replace the dynos of one type, or all (refused under lockdown).
    Restart(tally_manager::cli::RestartArgs),
    /// App-management lockdown on or off.
    Lockdown(tally_manager::cli::LockdownArgs),
    /// Open or close the launch breaker by hand.
    Breaker(tally_manager::cli::BreakerArgs),
    /// Pause launches on one host or everywhere.
    Pause(tally_manager::cli::PauseArgs),
    /// Resume launches on one host or everywhere.
    Resume(tally_manager::cli::PauseArgs),
    /// Internal: the lease fence an agent starts around each dyno.
    #[command(hide = true)]
    Fence(tally_manager::cli::FenceArgs),
    /// Print a preset's configurations as JSON, to start a config file from.
    ShowPreset {
        /// The preset.
        #[arg(value_enum)]
        preset: PresetName,
    },
}

fn load(target: &Target) -> Result<Preset, String> {
    let mut p = match &target.config {
        Some(path) => {
            let configs = ModelConfig::load_many(path).map_err(|e| e.to_string())?;
            Preset {
                name: path.display().to_string(),
                configs,
                complete: false,
            }
        }
        None => match (target.preset, target.mutations.as_slice()) {
            (None, [one]) => {
                let m = Mutation::from_name(one).map_err(|e| e.to_string())?;
                let c = tally_verification::mutations::hunt_config(m);
                return Ok(Preset {
                    name: c.name.clone(),
                    configs: vec![c],
                    complete: false,
                });
            }
            (p, _) => preset(p.unwrap_or(PresetName::Ci).name()).map_err(|e| e.to_string())?,
        },
    };
    for name in &target.mutations {
        let m = Mutation::from_name(name).map_err(|e| e.to_string())?;
        p.name = format!("{}+{}", p.name, m.name());
        p.configs = p
            .configs
            .into_iter()
            .map(|c| {
                let mut c = c.with_mutation(m);
                c.name = format!("{}+{}", c.name, m.name());
                c
            })
            .collect();
    }
    Ok(p)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tally: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check {
            target,
            threads,
            bfs,
            no_liveness,
            trace_out,
        } => {
            let preset = load(&target)?;
            // A mutation run hunts a counterexample: BFS finds a shortest one.
            let bfs = bfs || !target.mutations.is_empty();
            let symmetry = !bfs
                && preset
                    .configs
                    .iter()
                    .all(tally_verification::symmetry::usable);
            let opts = CheckOptions {
                threads: usize::from(threads),
                search: if bfs { Search::Bfs } else { Search::Dfs },
                symmetry,
                liveness: !no_liveness,
                stop_at: None,
                progress: true,
                trace_out,
                ..CheckOptions::default()
            };
            eprintln!(
                "tally check: preset {} ({} configuration(s)), {} thread(s), {}{}",
                preset.name,
                preset.configs.len(),
                threads,
                if bfs { "BFS" } else { "DFS" },
                if symmetry { " with symmetry" } else { "" }
            );
            let mut reports = Vec::new();
            for cfg in &preset.configs {
                eprintln!("checking {} ...", cfg.name);
                reports.push(check_config(cfg, &opts).map_err(|e| e.to_string())?);
            }
            let mut stdout = std::io::stdout();
            let ok =
                print_summary(&mut stdout, &reports, preset.complete).map_err(|e| e.to_string())?;
            for r in &reports {
                for t in &r.traces {
                    println!("trace written: {}", t.display());
                }
            }
            println!();
            if ok {
                println!("all properties hold; every sometimes is reachable");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("CHECK FAILED: see the table above");
                Ok(ExitCode::from(1))
            }
        }
        Command::Explore {
            target,
            index,
            port,
            traces,
            trace_dir,
        } => {
            let chosen = target.preset.is_some()
                || target.config.is_some()
                || !target.mutations.is_empty()
                || traces.is_empty();
            let config = if chosen {
                let preset = load(&target)?;
                let cfg = preset.configs.get(index).cloned().ok_or_else(|| {
                    format!(
                        "--index {index}: preset {} has {} configuration(s)",
                        preset.name,
                        preset.configs.len()
                    )
                })?;
                Some(cfg)
            } else {
                None
            };
            let opts = tally_verification::explorer::ExploreOptions {
                config,
                traces,
                trace_dir,
            };
            let explorer = tally_verification::explorer::Explorer::bind(("127.0.0.1", port), opts)
                .map_err(|e| e.to_string())?;
            eprintln!(
                "Tally Explorer on {} (Ctrl-C to stop)\nstateright's Explorer: {}",
                explorer.start_url(),
                explorer.explorer_url()
            );
            explorer.run();
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            scenario,
            policies,
            seed,
            out,
            hosts,
            apps,
            dynos,
            hours,
        } => {
            let policies = policies
                .iter()
                .map(|p| tally_sim::policy::Policy::from_name(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            let mut args = tally_sim::cli::SimulateArgs::new(&scenario);
            args.policies = policies;
            args.seed = seed;
            args.out_dir = out;
            args.duration_h = hours;
            if let (Some(h), Some(a), Some(d)) = (hosts, apps, dynos) {
                args.fleet = Some((h, a, d));
            }
            let outcome = tally_sim::cli::simulate(args).map_err(|e| e.to_string())?;
            Ok(ExitCode::from(outcome.exit_code))
        }
        Command::ShowPreset { preset: name } => {
            let p = preset(name.name()).map_err(|e| e.to_string())?;
            let json = serde_json::to_string_pretty(&p.configs).map_err(|e| e.to_string())?;
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => tally_manager::cli::run(&args),
        Command::Agent(args) => tally_manager::cli::agent(&args),
        Command::Ps(args) => tally_manager::cli::ps(&args),
        Command::Scale(args) => tally_manager::cli::scale(&args),
        Command::Restart(args) => tally_manager::cli::restart(&args),
        Command::Lockdown(args) => tally_manager::cli::lockdown(&args),
        Command::Breaker(args) => tally_manager::cli::breaker(&args),
        Command::Pause(args) => tally_manager::cli::pause(&args, true),
        Command::Resume(args) => tally_manager::cli::pause(&args, false),
        Command::Fence(args) => Ok(tally_manager::cli::fence(&args)),
        Command::Mutations => {
            for m in Mutation::ALL {
                let expected: BTreeSet<&str> = tally_verification::mutations::expected(m)
                    .iter()
                    .copied()
                    .collect();
                println!(
                    "{:<30} breaks {}",
                    m.name(),
                    expected.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
