//! `SttPool`: speech-to-text through the same pool rules as the LLM work. Local nodes
//! (`[[stt_nodes]]`, OpenAI-compatible transcription servers such as faster-whisper-server) are a
//! [`GpuPool`] of their own, dispatched like GPU nodes (least loaded, never above `max_concurrency`,
//! breaker, health probes, failover); when none can serve, cloud keys of providers with an
//! `stt_model` are tried, best priority and most room first, each within its own windows
//! ([`AudioKey`]). When nothing can transcribe before the deadline the caller gets
//! [`SttError::Unavailable`] (the socket says `stt_unavailable` and the candidate can type).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::audio_key::{AudioKey, AudioKeyStatus, AudioRefusal};
use super::stt::{self, Heard};
use crate::gpu_pool::{GpuError, GpuPool, NodeStatus};
use crate::providers::ProviderError;

/// A transcription and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcribed {
    /// What was heard.
    pub heard: Heard,
    /// `stt:<node>` for a local node, `stt:<provider>` for a cloud key.
    pub source: String,
    /// Nodes or keys that failed before it.
    pub failed: Vec<String>,
    /// Time the speech-to-text call took, failovers included.
    pub elapsed: Duration,
}

/// Why nothing transcribed the audio.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SttError {
    /// No node or key is configured.
    #[error("speech-to-text is not configured on this server")]
    NotConfigured,
    /// Every node and key was down, busy, out of quota or failed before the deadline.
    #[error("speech-to-text is unavailable right now ({})", tried.join("; "))]
    Unavailable {
        /// What each source said.
        tried: Vec<String>,
    },
    /// The server refused the audio itself (a 4xx): another would refuse it too.
    #[error("speech-to-text refused the audio: {0}")]
    Refused(String),
}

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct SttSettings {
    /// Time one transcription may take, failovers included.
    pub deadline: Duration,
    /// Language hint sent with the audio (`en`), or none.
    pub language: Option<String>,
}

/// Status of speech-to-text for `/api/system_status`.
#[derive(Debug, Clone, Serialize)]
pub struct SttStatus {
    /// Local nodes.
    pub nodes: Vec<NodeStatus>,
    /// Cloud keys (redacted ids).
    pub keys: Vec<AudioKeyStatus>,
}

struct Inner {
    nodes: Option<GpuPool>,
    keys: Vec<Arc<AudioKey>>,
    settings: SttSettings,
    http: reqwest::Client,
}

/// The handle: cheap to clone.
#[derive(Clone)]
pub struct SttPool {
    inner: Arc<Inner>,
}

impl SttPool {
    /// A pool over local nodes (a started [`GpuPool`] of STT nodes, or none) and cloud keys.
    pub fn new(
        nodes: Option<GpuPool>,
        mut keys: Vec<Arc<AudioKey>>,
        settings: SttSettings,
        http: reqwest::Client,
    ) -> Self {
        keys.sort_by_key(|k| k.spec().priority);
        Self {
            inner: Arc::new(Inner {
                nodes: nodes.filter(GpuPool::has_nodes),
                keys,
                settings,
                http,
            }),
        }
    }

    /// Whether any node or key is configured.
    pub fn configured(&self) -> bool {
        self.inner.nodes.is_some() || !self.inner.keys.is_empty()
    }

    /// The local nodes' pool (for shutdown and status).
    pub fn nodes(&self) -> Option<&GpuPool> {
        self.inner.nodes.as_ref()
    }

    /// Nodes and keys as status shows them.
    pub fn status(&self) -> SttStatus {
        SttStatus {
            nodes: self
                .inner
                .nodes
                .as_ref()
                .map(GpuPool::status)
                .unwrap_or_default(),
            keys: self.inner.keys.iter().map(|k| k.status()).collect(),
        }
    }

