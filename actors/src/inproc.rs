//! In-process upstreams: a provider key or GPU node whose URL is `inproc://NAME/...` is served by an
//! [`Upstream`] registered under `NAME` in this process instead of over HTTP.
//!
//! The simulated day (`interview-engine simulate`) runs the real actors on a virtual clock (see
//! `clock.rs`) against fake providers that live in the same process: there, a loopback HTTP call would
//! let tokio's paused clock jump to its next timer while the socket is in flight, so the simulated
//! providers are called directly. Everything before the call (planning, admission into the key's
//! windows, permits, failover) and after it (settling, the breaker) is the engine's own code; only
//! the transport differs. Nothing registers an upstream unless a simulation does, and a URL without
//! the `inproc://` scheme never looks in the registry.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;

use crate::providers::{ChatRequest, ChatResponse, ChunkStream, ProviderError, Target};

/// The URL scheme of in-process upstreams.
pub const SCHEME: &str = "inproc://";

/// A provider (or GPU node) answering in this process.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The whole answer to `req`, sent as `target` (its key in `target.secret`, its model, its URL).
    async fn complete(
        &self,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError>;

    /// The answer to `req` piece by piece.
    async fn stream(
        &self,
        target: &Target,
        req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError>;

    /// A GPU node's health probe: `Ok` when it serves.
    async fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}

type Registry = RwLock<HashMap<String, Arc<dyn Upstream>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

/// Keeps an upstream registered; dropping it removes the registration.
#[must_use = "the upstream is unregistered when this is dropped"]
pub struct Registration {
    name: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        registry()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// Registers `upstream` under `name` (URLs `inproc://NAME/...` reach it) until the registration is
/// dropped. A name already registered is replaced.
pub fn register(name: &str, upstream: Arc<dyn Upstream>) -> Registration {
    registry()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string(), upstream);
    Registration {
        name: name.to_string(),
    }
}

/// The upstream serving `url`, if it is an `inproc://` URL of a registered name.
pub fn lookup(url: &str) -> Option<Arc<dyn Upstream>> {
    let rest = url.strip_prefix(SCHEME)?;
    let name = rest.split('/').next().unwrap_or(rest);
    registry()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .cloned()
}

/// The answer when an `inproc://` URL names nothing registered (the simulation ended, or a typo).
pub fn unregistered(url: &str) -> ProviderError {
    ProviderError::Unreachable(format!("no in-process upstream registered for {url}"))
}

/// The in-process upstream serving `url`: `Ok(None)` for any URL that is not `inproc://` (it goes
/// over HTTP), an error for an `inproc://` URL whose name is not registered.
pub fn route(url: &str) -> Result<Option<Arc<dyn Upstream>>, ProviderError> {
    if !url.starts_with(SCHEME) {
        return Ok(None);
    }
    lookup(url).map(Some).ok_or_else(|| unregistered(url))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::providers::Usage;

    struct Echo;

    #[async_trait]
    impl Upstream for Echo {
        async fn complete(
            &self,
            target: &Target,
            req: &ChatRequest,
        ) -> Result<ChatResponse, ProviderError> {
            Ok(ChatResponse {
                text: format!("{} {}", target.model, req.messages.len()),
                usage: Some(Usage::default()),
                finish_reason: None,
                model: None,
            })
        }
        async fn stream(
            &self,
            _target: &Target,
            _req: &ChatRequest,
        ) -> Result<ChunkStream, ProviderError> {
            Err(ProviderError::Timeout)
        }
    }

    #[test]
    fn only_registered_inproc_urls_are_found_and_only_while_registered() {
        assert!(lookup("http://127.0.0.1:1/v1").is_none());
        assert!(lookup("inproc://t-echo/v1").is_none());
        let reg = register("t-echo", Arc::new(Echo));
        assert!(lookup("inproc://t-echo/v1").is_some());
        assert!(lookup("inproc://t-echo").is_some());
        assert!(lookup("inproc://t-echo2/v1").is_none());
        drop(reg);
        assert!(lookup("inproc://t-echo/v1").is_none());
        assert!(matches!(route("http://x/v1"), Ok(None)));
        assert!(route("inproc://t-echo/v1").is_err());
    }
}
