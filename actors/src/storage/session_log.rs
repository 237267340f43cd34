//! The session log: per interview, its record (the session's whole state) and its numbered events.
//! A step of a session commits its new record and its new events in one transaction, then flushes;
//! only then are the events sent. Replays read events after a sequence number.

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
    /// Writes the record and appends `events` (JSON text, numbered by their `seq`) atomically.
    fn commit(
        &self,
        record: &InterviewRecord,
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
    /// Makes everything written so far durable.
    async fn flush(&self) -> Result<(), StorageError>;
}