    /// Transcribes one WAV of `duration_s` seconds: local nodes first, then cloud keys, within the
    /// pool's deadline. `affinity` (the interview id) keeps an interview on one node.
    pub async fn transcribe(
        &self,
        wav: Arc<Vec<u8>>,
        duration_s: f64,
        affinity: Option<&str>,
    ) -> Result<Transcribed, SttError> {
        if !self.configured() {
            return Err(SttError::NotConfigured);
        }
        let t0 = Instant::now();
        let deadline = t0 + self.inner.settings.deadline;
        let language = self.inner.settings.language.clone();
        let mut tried: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        if let Some(nodes) = &self.inner.nodes {
            // Leave cloud keys half the time when there are any.
            let budget = if self.inner.keys.is_empty() {
                self.inner.settings.deadline
            } else {
                self.inner.settings.deadline / 2
            };
            let call = nodes
                .call(budget, affinity, |http, spec, timeout| {
                    let wav = wav.clone();
                    let language = language.clone();
                    async move {
                        let target = stt::target(
                            &format!("{}/v1", spec.base_url()),
                            &spec.model,
                            spec.api_key.clone().unwrap_or_default(),
                            timeout,
                        );
                        stt::transcribe(&http, &target, &wav, language.as_deref()).await
                    }
                })
                .await;
            match call {
                Ok((node, before, heard)) => {
                    return Ok(Transcribed {
                        heard,
                        source: format!("stt:{node}"),
                        failed: before,
                        elapsed: t0.elapsed(),
                    })
                }
                Err(GpuError::Refused { error, .. }) => {
                    return Err(SttError::Refused(error.to_string()))
                }
                Err(GpuError::Failed {
                    tried: nodes_tried,
                    last,
                }) => {
                    tracing::warn!(error = %last, "speech-to-text nodes failed; trying cloud keys");
                    failed.extend(nodes_tried.iter().map(|n| format!("stt:{n}")));
                    tried.push(format!("nodes failed ({last})"));
                }
                Err(e) => tried.push(format!("nodes: {e}")),
            }
        }
        self.cloud(wav, duration_s, deadline, language, tried, failed, t0)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn cloud(
        &self,
        wav: Arc<Vec<u8>>,
        duration_s: f64,
        deadline: Instant,
        language: Option<String>,
        mut tried: Vec<String>,
        mut failed: Vec<String>,
        t0: Instant,
    ) -> Result<Transcribed, SttError> {
        let mut used = vec![false; self.inner.keys.len()];
        loop {
            let mut soonest: Option<Instant> = None;
            let mut admitted = None;
            for (i, key) in self.inner.keys.iter().enumerate() {
                if used[i] || !key.usable() {
                    continue;
                }
                match key.admit(duration_s).await {
                    Ok(p) => {
                        admitted = Some((i, p));
                        break;
                    }
                    Err(AudioRefusal::Until(at)) if at <= deadline => {
                        soonest = Some(soonest.map_or(at, |s: Instant| s.min(at)));
                    }
                    Err(r) => {
                        used[i] = true;
                        tried.push(format!("{}: {r:?}", key.spec().id));
                    }
                }
            }
            let Some((i, permit)) = admitted else {
                // Back-pressure: wait for the soonest window within the deadline, then ask again.
                match soonest {
                    Some(at) if at < deadline => {
                        tokio::time::sleep_until(at.into()).await;
                        continue;
                    }
                    _ => return Err(SttError::Unavailable { tried }),
                }
            };
            used[i] = true;
            let spec = permit.key().spec().clone();
            let left = deadline.saturating_duration_since(Instant::now());
            let target = stt::target(
                &spec.base_url,
                &spec.model,
                spec.secret.clone(),
                spec.timeout.min(left).max(Duration::from_millis(1)),
            );
            match stt::transcribe(&self.inner.http, &target, &wav, language.as_deref()).await {
                Ok(heard) => {
                    permit.succeeded();
                    return Ok(Transcribed {
                        heard,
                        source: format!("stt:{}", spec.provider),
                        failed,
                        elapsed: t0.elapsed(),
                    });
                }
                Err(e) => {
                    permit.failed(&e);
                    if let ProviderError::BadRequest { .. } = e {
                        return Err(SttError::Refused(e.to_string()));
                    }
                    tracing::warn!(key = %spec.id, error = %e, "speech-to-text key failed; trying another");
                    failed.push(format!("stt:{}", spec.id));
                    tried.push(format!("{}: {}", spec.id, e.code()));
                }
            }
            if Instant::now() >= deadline {
                return Err(SttError::Unavailable { tried });
            }
        }
    }
}
