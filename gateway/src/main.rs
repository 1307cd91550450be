//! `emcomm`: the emergency radio and broadcast gateway daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::Config;
use gateway::node::{self, RunOptions};
use tracing::error;

#[derive(Parser)]
#[command(
    name = "emcomm",
    version,
    about = "Emergency radio and broadcast gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of the cascade.
    Run {
        /// The node's configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Write forwarding statistics as JSON to this file when the node stops.
        #[arg(long)]
        stats_out: Option<PathBuf>,
    },
    /// Validate a configuration file and exit: 0 when valid, 1 when not.
    Check {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Alerts: check a CAP file offline.
    #[command(subcommand)]
    Alert(AlertCommand),
}

#[derive(Subcommand)]
enum AlertCommand {
    /// Check CAP files against the CAP 1.2/1.1 standard alone, offline. Exit code 0
    /// when every file is valid, 1 when any is not, 2 when one cannot be read.
    Check {
        /// CAP files (XML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON document on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EMCOMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Alert(AlertCommand::Check { files, json }) => {
            gateway::cli::check::run(&files, json).into()
        }
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid {} node {:?}, {} downstream",
                    config.display(),
                    c.tier,
                    c.name,
                    c.downstream.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config, stats_out } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    error!("invalid configuration: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    error!(error = %e, "cannot start the runtime");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(node::run(config, RunOptions { stats_out })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
