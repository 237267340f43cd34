//! The sled implementation of the storage traits: one database directory, one tree per kind of record.
//! Writes go to sled at once; `flush` makes them durable before a reply that depends on them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};

use super::{decode, encode, SessionLog, StorageError, UsageLedger};
use crate::interview::InterviewRecord;
use crate::quota::UsageRecord;

/// Version 2 added the cost-unit, spend and month counters and the durable block; version 1 records
/// are upgraded on read (no block: they were written exactly, flushed per admission).
const USAGE_VERSION: u8 = 2;

/// The usage record as layout 1 wrote it.
#[derive(serde::Deserialize)]
struct UsageRecordV1 {
    version: u16,
    day: String,
    requests_day: u64,
    tokens_day: u64,
    minute: Vec<(i64, u64, u64)>,
    blocked_until_ms: Option<i64>,
}

impl From<UsageRecordV1> for UsageRecord {
    fn from(v: UsageRecordV1) -> Self {
        UsageRecord {
            version: v.version,
            day: v.day,
            requests_day: v.requests_day,
            tokens_day: v.tokens_day,
            minute: v.minute,
            blocked_until_ms: v.blocked_until_ms,
            ..UsageRecord::default()
        }
    }
}
/// Version 2 added the call budget's level, steps and `ending`; version 1 records are upgraded on read.
const INTERVIEW_VERSION: u8 = 2;
const EVENT_VERSION: u8 = 1;

/// A sled database holding the engine's durable state.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    usage: sled::Tree,
    interviews: sled::Tree,
    events: sled::Tree,
    candidates: sled::Tree,
    group: Arc<GroupFlush>,
}

/// Group commit: callers that need their writes durable share flushes, one at a time.
///
/// sled 0.34 runs each `flush_async` on its own small I/O thread pool and blocks a pool thread until
/// the log is stable, while writing the log needs a pool thread too: thousands of concurrent
/// `flush_async` calls (one per live session) fill the pool with waiters and stall the database
/// (seen at 5,000 sessions). Here one flush runs at a time; a caller takes a ticket after its writes
/// and returns once a flush that started after its ticket has finished, so one fsync serves every
/// write that was waiting for it.
struct GroupFlush {
    /// Tickets handed out.
    issued: AtomicU64,
    /// Highest ticket known durable.
    durable: watch::Sender<u64>,
    /// Held by the caller that is flushing.
    flushing: Mutex<()>,
}

impl GroupFlush {
    fn new() -> Self {
        Self {
            issued: AtomicU64::new(0),
            durable: watch::Sender::new(0),
            flushing: Mutex::new(()),
        }
    }

    async fn flush(&self, db: &sled::Db) -> Result<(), StorageError> {
        let ticket = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        let mut rx = self.durable.subscribe();
        loop {
            if *rx.borrow_and_update() >= ticket {
                return Ok(());
            }
            if let Ok(guard) = self.flushing.try_lock() {
                // Every ticket issued so far belongs to writes made before this flush starts.
                let upto = self.issued.load(Ordering::Acquire);
                let flushed = db.flush_async().await;
                // Unlock before announcing: a waiter woken by the announcement must find the lock
                // free (or held by a flusher that will announce again). Announcing first lost that
                // wake-up: a caller whose ticket the flush did not cover, failing `try_lock` just
                // before the unlock, then waited for an announcement that never came.
                drop(guard);
                match flushed {
                    Ok(_) => self.durable.send_modify(|d| *d = (*d).max(upto)),
                    Err(e) => {
                        // Waiters look again (one of them flushes) rather than wait forever.
                        self.durable.send_modify(|_| {});
                        return Err(StorageError::Db(e.to_string()));
                    }
                }
                continue;
            }
            // Someone else is flushing: wait for it to finish, then look again.
            if rx.changed().await.is_err() {
                return Err(StorageError::Db("flusher gone".into()));
            }
        }
    }
}

