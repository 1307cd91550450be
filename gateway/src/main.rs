//! `emcomm`: the emergency radio and broadcast gateway daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::cli::alert::AlertCommand;
use gateway::cli::broadcast::BroadcastCommand;
use gateway::cli::client::Connection;
use gateway::cli::keys::KeysCommand;
use gateway::cli::patch::PatchCommand;
use gateway::cli::terminal::TerminalCommand;
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
    /// Alerts: check, send, confirm, watch, update and cancel.
    #[command(subcommand)]
    Alert(Box<AlertCommand>),
    /// Live broadcasts: the command centre's own voice to chosen areas.
    #[command(subcommand)]
    Broadcast(Box<BroadcastCommand>),
    /// Talkgroup patches: make, list and remove them live.
    #[command(subcommand)]
    Patch(Box<PatchCommand>),
    /// Satellite terminals: their state, messages to send, what they carried.
    #[command(subcommand)]
    Terminal(Box<TerminalCommand>),
    /// Field reports (灾情报送): send one up the cascade, list those that came.
    #[command(subcommand)]
    Report(Box<gateway::cli::report::ReportCommand>),
    /// Keys that authenticate the cascade's frames.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Make the node re-read its configuration (as SIGHUP does) without dropping audio.
    Reload {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        json: bool,
    },
    /// The node's status: clock, destinations, what is playing.
    Status {
        #[command(flatten)]
        connection: Connection,
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
        Command::Alert(command) => gateway::cli::alert::run(*command).into(),
        Command::Broadcast(command) => gateway::cli::broadcast::run(*command).into(),
        Command::Patch(command) => gateway::cli::patch::run(*command).into(),
        Command::Terminal(command) => gateway::cli::terminal::run(*command).into(),
        Command::Report(command) => gateway::cli::report::run(*command).into(),
        Command::Keys(command) => gateway::cli::keys::run(command).into(),
        Command::Reload { connection, json } => {
            gateway::cli::patch::reload(connection, json).into()
        }
        Command::Status { connection, json } => {
            gateway::cli::alert::status(connection, json).into()
        }
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                let (radios, patches) = c
                    .patching
                    .as_ref()
                    .map_or((0, 0), |p| (p.radios.len(), p.patches.len()));
                println!(
                    "{}: valid {} node {:?}, {} downstream, {radios} radios, {patches} permanent patches",
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
            let config_path = config;
            let config = match Config::load(&config_path) {
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
            // Released PTT comes first on a panic, whatever else is broken.
            drivers::radio::ptt_switch::release_all_on_panic();
            let options = RunOptions {
                stats_out,
                config_path: Some(config_path),
            };
            match runtime.block_on(node::run(config, options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
