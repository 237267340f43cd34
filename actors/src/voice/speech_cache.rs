//! `SpeechCache`: interviewer lines synthesised once and kept in sled (tree `speech`), keyed by voice
//! and text, so greetings, closings, transitions and pool questions cost one synthesis each across
//! all interviews. Bounded in bytes: the oldest entries go first. A record carries a layout version;
//! one that cannot be read is a miss.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::audio::{pcm16_bytes, pcm16_samples};
use super::tts::Speech;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 4 + 8;

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpeechCacheStats {
    /// Lines served from the cache.
    pub hits: u64,
    /// Lines synthesised because they were not there.
    pub misses: u64,
    /// Entries held.
    pub entries: u64,
    /// Bytes held.
    pub bytes: u64,
}

struct Index {
    /// (created ms, key, size) oldest first.
    order: BTreeSet<(i64, Vec<u8>, u64)>,
    bytes: u64,
}

/// The cache handle (cheap to clone).
#[derive(Clone)]
pub struct SpeechCache {
    tree: sled::Tree,
    index: Arc<Mutex<Index>>,
    max_bytes: u64,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
    /// Last creation stamp handed out: stamps increase strictly, so eviction order is put order.
    clock: Arc<AtomicI64>,
}

impl SpeechCache {
    /// Opens (or creates) the `speech` tree of `db`, bounded to `max_bytes`.
    pub fn open(db: &sled::Db, max_bytes: u64) -> Result<Self, sled::Error> {
        let tree = db.open_tree("speech")?;
        let mut order = BTreeSet::new();
        let mut bytes = 0;
        let mut last = 0;
        for item in tree.iter() {
            let (k, v) = item?;
            let created = v
                .get(5..13)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_le_bytes)
                .unwrap_or(0);
            bytes += v.len() as u64;
            last = last.max(created);
            order.insert((created, k.to_vec(), v.len() as u64));
        }
        let cache = Self {
            tree,
            index: Arc::new(Mutex::new(Index { order, bytes })),
            max_bytes,
            hits: Arc::default(),
            misses: Arc::default(),
            clock: Arc::new(AtomicI64::new(last)),
        };
        cache.evict();
        Ok(cache)
    }

    fn key(voice: &str, text: &str) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(voice.as_bytes());
        h.update([0]);
        h.update(text.trim().as_bytes());
        h.finalize().to_vec()
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored speech for `text` in `voice`, if any.
    pub fn get(&self, voice: &str, text: &str) -> Option<Speech> {
        let v = self.tree.get(Self::key(voice, text)).ok().flatten();
        let speech = v.and_then(|v| {
            if v.len() < HEADER || v[0] != VERSION {
                return None;
            }
            let rate = u32::from_le_bytes([v[1], v[2], v[3], v[4]]);
            let samples = pcm16_samples(&v[HEADER..]).ok()?;
            Some(Speech {
                samples,
                sample_rate: rate,
            })
        });
        match &speech {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        speech
    }

    /// Stores `speech` for `text` in `voice` (not flushed: a lost entry is only a miss).
    pub fn put(&self, voice: &str, text: &str, speech: &Speech) {
        let key = Self::key(voice, text);
        let now = chrono::Utc::now().timestamp_millis();
        let created = match self
            .clock
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(now.max(c + 1))
            }) {
            Ok(c) | Err(c) => now.max(c + 1),
        };
        let mut v = Vec::with_capacity(HEADER + speech.samples.len() * 2);
        v.push(VERSION);
        v.extend_from_slice(&speech.sample_rate.to_le_bytes());
        v.extend_from_slice(&created.to_le_bytes());
        v.extend_from_slice(&pcm16_bytes(&speech.samples));
        let size = v.len() as u64;
        if size > self.max_bytes {
            return;
        }
        match self.tree.insert(&key, v) {
            Ok(old) => {
                let mut ix = self.index();
                if let Some(old) = old {
                    ix.bytes = ix.bytes.saturating_sub(old.len() as u64);
                    ix.order.retain(|(_, k, _)| *k != key);
                }
                ix.bytes += size;
                ix.order.insert((created, key, size));
            }
            Err(e) => tracing::warn!(error = %e, "speech cache write failed"),
        }
        self.evict();
    }

    fn evict(&self) {
        let mut ix = self.index();
        while ix.bytes > self.max_bytes {
            let Some(first) = ix.order.pop_first() else {
                break;
            };
            ix.bytes = ix.bytes.saturating_sub(first.2);
            if let Err(e) = self.tree.remove(&first.1) {
                tracing::warn!(error = %e, "speech cache eviction failed");
            }
        }
    }

    /// Counts.
    pub fn stats(&self) -> SpeechCacheStats {
        let ix = self.index();
        SpeechCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: ix.order.len() as u64,
            bytes: ix.bytes,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn speech(n: usize) -> Speech {
        Speech {
            samples: (0..n as i16).collect(),
            sample_rate: 22_050,
        }
    }

    #[test]
    fn lines_come_back_by_voice_and_text_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let c = SpeechCache::open(&db, 1 << 20).unwrap();
        assert!(c.get("joe", "Hello.").is_none());
        c.put("joe", "Hello.", &speech(100));
        assert_eq!(c.get("joe", " Hello. ").unwrap(), speech(100));
        assert!(
            c.get("amy", "Hello.").is_none(),
            "another voice is another entry"
        );
        drop(c);
        let c = SpeechCache::open(&db, 1 << 20).unwrap();
        assert_eq!(c.get("joe", "Hello.").unwrap().samples.len(), 100);
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let c = SpeechCache::open(&db, 3 * (HEADER as u64 + 2000)).unwrap();
        for i in 0..5 {
            c.put("v", &format!("line {i}"), &speech(1000));
        }
        let s = c.stats();
        assert_eq!(s.entries, 3);
        assert!(s.bytes <= 3 * (HEADER as u64 + 2000));
        assert!(c.get("v", "line 0").is_none());
        assert!(c.get("v", "line 4").is_some());
    }
}
