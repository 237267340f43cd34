//! interview-engine: the process around the actors: configuration, the HTTP and WebSocket surface,
//! startup and shutdown, and the operator commands (`serve`, `check-keys`, ...).
//!
//! ```text
//! main.rs ── config.rs (defaults → TOML → IE_ env, validate)
//!    │
//!    ├─ server.rs: engine runtime (ractor actors from the `actors` crate) + actix-web workers
//!    │     └─ http/: health, status, gateway (/v1/chat/completions)
//!    └─ cli/: check-keys
//! ```

pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod http;
pub mod progress_page;
pub mod report_html;
pub mod server;
pub mod sim;
pub mod telemetry;
pub mod timeline;
