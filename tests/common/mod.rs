#![allow(dead_code)]
pub mod browser;
pub mod fake;
pub mod server;
pub mod ws;
