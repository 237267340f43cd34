//! `CacheActor`: keeps reusable LLM results (greetings, questions, evaluations, ...) in sled, with a
//! TTL and a size bound per kind, so that interviews cost fewer provider calls.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{decode, encode, StorageError};

/// Layout version of a stored cache record.
const RECORD_VERSION: u8 = 1;

/// How long a caller waits for a read before treating it as a miss.
const GET_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a caller waits for a durable write.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a cached value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// The interviewer's opening line.
    Greeting,
    /// The structured analysis of a resume.
    ResumeAnalysis,
    /// A generated interview question.
    Question,
    /// The evaluation of an answer.
    Evaluation,
    /// The end-of-interview summary.
    Summary,
    /// A conversational reply.
    Response,
}

impl CacheKind {
    /// Every kind, in a fixed order.
    pub const ALL: [CacheKind; 6] = [
        CacheKind::Greeting,
        CacheKind::ResumeAnalysis,
        CacheKind::Question,
        CacheKind::Evaluation,
        CacheKind::Summary,
        CacheKind::Response,
    ];

    /// The kind's name as in config, tree names and stats (`resume_analysis`).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Greeting => "greeting",
            CacheKind::ResumeAnalysis => "resume_analysis",
            CacheKind::Question => "question",
            CacheKind::Evaluation => "evaluation",
            CacheKind::Summary => "summary",
            CacheKind::Response => "response",
        }
    }

    /// Position in [`CacheKind::ALL`].
    fn index(self) -> usize {
        match self {
            CacheKind::Greeting => 0,
            CacheKind::ResumeAnalysis => 1,
            CacheKind::Question => 2,
            CacheKind::Evaluation => 3,
            CacheKind::Summary => 4,
            CacheKind::Response => 5,
        }
    }

    /// Whether several answers are kept per key (variety matters to the candidate).
    fn keeps_variants(self) -> bool {
        matches!(self, CacheKind::Greeting | CacheKind::Question)
    }
}

impl fmt::Display for CacheKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each kind lives, how many entries a kind may hold and how many variants it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// TTL of greetings.
    pub greeting_ttl: Duration,
    /// TTL of resume analyses.
    pub resume_analysis_ttl: Duration,
    /// TTL of questions.
    pub question_ttl: Duration,
    /// TTL of evaluations.
    pub evaluation_ttl: Duration,
    /// TTL of summaries.
    pub summary_ttl: Duration,
    /// TTL of responses.
    pub response_ttl: Duration,
    /// Entries per kind; a put beyond it evicts the oldest entries.
    pub max_entries: usize,
    /// Answers kept per key for greetings and questions (other kinds keep one).
    pub variants: usize,
    /// How often the actor removes expired entries.
    pub sweep_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        Self {
            greeting_ttl: Duration::from_secs(24 * HOUR),
            resume_analysis_ttl: Duration::from_secs(7 * 24 * HOUR),
            question_ttl: Duration::from_secs(HOUR),
            evaluation_ttl: Duration::from_secs(30 * 60),
            summary_ttl: Duration::from_secs(HOUR),
            response_ttl: Duration::from_secs(10 * 60),
            max_entries: 100_000,
            variants: 4,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

impl CacheConfig {
    /// How long an entry of `kind` is served after it was created.
    pub fn ttl(&self, kind: CacheKind) -> Duration {
        match kind {
            CacheKind::Greeting => self.greeting_ttl,
            CacheKind::ResumeAnalysis => self.resume_analysis_ttl,
            CacheKind::Question => self.question_ttl,
            CacheKind::Evaluation => self.evaluation_ttl,
            CacheKind::Summary => self.summary_ttl,
            CacheKind::Response => self.response_ttl,
        }
    }

    /// How many answers an entry of `kind` keeps (at least one).
    pub fn variants_for(&self, kind: CacheKind) -> usize {
        if kind.keeps_variants() {
            self.variants.max(1)
        } else {
            1
        }
    }
}

/// Cache failures. Reads never fail (a problem is a miss); only writes and start-up report these.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The database failed.
    #[error("cache storage failed: {0}")]
    Db(String),
    /// A record could not be encoded.
    #[error("cache record encoding failed: {0}")]
    Codec(String),
    /// The cache actor is stopped or did not answer in time.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// The cache actor could not be started.
    #[error("cache actor failed to start: {0}")]
    Spawn(String),
}

impl From<sled::Error> for CacheError {
    fn from(e: sled::Error) -> Self {
        CacheError::Db(e.to_string())
    }
}

impl From<StorageError> for CacheError {
    fn from(e: StorageError) -> Self {
        CacheError::Codec(e.to_string())
    }
}

