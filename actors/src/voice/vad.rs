//! Endpointing: where a spoken answer starts and ends, from the `earshot` voice activity detector
//! (pure Rust, no model download, 16 ms frames at 16 kHz).
//!
//! Speech starts after `min_speech_ms` of voiced frames (a cough or a click does not open an
//! utterance); it ends after `silence_ms` of silence, or at `max_utterance_s`, after which the rest
//! of that speech is dropped until the next silence. Before speech starts only a short pre-roll is
//! kept, so a candidate who leaves the microphone open costs no memory; the utterance keeps the
//! samples at the client's rate for speech-to-text.

use earshot::Detector;

use super::audio::To16k;

/// Samples per detector frame (16 ms at 16 kHz).
const FRAME: u64 = 256;

/// Endpointing settings (`[voice]` in the config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// Silence that ends an utterance.
    pub silence_ms: u32,
    /// Longest utterance kept.
    pub max_utterance_s: u32,
    /// Voiced audio needed to start an utterance.
    pub min_speech_ms: u32,
    /// Detector score at or above which a frame is speech (0-1).
    pub threshold: f32,
    /// Audio kept from before the detected start (the first syllable's onset).
    pub pre_roll_ms: u32,
    /// Silence kept after the last voiced frame.
    pub tail_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            silence_ms: 800,
            max_utterance_s: 120,
            min_speech_ms: 96,
            threshold: 0.5,
            pre_roll_ms: 300,
            tail_ms: 250,
        }
    }
}

/// How an utterance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// `silence_ms` of silence after speech.
    Silence,
    /// It reached `max_utterance_s`.
    MaxLength,
    /// The client sent `audio_end`.
    Client,
}

/// A finished utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// Samples at `rate`.
    pub samples: Vec<i16>,
    /// Sample rate.
    pub rate: u32,
    /// How it ended.
    pub ended_by: EndedBy,
}

impl Utterance {
    /// Length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }
}

/// What the endpointer noticed in the audio just pushed.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Speech began (a barge-in when the interviewer is speaking).
    SpeechStarted,
    /// An utterance ended (by silence or at the length limit).
    Ended(Utterance),
}

/// One audio stream's endpointer. About 8 KiB of detector state plus the samples of the utterance.
pub struct Endpointer {
    rate: u32,
    cfg: EndpointConfig,
    detector: Box<Detector>,
    down: To16k,
    pending16: Vec<i16>,
    /// 16 kHz samples the detector has seen since the stream began.
    consumed16: u64,
    /// Stream index (at `rate`) of `samples[0]`.
    base: u64,
    samples: Vec<i16>,
    speaking: bool,
    voiced_run: u64,
    silence_run: u64,
    start_at: u64,
    last_voiced_end: u64,
    /// After a cut at the length limit: dropping speech until the next silence.
    skipping: bool,
}

impl Endpointer {
    /// An endpointer for a stream at `rate` (16000, 24000 or 48000).
    pub fn new(rate: u32, cfg: EndpointConfig) -> Self {
        Self {
            rate,
            cfg,
            detector: Detector::default_boxed(),
            down: To16k::new(rate),
            pending16: Vec::with_capacity(FRAME as usize * 2),
            consumed16: 0,
            base: 0,
            samples: Vec::new(),
            speaking: false,
            voiced_run: 0,
            silence_run: 0,
            start_at: 0,
            last_voiced_end: 0,
            skipping: false,
        }
    }

    /// The stream's sample rate.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether an utterance is open (speech was detected and has not ended).
    pub fn speaking(&self) -> bool {
        self.speaking
    }

    /// Samples held now (for memory figures).
    pub fn held_samples(&self) -> usize {
        self.samples.capacity()
    }

    fn frames(&self, ms: u32) -> u64 {
        (u64::from(ms) * 16).div_ceil(FRAME).max(1)
    }

    fn at_rate(&self, samples16: u64) -> u64 {
        samples16 * u64::from(self.rate) / 16_000
    }

    fn ms_at_rate(&self, ms: u32) -> u64 {
        u64::from(ms) * u64::from(self.rate) / 1000
    }

