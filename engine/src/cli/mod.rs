//! Operator commands other than `serve`: one file each.

pub mod check_keys;
pub mod loadtest;
pub mod plan;
pub mod simulate;
pub mod voice_load;
