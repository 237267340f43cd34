//! The audio endpoints of the fake: OpenAI-compatible `POST .../audio/transcriptions` (multipart WAV;
//! `json` or `verbose_json` with words spread over the audio) and `POST .../audio/speech` (a WAV tone
//! as long as the text would take to say). Without an `Authorization` header it behaves like a local
//! node (no key); with one, the key goes through the fake's limits and faults like a chat request, so
//! a cloud speech-to-text key's 429s, 401s and 500s can be tested. `POST /_fake/audio` sets the text,
//! a delay and a forced status; `GET /_fake/audio` returns the counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{Decision, Fault, State};
use crate::{header, json_response};

/// What the audio endpoints answer, set by `POST /_fake/audio`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioControl {
    /// The transcription's text.
    #[serde(default = "default_text")]
    pub text: String,
    /// Delay before answering, ms.
    #[serde(default)]
    pub latency_ms: u64,
    /// Answer every audio request with this status (e.g. 500) instead.
    #[serde(default)]
    pub status: Option<u16>,
}

fn default_text() -> String {
    "I would use a hash map to count each word, then sort the words by their counts.".into()
}

impl Default for AudioControl {
    fn default() -> Self {
        Self {
            text: default_text(),
            latency_ms: 0,
            status: None,
        }
    }
}

/// The control and the counts.
#[derive(Debug, Default)]
pub struct Audio {
    control: Mutex<AudioControl>,
    transcriptions: AtomicU64,
    speech: AtomicU64,
    audio_ms: AtomicU64,
    refused: AtomicU64,
}

/// `POST /_fake/audio`.
pub async fn set_control(body: Bytes, audio: web::Data<Arc<Audio>>) -> HttpResponse {
    match serde_json::from_slice::<AudioControl>(&body) {
        Ok(c) => {
            *audio.control.lock() = c;
            json_response(StatusCode::OK, &json!({"ok": true}))
        }
        Err(e) => json_response(StatusCode::BAD_REQUEST, &json!({"error": e.to_string()})),
    }
}

/// `GET /_fake/audio`.
pub async fn counts(audio: web::Data<Arc<Audio>>) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &json!({
            "transcriptions": audio.transcriptions.load(Ordering::Relaxed),
            "speech": audio.speech.load(Ordering::Relaxed),
            "audio_seconds": audio.audio_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            "refused": audio.refused.load(Ordering::Relaxed),
        }),
    )
}

fn error(status: StatusCode, message: &str, typ: &str) -> HttpResponse {
    json_response(status, &json!({"error": {"message": message, "type": typ}}))
}

/// Checks the key (when one is sent) against the fake's limits and faults.
async fn keyed(
    req: &HttpRequest,
    state: &web::Data<State>,
) -> Result<Option<crate::state::Call>, HttpResponse> {
    let Some(auth) = header(req, "authorization") else {
        return Ok(None);
    };
    let key = auth.trim_start_matches("Bearer ").trim().to_string();
    let shared: Arc<State> = state.clone().into_inner();
    let Some((call, _)) = shared.begin(&key) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Invalid API Key",
            "invalid_request_error",
        ));
    };
    match state.admit(&key, 0, 0) {
        Decision::Serve(_) | Decision::ServeFaulty(..) => Ok(Some(call)),
        Decision::Gone => Err(error(
            StatusCode::UNAUTHORIZED,
            "Invalid API Key",
            "invalid_request_error",
        )),
        Decision::Limited(rl, _) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Rate limit reached for audio: limit {}, used {}",
                    rl.limit, rl.used
                ),
                "requests",
            );
            if let Ok(v) = rl.retry_secs().to_string().parse() {
                r.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, v);
            }
            Err(r)
        }
        Decision::Fault(f, _) => Err(match f {
            Fault::Http401 => error(
                StatusCode::UNAUTHORIZED,
                "Invalid API Key",
                "invalid_request_error",
            ),
            Fault::RateLimit | Fault::RateLimitDay => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    if f == Fault::RateLimitDay {
                        "Rate limit reached: audio seconds per day (ASD)"
                    } else {
                        "Rate limit reached: requests per minute"
                    },
                    "requests",
                );
                if let Ok(v) = "5".parse() {
                    r.headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, v);
                }
                r
            }
            _ => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                "server_error",
            ),
        }),
    }
}

