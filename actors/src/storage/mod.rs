//! Durable storage behind traits, so that the usage ledger (and, later, the session log) can move from
//! sled on one node to a shared store such as Redis without touching the actors.
//!
//! Records are encoded with bincode (serde) behind a one-byte layout version; a record of a version this
//! build does not know is reported as [`StorageError::UnknownVersion`], never a crash.

pub(crate) mod layout;
pub mod session_log;
pub mod sled_store;

use async_trait::async_trait;

use crate::quota::UsageRecord;

pub use session_log::{Retention, SessionLog, Swept};
pub use sled_store::SledStore;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database failed.
    #[error("storage failed: {0}")]
    Db(String),
    /// A record could not be encoded or decoded.
    #[error("record encoding failed: {0}")]
    Codec(String),
    /// A record was written by a layout this build does not know.
    #[error("record has unknown layout version {0}")]
    UnknownVersion(u8),
}

/// Per-quota usage, persisted so that a restart cannot spend a window twice.
#[async_trait]
pub trait UsageLedger: Send + Sync + 'static {
    /// The last stored usage of a quota scope (e.g. `groq#1` or `gemini:shared`).
    fn load(&self, scope: &str) -> Result<Option<UsageRecord>, StorageError>;
    /// Stores the usage of a quota scope (in order: a later call overwrites an earlier one).
    fn store(&self, scope: &str, record: &UsageRecord) -> Result<(), StorageError>;
    /// Makes every stored record durable (survives SIGKILL and power loss).
    async fn flush(&self) -> Result<(), StorageError>;
}

/// A ledger that keeps nothing: for benchmarks of the admission path and for `plan`.
pub struct NullLedger;

#[async_trait]
impl UsageLedger for NullLedger {
    fn load(&self, _scope: &str) -> Result<Option<UsageRecord>, StorageError> {
        Ok(None)
    }
    fn store(&self, _scope: &str, _record: &UsageRecord) -> Result<(), StorageError> {
        Ok(())
    }
    async fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Encodes a record behind its layout version byte.
pub fn encode<T: serde::Serialize>(version: u8, value: &T) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![version];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StorageError::Codec(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a record written by [`encode`] with the expected layout version.
pub fn decode<T: serde::de::DeserializeOwned>(
    version: u8,
    bytes: &[u8],
) -> Result<T, StorageError> {
    let (&v, body) = bytes
        .split_first()
        .ok_or_else(|| StorageError::Codec("empty record".into()))?;
    if v != version {
        return Err(StorageError::UnknownVersion(v));
    }
    bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map(|(t, _)| t)
        .map_err(|e| StorageError::Codec(e.to_string()))
}
