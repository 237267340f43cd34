//! Audio as the engine handles it: little-endian PCM16 from the socket, a cheap 16 kHz copy for the
//! voice activity detector, WAV files for speech-to-text (hound), and the header of a WAV stream
//! coming back from text-to-speech.
//!
//! Speech-to-text receives the samples at the rate the client sent them (whisper resamples with a
//! proper filter); only the detector's copy is downsampled here, with a box filter that is plenty for
//! telling speech from silence.

use std::io::Cursor;

/// Sample rates a client may send (`audio_start.sample_rate`).
pub const SAMPLE_RATES: [u32; 3] = [16_000, 24_000, 48_000];

/// Why audio could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// A binary frame with an odd number of bytes: PCM16 samples are two bytes each.
    #[error("a PCM16 frame must have an even number of bytes (got {0})")]
    OddLength(usize),
    /// A sample rate other than 16000, 24000 or 48000.
    #[error("sample_rate {0} is not supported: use 16000, 24000 or 48000")]
    Rate(u32),
    /// Something other than one channel.
    #[error("channels {0} is not supported: send mono (channels: 1)")]
    Channels(u32),
    /// A format other than `pcm16`.
    #[error("format {0:?} is not supported: send \"pcm16\"")]
    Format(String),
    /// The WAV writer failed (never for in-memory buffers; kept rather than unwrapped).
    #[error("could not encode WAV: {0}")]
    Wav(String),
}

/// Checks an `audio_start` and returns the sample rate.
pub fn check_format(format: &str, sample_rate: u32, channels: u32) -> Result<u32, AudioError> {
    if !format.eq_ignore_ascii_case("pcm16") {
        return Err(AudioError::Format(format.to_string()));
    }
    if channels != 1 {
        return Err(AudioError::Channels(channels));
    }
    if !SAMPLE_RATES.contains(&sample_rate) {
        return Err(AudioError::Rate(sample_rate));
    }
    Ok(sample_rate)
}

/// Little-endian PCM16 bytes as samples; an odd byte count is refused (nothing is half-read).
pub fn pcm16_samples(bytes: &[u8]) -> Result<Vec<i16>, AudioError> {
    if bytes.len() % 2 != 0 {
        return Err(AudioError::OddLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect())
}

/// Samples as little-endian PCM16 bytes.
pub fn pcm16_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A mono PCM16 WAV file of `samples` at `rate`.
pub fn wav(samples: &[i16], rate: u32) -> Result<Vec<u8>, AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut w =
            hound::WavWriter::new(&mut out, spec).map_err(|e| AudioError::Wav(e.to_string()))?;
        let mut w16 = w.get_i16_writer(samples.len() as u32);
        for s in samples {
            w16.write_sample(*s);
        }
        w16.flush().map_err(|e| AudioError::Wav(e.to_string()))?;
        w.finalize().map_err(|e| AudioError::Wav(e.to_string()))?;
    }
    Ok(out.into_inner())
}

/// Reads a mono (or first-channel) PCM16 WAV: samples and rate. For tests, tools and the load test.
pub fn read_wav(bytes: &[u8]) -> Result<(Vec<i16>, u32), AudioError> {
    let mut r =
        hound::WavReader::new(Cursor::new(bytes)).map_err(|e| AudioError::Wav(e.to_string()))?;
    let spec = r.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(AudioError::Wav("only 16-bit PCM WAV is read".into()));
    }
    let ch = usize::from(spec.channels.max(1));
    let all: Result<Vec<i16>, _> = r.samples::<i16>().collect();
    let all = all.map_err(|e| AudioError::Wav(e.to_string()))?;
    Ok((all.into_iter().step_by(ch).collect(), spec.sample_rate))
}

/// Downsamples a stream to 16 kHz for the voice activity detector (box filter, state kept between
/// frames so any frame length works).
#[derive(Debug, Clone)]
pub struct To16k {
    rate: u32,
    pending: Vec<i32>,
}

impl To16k {
    /// A converter from `rate` (16000, 24000 or 48000).
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            pending: Vec::with_capacity(3),
        }
    }

    /// Appends the 16 kHz samples for `input` to `out`.
    pub fn push(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match self.rate {
            16_000 => out.extend_from_slice(input),
            48_000 => {
                // Three in, one out: their mean.
                for &s in input {
                    self.pending.push(i32::from(s));
                    if self.pending.len() == 3 {
                        out.push(clamp(self.pending.iter().sum::<i32>() / 3));
                        self.pending.clear();
                    }
                }
            }
            _ => {
                // 24 kHz: three in, two out (at 0 and 1.5 input samples).
                for &s in input {
                    self.pending.push(i32::from(s));
                    if self.pending.len() == 3 {
                        let p = &self.pending;
                        out.push(clamp(p[0]));
                        out.push(clamp((p[1] + p[2]) / 2));
                        self.pending.clear();
                    }
                }
            }
        }
    }
}

fn clamp(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// The format of a WAV stream, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
}

