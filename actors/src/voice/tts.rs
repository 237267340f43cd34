//! The text-to-speech wire format: OpenAI-compatible `POST {base}/audio/speech`
//! `{model, input, voice, response_format: "wav"}`. The answer is read as a WAV (its header gives the
//! rate); a server that answers raw PCM16 instead is read at the configured rate. One sentence is one
//! request, so the first sentence plays while the next is synthesised.

use std::time::Duration;

use serde_json::json;

use super::audio::{pcm16_samples, WavHeader};
use crate::providers::{send_whole, ProviderError, Target};

/// Speech for one piece of text.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// Mono PCM16 samples.
    pub samples: Vec<i16>,
    /// Their rate.
    pub sample_rate: u32,
}

impl Speech {
    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Synthesises `text` with `voice` at `target` (`base_url` ends in `/v1`); `raw_rate` is the rate of a
/// raw PCM answer.
pub async fn synthesize(
    http: &reqwest::Client,
    target: &Target,
    voice: &str,
    text: &str,
    raw_rate: u32,
) -> Result<Speech, ProviderError> {
    let body =
        json!({"model": target.model, "input": text, "voice": voice, "response_format": "wav"});
    let rb = http
        .post(format!("{}/audio/speech", target.base_url))
        .json(&body);
    let bytes = send_whole(rb, target).await?;
    decode(&bytes, raw_rate)
}

/// Reads a speech answer: a WAV, or raw PCM16 at `raw_rate`.
pub fn decode(bytes: &[u8], raw_rate: u32) -> Result<Speech, ProviderError> {
    if bytes.starts_with(b"RIFF") {
        let mut h = WavHeader::default();
        let (fmt, mut rest) = h
            .feed(bytes)
            .map_err(ProviderError::Malformed)?
            .ok_or_else(|| ProviderError::Malformed("WAV answer without samples".into()))?;
        if rest.len() % 2 == 1 {
            rest.pop();
        }
        let all = pcm16_samples(&rest).map_err(|e| ProviderError::Malformed(e.to_string()))?;
        let ch = usize::from(fmt.channels.max(1));
        return Ok(Speech {
            samples: all.into_iter().step_by(ch).collect(),
            sample_rate: fmt.sample_rate,
        });
    }
    let mut b = bytes.to_vec();
    if b.len() % 2 == 1 {
        b.pop();
    }
    Ok(Speech {
        samples: pcm16_samples(&b).map_err(|e| ProviderError::Malformed(e.to_string()))?,
        sample_rate: raw_rate,
    })
}

/// A target for a local node or a cloud key.
pub fn target(base: &str, model: &str, secret: crate::secret::Secret, timeout: Duration) -> Target {
    super::stt::target(base, model, secret, timeout)
}

/// Splits text into sentences (each ends at `.`, `!`, `?` or `…` followed by a space, or at the end).
/// `sentences_done` returns the complete sentences of a growing text and where the rest begins.
pub fn sentences_done(text: &str) -> (Vec<&str>, usize) {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, &(at, c)) in chars.iter().enumerate() {
        if matches!(c, '.' | '!' | '?' | '…') {
            if let Some(&(next_at, next)) = chars.get(i + 1) {
                if next.is_whitespace() {
                    let s = text[start..next_at].trim();
                    // "e.g. " and single letters are not sentence ends worth a request.
                    if s.len() > 3 {
                        out.push(s);
                        start = next_at;
                    }
                }
            }
            let _ = at;
        }
    }
    (out, start)
}

/// Every sentence of a finished text.
pub fn sentences(text: &str) -> Vec<&str> {
    let (mut done, rest) = sentences_done(text);
    let tail = text[rest..].trim();
    if !tail.is_empty() {
        done.push(tail);
    }
    done
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_where_speech_pauses() {
        assert_eq!(
            sentences("Hello Ada. How are you? Let's start with arrays… Ready"),
            vec![
                "Hello Ada.",
                "How are you?",
                "Let's start with arrays…",
                "Ready"
            ]
        );
        let (done, rest) = sentences_done("One sentence. And a half");
        assert_eq!(done, vec!["One sentence."]);
        assert_eq!(&"One sentence. And a half"[rest..], " And a half");
        assert_eq!(sentences("3.5 seconds"), vec!["3.5 seconds"]);
    }

    #[test]
    fn wav_and_raw_answers_decode() {
        let s: Vec<i16> = (0..100).collect();
        let w = super::super::audio::wav(&s, 22_050).unwrap();
        assert_eq!(
            decode(&w, 24_000).unwrap(),
            Speech {
                samples: s.clone(),
                sample_rate: 22_050
            }
        );
        let raw = super::super::audio::pcm16_bytes(&s);
        assert_eq!(decode(&raw, 24_000).unwrap().sample_rate, 24_000);
        assert!(decode(b"RIFF....WAVEjunk", 1).is_err());
    }
}
