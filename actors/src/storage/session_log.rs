//! The session log: per interview, its record (the session's whole state) and its numbered events.
//! A step of a session commits its new record and its new events together, then flushes; only then
//! are the events sent. Replays read events after a sequence number. A commit writes what changed
//! since the last one (each answer once), so disk grows with what candidates send
//! (`storage/layout.rs`); retention removes old interviews (`sweep`).

use async_trait::async_trait;

use super::StorageError;
use crate::interview::InterviewRecord;

/// Durable interview state and event log. Implemented by sled first; a Redis implementation can share
/// one log between nodes later.
#[async_trait]
pub trait SessionLog: Send + Sync + 'static {
    /// Stores a new interview and indexes it under its candidate.
    fn create(&self, record: &InterviewRecord) -> Result<(), StorageError>;
    /// The interview's record.
    fn load(&self, id: &str) -> Result<Option<InterviewRecord>, StorageError>;
    /// Writes what changed in the record since it was loaded or last committed, and appends
    /// `events` (JSON text, numbered by their `seq`), atomically: the record's small part is written
    /// last and is the commit point. Remembers in `record.stored` what is now stored.
    fn commit(
        &self,
        record: &mut InterviewRecord,
        events: &[(u64, String)],
    ) -> Result<(), StorageError>;
    /// Events with `after < seq <= upto`, in order. `upto` is the record's last seq: events past it
    /// belong to a commit that never finished and are never read.
    fn events_after(
        &self,
        id: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, String)>, StorageError>;
    /// The candidate's interview ids, oldest first.
    fn candidate_interviews(&self, candidate_id: &str) -> Result<Vec<String>, StorageError>;
    /// Applies the retention policy at `now_ms`: removes transcripts and reports past their age.
    fn sweep(&self, policy: &Retention, now_ms: i64) -> Result<Swept, StorageError>;
    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<(), StorageError>;
}

/// How long finished interviews are kept (`[storage] keep_days`, `report_keep_days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// An interview's transcript (answers and events) is removed this long after its last activity;
    /// None keeps everything.
    pub transcripts_ms: Option<i64>,
    /// A finished interview's report (and the record that lists it in the candidate's history) is
    /// removed this long after its last activity; at least `transcripts_ms`.
    pub reports_ms: Option<i64>,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Interviews whose transcript was removed (their report kept).
    pub transcripts: u64,
    /// Interviews removed entirely.
    pub interviews: u64,
    /// Keys removed.
    pub keys: u64,
}
