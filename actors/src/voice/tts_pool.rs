//! `TtsPool`: the interviewer's voice through the pool. Local nodes (`[[tts_nodes]]`, servers with an
//! OpenAI-compatible `POST /v1/audio/speech`, such as the Piper adapter the tests use) are a
//! [`GpuPool`] of their own, dispatched like GPU nodes; cloud keys of providers with a `tts_model`
//! follow, within their windows. Fixed lines (templates, pool questions) are looked up in and stored
//! to the [`SpeechCache`] by voice and text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::audio_key::{AudioKey, AudioKeyStatus};
use super::speech_cache::{SpeechCache, SpeechCacheStats};
use super::tts::{self, Speech};
use crate::gpu_pool::{GpuError, GpuPool, NodeStatus};

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct TtsSettings {
    /// Time one sentence may take, failovers included.
    pub deadline: Duration,
    /// The voice asked of local nodes.
    pub voice: String,
    /// The rate of raw PCM answers (OpenAI's `pcm` is 24 kHz).
    pub raw_rate: u32,
}

/// Status of text-to-speech for `/api/system_status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TtsStatus {
    /// Local nodes.
    pub nodes: Vec<NodeStatus>,
    /// Cloud keys.
    pub keys: Vec<AudioKeyStatus>,
    /// The cache of fixed lines.
    pub cache: Option<SpeechCacheStats>,
}

/// Why nothing synthesised a line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("text-to-speech is unavailable: {0}")]
pub struct TtsError(pub String);

struct Inner {
    nodes: Option<GpuPool>,
    keys: Vec<Arc<AudioKey>>,
    settings: TtsSettings,
    cache: Option<SpeechCache>,
    http: reqwest::Client,
}

/// The handle (cheap to clone).
#[derive(Clone)]
pub struct TtsPool {
    inner: Arc<Inner>,
}

impl TtsPool {
    /// A pool over local nodes and cloud keys, with a cache for fixed lines.
    pub fn new(
        nodes: Option<GpuPool>,
        mut keys: Vec<Arc<AudioKey>>,
        settings: TtsSettings,
        cache: Option<SpeechCache>,
        http: reqwest::Client,
    ) -> Self {
        keys.sort_by_key(|k| k.spec().priority);
        Self {
            inner: Arc::new(Inner {
                nodes: nodes.filter(GpuPool::has_nodes),
                keys,
                settings,
                cache,
                http,
            }),
        }
    }

    /// Whether any node or key is configured.
    pub fn configured(&self) -> bool {
        self.inner.nodes.is_some() || !self.inner.keys.is_empty()
    }

    /// The local nodes' pool.
    pub fn nodes(&self) -> Option<&GpuPool> {
        self.inner.nodes.as_ref()
    }

    /// Status.
    pub fn status(&self) -> TtsStatus {
        TtsStatus {
            nodes: self
                .inner
                .nodes
                .as_ref()
                .map(GpuPool::status)
                .unwrap_or_default(),
            keys: self.inner.keys.iter().map(|k| k.status()).collect(),
            cache: self.inner.cache.as_ref().map(SpeechCache::stats),
        }
    }

    /// The voice the cache keys lines by: what the first source would use.
    fn voice_id(&self) -> String {
        match (&self.inner.nodes, self.inner.keys.first()) {
            (Some(n), _) => {
                let model = n
                    .status()
                    .first()
                    .map(|s| s.model.clone())
                    .unwrap_or_default();
                format!("node:{model}:{}", self.inner.settings.voice)
            }
            (None, Some(k)) => format!(
                "{}:{}:{}",
                k.spec().provider,
                k.spec().model,
                k.spec().voice.clone().unwrap_or_default()
            ),
            (None, None) => String::new(),
        }
    }

    /// Speech for `text`: from the cache when `fixed` and stored there, else synthesised (and stored
    /// when `fixed`). Returns the speech and its source (`cache`, `tts:<node>`, `tts:<provider>`).
    pub async fn speak(
        &self,
        text: &str,
        fixed: bool,
        affinity: Option<&str>,
    ) -> Result<(Speech, String), TtsError> {
        let voice_id = self.voice_id();
        if fixed {
            if let Some(c) = &self.inner.cache {
                if let Some(s) = c.get(&voice_id, text) {
                    return Ok((s, "cache".into()));
                }
            }
        }
        let (speech, source) = self.synthesize(text, affinity).await?;
        if fixed {
            if let Some(c) = &self.inner.cache {
                c.put(&voice_id, text, &speech);
            }
        }
        Ok((speech, source))
    }

    async fn synthesize(
        &self,
        text: &str,
        affinity: Option<&str>,
    ) -> Result<(Speech, String), TtsError> {
        let s = &self.inner.settings;
        let deadline = Instant::now() + s.deadline;
        let mut why = Vec::new();
        if let Some(nodes) = &self.inner.nodes {
            let budget = if self.inner.keys.is_empty() {
                s.deadline
            } else {
                s.deadline / 2
            };
            let (voice, rate) = (s.voice.clone(), s.raw_rate);
            let r = nodes
                .call(budget, affinity, |http, spec, timeout| {
                    let voice = voice.clone();
                    let text = text.to_string();
                    async move {
                        let target = tts::target(
                            &format!("{}/v1", spec.base_url()),
                            &spec.model,
                            spec.api_key.clone().unwrap_or_default(),
                            timeout,
                        );
                        tts::synthesize(&http, &target, &voice, &text, rate).await
                    }
                })
                .await;
            match r {
                Ok((node, _, speech)) => return Ok((speech, format!("tts:{node}"))),
                Err(GpuError::Refused { error, .. }) => return Err(TtsError(error.to_string())),
                Err(e) => why.push(format!("nodes: {e}")),
            }
        }
        for key in &self.inner.keys {
            if !key.usable() || Instant::now() >= deadline {
                continue;
            }
            // Text-to-speech windows count requests; the audio-seconds windows are for transcription.
            let Ok(permit) = key.admit(0.0).await else {
                why.push(format!("{}: no room", key.spec().id));
                continue;
            };
            let spec = permit.key().spec().clone();
            let left = deadline.saturating_duration_since(Instant::now());
            let target = tts::target(
                &spec.base_url,
                &spec.model,
                spec.secret.clone(),
                spec.timeout.min(left),
            );
            let voice = spec.voice.clone().unwrap_or_else(|| s.voice.clone());
            match tts::synthesize(&self.inner.http, &target, &voice, text, s.raw_rate).await {
                Ok(speech) => {
                    permit.succeeded();
                    return Ok((speech, format!("tts:{}", spec.provider)));
                }
                Err(e) => {
                    permit.failed(&e);
                    why.push(format!("{}: {}", spec.id, e.code()));
                }
            }
        }
        Err(TtsError(if why.is_empty() {
            "not configured".into()
        } else {
            why.join("; ")
        }))
    }
}
