//! `interview-engine plan`: the capacity plan. How many interviews per day the configured keys
//! and GPU nodes can carry in each mode, from the configured limits and the calls and tokens one
//! interview costs in each mode.
//!
//! The cost of an interview in a mode is either
//!
//! * **measured**: with `--stats-url URL`, `GET {URL}/api/optimization_stats` of a running server;
//!   for each of economy, balanced and adaptive with `completed_interviews > 0` the calls per
//!   interview are `ceil(provider_calls_per_completed_interview)`, and the tokens
//!   `ceil(provider_tokens_per_completed_interview)` when the server reports that field. A fetch
//!   that fails is an error (exit 1), never a silent fall-back; or
//! * the **default**: `actors::budget::default_cost(level)` for `[interview] questions`, rounded up
//!   to whole calls and tokens (the figures the call budget itself reserves).
//!
//! Without `--stats-url` no request is sent. The arithmetic, per provider with `N` keys (read from
//! its `keys_env` variable; key values are only counted, never printed):
//!
//! * daily requests = `rpd × N` (`quota_scope = "key"`) or `rpd` (`"shared"`); without `rpd`,
//!   `rpm × 1440` (× N for key scope), marked "from rpm"; without either, unlimited.
//! * daily tokens likewise from `tpd`, else `tpm × 1440`, else unlimited.
//! * the other free-tier windows make these tighter (each per key, or once for a shared scope):
//!   `requests_per_month ÷ 30` and `tokens_per_month ÷ 30`; a daily cost-unit budget
//!   (`daily_units`, e.g. Cloudflare's 10,000 neurons) buys `daily_units ÷ units per token` tokens,
//!   the units per token being the default model's `unit_rates` at 3 input tokens to 1 output token
//!   (`actors::quota::ASSUMED_INPUT_SHARE`); the basis names the window that binds.
//! * a paid provider (one with a `cost`) counts only what its `daily_spend_cap` buys at that price and
//!   share (tokens); with no cap it counts nothing ("paid"): the plan shows what is really free.
//! * a provider with no keys (or `enabled = false`) carries nothing.
//! * interviews/day in a mode = `floor(min(daily_requests / calls, daily_tokens / tokens))`,
//!   with the calls and tokens per interview from [`Costs`]; an unlimited dimension, or one an
//!   interview spends none of (0 calls or 0 tokens), is ignored, and both ignored gives
//!   "unlimited" (`null` in JSON).
//! * a GPU node makes `max_concurrency × 86400 / ASSUMED_GPU_CALL_S` calls a day and carries
//!   `floor(calls/day / calls per interview)` interviews (GPU nodes have no token quota).
//! * totals per mode = the sum over providers and nodes (unlimited if any part is).
//!
//! [`plan`] (arithmetic.rs) does the arithmetic over plain inputs and explicit costs; [`costs`] (fetch.rs) gathers
//! the costs (defaults, or measured through [`fetch_stats`]) and [`from_config`] the inputs from the config
//! and the environment.
//! and [`print()`] (print.rs) shows the result as tables.

mod arithmetic;
mod fetch;
mod print;
#[cfg(test)]
mod tests;

pub use arithmetic::*;
pub use fetch::{costs, fetch_stats};
pub use print::print;
