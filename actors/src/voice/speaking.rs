//! The report's speaking section from the voice record: pace from word timings, long pauses inside
//! answers, talk-time share between candidate and interviewer, barge-ins. It extends the section the
//! report already builds from answer texts and lengths (filler words, words per minute).

use serde_json::{json, Map, Value};

use crate::interview::VoiceRecord;

/// A gap between two words at least this long is a long pause.
pub const LONG_PAUSE_S: f64 = 2.0;
/// Long pauses listed at most (the count covers all of them).
const PAUSES_LISTED: usize = 5;

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The speaking section: `base` (the text-based stats, or null) with the figures from word timings
/// added. Null when nothing was spoken and the interviewer did not speak either.
pub fn section(base: Value, voice: &VoiceRecord) -> Value {
    if voice.answers.is_empty() && voice.interviewer_ms == 0 && base.is_null() {
        return Value::Null;
    }
    let mut out = match base {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut words = 0usize;
    let mut speaking_s = 0.0f64;
    let mut audio_s = 0.0f64;
    let mut pauses: Vec<(u32, f64, f64)> = Vec::new();
    for a in &voice.answers {
        audio_s += a.duration_s.max(0.0);
        if let (Some(first), Some(last)) = (a.words.first(), a.words.last()) {
            words += a.words.len();
            speaking_s += (last.end - first.start).max(0.0);
            for w in a.words.windows(2) {
                let gap = w[1].start - w[0].end;
                if gap >= LONG_PAUSE_S {
                    pauses.push((a.turn, w[0].end, gap));
                }
            }
        }
    }
    if words > 0 && speaking_s > 0.0 {
        // Pace while speaking: from the first word to the last of each answer.
        out.insert(
            "words_per_minute".into(),
            json!(round1(words as f64 * 60.0 / speaking_s)),
        );
        out.insert("pace_from".into(), json!("word_timings"));
    }
    let longest = pauses.iter().map(|p| p.2).fold(0.0f64, f64::max);
    let mut listed = pauses.clone();
    listed.sort_by(|a, b| b.2.total_cmp(&a.2));
    listed.truncate(PAUSES_LISTED);
    out.insert(
        "long_pauses".into(),
        json!({
            "threshold_s": LONG_PAUSE_S,
            "count": pauses.len(),
            "longest_s": round1(longest),
            "items": listed.iter().map(|(t, at, s)| json!({"turn": t, "at_s": round1(*at), "pause_s": round1(*s)})).collect::<Vec<_>>(),
        }),
    );
    let interviewer_s = voice.interviewer_ms as f64 / 1000.0;
    let total = audio_s + interviewer_s;
    out.insert(
        "talk_time".into(),
        json!({
            "candidate_s": round1(audio_s),
            "interviewer_s": round1(interviewer_s),
            "candidate_share": if total > 0.0 { json!(round1(audio_s * 100.0 / total) / 100.0) } else { Value::Null },
        }),
    );
    out.insert("answers_spoken".into(), json!(voice.answers.len()));
    out.insert(
        "barge_ins".into(),
        json!({"count": voice.barge_ins.len(), "items": voice.barge_ins}),
    );
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::interview::SpokenTurn;
    use crate::voice::speaker::Heard;
    use crate::voice::Word;

    fn w(word: &str, start: f64, end: f64) -> Word {
        Word {
            word: word.into(),
            start,
            end,
        }
    }

    #[test]
    fn pace_pauses_talk_time_and_barge_ins() {
        let voice = VoiceRecord {
            enabled: true,
            answers: vec![SpokenTurn {
                turn: 1,
                follow_up: false,
                duration_s: 10.0,
                // Four words over 6 s of speech, with a 3 s pause in the middle.
                words: vec![
                    w("I", 1.0, 1.5),
                    w("would", 1.5, 2.0),
                    w("use", 5.0, 6.0),
                    w("sets", 6.0, 7.0),
                ],
                word_times_exact: true,
                source: "stt:local".into(),
            }],
            barge_ins: vec![Heard {
                turn: 2,
                kind: "question".into(),
                heard_s: 1.5,
                sent_s: 4.0,
            }],
            interviewer_ms: 30_000,
        };
        let base = json!({"filler_words": {"um": 1}, "words_per_minute": 24.0});
        let s = section(base, &voice);
        assert_eq!(
            s["words_per_minute"],
            json!(40.0),
            "4 words in 6 s of speaking"
        );
        assert_eq!(s["filler_words"]["um"], 1, "text stats kept");
        assert_eq!(s["long_pauses"]["count"], 1);
        assert_eq!(s["long_pauses"]["items"][0]["pause_s"], json!(3.0));
        assert_eq!(s["talk_time"]["candidate_share"], json!(0.25));
        assert_eq!(s["barge_ins"]["count"], 1);
    }

    #[test]
    fn nothing_spoken_is_null() {
        assert_eq!(section(Value::Null, &VoiceRecord::default()), Value::Null);
    }
}
