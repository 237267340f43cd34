//! Voice over the interview's WebSocket, against the real binary: a real faster-whisper node
//! transcribing espeak-ng speech (endpointed by silence, and ended by `audio_end` at 48 kHz), the
//! interviewer's voice from a real Piper node with barge-in, speech-to-text failover from a failing
//! node to a cloud key and `stt_unavailable` when both fail, bad audio input, the quiet-candidate
//! re-prompt, and the voice-pipeline example client (tests/tools/voice_pipeline_example.py).
//!
//! Needs `.ci/install-voice` (faster-whisper-server, Piper) and Debian's espeak-ng and sox; a test
//! that cannot find them fails with the install command.
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use std::time::Duration;

use common::config::Config;
use common::fake::FakeProvider;
use common::server::Engine;
use common::voice::{pcm, silence, speech, stream, Node, VoiceEnv};
use common::ws::{create, Client, Created};
use serde_json::{json, Value};

fn config(extra: &str) -> String {
    Config::new().toml_with(extra)
}

fn stt_node(name: &str, url: &str) -> String {
    format!("[[stt_nodes]]\nname = \"{name}\"\nurl = \"{url}\"\nmodel = \"tiny.en\"\nmax_concurrency = 2\n")
}

fn body(name: &str, voice: bool) -> Value {
    json!({"candidate": {"id": format!("cand-{name}"), "name": name}, "role": "Backend Engineer",
           "track": "technical", "difficulty": "medium", "questions": 3, "voice": voice})
}

async fn connect(engine: &Engine, c: &Created) -> Client {
    let mut client = Client::connect(&engine.base, c).await;
    let ready = client.next().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["protocol_version"], 2);
    client
}

/// Reads until the open question (or follow-up); returns it.
async fn question(client: &mut Client) -> Value {
    client
        .until(|v| {
            v["type"] == "interviewer" && (v["kind"] == "question" || v["kind"] == "follow_up")
        })
        .await
}

async fn audio_start(client: &mut Client, rate: u32) {
    client
        .send(json!({"type": "audio_start", "format": "pcm16", "sample_rate": rate, "channels": 1}))
        .await;
}

async fn error(client: &mut Client) -> Value {
    client.until(|v| v["type"] == "error").await
}

