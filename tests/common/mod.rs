#![allow(dead_code)]
pub mod attack;
pub mod browser;
pub mod config;
pub mod fake;
pub mod python;
pub mod redis;
pub mod server;
pub mod voice;
pub mod ws;
