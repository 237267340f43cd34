#![allow(dead_code)]
pub mod browser;
pub mod fake;
pub mod python;
pub mod server;
pub mod ws;