    /// Feeds samples; returns what happened in them, in order.
    pub fn push(&mut self, input: &[i16]) -> Vec<VadEvent> {
        self.samples.extend_from_slice(input);
        self.down.push(input, &mut self.pending16);
        let mut events = Vec::new();
        let mut off = 0;
        let silence_frames = self.frames(self.cfg.silence_ms);
        let speech_frames = self.frames(self.cfg.min_speech_ms);
        let max_len = u64::from(self.cfg.max_utterance_s) * u64::from(self.rate);
        while self.pending16.len() - off >= FRAME as usize {
            let frame = &self.pending16[off..off + FRAME as usize];
            off += FRAME as usize;
            let score = self.detector.predict_i16(frame);
            self.consumed16 += FRAME;
            let pos = self
                .at_rate(self.consumed16)
                .min(self.base + self.samples.len() as u64);
            let voiced = score >= self.cfg.threshold;
            if voiced {
                self.voiced_run += 1;
                self.silence_run = 0;
                self.last_voiced_end = pos;
            } else {
                self.voiced_run = 0;
                self.silence_run += 1;
            }
            if self.skipping {
                if self.silence_run >= silence_frames {
                    self.skipping = false;
                }
                self.drop_before(pos);
                continue;
            }
            if !self.speaking {
                if self.voiced_run >= speech_frames {
                    self.speaking = true;
                    let voiced_len = self.at_rate(self.voiced_run * FRAME);
                    let pre = self.ms_at_rate(self.cfg.pre_roll_ms);
                    self.start_at = pos.saturating_sub(voiced_len + pre).max(self.base);
                    events.push(VadEvent::SpeechStarted);
                } else {
                    // Keep only what a start could reach back to.
                    let keep =
                        self.at_rate(speech_frames * FRAME) + self.ms_at_rate(self.cfg.pre_roll_ms);
                    self.drop_before(pos.saturating_sub(keep));
                }
                continue;
            }
            if self.silence_run >= silence_frames {
                let end = (self.last_voiced_end + self.ms_at_rate(self.cfg.tail_ms)).min(pos);
                let u = self.cut(end, pos, EndedBy::Silence);
                events.push(VadEvent::Ended(u));
            } else if pos - self.start_at >= max_len {
                let u = self.cut(pos, pos, EndedBy::MaxLength);
                self.skipping = true;
                events.push(VadEvent::Ended(u));
            }
        }
        self.pending16.drain(..off);
        events
    }

    /// The client ended the audio (`audio_end`): the open utterance, or `None` when no speech was heard
    /// (silence, or only speech already cut at the length limit). The stream starts afresh either way.
    pub fn finish(&mut self) -> Option<Utterance> {
        let out = if self.speaking {
            let end = self.base + self.samples.len() as u64;
            Some(self.cut(end, end, EndedBy::Client))
        } else {
            None
        };
        self.reset();
        out
    }

    /// Forgets everything (a new `audio_start`).
    pub fn reset(&mut self) {
        self.detector.reset();
        self.down = To16k::new(self.rate);
        self.pending16.clear();
        self.samples = Vec::new();
        self.consumed16 = 0;
        self.base = 0;
        self.speaking = false;
        self.voiced_run = 0;
        self.silence_run = 0;
        self.start_at = 0;
        self.last_voiced_end = 0;
        self.skipping = false;
    }

    /// Takes the utterance `[start_at, end)` and drops everything before `consumed`.
    fn cut(&mut self, end: u64, consumed: u64, ended_by: EndedBy) -> Utterance {
        let from = (self.start_at.saturating_sub(self.base)) as usize;
        let to = (end.saturating_sub(self.base) as usize).min(self.samples.len());
        let samples = self
            .samples
            .get(from..to)
            .map(<[i16]>::to_vec)
            .unwrap_or_default();
        self.drop_before(consumed);
        self.speaking = false;
        self.voiced_run = 0;
        Utterance {
            samples,
            rate: self.rate,
            ended_by,
        }
    }

    fn drop_before(&mut self, pos: u64) {
        let n = (pos.saturating_sub(self.base) as usize).min(self.samples.len());
        if n > 0 {
            self.samples.drain(..n);
            self.base += n as u64;
            // A long utterance's buffer is given back once it is done with.
            if self.samples.capacity() > 4 * self.samples.len().max(16_000) {
                self.samples.shrink_to(self.samples.len().max(16_000));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A voiced-like signal: a 140 Hz pulse train with harmonics and a slow amplitude wobble, which the
    /// detector takes for speech far more readily than a pure tone.
    fn voiced(rate: u32, secs: f64) -> Vec<i16> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let f0 = 140.0 + 20.0 * (t * 3.0).sin();
                let mut v = 0.0;
                for h in 1..=12 {
                    let h = f64::from(h);
                    v += (2.0 * std::f64::consts::PI * f0 * h * t).sin() / h;
                }
                let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                (v * env * 6000.0) as i16
            })
            .collect()
    }

    fn silence(rate: u32, secs: f64) -> Vec<i16> {
        vec![0; (f64::from(rate) * secs) as usize]
    }

    fn feed(e: &mut Endpointer, s: &[i16], chunk: usize) -> Vec<VadEvent> {
        s.chunks(chunk).flat_map(|c| e.push(c)).collect()
    }

    #[test]
    fn silence_alone_never_opens_an_utterance_and_holds_little() {
        let mut e = Endpointer::new(16_000, EndpointConfig::default());
        let ev = feed(&mut e, &silence(16_000, 30.0), 320);
        assert!(ev.is_empty());
        assert!(e.finish().is_none(), "audio_end after silence: no speech");
        let mut e = Endpointer::new(48_000, EndpointConfig::default());
        feed(&mut e, &silence(48_000, 10.0), 960);
        assert!(
            e.samples.len() < 48_000,
            "only a pre-roll is held: {}",
            e.samples.len()
        );
    }