/// The cache key of some request parts: hex SHA-256 of the [`normalize`]d parts joined by 0x1f.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0x1f]);
        }
        h.update(normalize(p).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercases, collapses runs of whitespace to one space and trims.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stable 64-bit hash of a pick seed: the first 8 bytes of its SHA-256.
fn seed_hash(seed: &str) -> u64 {
    let digest = Sha256::digest(seed.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Milliseconds since the Unix epoch by the wall clock.
fn now_ms() -> u64 {
    u64::try_from(crate::clock::Clock::wall_ms()).unwrap_or(0)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What is stored under a key (behind [`RECORD_VERSION`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// When the entry was first stored.
    created_ms: u64,
    /// When it stops being served.
    expires_ms: u64,
    /// Answers, oldest first.
    variants: Vec<String>,
}

/// Counters of one kind.
#[derive(Debug, Default)]
struct KindCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    puts: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    entries: AtomicU64,
}

impl KindCounters {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn entry_removed(&self) {
        // Saturating: a record written behind the actor's back may be removed without being counted.
        let _ = self
            .entries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

/// Counters of every kind, shared by the actor and its handles.
#[derive(Debug, Default)]
struct Counters {
    kinds: [KindCounters; 6],
}

impl Counters {
    fn of(&self, kind: CacheKind) -> &KindCounters {
        &self.kinds[kind.index()]
    }

    fn snapshot(&self) -> CacheStats {
        let kinds = CacheKind::ALL
            .iter()
            .map(|&kind| {
                let c = self.of(kind);
                let hits = c.hits.load(Ordering::Relaxed);
                let misses = c.misses.load(Ordering::Relaxed);
                let lookups = hits + misses;
                KindStats {
                    kind,
                    hits,
                    misses,
                    hit_rate: if lookups == 0 {
                        0.0
                    } else {
                        hits as f64 / lookups as f64
                    },
                    entries: c.entries.load(Ordering::Relaxed),
                    puts: c.puts.load(Ordering::Relaxed),
                    evictions: c.evictions.load(Ordering::Relaxed),
                    expired: c.expired.load(Ordering::Relaxed),
                }
            })
            .collect();
        CacheStats { kinds }
    }
}

/// Counters of one kind, as status pages show them.
#[derive(Debug, Clone, Serialize)]
pub struct KindStats {
    /// The kind.
    pub kind: CacheKind,
    /// Reads that were served.
    pub hits: u64,
    /// Reads that were not (absent, expired, unreadable, or the actor was gone).
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 before any read.
    pub hit_rate: f64,
    /// Entries stored now.
    pub entries: u64,
    /// Writes accepted.
    pub puts: u64,
    /// Entries removed to keep the kind within `max_entries`.
    pub evictions: u64,
    /// Entries removed because their TTL passed (on read or by the sweep).
    pub expired: u64,
}

/// Counters of every kind (in [`CacheKind::ALL`] order), since the process started.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// One entry per kind.
    pub kinds: Vec<KindStats>,
}

impl CacheStats {
    /// The counters of one kind.
    pub fn kind(&self, kind: CacheKind) -> Option<&KindStats> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// Messages of the cache actor.
pub enum CacheMsg {
    /// Reads an entry: `None` when absent, expired or unreadable.
    Get {
        /// What the value is.
        kind: CacheKind,
        /// Its key (see [`key`]).
        key: String,
        /// Seed choosing among variants (e.g. the candidate's id); `None` takes the newest.
        pick: Option<String>,
        /// The value.
        reply: RpcReplyPort<Option<String>>,
    },
    /// Stores a value; it is flushed to disk before the reply.
    Put {
        /// What the value is.
        kind: CacheKind,
        /// Its key (see [`key`]).
        key: String,
        /// The value.
        value: String,
        /// Told once the value is durable; `None` for fire-and-forget.
        reply: Option<RpcReplyPort<Result<(), CacheError>>>,
    },
    /// The counters.
    Stats(RpcReplyPort<CacheStats>),
    /// Removes expired entries (sent by the actor to itself every `sweep_interval`).
    Sweep,
}

/// The two trees of one kind.
struct KindStore {
    kind: CacheKind,
    /// key → versioned [`Record`].
    entries: sled::Tree,
    /// `created_ms` (big-endian) ++ key → empty: oldest first.
    by_age: sled::Tree,
}

fn age_key(created_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&created_ms.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// Splits an age key into `created_ms` and the entry key.
fn split_age_key(k: &[u8]) -> Option<(u64, &[u8])> {
    if k.len() < 8 {
        return None;
    }
    let (ms, key) = k.split_at(8);
    let mut b = [0u8; 8];
    b.copy_from_slice(ms);
    Some((u64::from_be_bytes(b), key))
}

impl KindStore {
    fn open(db: &sled::Db, kind: CacheKind) -> Result<Self, CacheError> {
        Ok(Self {
            kind,
            entries: db.open_tree(format!("cache_{}", kind.as_str()))?,
            by_age: db.open_tree(format!("cache_{}_by_age", kind.as_str()))?,
        })
    }

    /// Stores `rec` under `key`, moving its age entry from `old_created` (if any). Returns whether the
    /// key is new.
    fn write(
        &self,
        key: &[u8],
        old_created: Option<u64>,
        rec: &Record,
    ) -> Result<bool, CacheError> {
        let bytes = encode(RECORD_VERSION, rec)?;
        let new_age = age_key(rec.created_ms, key);
        let old_age = old_created.map(|c| age_key(c, key));
        // Plain inserts, no sled transaction: sled 0.34 transactions deadlock against concurrent
        // flushes (see storage/sled_store.rs). Only this actor writes these trees; after a crash
        // between the steps, an age entry that no longer matches its record is dropped by eviction.
        self.by_age.insert(new_age.as_slice(), &[])?;
        let prev = self.entries.insert(key, bytes.as_slice())?;
        if let Some(old) = &old_age {
            if old != &new_age {
                self.by_age.remove(old.as_slice())?;
            }
        }
        Ok(prev.is_none())
    }

    /// Removes `key` and, when known, its age entry. Returns whether the key was there.
    fn remove(&self, key: &[u8], created: Option<u64>) -> Result<bool, CacheError> {
        let age = created.map(|c| age_key(c, key));
        let prev = self.entries.remove(key)?;
        if let Some(a) = &age {
            self.by_age.remove(a.as_slice())?;
        }
        Ok(prev.is_some())
    }

    /// The record under `key`: `Ok(None)` when absent, `Err(())` when unreadable.
    fn read(&self, key: &[u8]) -> Result<Option<Record>, CacheError> {
        match self.entries.get(key)? {
            None => Ok(None),
            Some(bytes) => match decode::<Record>(RECORD_VERSION, &bytes) {
                Ok(rec) => Ok(Some(rec)),
                Err(e) => {
                    tracing::warn!(kind = %self.kind, error = %e, "unreadable cache record; removing it");
                    // The age entry cannot be found without the record; the sweep drops it later.
                    self.remove(key, None)?;
                    Err(CacheError::Codec(e.to_string()))
                }
            },
        }
    }

    /// Removes the entry an age entry points to, if it still does. Returns whether an entry went.
    fn remove_aged(&self, age: &[u8]) -> Result<bool, CacheError> {
        let Some((created, key)) = split_age_key(age) else {
            self.by_age.remove(age)?;
            return Ok(false);
        };
        let owned = match self.entries.get(key)? {
            None => false,
            Some(bytes) => match decode::<Record>(RECORD_VERSION, &bytes) {
                Ok(rec) => rec.created_ms == created,
                // Unreadable: nothing worth keeping.
                Err(_) => true,
            },
        };
        if owned {
            self.remove(key, Some(created))
        } else {
            // The key was rewritten (or removed) since: this age entry is stale.
            self.by_age.remove(age)?;
            Ok(false)
        }
    }
}

/// The cache actor. Its dependencies are in [`CacheArgs`]; everything it changes is in [`CacheState`].
///
/// One tree per kind (`cache_<kind>`) maps a key to a versioned record `{created_ms, expires_ms,
/// variants}`; a record that cannot be read (unknown version, bad bytes) is a miss and is removed, never
/// an error. An expired entry is never served: reads check it against the wall clock and a periodic
/// [`CacheMsg::Sweep`] removes what has expired. A second tree per kind (`cache_<kind>_by_age`, keyed by
/// `created_ms` big-endian followed by the key) finds the oldest entries without a scan for the size
/// bound; both trees change together in one sled transaction. Greetings and questions keep up to
/// `variants` answers per key, so different candidates can be shown different texts.
///
/// The actor is the only writer. Counters live in atomics behind an `Arc`, so [`Cache::stats`] needs no
/// message round trip.
pub struct CacheActor;

/// What the cache actor starts with (built by [`spawn`], which opens the trees).
pub struct CacheArgs {
    /// The database the trees live in (flushed after each put).
    db: sled::Db,
    config: CacheConfig,
    stores: Vec<KindStore>,
    counters: Arc<Counters>,
}

/// The cache actor's state.
pub struct CacheState {
    args: CacheArgs,
    sweeper: Option<tokio::task::JoinHandle<()>>,
}

impl CacheState {
    fn store(&self, kind: CacheKind) -> &KindStore {
        // Built from `CacheKind::ALL`, so every index is present.
        &self.args.stores[kind.index()]
    }

    fn counters(&self, kind: CacheKind) -> &KindCounters {
        self.args.counters.of(kind)
    }

    /// The effective expiry: the stored one, shortened if the configured TTL was lowered since.
    fn expiry(&self, kind: CacheKind, rec: &Record) -> u64 {
        let ttl = duration_ms(self.args.config.ttl(kind));
        rec.expires_ms.min(rec.created_ms.saturating_add(ttl))
    }

    fn get(&self, kind: CacheKind, key: &str, pick: Option<&str>) -> Option<String> {
        let c = self.counters(kind);
        let value = self.lookup(kind, key, pick);
        KindCounters::bump(if value.is_some() { &c.hits } else { &c.misses }, 1);
        value
    }

    fn lookup(&self, kind: CacheKind, key: &str, pick: Option<&str>) -> Option<String> {
        let store = self.store(kind);
        let c = self.counters(kind);
        let rec = match store.read(key.as_bytes()) {
            Ok(Some(rec)) => rec,
            Ok(None) => return None,
            Err(CacheError::Codec(_)) => {
                c.entry_removed();
                return None;
            }
            Err(e) => {
                tracing::warn!(kind = %kind, error = %e, "cache read failed; treating as a miss");
                return None;
            }
        };
        let expired = self.expiry(kind, &rec) <= now_ms();
        if expired || rec.variants.is_empty() {
            match store.remove(key.as_bytes(), Some(rec.created_ms)) {
                Ok(true) => {
                    c.entry_removed();
                    if expired {
                        KindCounters::bump(&c.expired, 1);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(kind = %kind, error = %e, "removing an expired entry failed")
                }
            }
            return None;
        }
        let n = rec.variants.len();
        let i = match pick {
            // The seed picks one of the kind's variant slots; a slot not written yet is a miss, so
            // the caller generates that candidate's text and the entry fills up. `n` is small, so
            // the remainder fits in usize.
            Some(seed) => {
                let slots = self.args.config.variants_for(kind).max(n) as u64;
                let i = usize::try_from(seed_hash(seed) % slots).unwrap_or(0);
                if i >= n {
                    return None;
                }
                i
            }
            None => n - 1,
        };
        rec.variants.into_iter().nth(i)
    }

    async fn put(&self, kind: CacheKind, key: &str, value: String) -> Result<(), CacheError> {
        let store = self.store(kind);
        let c = self.counters(kind);
        let now = now_ms();
        let keep = self.args.config.variants_for(kind);
        let existing = match store.read(key.as_bytes()) {
            Ok(rec) => rec,
            Err(CacheError::Codec(_)) => {
                c.entry_removed();
                None
            }
            Err(e) => return Err(e),
        };
        let (old_created, rec) = match existing {
            // Another answer for a live entry of a kind with variety: keep its lifetime, add the text.
            Some(mut rec) if keep > 1 && self.expiry(kind, &rec) > now => {
                // Slots fill even with a repeated text (a model that always says the same thing
                // still ends the misses); a full entry takes only new texts, dropping the oldest.
                if rec.variants.len() < keep || !rec.variants.contains(&value) {
                    rec.variants.push(value);
                }
                let extra = rec.variants.len().saturating_sub(keep);
                rec.variants.drain(..extra);
                (Some(rec.created_ms), rec)
            }
            // Otherwise the value replaces whatever was there, with a fresh lifetime.
            other => {
                let ttl = duration_ms(self.args.config.ttl(kind));
                let rec = Record {
                    created_ms: now,
                    expires_ms: now.saturating_add(ttl),
                    variants: vec![value],
                };
                (other.map(|r| r.created_ms), rec)
            }
        };
        if store.write(key.as_bytes(), old_created, &rec)? {
            KindCounters::bump(&c.entries, 1);
            self.evict(kind)?;
        }
        KindCounters::bump(&c.puts, 1);
        self.args.db.flush_async().await?;
        Ok(())
    }

    /// Removes the oldest entries of `kind` while it holds more than `max_entries`.
    fn evict(&self, kind: CacheKind) -> Result<(), CacheError> {
        let store = self.store(kind);
        let c = self.counters(kind);
        let max = u64::try_from(self.args.config.max_entries).unwrap_or(u64::MAX);
        while c.entries.load(Ordering::Relaxed) > max {
            let Some((age, _)) = store.by_age.first()? else {
                // Entries without an age entry (written behind our back): recount and stop.
                c.entries
                    .store(store.entries.len() as u64, Ordering::Relaxed);
                break;
            };
            if store.remove_aged(&age)? {
                c.entry_removed();
                KindCounters::bump(&c.evictions, 1);
            }
        }
        Ok(())
    }

    /// Removes every entry of every kind whose TTL has passed.
    fn sweep(&self) {
        let now = now_ms();
        for kind in CacheKind::ALL {
            if let Err(e) = self.sweep_kind(kind, now) {
                tracing::warn!(kind = %kind, error = %e, "cache sweep failed");
            }
        }
    }

    fn sweep_kind(&self, kind: CacheKind, now: u64) -> Result<(), CacheError> {
        let store = self.store(kind);
        let c = self.counters(kind);
        // Everything created at or before `now - ttl` has expired (the effective expiry is at most
        // `created + ttl`); entries stored with a shorter, older TTL go on their next read.
        let cutoff = now.saturating_sub(duration_ms(self.args.config.ttl(kind)));
        let end = (cutoff.saturating_add(1)).to_be_bytes();
        let aged: Vec<sled::IVec> = store
            .by_age
            .range(..end.as_slice())
            .keys()
            .collect::<Result<_, _>>()?;
        let mut removed = 0u64;
        for age in aged {
            if store.remove_aged(&age)? {
                c.entry_removed();
                removed += 1;
            }
        }
        KindCounters::bump(&c.expired, removed);
        if removed > 0 {
            tracing::debug!(kind = %kind, removed, "cache sweep removed expired entries");
        }
        Ok(())
    }
}

#[ractor::async_trait]
impl Actor for CacheActor {
    type Msg = CacheMsg;
    type State = CacheState;
    type Arguments = CacheArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CacheMsg>,
        args: CacheArgs,
    ) -> Result<CacheState, ActorProcessingErr> {
        let interval = args.config.sweep_interval;
        let sweeper =
            (!interval.is_zero()).then(|| myself.send_interval(interval, || CacheMsg::Sweep));
        Ok(CacheState { args, sweeper })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CacheMsg>,
        state: &mut CacheState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(s) = state.sweeper.take() {
            s.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CacheMsg>,
        msg: CacheMsg,
        state: &mut CacheState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CacheMsg::Get {
                kind,
                key,
                pick,
                reply,
            } => {
                let _ = reply.send(state.get(kind, &key, pick.as_deref()));
            }
            CacheMsg::Put {
                kind,
                key,
                value,
                reply,
            } => {
                let res = state.put(kind, &key, value).await;
                if let Err(e) = &res {
                    tracing::warn!(kind = %kind, error = %e, "cache put failed");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(res);
                }
            }
            CacheMsg::Stats(reply) => {
                let _ = reply.send(state.args.counters.snapshot());
            }
            CacheMsg::Sweep => state.sweep(),
        }
        Ok(())
    }
}

/// A cheap, cloneable handle on the cache actor.
#[derive(Clone)]
pub struct Cache {
    actor: ActorRef<CacheMsg>,
    counters: Arc<Counters>,
    /// Cluster mode: the values shared by every node through Redis, behind the local cache.
    shared: Option<Arc<crate::cluster::cache::SharedCache>>,
    /// Variant slots per kind (the shared layer picks like the local cache).
    config: Option<CacheConfig>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("actor", &self.actor.get_id())
            .finish()
    }
}

impl Cache {
    /// Cluster mode: shares the values of the kinds that save provider calls with the other nodes.
    pub fn with_shared(mut self, shared: Arc<crate::cluster::cache::SharedCache>) -> Cache {
        self.shared = Some(shared);
        self
    }

    /// The shared layer, in cluster mode.
    pub fn shared(&self) -> Option<&Arc<crate::cluster::cache::SharedCache>> {
        self.shared.as_ref()
    }

    /// The value stored for `key`, or `None` (absent, expired, unreadable, or the actor is gone).
    /// In cluster mode a local miss asks the other nodes' shared values, and copies a hit here.
    pub async fn get(&self, kind: CacheKind, key: &str, pick: Option<&str>) -> Option<String> {
        let local = self.get_local(kind, key, pick).await;
        if local.is_some() {
            return local;
        }
        let shared = self.shared.as_ref()?;
        let variants = shared.variants(kind, key).await;
        let n = variants.len();
        if n == 0 {
            return None;
        }
        let i = match pick {
            Some(seed) => {
                let slots = self
                    .config
                    .as_ref()
                    .map_or(1, |c| c.variants_for(kind))
                    .max(n) as u64;
                let i = usize::try_from(seed_hash(seed) % slots).unwrap_or(0);
                if i >= n {
                    return None;
                }
                i
            }
            None => n - 1,
        };
        let chosen = variants.get(i).cloned();
        for v in variants {
            let _ = self.actor.cast(CacheMsg::Put {
                kind,
                key: key.to_owned(),
                value: v,
                reply: None,
            });
        }
        chosen
    }

    /// The value stored in this node's cache.
    /// With `pick`, a kind that keeps variants answers the variant chosen by the seed's stable hash,
    /// so each candidate sees a consistent text and different candidates see different ones.
    async fn get_local(&self, kind: CacheKind, key: &str, pick: Option<&str>) -> Option<String> {
        let res = self
            .actor
            .call(
                |reply| CacheMsg::Get {
                    kind,
                    key: key.to_owned(),
                    pick: pick.map(str::to_owned),
                    reply,
                },
                Some(GET_TIMEOUT),
            )
            .await;
        match res {
            Ok(CallResult::Success(v)) => v,
            Ok(CallResult::Timeout) | Ok(CallResult::SenderError) | Err(_) => {
                KindCounters::bump(&self.counters.of(kind).misses, 1);
                None
            }
        }
    }

    fn put_shared(&self, kind: CacheKind, key: &str, value: &str) {
        if let Some(s) = self.shared.clone() {
            let (key, value) = (key.to_owned(), value.to_owned());
            tokio::spawn(async move { s.put(kind, &key, &value).await });
        }
    }

    /// Stores `value` for `key` and waits until it is on disk (in cluster mode, shared as well).
    pub async fn put(&self, kind: CacheKind, key: &str, value: String) -> Result<(), CacheError> {
        self.put_shared(kind, key, &value);
        let res = self
            .actor
            .call(
                |reply| CacheMsg::Put {
                    kind,
                    key: key.to_owned(),
                    value,
                    reply: Some(reply),
                },
                Some(PUT_TIMEOUT),
            )
            .await;
        match res {
            Ok(CallResult::Success(r)) => r,
            Ok(CallResult::Timeout) => Err(CacheError::Unavailable("put timed out".into())),
            Ok(CallResult::SenderError) | Err(_) => {
                Err(CacheError::Unavailable("cache actor stopped".into()))
            }
        }
    }

    /// Stores `value` for `key` without waiting; a failure is only logged.
    pub fn put_detached(&self, kind: CacheKind, key: &str, value: String) {
        self.put_shared(kind, key, &value);
        let _ = self.actor.cast(CacheMsg::Put {
            kind,
            key: key.to_owned(),
            value,
            reply: None,
        });
    }

    /// The counters, read without a message round trip.
    pub fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    /// The actor (for supervision and shutdown).
    pub fn actor(&self) -> &ActorRef<CacheMsg> {
        &self.actor
    }
}

/// Opens the trees of every kind in `db` and starts the cache actor.
pub async fn spawn(
    db: sled::Db,
    config: CacheConfig,
) -> Result<(Cache, tokio::task::JoinHandle<()>), CacheError> {
    spawn_under(db, config, None).await
}

/// [`spawn`], the actor linked to `supervisor` when given (the engine root).
pub async fn spawn_under(
    db: sled::Db,
    config: CacheConfig,
    supervisor: Option<ractor::ActorCell>,
) -> Result<(Cache, tokio::task::JoinHandle<()>), CacheError> {
    let counters = Arc::new(Counters::default());
    let mut stores = Vec::with_capacity(CacheKind::ALL.len());
    for kind in CacheKind::ALL {
        let store = KindStore::open(&db, kind)?;
        // One scan per kind at start; the actor keeps the count from then on.
        counters
            .of(kind)
            .entries
            .store(store.entries.len() as u64, Ordering::Relaxed);
        stores.push(store);
    }
    let kept = config.clone();
    let args = CacheArgs {
        db,
        config,
        stores,
        counters: counters.clone(),
    };
    let spawned = match supervisor {
        Some(sup) => Actor::spawn_linked(None, CacheActor, args, sup).await,
        None => Actor::spawn(None, CacheActor, args).await,
    };
    let (actor, handle) = spawned.map_err(|e| CacheError::Spawn(e.to_string()))?;
    Ok((
        Cache {
            actor,
            counters,
            shared: None,
            config: Some(kept),
        },
        handle,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn config() -> CacheConfig {
        CacheConfig {
            sweep_interval: Duration::ZERO,
            ..CacheConfig::default()
        }
    }

    async fn stop(cache: Cache, handle: tokio::task::JoinHandle<()>) {
        cache.actor().stop(None);
        handle.await.unwrap();
    }

    #[test]
    fn keys_normalize_their_parts() {
        assert_eq!(normalize("  Hello \n\t WORLD  "), "hello world");
        assert_eq!(key(&["Senior  Rust", "x"]), key(&["senior rust ", " X"]));
        assert_ne!(key(&["a b", "c"]), key(&["a", "b c"]));
        let k = key(&["a"]);
        assert_eq!(k.len(), 64);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn kinds_and_defaults() {
        let names: Vec<_> = CacheKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "greeting",
                "resume_analysis",
                "question",
                "evaluation",
                "summary",
                "response"
            ]
        );
        assert_eq!(
            serde_json::to_string(&CacheKind::ResumeAnalysis).unwrap(),
            "\"resume_analysis\""
        );
        for (i, k) in CacheKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let c = CacheConfig::default();
        assert_eq!(c.ttl(CacheKind::Greeting), Duration::from_secs(86_400));
        assert_eq!(
            c.ttl(CacheKind::ResumeAnalysis),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(c.ttl(CacheKind::Evaluation), Duration::from_secs(1800));
        assert_eq!(c.ttl(CacheKind::Response), Duration::from_secs(600));
        assert_eq!(c.variants_for(CacheKind::Question), 4);
        assert_eq!(c.variants_for(CacheKind::Summary), 1);
    }

    #[tokio::test]
    async fn hits_and_misses_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (cache, handle) = spawn(db, config()).await.unwrap();
        let k = key(&["role", "resume"]);
        assert_eq!(cache.get(CacheKind::Summary, &k, None).await, None);
        cache
            .put(CacheKind::Summary, &k, "a summary".into())
            .await
            .unwrap();
        assert_eq!(
            cache.get(CacheKind::Summary, &k, None).await.as_deref(),
            Some("a summary")
        );
        assert_eq!(
            cache
                .get(CacheKind::Summary, &k, Some("anyone"))
                .await
                .as_deref(),
            Some("a summary")
        );
        // Kinds are separate.
        assert_eq!(cache.get(CacheKind::Response, &k, None).await, None);
        // Non-variant kinds overwrite.
        cache
            .put(CacheKind::Summary, &k, "newer".into())
            .await
            .unwrap();
        assert_eq!(
            cache.get(CacheKind::Summary, &k, None).await.as_deref(),
            Some("newer")
        );
        let s = cache.stats();
        let summary = s.kind(CacheKind::Summary).unwrap();
        assert_eq!((summary.hits, summary.misses), (3, 1));
        assert_eq!((summary.entries, summary.puts), (1, 2));
        assert!((summary.hit_rate - 0.75).abs() < 1e-9);
        assert_eq!(s.kind(CacheKind::Response).unwrap().misses, 1);
        let via_actor = cache
            .actor()
            .call(CacheMsg::Stats, Some(Duration::from_secs(2)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(via_actor.kind(CacheKind::Summary).unwrap().hits, 3);
        stop(cache.clone(), handle).await;
        // The actor is gone: a read is a miss, a write an error.
        assert_eq!(cache.get(CacheKind::Summary, &k, None).await, None);
        assert_eq!(cache.stats().kind(CacheKind::Summary).unwrap().misses, 2);
        assert!(matches!(
            cache.put(CacheKind::Summary, &k, "x".into()).await,
            Err(CacheError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn expired_entries_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cfg = CacheConfig {
            // Long enough for the first read to hit even on a loaded machine.
            evaluation_ttl: Duration::from_secs(2),
            ..config()
        };
        let (cache, handle) = spawn(db.clone(), cfg).await.unwrap();
        let k = key(&["answer"]);
        cache
            .put(CacheKind::Evaluation, &k, "8/10".into())
            .await
            .unwrap();
        assert!(cache.get(CacheKind::Evaluation, &k, None).await.is_some());
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        assert_eq!(cache.get(CacheKind::Evaluation, &k, None).await, None);
        let tree = db.open_tree("cache_evaluation").unwrap();
        let by_age = db.open_tree("cache_evaluation_by_age").unwrap();
        assert!(tree.is_empty() && by_age.is_empty());
        let s = cache.stats();
        let ev = s.kind(CacheKind::Evaluation).unwrap();
        assert_eq!((ev.expired, ev.entries, ev.hits, ev.misses), (1, 0, 1, 1));
        stop(cache, handle).await;
    }

    #[tokio::test]
    async fn the_sweep_removes_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cfg = CacheConfig {
            response_ttl: Duration::from_millis(300),
            sweep_interval: Duration::from_millis(20),
            ..config()
        };
        let (cache, handle) = spawn(db.clone(), cfg).await.unwrap();
        for i in 0..5 {
            let k = key(&[&i.to_string()]);
            cache
                .put(CacheKind::Response, &k, "hi".into())
                .await
                .unwrap();
        }
        cache
            .put(CacheKind::Summary, "keep", "long-lived".into())
            .await
            .unwrap();
        assert_eq!(cache.stats().kind(CacheKind::Response).unwrap().puts, 5);
        // The sweep (every 20 ms) removes them once their 300 ms are up: wait for it, 10 s at most.
        let t0 = std::time::Instant::now();
        let swept = || {
            db.open_tree("cache_response").unwrap().is_empty()
                && cache.stats().kind(CacheKind::Response).unwrap().expired == 5
        };
        while !swept() {
            assert!(t0.elapsed() < Duration::from_secs(10), "never swept");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(db.open_tree("cache_response_by_age").unwrap().is_empty());
        assert_eq!(db.open_tree("cache_summary").unwrap().len(), 1);
        let s = cache.stats();
        assert_eq!(s.kind(CacheKind::Response).unwrap().expired, 5);
        assert_eq!(s.kind(CacheKind::Response).unwrap().entries, 0);
        stop(cache, handle).await;
    }

    #[tokio::test]
    async fn entries_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(&["resume text"]);
        {
            let db = sled::open(dir.path()).unwrap();
            let (cache, handle) = spawn(db, config()).await.unwrap();
            cache
                .put(CacheKind::ResumeAnalysis, &k, "{\"skills\":[]}".into())
                .await
                .unwrap();
            stop(cache, handle).await;
        }
        let db = sled::open(dir.path()).unwrap();
        let (cache, handle) = spawn(db, config()).await.unwrap();
        assert_eq!(
            cache
                .stats()
                .kind(CacheKind::ResumeAnalysis)
                .unwrap()
                .entries,
            1
        );
        assert_eq!(
            cache
                .get(CacheKind::ResumeAnalysis, &k, None)
                .await
                .as_deref(),
            Some("{\"skills\":[]}")
        );
        stop(cache, handle).await;
    }

    #[tokio::test]
    async fn the_size_bound_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cfg = CacheConfig {
            max_entries: 10,
            ..config()
        };
        let (cache, handle) = spawn(db.clone(), cfg).await.unwrap();
        let keys: Vec<String> = (0..25).map(|i| key(&["q", &i.to_string()])).collect();
        for (i, k) in keys.iter().enumerate() {
            cache
                .put(CacheKind::Question, k, format!("question {i}"))
                .await
                .unwrap();
            // Distinct creation times, so "oldest" is well defined.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(db.open_tree("cache_question").unwrap().len() <= 10);
        assert_eq!(db.open_tree("cache_question_by_age").unwrap().len(), 10);
        for (i, k) in keys.iter().enumerate() {
            let got = cache.get(CacheKind::Question, k, None).await;
            if i < 15 {
                assert_eq!(got, None, "entry {i} should have been evicted");
            } else {
                assert_eq!(got, Some(format!("question {i}")));
            }
        }
        let s = cache.stats();
        let q = s.kind(CacheKind::Question).unwrap();
        assert_eq!((q.evictions, q.entries, q.puts), (15, 10, 25));
        stop(cache, handle).await;
    }

    #[tokio::test]
    async fn unfilled_variant_slots_miss_until_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cfg = CacheConfig {
            variants: 3,
            ..config()
        };
        let (cache, handle) = spawn(db, cfg).await.unwrap();
        let k = key(&["sre", "technical"]);
        let hits = |cache: Cache, k: String| async move {
            let mut n = 0;
            for c in 0..60 {
                let seed = format!("candidate-{c}");
                n += usize::from(
                    cache
                        .get(CacheKind::Greeting, &k, Some(&seed))
                        .await
                        .is_some(),
                );
            }
            n
        };
        assert_eq!(hits(cache.clone(), k.clone()).await, 0);
        cache
            .put(CacheKind::Greeting, &k, "Same.".into())
            .await
            .unwrap();
        let one = hits(cache.clone(), k.clone()).await;
        assert!(one > 0 && one < 60, "about a third of the seeds hit: {one}");
        // A model that repeats itself still fills the slots.
        for _ in 0..2 {
            cache
                .put(CacheKind::Greeting, &k, "Same.".into())
                .await
                .unwrap();
        }
        assert_eq!(hits(cache.clone(), k.clone()).await, 60);
        stop(cache, handle).await;
    }

    #[tokio::test]
    async fn variants_give_candidates_different_texts() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let cfg = CacheConfig {
            variants: 3,
            ..config()
        };
        let (cache, handle) = spawn(db, cfg).await.unwrap();
        let k = key(&["backend", "senior"]);
        for text in ["Hello!", "Welcome!", "Hi there!", "Hello!"] {
            cache
                .put(CacheKind::Greeting, &k, text.into())
                .await
                .unwrap();
        }
        // A duplicate is not stored twice; newest without a seed.
        assert_eq!(
            cache.get(CacheKind::Greeting, &k, None).await.as_deref(),
            Some("Hi there!")
        );
        let mut seen = HashSet::new();
        for c in 0..40 {
            let seed = format!("candidate-{c}");
            let a = cache
                .get(CacheKind::Greeting, &k, Some(&seed))
                .await
                .unwrap();
            let b = cache
                .get(CacheKind::Greeting, &k, Some(&seed))
                .await
                .unwrap();
            assert_eq!(a, b, "a seed always picks the same variant");
            seen.insert(a);
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        // A fourth distinct text drops the oldest.
        cache
            .put(CacheKind::Greeting, &k, "Good morning!".into())
            .await
            .unwrap();
        let mut seen = HashSet::new();
        for c in 0..40 {
            let seed = format!("candidate-{c}");
            seen.insert(
                cache
                    .get(CacheKind::Greeting, &k, Some(&seed))
                    .await
                    .unwrap(),
            );
        }
        let want: HashSet<String> = ["Welcome!", "Hi there!", "Good morning!"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(seen, want);
        assert_eq!(cache.stats().kind(CacheKind::Greeting).unwrap().entries, 1);
        stop(cache, handle).await;
    }

    #[tokio::test]
    async fn unreadable_records_are_misses_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("cache_summary").unwrap();
        let (cache, handle) = spawn(db.clone(), config()).await.unwrap();
        let record = Record {
            created_ms: now_ms(),
            expires_ms: now_ms() + 60_000,
            variants: vec!["from the future".into()],
        };
        let future = encode(RECORD_VERSION + 1, &record).unwrap();
        tree.insert("v2", future).unwrap();
        tree.insert("junk", &[RECORD_VERSION, 0xff, 0xff][..])
            .unwrap();
        tree.insert("empty", &[][..]).unwrap();
        for k in ["v2", "junk", "empty"] {
            assert_eq!(cache.get(CacheKind::Summary, k, None).await, None, "{k}");
            assert!(!tree.contains_key(k).unwrap(), "{k} should be removed");
        }
        // A put over an unreadable record works.
        tree.insert("v2", &[9u8, 1, 2][..]).unwrap();
        cache
            .put(CacheKind::Summary, "v2", "fresh".into())
            .await
            .unwrap();
        assert_eq!(
            cache.get(CacheKind::Summary, "v2", None).await.as_deref(),
            Some("fresh")
        );
        let s = cache.stats();
        assert_eq!(s.kind(CacheKind::Summary).unwrap().misses, 3);
        assert_eq!(s.kind(CacheKind::Summary).unwrap().entries, 1);
        stop(cache, handle).await;
    }
}