const ANSWER: &str =
    "I would use a hash map to count every word, then sort the words by their count.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_whisper_node_hears_spoken_answers_and_the_interview_goes_on() {
    let env = VoiceEnv::load();
    let node = Node::whisper(&env);
    node.wait_healthy().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &config(&stt_node("whisper-1", &node.url)), &[]);
    let c = create(&engine.base, body("ada", false)).await;
    let mut client = connect(&engine, &c).await;
    // The first model load is slow on a busy machine.
    client.wait = Duration::from_secs(120);
    question(&mut client).await;

    // Answer 1 at 16 kHz, with no audio_end: the server's endpointing ends it after the silence.
    audio_start(&mut client, 16_000).await;
    let mut audio = silence(16_000, 0.5);
    audio.extend(speech(ANSWER, 16_000));
    audio.extend(silence(16_000, 1.5));
    stream(&mut client, &audio, 16_000, 20).await;
    let started = client.until(|v| v["type"] == "speech").await;
    assert_eq!(started["state"], "started");
    let t = client.until(|v| v["type"] == "transcript").await;
    assert_eq!(t["final"], true);
    assert_eq!(t["turn"], 1);
    assert_eq!(t["source"], "stt:whisper-1");
    assert!(
        t["seq"].as_u64().unwrap() > 0,
        "the transcript is logged: {t}"
    );
    let heard = t["text"].as_str().unwrap().to_lowercase();
    for w in ["hash", "count", "sort"] {
        assert!(heard.contains(w), "whisper heard {heard:?}");
    }
    let d = t["audio_duration_s"].as_f64().unwrap();
    assert!((3.0..9.0).contains(&d), "duration {d}");
    let ev = client.until(|v| v["type"] == "evaluation").await;
    assert_eq!(
        ev["turn"], 1,
        "the spoken answer is evaluated like a typed one"
    );

    // Answer 2 at 48 kHz, ended by audio_end (client endpointing: pauses do not end it).
    let q = question(&mut client).await;
    client
        .send(json!({"type": "audio_start", "format": "pcm16", "sample_rate": 48_000, "channels": 1, "endpointing": "client"}))
        .await;
    let mut audio = speech("First I would profile the slow query.", 48_000);
    audio.extend(silence(48_000, 1.5));
    audio.extend(speech("Then I would cache the results.", 48_000));
    stream(&mut client, &audio, 48_000, 40).await;
    client.send(json!({"type": "audio_end"})).await;
    let t = client.until(|v| v["type"] == "transcript").await;
    assert_eq!(t["turn"], q["turn"]);
    let heard = t["text"].as_str().unwrap().to_lowercase();
    assert!(
        heard.contains("profile") && heard.contains("cache"),
        "one answer across the pause: {heard:?}"
    );
    client.until(|v| v["type"] == "evaluation").await;

    // The rest typed; the report's speaking section has the spoken answers.
    let report = client.finish_with(ANSWER).await;
    let speaking = &report["report"]["speaking"];
    assert_eq!(speaking["answers_spoken"], 2, "{speaking}");
    assert!(
        speaking["words_per_minute"].as_f64().unwrap() > 60.0,
        "{speaking}"
    );
    assert!(speaking["talk_time"]["candidate_s"].as_f64().unwrap() > 4.0);
    assert!(!report["report"]["questions"][0]["answer"]
        .as_str()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interviewer_speaks_and_a_barge_in_cuts_it() {
    let env = VoiceEnv::load();
    let piper = Node::piper(&env);
    piper.wait_healthy().await;
    let fake = FakeProvider::start().await; // speech-to-text node (no key)
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}[[tts_nodes]]\nname = \"piper-1\"\nurl = \"{}\"\nmodel = \"piper\"\nmax_concurrency = 2\n",
        stt_node("fake-stt", &fake.base),
        piper.url
    );
    let engine = Engine::start(dir.path(), &config(&cfg), &[]);
    let created = reqwest::Client::new()
        .post(format!("{}/api/interviews", engine.base))
        .json(&body("bob", true))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["voice"]["interviewer_speaks"], true);
    let c = Created {
        id: created["interview_id"].as_str().unwrap().into(),
        token: created["token"].as_str().unwrap().into(),
    };
    let mut client = connect(&engine, &c).await;
    client.wait = Duration::from_secs(60);
    // The greeting is spoken: audio_out_start, binary PCM16, audio_out_end.
    let start = client.until(|v| v["type"] == "audio_out_start").await;
    assert_eq!(
        (start["turn"].as_u64(), start["format"].as_str()),
        (Some(0), Some("pcm16"))
    );
    assert_eq!(start["sample_rate"], 22_050, "Piper's joe voice");
    client.until(|v| v["type"] == "audio_out_end").await;
    assert!(
        client.audio_bytes > 22_050,
        "at least half a second of greeting: {}",
        client.audio_bytes
    );
    // The question's audio starts; the candidate talks over it.
    let q = client
        .until(|v| v["type"] == "audio_out_start" && v["kind"] == "question")
        .await;
    audio_start(&mut client, 16_000).await;
    let mut audio = speech(ANSWER, 16_000);
    audio.extend(silence(16_000, 1.2));
    stream(&mut client, &audio, 16_000, 20).await;
    let cut = client
        .until(|v| v["type"] == "audio_out_end" && v["interrupted"] == true)
        .await;
    assert_eq!(cut["turn"], q["turn"]);
    assert!(cut["heard_s"].as_f64().is_some());
    let t = client.until(|v| v["type"] == "transcript").await;
    assert_eq!(t["source"], "stt:fake-stt");
    client.until(|v| v["type"] == "evaluation").await;
    // End early: the report records the barge-in and the interviewer's talk time.
    client.send(json!({"type": "end"})).await;
    let report = client.until(|v| v["type"] == "report").await;
    let s = &report["report"]["speaking"];
    assert_eq!(s["barge_ins"]["count"], 1, "{s}");
    assert_eq!(s["barge_ins"]["items"][0]["kind"], "question");
    assert!(
        s["talk_time"]["interviewer_s"].as_f64().unwrap() > 0.5,
        "{s}"
    );
    // A second voice interview hears the same fixed lines from the speech cache.
    let status = engine.get("/api/system_status", None).await;
    assert!(
        status.json["voice"]["tts"]["cache"]["entries"]
            .as_u64()
            .unwrap()
            >= 1,
        "{}",
        status.json["voice"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stt_fails_over_from_a_failing_node_to_a_cloud_key_then_says_stt_unavailable() {
    let broken = FakeProvider::start().await; // a node answering 500
    broken.audio_control(json!({"status": 500})).await;
    let cloud = FakeProvider::start().await; // a provider with an stt_model
    cloud.add_key("gsk_voice_1", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{}[providers.voicecloud]\nformat = \"openai\"\nbase_url = \"{}/openai/v1\"\nmodel = \"m\"\nstt_model = \"whisper-large-v3-turbo\"\nstt_limits = {{ rpm = 20, audio_seconds_per_hour = 7200, min_billed_s = 10 }}\n",
        stt_node("broken", &broken.base),
        cloud.base
    );
    let engine = Engine::start(
        dir.path(),
        &config(&cfg),
        &[("VOICECLOUD_API_KEYS", "gsk_voice_1".into())],
    );
    let c = create(&engine.base, body("cy", false)).await;
    let mut client = connect(&engine, &c).await;
    question(&mut client).await;
    audio_start(&mut client, 16_000).await;
    let mut audio = speech(ANSWER, 16_000);
    audio.extend(silence(16_000, 1.2));
    stream(&mut client, &audio, 16_000, 20).await;
    let t = client.until(|v| v["type"] == "transcript").await;
    assert_eq!(
        t["source"], "stt:voicecloud",
        "the cloud key took over: {t}"
    );
    client.until(|v| v["type"] == "evaluation").await;
    assert!(
        broken.audio_counts().await["refused"].as_u64().unwrap() >= 1,
        "the node was tried first"
    );
    // The key's windows count the audio: at least the 10 s billed minimum.
    let status = engine.get("/api/system_status", None).await;
    let key = &status.json["voice"]["stt"]["keys"][0];
    assert_eq!(key["id"], "voicecloud#1");
    assert!(key["audio_seconds_hour"].as_u64().unwrap() >= 10, "{key}");
    assert!(!status.text.contains("gsk_voice_1"), "no key in status");

    // Both fail: stt_unavailable, nothing changed, and the candidate can type.
    question(&mut client).await;
    cloud.set_fault("gsk_voice_1", Some("http_500"), None).await;
    stream(&mut client, &audio, 16_000, 20).await;
    let e = error(&mut client).await;
    assert_eq!(e["code"], "stt_unavailable", "{e}");
    client.answer(ANSWER).await;
    let ev = client.until(|v| v["type"] == "evaluation").await;
    assert_eq!(ev["turn"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_audio_gets_clear_errors_and_the_interview_goes_on() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[voice]\nmax_utterance_s = 2\n{}",
        stt_node("fake-stt", &fake.base)
    );
    let engine = Engine::start(dir.path(), &config(&cfg), &[]);
    let c = create(&engine.base, body("dee", false)).await;
    let mut client = connect(&engine, &c).await;
    let q = question(&mut client).await;

    // Binary before audio_start: one error for the burst.
    client.send_binary(pcm(&[0; 320])).await;
    client.send_binary(pcm(&[0; 320])).await;
    assert_eq!(error(&mut client).await["code"], "audio_not_started");
    client.send(json!({"type": "audio_end"})).await;
    assert_eq!(error(&mut client).await["code"], "audio_not_started");
    // Unsupported formats.
    for bad in [
        json!({"type": "audio_start", "format": "pcm16", "sample_rate": 44_100, "channels": 1}),
        json!({"type": "audio_start", "format": "pcm16", "sample_rate": 16_000, "channels": 2}),
        json!({"type": "audio_start", "format": "opus", "sample_rate": 16_000, "channels": 1}),
    ] {
        client.send(bad).await;
        assert_eq!(error(&mut client).await["code"], "audio_format_unsupported");
    }
    client
        .send(json!({"type": "audio_start", "sample_rate": "fast"}))
        .await;
    assert_eq!(error(&mut client).await["code"], "invalid_message");
    // An odd byte count is dropped with an error.
    audio_start(&mut client, 16_000).await;
    client.send_binary(vec![1, 2, 3]).await;
    assert_eq!(error(&mut client).await["code"], "invalid_audio");
    // Pure silence, then audio_end: no speech.
    stream(&mut client, &silence(16_000, 3.0), 16_000, 100).await;
    client.send(json!({"type": "audio_end"})).await;
    assert_eq!(error(&mut client).await["code"], "no_speech");
    // Nothing was answered: the question is still open. Too long: cut at 2 s and transcribed.
    let long: Vec<i16> = [speech(ANSWER, 16_000), speech(ANSWER, 16_000)].concat();
    stream(&mut client, &long, 16_000, 20).await;
    stream(&mut client, &silence(16_000, 1.2), 16_000, 20).await;
    assert_eq!(error(&mut client).await["code"], "utterance_too_long");
    let t = client.until(|v| v["type"] == "transcript").await;
    assert_eq!(t["turn"], q["turn"]);
    assert!(t["audio_duration_s"].as_f64().unwrap() <= 2.05, "{t}");
    client.until(|v| v["type"] == "evaluation").await;
    // A transcription that arrives while no question is open is shown and refused.
    stream(&mut client, &speech(ANSWER, 16_000), 16_000, 20).await;
    client.send(json!({"type": "audio_end"})).await;
    // Then the interview goes on by text.
    let report = client.finish_with(ANSWER).await;
    assert_eq!(report["type"], "report");
    let logged_transcripts = client
        .logged
        .iter()
        .filter(|e| e["type"] == "transcript")
        .count();
    assert!(logged_transcripts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_without_speech_to_text_is_refused_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &config(""), &[]);
    let c = create(&engine.base, body("eve", false)).await;
    let mut client = connect(&engine, &c).await;
    question(&mut client).await;
    client.send_binary(pcm(&[0; 320])).await;
    assert_eq!(error(&mut client).await["code"], "audio_unsupported");
    audio_start(&mut client, 16_000).await;
    assert_eq!(error(&mut client).await["code"], "audio_unsupported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_speaking_candidate_gets_one_reprompt() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("[voice]\naway_s = 1\n{}", stt_node("fake-stt", &fake.base));
    let engine = Engine::start(dir.path(), &config(&cfg), &[]);
    let c = create(&engine.base, body("fay", true)).await;
    let mut client = connect(&engine, &c).await;
    let q = question(&mut client).await;
    let r = client
        .until(|v| v["type"] == "interviewer" && v["kind"] == "reprompt")
        .await;
    assert_eq!(r["turn"], q["turn"]);
    assert!(
        r["seq"].as_u64().unwrap() > q["seq"].as_u64().unwrap(),
        "logged after the question"
    );
    // Only one per question: the next events come from the answer.
    client.answer(ANSWER).await;
    let next = client
        .until(|v| {
            v["type"] == "evaluation" || (v["type"] == "interviewer" && v["kind"] == "reprompt")
        })
        .await;
    assert_eq!(next["type"], "evaluation", "no second re-prompt: {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_pipeline_example_runs_an_interview() {
    let env = VoiceEnv::load();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &config(""), &[]);
    let script = format!(
        "{}/tests/tools/voice_pipeline_example.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&env.python)
            .arg(&script)
            .arg(&engine.base)
            .output(),
    )
    .await
    .expect("the example finished")
    .expect("the example ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(last).expect("the example prints the report last");
    assert_eq!(report["state"], "completed");
    let s = &report["speaking"];
    assert_eq!(s["answers_spoken"], 3, "{s}");
    assert_eq!(s["pace_from"], "word_timings");
    assert!(s["long_pauses"]["count"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        stdout.contains("tts: start speaking"),
        "the loop starts its TTS at the first sentence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_candidate_page_answers_a_question_by_voice_in_chromium() {
    let env = VoiceEnv::load();
    let whisper = Node::whisper(&env);
    let piper = Node::piper(&env);
    whisper.wait_healthy().await;
    piper.wait_healthy().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[interview]\nquestions = 2\n{}[[tts_nodes]]\nname = \"piper-1\"\nurl = \"{}\"\nmodel = \"piper\"\n",
        stt_node("whisper-1", &whisper.url),
        piper.url
    );
    let engine = Engine::start(dir.path(), &config(&cfg), &[]);
    // The fake microphone plays this file in a loop: a pause, the answer, a long pause.
    let mut audio = silence(48_000, 1.0);
    audio.extend(speech(ANSWER, 48_000));
    audio.extend(silence(48_000, 4.0));
    let wav_path = dir.path().join("mic.wav");
    std::fs::write(
        &wav_path,
        actors::voice::audio::wav(&audio, 48_000).unwrap(),
    )
    .unwrap();
    let b = common::browser::Browser::start_with_args(&[
        "--use-fake-ui-for-media-stream".into(),
        "--use-fake-device-for-media-stream".into(),
        format!("--use-file-for-fake-audio-capture={}", wav_path.display()),
        "--autoplay-policy=no-user-gesture-required".into(),
    ])
    .await;
    b.goto(&format!("{}/", engine.base)).await;
    let name = b.wait_for("#name", Duration::from_secs(10)).await;
    b.type_into(&name, "Vera").await;
    let voice = b.wait_for("#voice-on", Duration::from_secs(5)).await;
    assert!(
        b.enabled(&voice).await,
        "voice is offered on a secure (loopback) page"
    );
    b.click(&voice).await;
    let start = b.find("#start").await.unwrap();
    b.click(&start).await;
    // The microphone starts by itself for a voice interview; the answer is heard and transcribed.
    let heard = b
        .wait_until(
            "const n = document.querySelector('.msg.candidate.heard'); return n ? n.textContent : null;",
            Duration::from_secs(90),
            "a transcribed answer on the page",
        )
        .await;
    let heard = heard.as_str().unwrap().to_lowercase();
    assert!(
        heard.contains("hash") && heard.contains("count"),
        "heard {heard:?}"
    );
    b.wait_until(
        "return document.querySelector('.evaluation[data-turn=\"1\"]') ? true : null;",
        Duration::from_secs(60),
        "the spoken answer's evaluation",
    )
    .await;
    let stats = b.exec("return window.ieVoice.stats;", vec![]).await;
    assert!(stats["framesSent"].as_u64().unwrap() > 100, "{stats}");
    assert!(
        stats["played"].as_u64().unwrap() > 0,
        "the interviewer's voice was played: {stats}"
    );
    let state = b
        .exec(
            "return document.querySelector('#voice-mic').getAttribute('aria-pressed');",
            vec![],
        )
        .await;
    assert_eq!(state, "true", "the microphone is on");
    b.quit().await;
}
