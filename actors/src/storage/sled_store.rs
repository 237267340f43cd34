//! The sled implementation of the storage traits: one database directory, one tree per kind of record.
//! Writes go to sled at once; `flush` makes them durable before a reply that depends on them.

use std::path::Path;

use async_trait::async_trait;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{decode, encode, SessionLog, StorageError, UsageLedger};
use crate::interview::InterviewRecord;
use crate::quota::UsageRecord;

const USAGE_VERSION: u8 = 1;
const INTERVIEW_VERSION: u8 = 1;
const EVENT_VERSION: u8 = 1;

/// A sled database holding the engine's durable state.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    usage: sled::Tree,
    interviews: sled::Tree,
    events: sled::Tree,
    candidates: sled::Tree,
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
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| StorageError::Db(e.to_string()))
        };
        Ok(Self {
            usage: tree("usage")?,
            interviews: tree("interviews")?,
            events: tree("events")?,
            candidates: tree("candidates")?,
            db,
        })
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

fn db_err(e: sled::Error) -> StorageError {
    StorageError::Db(e.to_string())
}

/// Event key: interview id, a 0 byte, then the sequence number big-endian (so keys sort by seq).
fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 9);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[async_trait]
impl SessionLog for SledStore {
    fn create(&self, record: &InterviewRecord) -> Result<(), StorageError> {
        let bytes = encode(INTERVIEW_VERSION, record)?;
        self.interviews
            .insert(record.id.as_bytes(), bytes)
            .map_err(db_err)?;
        // Candidate index: candidate id, 0, creation time (ms, big-endian), interview id.
        let mut k = record.candidate.id.as_bytes().to_vec();
        k.push(0);
        k.extend_from_slice(&record.created_ms.to_be_bytes());
        k.extend_from_slice(record.id.as_bytes());
        self.candidates
            .insert(k, record.id.as_bytes())
            .map_err(db_err)?;
        Ok(())
    }

    fn load(&self, id: &str) -> Result<Option<InterviewRecord>, StorageError> {
        match self.interviews.get(id.as_bytes()).map_err(db_err)? {
            Some(b) => decode(INTERVIEW_VERSION, &b).map(Some),
            None => Ok(None),
        }
    }

    fn commit(
        &self,
        record: &InterviewRecord,
        events: &[(u64, String)],
    ) -> Result<(), StorageError> {
        let rec = encode(INTERVIEW_VERSION, record)?;
        let evs: Vec<(Vec<u8>, Vec<u8>)> = events
            .iter()
            .map(|(seq, json)| {
                let mut v = vec![EVENT_VERSION];
                v.extend_from_slice(json.as_bytes());
                (event_key(&record.id, *seq), v)
            })
            .collect();
        (&self.interviews, &self.events)
            .transaction(|(it, et)| {
                it.insert(record.id.as_bytes(), rec.as_slice())?;
                for (k, v) in &evs {
                    et.insert(k.as_slice(), v.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| StorageError::Db(format!("{e:?}")))
    }

    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>, StorageError> {
        let start = event_key(id, after.saturating_add(1));
        let end = event_key(id, u64::MAX);
        let mut out = Vec::new();
        for item in self.events.range(start..=end) {
            let (k, v) = item.map_err(db_err)?;
            let seq_bytes: [u8; 8] = k[k.len().saturating_sub(8)..]
                .try_into()
                .map_err(|_| StorageError::Codec("bad event key".into()))?;
            let (&ver, body) = v
                .split_first()
                .ok_or_else(|| StorageError::Codec("empty event".into()))?;
            if ver != EVENT_VERSION {
                return Err(StorageError::UnknownVersion(ver));
            }
            let text =
                String::from_utf8(body.to_vec()).map_err(|e| StorageError::Codec(e.to_string()))?;
            out.push((u64::from_be_bytes(seq_bytes), text));
        }
        Ok(out)
    }

    fn candidate_interviews(&self, candidate_id: &str) -> Result<Vec<String>, StorageError> {
        let mut prefix = candidate_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.candidates.scan_prefix(prefix) {
            let (_, v) = item.map_err(db_err)?;
            out.push(String::from_utf8_lossy(&v).to_string());
        }
        Ok(out)
    }

    async fn flush(&self) -> Result<(), StorageError> {
        UsageLedger::flush(self).await
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
            UsageLedger::store(&s, "groq#1", &rec).unwrap();
            UsageLedger::flush(&s).await.unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(UsageLedger::load(&s, "groq#1").unwrap(), Some(rec));
        assert_eq!(UsageLedger::load(&s, "groq#2").unwrap(), None);
    }

    #[test]
    fn unknown_version_is_an_error_not_a_crash() {
        let s = SledStore::temporary().unwrap();
        s.usage.insert("x", vec![99u8, 1, 2, 3]).unwrap();
        assert!(matches!(
            UsageLedger::load(&s, "x"),
            Err(StorageError::UnknownVersion(99))
        ));
    }
}
