//! The sled implementation of the storage traits: one database directory, one tree per kind of record.
//! Writes go to sled at once; `flush` makes them durable before a reply that depends on them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};

use super::layout::{self, Meta};
use super::{decode, encode, Retention, SessionLog, StorageError, Swept, UsageLedger};
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
// Interview records: version 2 added the call budget's level, steps and `ending`; version 3 split the
// record (`layout.rs`). Versions 1 and 2 are read and written again as version 3.
const EVENT_VERSION: u8 = 1;
/// A `report` event stored without the answers it quotes (they are stored once, as parts, and put
/// back when the event is read).
const EVENT_REPORT_APART: u8 = 2;

/// A sled database holding the engine's durable state.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    usage: sled::Tree,
    interviews: sled::Tree,
    events: sled::Tree,
    candidates: sled::Tree,
    /// Answers, questions and resume analyses of interviews (`storage/layout.rs`).
    parts: sled::Tree,
    /// Retention index: creation time, interview id.
    retention: sled::Tree,
    /// Interviews whose transcript was removed: last activity, interview id.
    reports: sled::Tree,
    /// Markers of one-time upgrades.
    layout: sled::Tree,
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
                // On tokio's blocking pool rather than sled's `flush_async`: the same fsync, and a
                // runtime whose time is paused (a simulation, `clock.rs`) does not jump to its next
                // timer while the disk works.
                let db = db.clone();
                let flushed = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(r) => r,
                    Err(e) => Err(sled::Error::ReportableBug(format!("flush task: {e}"))),
                };
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
        let store = Self {
            usage: tree("usage")?,
            interviews: tree("interviews")?,
            events: tree("events")?,
            candidates: tree("candidates")?,
            parts: tree("parts")?,
            retention: tree("retention")?,
            reports: tree("report_index")?,
            layout: tree("layout")?,
            group: Arc::new(GroupFlush::new()),
            db,
        };
        store.index_for_retention()?;
        Ok(store)
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

/// The keys of a time index (`time_key`) that sort before `cut_ms`, oldest first.
fn keys_before(index: &sled::Tree, cut_ms: i64) -> Result<Vec<sled::IVec>, StorageError> {
    index
        .range(..time_key(cut_ms, ""))
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)
}

