//! The speech-to-text wire format: OpenAI-compatible `POST {base}/audio/transcriptions` with a
//! multipart WAV, asking for `verbose_json` (word timestamps where the server has them) and reading
//! `json` answers too. Spoken by OpenAI, Groq's Whisper models and local servers such as
//! `faster-whisper-server` (whose model field is `model_name`: both names are sent).
//!
//! Servers that give segments but no words (faster-whisper-server) get word timings spread over
//! each segment by word length, so the report's pace and pauses still have something to go on.

use std::time::Duration;

use serde_json::Value;

use super::Word;
use crate::providers::{send_whole, ProviderError, Target};

/// What a server heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// The text, trimmed.
    pub text: String,
    /// Words with times in seconds from the start of the audio (may be empty).
    pub words: Vec<Word>,
    /// Whether the word times came from the server (else spread over segments, or none).
    pub word_times_exact: bool,
}

/// The format asked for, in order: word timestamps first, the plain text when refused.
const FORMATS: [&str; 2] = ["verbose_json", "json"];

/// Sends one WAV to `target` (`base_url` ends in `/v1`) and reads the answer.
pub async fn transcribe(
    http: &reqwest::Client,
    target: &Target,
    wav: &[u8],
    language: Option<&str>,
) -> Result<Heard, ProviderError> {
    let mut last = None;
    for format in FORMATS {
        match send(http, target, wav, language, format).await {
            Ok(v) => return parse(&v),
            // A server that refuses verbose_json may take json.
            Err(ProviderError::BadRequest { status, message })
                if format == "verbose_json" && message.contains("response_format") =>
            {
                last = Some(ProviderError::BadRequest { status, message });
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ProviderError::Malformed("no answer".into())))
}

async fn send(
    http: &reqwest::Client,
    target: &Target,
    wav: &[u8],
    language: Option<&str>,
    format: &str,
) -> Result<Value, ProviderError> {
    let part = reqwest::multipart::Part::bytes(wav.to_vec())
        .file_name("answer.wav")
        .mime_str("audio/wav")
        .map_err(|e| ProviderError::Malformed(e.to_string()))?;
    let mut form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("model", target.model.clone())
        .text("model_name", target.model.clone())
        .text("response_format", format.to_string())
        .text("temperature", "0");
    if format == "verbose_json" {
        form = form
            .text("timestamp_granularities[]", "word")
            .text("timestamp_granularities[]", "segment");
    }
    if let Some(l) = language.filter(|l| !l.is_empty()) {
        form = form.text("language", l.to_string());
    }
    let url = format!("{}/audio/transcriptions", target.base_url);
    let bytes = send_whole(http.post(url).multipart(form), target).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Malformed(format!("transcription is not JSON: {e}")))
}

/// Reads a `json` or `verbose_json` answer.
pub fn parse(v: &Value) -> Result<Heard, ProviderError> {
    let text = v["text"]
        .as_str()
        .ok_or_else(|| ProviderError::Malformed("transcription has no \"text\"".into()))?
        .trim()
        .to_string();
    let f = |x: &Value| x.as_f64().filter(|t| t.is_finite() && *t >= 0.0);
    let words: Vec<Word> = v["words"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some(Word {
                        word: w["word"].as_str()?.trim().to_string(),
                        start: f(&w["start"])?,
                        end: f(&w["end"])?,
                    })
                })
                .filter(|w| !w.word.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !words.is_empty() {
        return Ok(Heard {
            text,
            words,
            word_times_exact: true,
        });
    }
    let mut spread = Vec::new();
    for s in v["segments"].as_array().into_iter().flatten() {
        let (Some(start), Some(end), Some(t)) = (f(&s["start"]), f(&s["end"]), s["text"].as_str())
        else {
            continue;
        };
        spread.extend(spread_words(t, start, end));
    }
    Ok(Heard {
        text,
        words: spread,
        word_times_exact: false,
    })
}

/// A segment's words with times shared out by length (letters plus one for the gap).
pub fn spread_words(text: &str, start: f64, end: f64) -> Vec<Word> {
    let ws: Vec<&str> = text.split_whitespace().collect();
    let weight: f64 = ws.iter().map(|w| w.chars().count() as f64 + 1.0).sum();
    if ws.is_empty() || end <= start || weight <= 0.0 {
        return Vec::new();
    }
    let per = (end - start) / weight;
    let mut t = start;
    ws.into_iter()
        .map(|w| {
            let len = w.chars().count() as f64;
            let word = Word {
                word: w.to_string(),
                start: round3(t),
                end: round3(t + len * per),
            };
            t += (len + 1.0) * per;
            word
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A target for a local node or a cloud key (`base` ends in `/v1`).
pub fn target(base: &str, model: &str, secret: crate::secret::Secret, timeout: Duration) -> Target {
    Target {
        base_url: base.trim_end_matches('/').to_string(),
        model: model.to_string(),
        secret,
        account_id: None,
        api_version: None,
        timeout,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_from_the_server_are_kept() {
        let v = json!({"text": " Hello there. ", "words": [
            {"word": "Hello", "start": 0.1, "end": 0.4}, {"word": " there.", "start": 0.5, "end": 0.9}]});
        let h = parse(&v).unwrap();
        assert_eq!(h.text, "Hello there.");
        assert!(h.word_times_exact);
        assert_eq!(h.words[1].word, "there.");
    }

    #[test]
    fn segments_are_spread_into_words_in_order() {
        let v = json!({"text": "a bb ccc", "segments": [{"start": 1.0, "end": 2.0, "text": " a bb"},
            {"start": 3.0, "end": 4.0, "text": "ccc"}]});
        let h = parse(&v).unwrap();
        assert!(!h.word_times_exact);
        let names: Vec<&str> = h.words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(names, ["a", "bb", "ccc"]);
        assert!(h.words.windows(2).all(|p| p[0].end <= p[1].start));
        assert!(h.words[0].start >= 1.0 && h.words[1].end <= 2.0);
        assert_eq!(h.words[2].start, 3.0);
    }

    #[test]
    fn plain_json_and_missing_text() {
        assert_eq!(parse(&json!({"text": "hi"})).unwrap().words, vec![]);
        assert!(matches!(
            parse(&json!({"error": "x"})),
            Err(ProviderError::Malformed(_))
        ));
    }
}