    #[test]
    fn max_length_cuts_and_skips_the_rest_of_that_speech() {
        let cfg = EndpointConfig {
            max_utterance_s: 2,
            ..EndpointConfig::default()
        };
        let mut e = Endpointer::new(16_000, cfg);
        // A constant loud buzz counts as voiced or not depending on the model; force the path by
        // treating every frame as voiced.
        e.cfg.threshold = 0.0;
        let ev = feed(&mut e, &voiced(16_000, 5.0), 800);
        let ended: Vec<&Utterance> = ev
            .iter()
            .filter_map(|v| match v {
                VadEvent::Ended(u) => Some(u),
                _ => None,
            })
            .collect();
        assert_eq!(ended.len(), 1, "one cut, the rest skipped: {ev:?}");
        assert_eq!(ended[0].ended_by, EndedBy::MaxLength);
        assert!(
            (ended[0].duration_s() - 2.0).abs() < 0.1,
            "{}",
            ended[0].duration_s()
        );
        assert!(e.finish().is_none());
    }

    #[test]
    fn start_then_silence_ends_with_the_speech_inside() {
        for rate in super::super::audio::SAMPLE_RATES {
            let mut e = Endpointer::new(rate, EndpointConfig::default());
            e.cfg.threshold = 2.0; // no frame voiced (the score is at most 1) ...
            let mut ev = feed(&mut e, &silence(rate, 0.5), 333);
            e.cfg.threshold = 0.0; // ... then every frame while the signal plays ...
            ev.extend(feed(&mut e, &voiced(rate, 1.0), 333));
            assert_eq!(ev, vec![VadEvent::SpeechStarted], "rate {rate}");
            e.cfg.threshold = 2.0; // ... and none after
            let ev = feed(&mut e, &silence(rate, 1.5), 333);
            match ev.as_slice() {
                [VadEvent::Ended(u)] => {
                    assert_eq!(u.ended_by, EndedBy::Silence);
                    assert_eq!(u.rate, rate);
                    // 1 s of speech, the pre-roll before it and a short tail after.
                    let d = u.duration_s();
                    assert!((1.0..1.7).contains(&d), "rate {rate}: {d}");
                }
                other => unreachable!("rate {rate}: {other:?}"),
            }
        }
    }

    #[test]
    fn client_end_returns_the_open_utterance() {
        let mut e = Endpointer::new(24_000, EndpointConfig::default());
        e.cfg.threshold = 0.0;
        let ev = feed(&mut e, &voiced(24_000, 1.0), 480);
        assert_eq!(ev, vec![VadEvent::SpeechStarted]);
        let u = e.finish().unwrap();
        assert_eq!(u.ended_by, EndedBy::Client);
        assert!(u.duration_s() > 0.9);
        assert!(!e.speaking());
    }

    /// Speech synthesised by espeak-ng and resampled by sox (Debian packages `espeak-ng` and `sox`).
    pub(crate) fn spoken(text: &str, rate: u32) -> Vec<i16> {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.wav");
        let out = dir.path().join("out.wav");
        let ok = std::process::Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "160", "-w"])
            .arg(&raw)
            .arg(text)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "espeak-ng is needed: apt-get install -y espeak-ng sox");
        let ok = std::process::Command::new("sox")
            .arg(&raw)
            .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "sox is needed: apt-get install -y espeak-ng sox");
        let (samples, r) = super::super::audio::read_wav(&std::fs::read(out).unwrap()).unwrap();
        assert_eq!(r, rate);
        samples
    }

    #[test]
    fn real_speech_is_endpointed_by_the_silence_after_it() {
        for rate in [16_000, 48_000] {
            let first = spoken("I would keep a hash map from each word to its count.", rate);
            let second = spoken("Then sort the entries by count.", rate);
            let mut e = Endpointer::new(rate, EndpointConfig::default());
            let mut ev = feed(&mut e, &silence(rate, 1.0), rate as usize / 50);
            ev.extend(feed(&mut e, &first, rate as usize / 50));
            ev.extend(feed(&mut e, &silence(rate, 1.5), rate as usize / 50));
            ev.extend(feed(&mut e, &second, rate as usize / 50));
            ev.extend(feed(&mut e, &silence(rate, 1.5), rate as usize / 50));
            let ended: Vec<f64> = ev
                .iter()
                .filter_map(|v| match v {
                    VadEvent::Ended(u) => {
                        assert_eq!(u.ended_by, EndedBy::Silence);
                        Some(u.duration_s())
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(
                ended.len(),
                2,
                "rate {rate}: two answers, ended by silence: {ev:?}"
            );
            let len = |s: &[i16]| s.len() as f64 / f64::from(rate);
            // Each utterance holds its speech (espeak pads a little silence, the pre-roll adds some).
            assert!(
                ended[0] > len(&first) * 0.7 && ended[0] < len(&first) + 1.0,
                "{ended:?}"
            );
            assert!(
                ended[1] > len(&second) * 0.7 && ended[1] < len(&second) + 1.0,
                "{ended:?}"
            );
            assert!(ev.iter().filter(|v| **v == VadEvent::SpeechStarted).count() >= 2);
        }
    }
}