/// Retention index key: creation time (ms, big-endian), then the interview id.
fn time_key(ms: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + id.len());
    k.extend_from_slice(&u64::try_from(ms.max(0)).unwrap_or(0).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Candidate index key: candidate id, 0, creation time (ms, big-endian), interview id.
fn candidate_key(candidate_id: &str, created_ms: i64, id: &str) -> Vec<u8> {
    let mut k = candidate_id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&created_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// A `report` event with the answers it quotes replaced by null (they are stored as parts), or
/// None when it is not such an event.
fn report_without_answers(json: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(json).ok()?;
    for q in v["report"]["questions"].as_array_mut()? {
        if q["answer"].is_string() {
            q["answer"] = serde_json::Value::Null;
        }
        if q["follow_up"]["answer"].is_string() {
            q["follow_up"]["answer"] = serde_json::Value::Null;
        }
    }
    Some(v.to_string())
}

fn part_text(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 1);
    v.push(layout::PART_VERSION);
    v.extend_from_slice(text.as_bytes());
    v
}

fn text_of_part(bytes: &[u8]) -> Result<String, StorageError> {
    let (&v, body) = bytes
        .split_first()
        .ok_or_else(|| StorageError::Codec("empty part".into()))?;
    if v != layout::PART_VERSION {
        return Err(StorageError::UnknownVersion(v));
    }
    String::from_utf8(body.to_vec()).map_err(|e| StorageError::Codec(e.to_string()))
}

/// What the `interviews` tree holds for one id.
enum Stored {
    /// Layout 1 or 2: the whole record.
    Whole(Box<InterviewRecord>),
    /// Layout 3: the small part; the rest is in `parts` and `events`.
    Meta(Box<Meta>),
}

impl SledStore {
    fn read(&self, id: &str) -> Result<Option<Stored>, StorageError> {
        Ok(match self.interviews.get(id.as_bytes()).map_err(db_err)? {
            Some(b) if b.first() == Some(&1) => Some(Stored::Whole(Box::new(
                decode::<crate::interview::InterviewRecordV1>(1, &b)?.into(),
            ))),
            Some(b) if b.first() == Some(&2) => Some(Stored::Whole(Box::new(decode(2, &b)?))),
            Some(b) => Some(Stored::Meta(Box::new(decode(layout::META_VERSION, &b)?))),
            None => None,
        })
    }

    fn event_text(&self, id: &str, seq: u64) -> Result<Option<String>, StorageError> {
        match self.events.get(event_key(id, seq)).map_err(db_err)? {
            Some(v) => self.event_from(id, &v).map(Some),
            None => Ok(None),
        }
    }

    /// An event as stored, as sent: a report stored without its answers gets them back.
    fn event_from(&self, id: &str, stored: &[u8]) -> Result<String, StorageError> {
        let (&ver, body) = stored
            .split_first()
            .ok_or_else(|| StorageError::Codec("empty event".into()))?;
        let text =
            || String::from_utf8(body.to_vec()).map_err(|e| StorageError::Codec(e.to_string()));
        match ver {
            EVENT_VERSION => text(),
            EVENT_REPORT_APART => {
                let mut v: serde_json::Value =
                    serde_json::from_slice(body).map_err(|e| StorageError::Codec(e.to_string()))?;
                let questions = v["report"]["questions"].as_array_mut();
                for (n, q) in questions.into_iter().flatten().enumerate() {
                    for (follow, slot) in [(false, "answer"), (true, "follow_up")] {
                        let target = if follow {
                            q.get_mut(slot)
                        } else {
                            Some(&mut *q)
                        };
                        let Some(t) = target.filter(|t| t.is_object()) else {
                            continue;
                        };
                        if let Some(b) = self
                            .parts
                            .get(layout::answer_key(id, n, follow))
                            .map_err(db_err)?
                        {
                            t["answer"] = serde_json::Value::String(text_of_part(&b)?);
                        }
                    }
                }
                Ok(v.to_string())
            }
            other => Err(StorageError::UnknownVersion(other)),
        }
    }

    fn parts_of(&self, meta: &Meta) -> Result<layout::Parts, StorageError> {
        let id = meta.id.as_str();
        let mut questions = Vec::with_capacity(meta.questions as usize);
        for i in 0..meta.questions as usize {
            let b = self
                .parts
                .get(layout::question_key(id, i))
                .map_err(db_err)?
                .ok_or_else(|| StorageError::Codec(format!("{id}: question {i} missing")))?;
            questions.push(Arc::new(decode(layout::PART_VERSION, &b)?));
        }
        let answer =
            |n: usize, follow: bool, len: Option<u32>| -> Result<Option<String>, StorageError> {
                if len.is_none() || meta.pruned {
                    return Ok(None);
                }
                match self
                    .parts
                    .get(layout::answer_key(id, n, follow))
                    .map_err(db_err)?
                {
                    Some(b) => text_of_part(&b).map(Some),
                    None => Err(StorageError::Codec(format!("{id}: answer {n} missing"))),
                }
            };
        let mut answers = Vec::with_capacity(meta.items.len());
        for (n, item) in meta.items.iter().enumerate() {
            let follow = item.follow_up.as_ref().and_then(|f| f.answer_len);
            answers.push((answer(n, false, item.answer_len)?, answer(n, true, follow)?));
        }
        let resume = match meta.has_resume {
            true => self
                .parts
                .get(layout::resume_key(id))
                .map_err(db_err)?
                .map(|b| decode(layout::PART_VERSION, &b))
                .transpose()?,
            false => None,
        };
        let report = match meta.report_seq {
            Some(seq) => self
                .event_text(id, seq)?
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .map(|v| v["report"].to_string()),
            None => self
                .parts
                .get(layout::report_key(id))
                .map_err(db_err)?
                .map(|b| text_of_part(&b))
                .transpose()?,
        };
        Ok(layout::Parts {
            questions,
            answers,
            resume,
            report,
        })
    }

    /// Removes every key of interview `id` (whose meta is `meta`): parts, events, indexes, record.
    fn remove_interview(&self, meta: &Meta) -> Result<u64, StorageError> {
        let mut n = 0;
        for tree in [&self.parts, &self.events] {
            for item in tree.scan_prefix(layout::prefix(&meta.id)) {
                let (k, _) = item.map_err(db_err)?;
                tree.remove(k).map_err(db_err)?;
                n += 1;
            }
        }
        self.candidates
            .remove(candidate_key(&meta.candidate.id, meta.created_ms, &meta.id))
            .map_err(db_err)?;
        self.retention
            .remove(time_key(meta.created_ms, &meta.id))
            .map_err(db_err)?;
        self.reports
            .remove(time_key(meta.updated_ms, &meta.id))
            .map_err(db_err)?;
        self.interviews.remove(meta.id.as_bytes()).map_err(db_err)?;
        Ok(n + 1)
    }

    /// Removes a finished interview's transcript (answers, every event but the report), keeping
    /// its record and report until the reports' retention.
    fn prune_transcript(&self, mut meta: Meta) -> Result<u64, StorageError> {
        let mut n = 0;
        for item in self.parts.scan_prefix(layout::prefix(&meta.id)) {
            let (k, _) = item.map_err(db_err)?;
            if k.get(meta.id.len() + 1) == Some(&b'a') {
                self.parts.remove(k).map_err(db_err)?;
                n += 1;
            }
        }
        let keep = meta.report_seq.map(|seq| event_key(&meta.id, seq));
        for item in self.events.scan_prefix(layout::prefix(&meta.id)) {
            let (k, _) = item.map_err(db_err)?;
            if keep.as_deref() != Some(&k[..]) {
                self.events.remove(k).map_err(db_err)?;
                n += 1;
            }
        }
        meta.pruned = true;
        self.interviews
            .insert(meta.id.as_bytes(), encode(layout::META_VERSION, &meta)?)
            .map_err(db_err)?;
        self.reports
            .insert(time_key(meta.updated_ms, &meta.id), &[])
            .map_err(db_err)?;
        self.retention
            .remove(time_key(meta.created_ms, &meta.id))
            .map_err(db_err)?;
        Ok(n)
    }

    /// Indexes, once, interviews written before the retention index existed.
    fn index_for_retention(&self) -> Result<(), StorageError> {
        const DONE: &[u8] = b"retention-index-1";
        if self.layout.contains_key(DONE).map_err(db_err)? {
            return Ok(());
        }
        for item in self.interviews.iter() {
            let (k, _) = item.map_err(db_err)?;
            let id = String::from_utf8_lossy(&k).to_string();
            let created = match self.read(&id) {
                Ok(Some(Stored::Whole(r))) => r.created_ms,
                Ok(Some(Stored::Meta(m))) => m.created_ms,
                _ => continue, // unreadable: left alone
            };
            self.retention
                .insert(time_key(created, &id), &[])
                .map_err(db_err)?;
        }
        self.layout.insert(DONE, b"1").map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl SessionLog for SledStore {
    fn create(&self, record: &InterviewRecord) -> Result<(), StorageError> {
        let id = record.id.as_str();
        for (i, q) in record.questions.iter().enumerate() {
            self.parts
                .insert(
                    layout::question_key(id, i),
                    encode(layout::PART_VERSION, &**q)?,
                )
                .map_err(db_err)?;
        }
        if let Some(r) = &record.resume {
            self.parts
                .insert(layout::resume_key(id), encode(layout::PART_VERSION, r)?)
                .map_err(db_err)?;
        }
        if record.voice != crate::interview::VoiceRecord::default() {
            self.parts
                .insert(
                    layout::voice_key(id),
                    encode(layout::PART_VERSION, &record.voice)?,
                )
                .map_err(db_err)?;
        }
        self.interviews
            .insert(
                id.as_bytes(),
                encode(layout::META_VERSION, &Meta::of(record))?,
            )
            .map_err(db_err)?;
        self.candidates
            .insert(
                candidate_key(&record.candidate.id, record.created_ms, id),
                id.as_bytes(),
            )
            .map_err(db_err)?;
        self.retention
            .insert(time_key(record.created_ms, id), &[])
            .map_err(db_err)?;
        Ok(())
    }

    fn load(&self, id: &str) -> Result<Option<InterviewRecord>, StorageError> {
        match self.read(id)? {
            Some(Stored::Whole(r)) => Ok(Some(*r)),
            Some(Stored::Meta(meta)) => {
                let parts = self.parts_of(&meta)?;
                let mut rec = layout::assemble(*meta, parts);
                if let Some(b) = self.parts.get(layout::voice_key(id)).map_err(db_err)? {
                    rec.voice = decode(layout::PART_VERSION, &b)?;
                    rec.stored.voice = layout::voice_mark(&rec.voice);
                }
                Ok(Some(rec))
            }
            None => Ok(None),
        }
    }

    fn commit(
        &self,
        record: &mut InterviewRecord,
        events: &[(u64, String)],
    ) -> Result<(), StorageError> {
        // No sled transaction (nor `apply_batch`): in sled 0.34 either one switches the process to a
        // global reader-writer lock that deadlocks against concurrent `flush_async` calls (seen with
        // 4,000 live sessions: every engine thread parked in `TransactionalTrees::stage`). Instead the
        // parts and events go in first and the record's small part last: it is the commit point.
        // What a crash leaves before it is never read: events past the record's `next_seq`, an answer
        // its record does not list; they are overwritten by the next commit (same keys).
        let id = record.id.clone();
        let stored = &record.stored;
        let mut questions = Vec::new();
        for (i, q) in record.questions.iter().enumerate() {
            if stored.questions.get(i) != Some(&q.id) {
                self.parts
                    .insert(
                        layout::question_key(&id, i),
                        encode(layout::PART_VERSION, &**q)?,
                    )
                    .map_err(db_err)?;
            }
            questions.push(q.id.clone());
        }
        if let (Some(r), false) = (&record.resume, stored.resume) {
            self.parts
                .insert(layout::resume_key(&id), encode(layout::PART_VERSION, r)?)
                .map_err(db_err)?;
        }
        let mut answers = Vec::with_capacity(record.items.len());
        for (n, item) in record.items.iter().enumerate() {
            let (main, follow) = stored.answers.get(n).copied().unwrap_or_default();
            if let (Some(text), false) = (&item.answer, main) {
                self.parts
                    .insert(layout::answer_key(&id, n, false), part_text(text))
                    .map_err(db_err)?;
            }
            let follow_answer = item.follow_up.as_ref().and_then(|f| f.answer.as_ref());
            if let (Some(text), false) = (follow_answer, follow) {
                self.parts
                    .insert(layout::answer_key(&id, n, true), part_text(text))
                    .map_err(db_err)?;
            }
            answers.push((item.answer.is_some(), follow_answer.is_some()));
        }
        let voice = layout::voice_mark(&record.voice);
        if voice != stored.voice {
            self.parts
                .insert(
                    layout::voice_key(&id),
                    encode(layout::PART_VERSION, &record.voice)?,
                )
                .map_err(db_err)?;
        }
        if let (Some(report), None) = (&record.report, record.report_seq) {
            // Not in the event log (a record written in layout 2): kept beside it, once.
            self.parts
                .insert(layout::report_key(&id), part_text(report))
                .map_err(db_err)?;
        }
        for (seq, json) in events {
            let v = match (Some(*seq) == record.report_seq)
                .then(|| report_without_answers(json))
                .flatten()
            {
                Some(slim) => [&[EVENT_REPORT_APART][..], slim.as_bytes()].concat(),
                None => [&[EVENT_VERSION][..], json.as_bytes()].concat(),
            };
            self.events
                .insert(event_key(&id, *seq), v)
                .map_err(db_err)?;
        }
        let fresh = !stored.layout;
        self.interviews
            .insert(
                id.as_bytes(),
                encode(layout::META_VERSION, &Meta::of(record))?,
            )
            .map_err(db_err)?;
        if fresh {
            // A record first written in this layout (a layout-2 record carrying on) joins the
            // retention index; creation indexed the others.
            self.retention
                .insert(time_key(record.created_ms, &id), &[])
                .map_err(db_err)?;
        }
        record.stored = crate::interview::Stored {
            layout: true,
            answers,
            questions,
            resume: record.resume.is_some(),
            voice,
        };
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
            out.push((u64::from_be_bytes(seq_bytes), self.event_from(id, &v)?));
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

    fn sweep(&self, policy: &Retention, now_ms: i64) -> Result<Swept, StorageError> {
        let mut swept = Swept::default();
        let Some(keep) = policy.transcripts_ms else {
            return Ok(swept);
        };
        let transcripts_cut = now_ms.saturating_sub(keep);
        let reports_cut = policy
            .reports_ms
            .map(|r| now_ms.saturating_sub(r.max(keep)));
        // Interviews created before the cut-off, oldest first (none created later can be due).
        let due = keys_before(&self.retention, transcripts_cut)?;
        for key in due {
            let id = String::from_utf8_lossy(&key[8..]).to_string();
            let meta = match self.read(&id) {
                Ok(Some(Stored::Meta(m))) => *m,
                Ok(Some(Stored::Whole(_))) => {
                    // Layout 2: written in layout 3 first, then handled next time.
                    if let Some(mut r) = SessionLog::load(self, &id)? {
                        r.stored = Default::default();
                        self.commit(&mut r, &[])?;
                    }
                    continue;
                }
                Ok(None) => {
                    self.retention.remove(&key[..]).map_err(db_err)?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(interview = %id, error = %e, "retention: unreadable record left alone");
                    continue;
                }
            };
            if meta.updated_ms >= transcripts_cut {
                continue; // active since: not due yet
            }
            let reported = meta.phase.is_finished();
            if !reported || reports_cut.is_some_and(|cut| meta.updated_ms < cut) {
                swept.keys += self.remove_interview(&meta)?;
                swept.interviews += 1;
            } else {
                swept.keys += self.prune_transcript(meta)?;
                swept.transcripts += 1;
            }
        }
        if let Some(cut) = reports_cut {
            let due = keys_before(&self.reports, cut)?;
            for key in due {
                let id = String::from_utf8_lossy(&key[8..]).to_string();
                match self.read(&id) {
                    Ok(Some(Stored::Meta(m))) => {
                        swept.keys += self.remove_interview(&m)?;
                        swept.interviews += 1;
                    }
                    _ => {
                        self.reports.remove(&key[..]).map_err(db_err)?;
                    }
                }
            }
        }
        Ok(swept)
    }

    async fn flush(&self) -> Result<(), StorageError> {
        UsageLedger::flush(self).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let s = SledStore::temporary().unwrap();
        let v1 = crate::interview::v1_for_tests;
        for (id, mode, level) in [
            ("old-eco", "economy", Level::Heuristic),
            ("old-bal", "balanced", Level::Balanced),
            ("old-auto", "auto", Level::Adaptive),
        ] {
            s.interviews
                .insert(id, encode(1, &v1(id, mode)).unwrap())
                .unwrap();
            let mut r = SessionLog::load(&s, id).unwrap().unwrap();
            assert_eq!((r.level, r.next_seq, r.follow_ups_asked), (level, 5, 1));
            assert!(r.steps.is_empty() && r.ending.is_none());
            // Written back, it is a version 3 record, and reads back the same.
            SessionLog::commit(&s, &mut r, &[]).unwrap();
            assert_eq!(
                s.interviews.get(id).unwrap().unwrap()[0],
                layout::META_VERSION
            );
            let again = SessionLog::load(&s, id).unwrap().unwrap();
            assert_eq!(
                (again.level, again.next_seq, again.mode),
                (level, 5, r.mode)
            );
        }
        s.interviews.insert("bad", vec![9u8, 0]).unwrap();
        assert!(matches!(
            SessionLog::load(&s, "bad"),
            Err(StorageError::UnknownVersion(9))
        ));
    }

    fn question(i: usize) -> Arc<crate::content::question_pool::Question> {
        Arc::new(crate::content::question_pool::Question {
            id: format!("q-{i}"),
            domain: "backend".into(),
            category: crate::content::question_pool::Category::TechnicalMedium,
            difficulty: Default::default(),
            tags: vec!["sql".into()],
            text: format!("Question number {i}?"),
            rubric: vec!["indexes".into(), "plans".into()],
            follow_ups: vec!["And then?".into()],
        })
    }

    fn record(id: &str, questions: usize, created_ms: i64) -> InterviewRecord {
        use crate::interview::{Candidate, Phase};
        InterviewRecord {
            id: id.into(),
            token_sha256: "ab".into(),
            candidate: Candidate {
                id: format!("cand-{id}"),
                name: "Ada".into(),
            },
            role: "SRE".into(),
            track: Default::default(),
            difficulty: Default::default(),
            mode: crate::budget::Mode::Auto,
            created_ms,
            updated_ms: created_ms,
            resume: Some(crate::content::resume::analyze_offline("Rust, 5 years")),
            questions: (0..questions).map(question).collect(),
            items: Vec::new(),
            current: 0,
            in_follow_up: false,
            phase: Phase::Created,
            next_seq: 1,
            report: None,
            follow_ups_asked: 0,
            level: crate::budget::Level::Heuristic,
            steps: Vec::new(),
            ending: None,
            report_seq: None,
            stored: Default::default(),
            voice: Default::default(),
        }
    }

    /// The voice record is its own part: written at creation when the interviewer speaks, again
    /// when a spoken answer or a barge-in is added, read back with the record, removed with the
    /// transcript.
    #[test]
    fn the_voice_record_is_stored_apart_and_written_when_it_changes() {
        use crate::interview::SpokenTurn;
        let s = SledStore::temporary().unwrap();
        let mut r = record("v1", 2, 1);
        r.voice.enabled = true;
        SessionLog::create(&s, &r).unwrap();
        assert!(SessionLog::load(&s, "v1").unwrap().unwrap().voice.enabled);
        let mut r = SessionLog::load(&s, "v1").unwrap().unwrap();
        r.voice.answers.push(SpokenTurn {
            turn: 1,
            follow_up: false,
            duration_s: 4.5,
            words: vec![crate::voice::Word {
                word: "hash".into(),
                start: 0.2,
                end: 0.5,
            }],
            word_times_exact: false,
            source: "stt:w".into(),
        });
        r.voice.interviewer_ms = 1500;
        SessionLog::commit(&s, &mut r, &[]).unwrap();
        let back = SessionLog::load(&s, "v1").unwrap().unwrap();
        assert_eq!(back.voice, r.voice);
        // Only the talk time changed: not written again (it rides along with the next change).
        let mut r = back;
        r.voice.interviewer_ms = 9000;
        SessionLog::commit(&s, &mut r, &[]).unwrap();
        assert_eq!(
            SessionLog::load(&s, "v1")
                .unwrap()
                .unwrap()
                .voice
                .interviewer_ms,
            1500
        );
        assert!(s.parts.contains_key(layout::voice_key("v1")).unwrap());
    }

    fn item(r: &InterviewRecord, idx: usize) -> crate::content::report::ReportItem {
        crate::content::report::ReportItem {
            index: idx as u32 + 1,
            question_id: r.questions[idx].id.clone(),
            category: "technical_medium".into(),
            difficulty: "medium".into(),
            question: r.questions[idx].text.clone(),
            answer: None,
            audio_duration_s: None,
            score: None,
            feedback: String::new(),
            rubric_covered: Vec::new(),
            rubric_missed: Vec::new(),
            source: "pool".into(),
            follow_up: None,
        }
    }

    /// Plays an interview through its commits as a session does; returns it.
    fn play(s: &SledStore, id: &str, answer: &str, created_ms: i64) -> InterviewRecord {
        use crate::interview::Phase;
        let mut r = record(id, 2, created_ms);
        SessionLog::create(s, &r).unwrap();
        let mut r2 = SessionLog::load(s, id).unwrap().unwrap();
        r2.items.push(item(&r2, 0));
        r2.phase = Phase::AwaitingAnswer;
        SessionLog::commit(s, &mut r2, &[(1, "{\"type\":\"interviewer\"}".into())]).unwrap();
        r2.next_seq = 2;
        r2.items[0].answer = Some(answer.to_string());
        r2.phase = Phase::Evaluating;
        SessionLog::commit(s, &mut r2, &[]).unwrap();
        r2.items[0].score = Some(4);
        r2.items[0].feedback = "More depth.".into();
        r2.items[0].follow_up = Some(crate::content::report::FollowUpItem {
            question: "Why?".into(),
            answer: None,
            score: None,
        });
        r2.phase = Phase::AwaitingAnswer;
        SessionLog::commit(s, &mut r2, &[(2, "{\"type\":\"evaluation\"}".into())]).unwrap();
        r2.next_seq = 3;
        if let Some(f) = r2.items[0].follow_up.as_mut() {
            f.answer = Some(format!("{answer} (follow-up)"));
        }
        SessionLog::commit(s, &mut r2, &[]).unwrap();
        r2.items.push(item(&r2, 1));
        r2.items[1].answer = Some("second".into());
        r2.phase = Phase::Completed;
        let report = serde_json::json!({"overall_score": 4, "questions": [
            {"answer": answer, "follow_up": {"answer": format!("{answer} (follow-up)"), "score": null}},
            {"answer": "second", "follow_up": null},
        ]});
        r2.report = Some(report.to_string());
        r2.report_seq = Some(3);
        let report_event =
            serde_json::json!({"type": "report", "report": report, "seq": 3}).to_string();
        SessionLog::commit(s, &mut r2, &[(3, report_event)]).unwrap();
        r2.next_seq = 4;
        SessionLog::commit(s, &mut r2, &[]).unwrap();
        r = r2;
        r
    }

    #[test]
    fn a_record_reads_back_as_it_was_committed_and_answers_are_written_once() {
        let s = SledStore::temporary().unwrap();
        let r = play(&s, "i1", "an answer", 1_000);
        let back = SessionLog::load(&s, "i1").unwrap().unwrap();
        assert_eq!(back.items, r.items);
        assert_eq!(back.questions.len(), 2);
        assert_eq!(back.questions[1].text, "Question number 1?");
        assert_eq!(
            back.resume.as_ref().map(|a| &a.skills),
            r.resume.as_ref().map(|a| &a.skills)
        );
        assert_eq!(back.report_value(), r.report_value());
        assert_eq!(
            back.report_value().unwrap()["questions"][0]["answer"],
            "an answer"
        );
        assert_eq!(
            (back.next_seq, back.phase, back.report_seq),
            (4, r.phase, Some(3))
        );
        // The report is stored once, as its event, and the answers it quotes are not stored in it
        // again; replayed, the event is what was sent.
        assert!(!s.parts.contains_key(layout::report_key("i1")).unwrap());
        let stored = s.events.get(event_key("i1", 3)).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("an answer"));
        let replayed = SessionLog::events_after(&s, "i1", 2, 3).unwrap();
        let sent = serde_json::json!({"type": "report", "report": r.report_value(), "seq": 3});
        assert_eq!(replayed, vec![(3, sent.to_string())]);
        // An answer is written by the commit that records it, and never again: remove it behind
        // the record's back, commit, and it stays gone.
        let mut again = back.clone();
        s.parts.remove(layout::answer_key("i1", 0, false)).unwrap();
        again.items[1].feedback = "changed".into();
        SessionLog::commit(&s, &mut again, &[]).unwrap();
        assert!(!s
            .parts
            .contains_key(layout::answer_key("i1", 0, false))
            .unwrap());
    }

    #[test]
    fn an_answer_written_before_a_crash_but_not_committed_is_never_read() {
        use crate::interview::Phase;
        let s = SledStore::temporary().unwrap();
        let r = record("i2", 1, 1_000);
        SessionLog::create(&s, &r).unwrap();
        let mut r = SessionLog::load(&s, "i2").unwrap().unwrap();
        r.items.push(item(&r, 0));
        r.phase = Phase::AwaitingAnswer;
        SessionLog::commit(&s, &mut r, &[]).unwrap();
        // The answer went in; the process died before the record did.
        s.parts
            .insert(layout::answer_key("i2", 0, false), part_text("lost"))
            .unwrap();
        let mut back = SessionLog::load(&s, "i2").unwrap().unwrap();
        assert_eq!(back.items[0].answer, None);
        // The answer given after the restart is the one kept.
        back.items[0].answer = Some("kept".into());
        SessionLog::commit(&s, &mut back, &[]).unwrap();
        let back = SessionLog::load(&s, "i2").unwrap().unwrap();
        assert_eq!(back.items[0].answer.as_deref(), Some("kept"));
    }

    #[test]
    fn retention_removes_transcripts_then_reports_and_leaves_recent_interviews() {
        let s = SledStore::temporary().unwrap();
        let day = 86_400_000i64;
        let now = 100 * day;
        play(&s, "old", "an old answer", now - 40 * day);
        play(&s, "older", "a very old answer", now - 200 * day);
        play(&s, "new", "a new answer", now - day);
        let mut abandoned = record("abandoned", 2, now - 40 * day);
        SessionLog::create(&s, &abandoned).unwrap();
        abandoned.stored = Default::default();
        let policy = Retention {
            transcripts_ms: Some(30 * day),
            reports_ms: Some(90 * day),
        };
        let swept = SessionLog::sweep(&s, &policy, now).unwrap();
        assert_eq!((swept.transcripts, swept.interviews), (1, 2), "{swept:?}");
        // The old one keeps its record and report, not its answers or other events.
        let old = SessionLog::load(&s, "old").unwrap().unwrap();
        let report = old.report_value().unwrap();
        assert_eq!(report["overall_score"], 4);
        // The report outlives the transcript without the answers it quoted.
        assert_eq!(report["questions"][0]["answer"], serde_json::Value::Null);
        assert!(old.items.iter().all(|i| i.answer.is_none()));
        assert_eq!(SessionLog::events_after(&s, "old", 0, 3).unwrap().len(), 1);
        assert_eq!(
            SessionLog::candidate_interviews(&s, "cand-old").unwrap(),
            ["old"]
        );
        // The oldest and the abandoned one are gone, every key of them.
        for id in ["older", "abandoned"] {
            assert!(SessionLog::load(&s, id).unwrap().is_none(), "{id}");
            assert_eq!(s.parts.scan_prefix(layout::prefix(id)).count(), 0, "{id}");
            assert_eq!(s.events.scan_prefix(layout::prefix(id)).count(), 0, "{id}");
            assert!(SessionLog::candidate_interviews(&s, &format!("cand-{id}"))
                .unwrap()
                .is_empty());
        }
        // The recent one is untouched.
        let new = SessionLog::load(&s, "new").unwrap().unwrap();
        assert_eq!(new.items[0].answer.as_deref(), Some("a new answer"));
        // A sweep again changes nothing; 60 days on, the old report goes too.
        assert_eq!(
            SessionLog::sweep(&s, &policy, now).unwrap(),
            Swept::default()
        );
        let swept = SessionLog::sweep(&s, &policy, now + 60 * day).unwrap();
        assert!(swept.interviews >= 1, "{swept:?}");
        assert!(SessionLog::load(&s, "old").unwrap().is_none());
        // Keeping everything keeps everything.
        let keep = Retention {
            transcripts_ms: None,
            reports_ms: None,
        };
        assert_eq!(
            SessionLog::sweep(&s, &keep, now + 1000 * day).unwrap(),
            Swept::default()
        );
    }

    fn dir_bytes(dir: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut total = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    total += m.blocks() * 512;
                }
            }
        }
        total
    }

    /// Retention gives the disk back: removed interviews' blobs go at once, and sled reuses the
    /// segments they leave, so a database that keeps taking interviews while the sweeper removes
    /// the old ones levels off instead of growing (sled never shrinks its file: the level is the
    /// bound). Eight rounds of 40 interviews of 2 × 60 KiB answers, each removed after the next.
    #[tokio::test]
    async fn space_is_reclaimed_and_reused_after_sweeps_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000i64;
        let big = "x".repeat(60 * 1024);
        let policy = Retention {
            transcripts_ms: Some(day),
            reports_ms: Some(day),
        };
        let round = |s: &SledStore, r: usize| {
            for i in 0..40 {
                play(s, &format!("r{r}-{i}"), &big, day);
            }
        };
        let first = {
            let s = SledStore::open(dir.path()).unwrap();
            round(&s, 0);
            UsageLedger::flush(&s).await.unwrap();
            let first = dir_bytes(dir.path());
            assert_eq!(
                SessionLog::sweep(&s, &policy, 100 * day)
                    .unwrap()
                    .interviews,
                40
            );
            UsageLedger::flush(&s).await.unwrap();
            first
        };
        // Reopened (a restart), it carries on in the space it has. sled's flusher thread may hold
        // the file lock for a moment after the last handle is dropped: wait for it, with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let s = loop {
            match SledStore::open(dir.path()) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("reopen: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        let mut sizes = Vec::new();
        for r in 1..8 {
            round(&s, r);
            UsageLedger::flush(&s).await.unwrap();
            sizes.push(dir_bytes(dir.path()));
            SessionLog::sweep(&s, &policy, 100 * day).unwrap();
        }
        eprintln!("one round: {first} B; each next round, before its sweep: {sizes:?}");
        // Kept without reuse, the last rounds would hold six rounds of answers more than the first;
        // reused, they hold about what the second did (sled's timing makes single rounds noisy,
        // so the median of the last three is compared).
        let round_answers = 40 * 2 * big.len() as u64;
        assert!(first > round_answers, "{first}");
        let mut last: Vec<u64> = sizes[4..].to_vec();
        last.sort_unstable();
        assert!(
            last[1] < first + 3 * round_answers,
            "still growing: {first} B, then {sizes:?}"
        );
        assert!(SessionLog::load(&s, "r7-0").unwrap().is_none(), "swept");
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
