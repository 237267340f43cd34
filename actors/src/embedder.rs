//! The optional semantic signal of the rubric scorer: an OpenAI-compatible embeddings server
//! (`POST {url}/embeddings`, e.g. llama.cpp's `llama-server --embeddings` or any server with that
//! API) embeds the answer's prose sentences and the rubric's points, and cosine similarity between
//! them becomes [`Semantic`]. Point embeddings are cached (the pool is fixed, so they repeat); the
//! server's failure or slowness only means the lexical scorer stands alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::content::scoring::{Point, Semantic};
use crate::secret::Secret;

/// Most point embeddings kept in memory (the whole pool has about 2,500 points).
const CACHE_MAX: usize = 20_000;

/// Where the embeddings come from and what counts as a match.
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    /// API root, e.g. `http://127.0.0.1:8081/v1` (the client appends `/embeddings`).
    pub url: String,
    /// The `model` field sent (servers with one model ignore it).
    pub model: String,
    /// Bearer key, if the server wants one.
    pub key: Option<Secret>,
    /// Cosine similarity at or above which a point counts as stated.
    pub stated_at: f32,
    /// At or above which it counts as touched.
    pub touched_at: f32,
    /// How long one request may take.
    pub timeout: Duration,
}

/// Why no embeddings came back.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The request failed or timed out.
    #[error("embeddings request failed: {0}")]
    Http(String),
    /// The answer was not the OpenAI embeddings shape, or had the wrong number of vectors.
    #[error("embeddings answer unusable: {0}")]
    Shape(String),
}

/// An embeddings client with a cache of point embeddings.
pub struct Embedder {
    cfg: EmbedderConfig,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("url", &self.cfg.url)
            .field("model", &self.cfg.model)
            .finish_non_exhaustive()
    }
}

/// Cosine similarity; 0 for empty or zero vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

impl Embedder {
    /// A client for `cfg`.
    pub fn new(cfg: EmbedderConfig) -> Embedder {
        Embedder {
            http: reqwest::Client::builder()
                .timeout(cfg.timeout)
                .build()
                .unwrap_or_default(),
            cfg,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Embeds `texts`, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let url = format!("{}/embeddings", self.cfg.url.trim_end_matches('/'));
        let mut req = self.http.post(url).json(&json!({
            "model": self.cfg.model, "input": texts, "encoding_format": "float",
        }));
        if let Some(k) = &self.cfg.key {
            req = req.bearer_auth(k.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| EmbedError::Http(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(EmbedError::Http(format!("status {status}")));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| EmbedError::Shape(e.to_string()))?;
        let data = v["data"]
            .as_array()
            .ok_or_else(|| EmbedError::Shape("no data array".into()))?;
        let mut out: Vec<(usize, Vec<f32>)> = Vec::with_capacity(data.len());
        for (i, d) in data.iter().enumerate() {
            let index = d["index"].as_u64().map_or(i, |x| x as usize);
            let vec: Vec<f32> = d["embedding"]
                .as_array()
                .ok_or_else(|| EmbedError::Shape("an item without an embedding".into()))?
                .iter()
                .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                .collect();
            out.push((index, vec));
        }
        out.sort_by_key(|(i, _)| *i);
        if out.len() != texts.len() || out.iter().enumerate().any(|(i, (j, _))| i != *j) {
            return Err(EmbedError::Shape(format!(
                "{} embeddings for {} inputs",
                out.len(),
                texts.len()
            )));
        }
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// The text a point is embedded as: its rubric text and its phrase.
    fn point_text(p: &Point) -> String {
        if p.say == p.text {
            p.text.clone()
        } else {
            format!("{}. {}", p.text.trim_end_matches('.'), p.say)
        }
    }

    /// Embeddings of `points`, from the cache or the server (one request for the missing ones).
    async fn point_embeddings(&self, points: &[Point]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let keys: Vec<String> = points.iter().map(Self::point_text).collect();
        let missing: Vec<String> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter()
                .filter(|k| !cache.contains_key(*k))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let got = self.embed(&missing).await?;
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() + got.len() > CACHE_MAX {
                cache.clear();
            }
            for (k, v) in missing.into_iter().zip(got) {
                cache.insert(k, v);
            }
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|k| {
                cache
                    .get(k)
                    .cloned()
                    .ok_or_else(|| EmbedError::Shape("point embedding missing".into()))
            })
            .collect()
    }

    /// The semantic signal for an answer whose prose sentences are `sentences` (see
    /// [`crate::content::scoring::prose_sentences`]): `sims[point][sentence]`.
    pub async fn semantic(
        &self,
        points: &[Point],
        sentences: &[String],
    ) -> Result<Semantic, EmbedError> {
        let pe = self.point_embeddings(points).await?;
        let se = self.embed(sentences).await?;
        Ok(Semantic {
            sims: pe
                .iter()
                .map(|p| se.iter().map(|s| cosine(p, s)).collect())
                .collect(),
            stated_at: self.cfg.stated_at,
            touched_at: self.cfg.touched_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine(&[], &[]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