impl SledStore {
    /// Opens (or creates) the database in `path` with sled's default page cache.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_cache(path, 1 << 30)
    }

    /// Opens (or creates) the database in `path` with a page cache of `cache_bytes`.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
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
            group: Arc::new(GroupFlush::new()),
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
            Ok(Some(bytes)) if bytes.first() == Some(&1) => {
                decode::<UsageRecordV1>(1, &bytes).map(|v1| Some(v1.into()))
            }
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
        self.group.flush(&self.db).await
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
            Some(b) if b.first() == Some(&1) => {
                decode::<crate::interview::InterviewRecordV1>(1, &b).map(|v1| Some(v1.into()))
            }
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
        // No sled transaction (nor `apply_batch`): in sled 0.34 either one switches the process to a
        // global reader-writer lock that deadlocks against concurrent `flush_async` calls (seen with
        // 4,000 live sessions: every engine thread parked in `TransactionalTrees::stage`). Instead the
        // events go in first and the record last: the record is the commit point. Events past the
        // record's `next_seq` (a crash between the two) are never read and are overwritten by the
        // next commit, since they reuse the same keys.
        for (k, v) in &evs {
            self.events
                .insert(k.as_slice(), v.as_slice())
                .map_err(db_err)?;
        }
        self.interviews
            .insert(record.id.as_bytes(), rec)
            .map_err(db_err)?;
        Ok(())
    }

    fn events_after(
        &self,
        id: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        if after >= upto {
            return Ok(Vec::new());
        }
        let start = event_key(id, after.saturating_add(1));
        let end = event_key(id, upto);
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
            version: 2,
            day: "2026-11-23".into(),
            requests_day: 7,
            tokens_day: 900,
            minute: vec![(1, 2, 3)],
            blocked_until_ms: None,
            units_day: 40,
            month: "2026-11".into(),
            requests_month: 70,
            block_requests: 3,
            ..UsageRecord::default()
        };
        {
            let s = SledStore::open(dir.path()).unwrap();
            UsageLedger::store(&s, "groq#1", &rec).unwrap();
            UsageLedger::flush(&s).await.unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(UsageLedger::load(&s, "groq#1").unwrap(), Some(rec));
        assert_eq!(UsageLedger::load(&s, "groq#2").unwrap(), None);
        // A layout 1 record (before cost units and blocks) still loads.
        #[derive(serde::Serialize)]
        struct V1 {
            version: u16,
            day: String,
            requests_day: u64,
            tokens_day: u64,
            minute: Vec<(i64, u64, u64)>,
            blocked_until_ms: Option<i64>,
        }
        let v1 = V1 {
            version: 1,
            day: "2026-11-23".into(),
            requests_day: 8,
            tokens_day: 100,
            minute: vec![],
            blocked_until_ms: None,
        };
        s.usage.insert("old#1", encode(1, &v1).unwrap()).unwrap();
        let old = UsageLedger::load(&s, "old#1").unwrap().unwrap();
        assert_eq!((old.requests_day, old.block_requests), (8, 0));
    }

    /// Thousands of concurrent write-then-flush callers (one per live session) all finish: the group
    /// flush never lets them starve sled's I/O pool. Without it this test hangs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thousands_of_concurrent_flushes_finish() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..3000u32)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    for round in 0..3u32 {
                        s.usage
                            .insert(format!("k{i}"), round.to_be_bytes().to_vec())
                            .unwrap();
                        UsageLedger::flush(&s).await.unwrap();
                    }
                })
            })
            .collect();
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(std::time::Duration::from_secs(120), all).await;
        assert!(done.is_ok(), "flushes stalled");
        assert_eq!(s.usage.len(), 3000);
        let issued = s.group.issued.load(Ordering::Relaxed);
        assert_eq!(issued, 9000, "every caller took a ticket");
        assert!(
            *s.group.durable.borrow() >= issued,
            "every ticket is durable"
        );
    }

    /// A record written before the call budget (layout 1) still loads, upgraded: an economy
    /// interview of that time ran without provider calls, so it is read at the heuristic level (its
    /// next turn asks the budget again).
    #[test]
    fn version_1_interview_records_are_upgraded_on_read() {
        use crate::budget::Level;
        use crate::interview::{Candidate, InterviewRecordV1, Phase};
        let s = SledStore::temporary().unwrap();
        let v1 = |id: &str, mode: &str| InterviewRecordV1 {
            id: id.into(),
            token_sha256: "00".into(),
            candidate: Candidate {
                id: "c".into(),
                name: "Ada".into(),
            },
            role: "SRE".into(),
            track: Default::default(),
            difficulty: Default::default(),
            mode: mode.into(),
            created_ms: 1,
            updated_ms: 2,
            resume: None,
            questions: Vec::new(),
            items: Vec::new(),
            current: 0,
            in_follow_up: false,
            phase: Phase::AwaitingAnswer,
            next_seq: 5,
            report: None,
            follow_ups_asked: 1,
        };
        for (id, mode, level) in [
            ("old-eco", "economy", Level::Heuristic),
            ("old-bal", "balanced", Level::Balanced),
            ("old-auto", "auto", Level::Adaptive),
        ] {
            s.interviews
                .insert(id, encode(1, &v1(id, mode)).unwrap())
                .unwrap();
            let r = SessionLog::load(&s, id).unwrap().unwrap();
            assert_eq!((r.level, r.next_seq, r.follow_ups_asked), (level, 5, 1));
            assert!(r.steps.is_empty() && r.ending.is_none());
            // Written back, it is a version 2 record.
            SessionLog::commit(&s, &r, &[]).unwrap();
            assert_eq!(s.interviews.get(id).unwrap().unwrap()[0], INTERVIEW_VERSION);
        }
        s.interviews.insert("bad", vec![9u8, 0]).unwrap();
        assert!(matches!(
            SessionLog::load(&s, "bad"),
            Err(StorageError::UnknownVersion(9))
        ));
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
