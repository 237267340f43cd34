//! The engine's actors and the domain pieces they own (provider wire formats, rate windows, storage).
//! See the supervision tree below; each actor kind lives in its own file with its messages, state and handler.

pub mod providers;
pub mod secret;
