//! The `interview-engine` binary: `serve`, `plan`, `loadtest`, `check-keys`, `simulate`.
//! Each subcommand loads the layered config first; a bad config exits with code 2 naming the field.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use interview_engine::config::{Config, LogFormat};
use interview_engine::{cli, server, telemetry};

#[derive(Parser)]
#[command(
    name = "interview-engine",
    version,
    about = "AI mock job interviews at scale"
)]
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
    /// Print the capacity plan: daily budgets per provider and interviews per day per mode.
    Plan {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Running server whose `/api/optimization_stats` gives measured calls per interview
        /// (modes without a completed interview keep the defaults); a failed fetch exits 1.
        #[arg(long, value_name = "URL")]
        stats_url: Option<String>,
        /// Admin token for `--stats-url` (default: the config's `server.admin_token`, which
        /// `IE_SERVER__ADMIN_TOKEN` sets).
        #[arg(long, value_name = "TOKEN")]
        admin_token: Option<String>,
    },
    /// Drive N complete interviews through the WebSocket protocol and report latency.
    Loadtest {
        /// Server root URL.
        #[arg(long)]
        url: String,
        /// Interviews to run.
        #[arg(long)]
        interviews: usize,
        /// Interviews at the same time.
        #[arg(long)]
        concurrency: usize,
        /// Questions (answers) per interview.
        #[arg(long, default_value_t = 12)]
        answers_per_interview: u32,
        /// Admin token, to read `/api/optimization_stats` (provider calls, cache hit rates).
        #[arg(long)]
        admin_token: Option<String>,
        /// Interview mode to request and report (economy | balanced | adaptive | auto; default auto).
        #[arg(long)]
        mode: Option<String>,
        /// Pause before each answer, like a person thinking (ms): keeps C sessions open at once.
        #[arg(long, default_value_t = 0)]
        think_ms: u64,
        /// Spread of the pauses: each is drawn in think-ms × [1 − J, 1 + J] (0 ≤ J ≤ 1).
        #[arg(long, default_value_t = 0.0, value_name = "J")]
        think_jitter: f64,
        /// Seconds a client waits for the server's next event before it counts the interview failed
        /// (its own thinking is not counted, so long runs have no fixed cap).
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        turn_timeout_s: u64,
        /// Interview creations (HTTP) at once; as many HTTP connections are kept alive and reused.
        #[arg(long, default_value_t = 64)]
        create_concurrency: usize,
        /// The server's process id (same machine): report its CPU per turn and its memory.
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
        /// Send a short synthetic resume with each interview (skills and years vary per candidate).
        #[arg(long)]
        resume: bool,
        /// Answer by speaking this WAV (mono PCM16, 16/24/48 kHz) over the socket, paced in real time;
        /// reports end of speech → interviewer latency, speech-to-text time and dropped frames.
        #[arg(long, value_name = "FILE.wav")]
        audio: Option<PathBuf>,
        /// With --audio: send the frames as fast as the socket takes them instead of in real time.
        #[arg(long)]
        audio_fast: bool,
        /// Print JSON (progress still goes to stderr).
        #[arg(long)]
        json: bool,
        /// Seconds between progress lines on stderr when it is not a terminal (a terminal shows a bar).
        #[arg(long, default_value_t = 10, value_name = "SECONDS")]
        progress_every: u64,
    },
    /// Run a day of interviews on a virtual clock against in-process providers that enforce the
    /// catalogue's free-tier windows (one key per free provider), print the hour table, the day and
    /// `plan`'s figures for the same inputs; exit 1 if an interview did not complete, a provider
    /// answered 429 or a window was exceeded (a disagreement with `plan` is printed, not an exit code).
    Simulate {
        /// TOML config file (its catalogue, `[interview] questions`, GPU and cache settings).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Interviews in the day.
        #[arg(long, default_value_t = 20_000)]
        interviews: usize,
        /// Arrivals per hour (UTC): `workday` (quiet at night, peak 11:00-14:00), `flat`, or 24
        /// comma-separated weights from 00:00.
        #[arg(long, default_value = "workday")]
        curve: String,
        /// Add one in-process GPU node serving this many calls a second.
        #[arg(long, value_name = "N")]
        gpu_node_rps: Option<f64>,
        /// Seconds a candidate takes to answer (virtual time).
        #[arg(long, default_value_t = 40)]
        think_s: u64,
        /// Milliseconds a provider takes to answer (virtual time).
        #[arg(long, default_value_t = 800)]
        provider_latency_ms: u64,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
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
            telemetry::init("info", cfg.server.log_format);
            match server::serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("interview-engine: {e}");
                    // A configuration the server refuses exits like one that does not parse.
                    match e {
                        server::StartError::Config(_) => ExitCode::from(2),
                        _ => ExitCode::from(1),
                    }
                }
            }
        }
        Command::Plan {
            config,
            json,
            stats_url,
            admin_token,
        } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init("warn", cfg.server.log_format);
            let costs = match cli::plan::costs(&cfg, stats_url.as_deref(), admin_token.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("plan: {e}");
                    return ExitCode::from(1);
                }
            };
            let env = |k: &str| std::env::var(k).ok();
            let plan = cli::plan::from_config(&cfg, &env, &costs);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).unwrap_or_default()
                );
            } else {
                cli::plan::print(&plan);
            }
            ExitCode::SUCCESS
        }
        Command::Loadtest {
            url,
            interviews,
            concurrency,
            answers_per_interview,
            admin_token,
            mode,
            think_ms,
            think_jitter,
            turn_timeout_s,
            create_concurrency,
            server_pid,
            resume,
            audio,
            audio_fast,
            json,
            progress_every,
        } => {
            if !(0.0..=1.0).contains(&think_jitter) {
                eprintln!(
                    "loadtest: --think-jitter is a fraction from 0 to 1 (got {think_jitter})"
                );
                return ExitCode::from(2);
            }
            let audio = match audio
                .map(|p| cli::voice_load::AudioAnswer::load(&p, !audio_fast))
                .transpose()
            {
                Ok(a) => a.map(std::sync::Arc::new),
                Err(e) => {
                    eprintln!("loadtest: --audio {e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init("warn", LogFormat::Text);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("interview-engine: {e}");
                    return ExitCode::from(1);
                }
            };
            let lt = cli::loadtest::LoadTest {
                url: url.trim_end_matches('/').to_string(),
                interviews,
                concurrency,
                answers_per_interview,
                admin_token,
                mode,
                think_ms,
                think_jitter,
                turn_timeout_s,
                create_concurrency,
                server_pid,
                resume,
                audio,
                progress_every_s: progress_every,
            };
            match rt.block_on(cli::loadtest::run(lt)) {
                Ok(r) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                    } else {
                        cli::loadtest::print(&r);
                    }
                    if r.failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("loadtest: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Simulate {
            config,
            interviews,
            curve,
            gpu_node_rps,
            think_s,
            provider_latency_ms,
            json,
        } => {
            let cfg = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let curve = match interview_engine::sim::curve::Curve::parse(&curve) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("simulate: {e}");
                    return ExitCode::from(2);
                }
            };
            if gpu_node_rps.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                eprintln!("simulate: --gpu-node-rps: expected a positive number of calls a second");
                return ExitCode::from(2);
            }
            telemetry::init("error", LogFormat::Text);
            let opts = interview_engine::sim::SimOptions {
                interviews,
                curve,
                gpu_node_rps,
                think: std::time::Duration::from_secs(think_s),
                provider_latency: std::time::Duration::from_millis(provider_latency_ms),
                data_dir: None,
                progress: true,
            };
            match cli::simulate::run(&cfg, &opts) {
                Ok(s) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    } else {
                        cli::simulate::print(&s);
                    }
                    if s.ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("simulate: {e}");
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
            telemetry::init("warn", cfg.server.log_format);
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
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&checks).unwrap_or_default()
                        );
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
