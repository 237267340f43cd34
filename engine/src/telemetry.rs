//! Logging setup: `tracing` to stderr. The level is `RUST_LOG` when set, else the command's default
//! (`serve`: info; the other commands: warn, so that `--json` output and tables stand alone).
//! `server.log_format = "json"` writes one JSON object per line; text lines carry colour codes only
//! when stderr is a terminal (and `NO_COLOR` is unset), so redirected logs stay plain.
//! Keys never reach a log line: they live in `Secret`, which prints `*****`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether text logs may use ANSI colours: stderr is a terminal and `NO_COLOR` is not set.
pub fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(default_level: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
