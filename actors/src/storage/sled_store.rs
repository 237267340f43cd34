//! The sled implementation of the storage traits: one database directory, one tree per kind of record.
//! Writes go to sled at once; `flush` makes them durable before a reply that depends on them.

use std::path::Path;

use async_trait::async_trait;

use super::{decode, encode, StorageError, UsageLedger};
use crate::quota::UsageRecord;

const USAGE_VERSION: u8 = 1;

/// A sled database holding the engine's durable state.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    usage: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(200))
            .open()
            .map_err(|e| StorageError::Db(format!("cannot open {}: {e}", path.display())))?;
        Self::from_db(db)
    }

    /// A throw-away database for tests and benchmarks.
    pub fn temporary() -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| StorageError::Db(e.to_string()))?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self, StorageError> {
        let usage = db
            .open_tree("usage")
            .map_err(|e| StorageError::Db(e.to_string()))?;
        Ok(Self { db, usage })
    }

    /// The underlying database, for other stores that share it.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

#[async_trait]
impl UsageLedger for SledStore {
    fn load(&self, scope: &str) -> Result<Option<UsageRecord>, StorageError> {
        match self.usage.get(scope.as_bytes()) {
            Ok(Some(bytes)) => decode(USAGE_VERSION, &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(StorageError::Db(e.to_string())),
        }
    }

    fn store(&self, scope: &str, record: &UsageRecord) -> Result<(), StorageError> {
        let bytes = encode(USAGE_VERSION, record)?;
        self.usage
            .insert(scope.as_bytes(), bytes)
            .map(|_| ())
            .map_err(|e| StorageError::Db(e.to_string()))
    }

    async fn flush(&self) -> Result<(), StorageError> {
        self.db
            .flush_async()
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Db(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn usage_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rec = UsageRecord {
            version: 1,
            day: "2026-11-23".into(),
            requests_day: 7,
            tokens_day: 900,
            minute: vec![(1, 2, 3)],
            blocked_until_ms: None,
        };
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.store("groq#1", &rec).unwrap();
            s.flush().await.unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.load("groq#1").unwrap(), Some(rec));
        assert_eq!(s.load("groq#2").unwrap(), None);
    }

    #[test]
    fn unknown_version_is_an_error_not_a_crash() {
        let s = SledStore::temporary().unwrap();
        s.usage.insert("x", vec![99u8, 1, 2, 3]).unwrap();
        assert!(matches!(s.load("x"), Err(StorageError::UnknownVersion(99))));
    }
}