/// Reads the header of a WAV stream as its bytes arrive: `feed` until it returns the format and the
/// offset where the samples start (any chunks between `fmt ` and `data` are skipped). A header that is
/// not a PCM16 WAV is an error; a header over 64 KiB too.
#[derive(Debug, Default)]
pub struct WavHeader {
    buf: Vec<u8>,
}

impl WavHeader {
    /// Adds bytes; `Ok(Some((format, rest)))` once the `data` chunk begins, with the sample bytes that
    /// followed the header in what was fed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<(WavFormat, Vec<u8>)>, String> {
        self.buf.extend_from_slice(bytes);
        let b = &self.buf;
        if b.len() < 12 {
            return Ok(None);
        }
        if &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
            return Err("speech answer is not a WAV file".into());
        }
        let mut pos = 12;
        let mut fmt: Option<WavFormat> = None;
        while pos + 8 <= b.len() {
            let id = &b[pos..pos + 4];
            let size =
                u32::from_le_bytes([b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]]) as usize;
            let body = pos + 8;
            if id == b"data" {
                let f = fmt.ok_or("WAV data before its fmt chunk")?;
                if f.bits != 16 {
                    return Err(format!(
                        "speech answer has {} bits per sample, not 16",
                        f.bits
                    ));
                }
                return Ok(Some((f, b[body..].to_vec())));
            }
            if body + size > b.len() {
                break; // the chunk is not all here yet
            }
            if id == b"fmt " && size >= 16 {
                let f = &b[body..body + 16];
                let audio_format = u16::from_le_bytes([f[0], f[1]]);
                if audio_format != 1 && audio_format != 0xFFFE {
                    return Err(format!(
                        "speech answer is WAV format {audio_format}, not PCM"
                    ));
                }
                fmt = Some(WavFormat {
                    channels: u16::from_le_bytes([f[2], f[3]]),
                    sample_rate: u32::from_le_bytes([f[4], f[5], f[6], f[7]]),
                    bits: u16::from_le_bytes([f[14], f[15]]),
                });
            }
            pos = body + size + (size & 1);
        }
        if self.buf.len() > 64 * 1024 {
            return Err("WAV header over 64 KiB".into());
        }
        Ok(None)
    }
}

/// Root mean square level of `samples` in dBFS (-100 for silence).
pub fn level_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return -100.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum();
    let rms = (sum / samples.len() as f64).sqrt() / 32768.0;
    if rms <= 1e-5 {
        -100.0
    } else {
        20.0 * rms.log10()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked() {
        assert_eq!(check_format("pcm16", 16_000, 1), Ok(16_000));
        assert_eq!(check_format("PCM16", 48_000, 1), Ok(48_000));
        assert_eq!(
            check_format("pcm16", 44_100, 1),
            Err(AudioError::Rate(44_100))
        );
        assert_eq!(
            check_format("pcm16", 16_000, 2),
            Err(AudioError::Channels(2))
        );
        assert!(matches!(
            check_format("opus", 16_000, 1),
            Err(AudioError::Format(_))
        ));
    }

    #[test]
    fn odd_frames_are_refused_and_even_ones_round_trip() {
        assert_eq!(pcm16_samples(&[1, 2, 3]), Err(AudioError::OddLength(3)));
        let s = vec![0i16, 1, -1, i16::MAX, i16::MIN];
        assert_eq!(pcm16_samples(&pcm16_bytes(&s)).unwrap(), s);
    }

    #[test]
    fn wav_round_trips_and_streams_its_header() {
        let s: Vec<i16> = (0..1000).map(|i| (i * 7 % 300) as i16).collect();
        let w = wav(&s, 24_000).unwrap();
        assert_eq!(read_wav(&w).unwrap(), (s.clone(), 24_000));
        // Fed a few bytes at a time, the header is found and the rest is the samples.
        let mut h = WavHeader::default();
        let mut got = None;
        let mut rest = Vec::new();
        for chunk in w.chunks(7) {
            if got.is_some() {
                rest.extend_from_slice(chunk);
                continue;
            }
            if let Some((f, r)) = h.feed(chunk).unwrap() {
                got = Some(f);
                rest = r;
            }
        }
        assert_eq!(got.unwrap().sample_rate, 24_000);
        assert_eq!(pcm16_samples(&rest).unwrap(), s);
        assert!(WavHeader::default().feed(b"NOT A WAV FILE AT ALL").is_err());
    }

    #[test]
    fn downsampling_keeps_duration_across_any_frame_length() {
        for rate in SAMPLE_RATES {
            let mut d = To16k::new(rate);
            let mut out = Vec::new();
            let input = vec![1000i16; rate as usize]; // one second
            for chunk in input.chunks(37) {
                d.push(chunk, &mut out);
            }
            assert_eq!(out.len(), 16_000, "rate {rate}");
            assert!(out.iter().all(|s| *s == 1000));
        }
    }

    #[test]
    fn level_of_silence_and_full_scale() {
        assert_eq!(level_dbfs(&[0; 100]), -100.0);
        assert!(level_dbfs(&[i16::MAX; 100]) > -0.1);
    }
}
