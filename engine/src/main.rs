//! The `interview-engine` binary: `serve`, `plan`, `loadtest`, `check-keys`.
//! Each subcommand loads the layered config first; a bad config exits with code 2 naming the field.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use interview_engine::config::Config;
use interview_engine::{cli, server, telemetry};

#[derive(Parser)]
#[command(name = "interview-engine", version, about = "AI mock job interviews at scale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// TOML config file (defaults apply without one).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Send one minimal request through every configured key and report per key.
    CheckKeys {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            match server::serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("interview-engine: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::CheckKeys { config, json } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("interview-engine: {e}");
                    return ExitCode::from(1);
                }
            };
            match rt.block_on(cli::check_keys::check_keys(&cfg)) {
                Ok(checks) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&checks).unwrap_or_default());
                    } else {
                        cli::check_keys::print_table(&checks);
                    }
                    if checks.iter().all(|c| c.result == "ok") {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