/// The parts of a multipart form: (name, bytes).
fn multipart(req: &HttpRequest, body: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let ct = header(req, "content-type")?;
    let boundary = ct.split("boundary=").nth(1)?.trim_matches('"');
    let delim = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, &delim) {
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, &delim).unwrap_or(rest.len());
        let part = &rest[..end];
        let head_end = find(part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&part[..head_end]);
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("")
            .to_string();
        let mut data = part[head_end + 4..].to_vec();
        if data.ends_with(b"\r\n") {
            data.truncate(data.len() - 2);
        }
        parts.push((name, data));
    }
    Some(parts)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What both audio endpoints do first: wait the configured latency, answer a forced status, check the
/// key (limits included). Returns the controls as they were at the start and the call, held until the
/// answer. `count_refused`: a refusal
/// counts in the transcription statistics.
async fn admit(
    req: &HttpRequest,
    state: &web::Data<State>,
    audio: &Audio,
    count_refused: bool,
) -> Result<(AudioControl, Option<crate::state::Call>), HttpResponse> {
    let control = audio.control.lock().clone();
    tokio::time::sleep(Duration::from_millis(control.latency_ms)).await;
    let refused = || {
        if count_refused {
            audio.refused.fetch_add(1, Ordering::Relaxed);
        }
    };
    if let Some(s) = control.status {
        refused();
        return Err(error(
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "forced status",
            "server_error",
        ));
    }
    let call = keyed(req, state).await.inspect_err(|_| refused())?;
    Ok((control, call))
}

/// `POST .../audio/transcriptions`.
pub async fn transcriptions(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<State>,
    audio: web::Data<Arc<Audio>>,
) -> HttpResponse {
    let (control, _call) = match admit(&req, &state, &audio, true).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let Some(parts) = multipart(&req, &body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected multipart/form-data",
            "invalid_request_error",
        );
    };
    let field = |n: &str| {
        parts
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    let Some(file) = parts.iter().find(|(k, _)| k == "file").map(|(_, v)| v) else {
        return error(
            StatusCode::BAD_REQUEST,
            "file: required",
            "invalid_request_error",
        );
    };
    let Ok((samples, rate)) = actors::voice::audio::read_wav(file) else {
        return error(
            StatusCode::BAD_REQUEST,
            "could not decode the audio file",
            "invalid_request_error",
        );
    };
    let duration = samples.len() as f64 / f64::from(rate.max(1));
    audio.transcriptions.fetch_add(1, Ordering::Relaxed);
    audio
        .audio_ms
        .fetch_add((duration * 1000.0) as u64, Ordering::Relaxed);
    let format = field("response_format").unwrap_or_else(|| "json".into());
    let text = control.text;
    let v: Value = match format.as_str() {
        "json" => json!({"text": text}),
        "verbose_json" => {
            let words = actors::voice::stt::spread_words(&text, 0.2, (duration - 0.2).max(0.3));
            json!({"task": "transcribe", "language": "en", "duration": duration, "text": text,
                "words": words, "segments": [{"id": 0, "start": 0.0, "end": duration, "text": text}]})
        }
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Unsupported response_format: {other}"),
                "invalid_request_error",
            )
        }
    };
    json_response(StatusCode::OK, &v)
}

/// `POST .../audio/speech`: a 16 kHz WAV tone, 60 ms per character.
pub async fn speech(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<State>,
    audio: web::Data<Arc<Audio>>,
) -> HttpResponse {
    let (_, _call) = match admit(&req, &state, &audio, false).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(input) = v["input"].as_str().filter(|t| !t.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "input: required",
            "invalid_request_error",
        );
    };
    audio.speech.fetch_add(1, Ordering::Relaxed);
    let rate = 16_000u32;
    let n = (input.chars().count() as f64 * 0.06 * f64::from(rate)) as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            ((i as f64 * 220.0 * 2.0 * std::f64::consts::PI / f64::from(rate)).sin() * 3000.0)
                as i16
        })
        .collect();
    match actors::voice::audio::wav(&samples, rate) {
        Ok(w) => HttpResponse::Ok().content_type("audio/wav").body(w),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &e.to_string(),
            "server_error",
        ),
    }
}
