//! In-process tests of the session state machine: one `InterviewSession` over a temporary sled log,
//! no provider (heuristic level), a connection read directly. What a client sees, in order, with the
//! log agreeing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{call, Actor, ActorRef};
use serde_json::Value;

use super::{InterviewSession, SessionArgs, SessionMsg};
use crate::interview::{InterviewRecord, Phase};
use crate::protocol::ClientMessage;
use crate::storage::{SessionLog, SledStore};
use crate::testkit::{self, Client};

const GOOD_ANSWER: &str = "I would add indexes on the filtered columns and read the query plans \
    to check that the planner uses them, then measure again.";

/// A session of interview `id` (`questions` questions, created in a fresh log), and the log.
async fn session(id: &str, questions: usize) -> (ActorRef<SessionMsg>, SledStore) {
    let log = testkit::store();
    testkit::create(&log, id, questions).await;
    let deps = testkit::deps(log.clone(), 10);
    let record = SessionLog::load(&log, id).unwrap().unwrap();
    let args = SessionArgs {
        record,
        deps,
        conn: Arc::new(Mutex::new(None)),
        restarted: false,
    };
    let (actor, _) = Actor::spawn(None, InterviewSession, args).await.unwrap();
    (actor, log)
}

async fn attach(actor: &ActorRef<SessionMsg>, client: &Client) -> Value {
    call!(actor, SessionMsg::Attach, client.handle.clone()).unwrap()
}

fn send(actor: &ActorRef<SessionMsg>, client: &Client, msg: ClientMessage) {
    actor
        .cast(SessionMsg::Client(client.handle.id, msg, None))
        .unwrap();
}

fn answer(text: &str, turn: Option<u32>, seq: Option<u64>) -> ClientMessage {
    ClientMessage::Answer {
        text: text.into(),
        audio_duration_s: None,
        turn,
        seq,
        words: None,
    }
}

async fn view(actor: &ActorRef<SessionMsg>) -> InterviewRecord {
    call!(actor, SessionMsg::View).unwrap()
}

/// The logged events, as stored.
fn logged(log: &SledStore, id: &str) -> Vec<Value> {
    let rec = SessionLog::load(log, id).unwrap().unwrap();
    SessionLog::events_after(log, id, 0, rec.last_seq())
        .unwrap()
        .into_iter()
        .map(|(_, t)| serde_json::from_str(&t).unwrap())
        .collect()
}

#[tokio::test]
async fn a_new_interview_greets_asks_and_runs_to_its_report() {
    let (actor, log) = session("s-full", 2).await;
    let mut c = Client::new();
    let ready = attach(&actor, &c).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["state"], "created");
    assert_eq!(ready["seq"], 0);
    assert_eq!(ready["questions_total"], 2);
    assert_eq!(ready["ephemeral"], true);

    // A new interview is live at once: greeting, then the first question.
    let greeting = c.expect("interviewer").await;
    assert_eq!(
        (greeting["kind"].as_str(), greeting["turn"].as_u64()),
        (Some("greeting"), Some(0))
    );
    let mut prompt = c.expect("interviewer").await;
    assert_eq!(prompt["kind"], "question");
    assert_eq!(prompt["turn"], 1);

    // Answer every prompt (questions and any follow-up) until the report.
    let mut received = vec![greeting, prompt.clone()];
    loop {
        send(
            &actor,
            &c,
            answer(
                GOOD_ANSWER,
                prompt["turn"].as_u64().map(|t| t as u32),
                prompt["seq"].as_u64(),
            ),
        );
        let mut next = None;
        while let Some(ev) = c.next().await {
            received.push(ev.clone());
            let kind = ev["kind"].as_str().unwrap_or_default();
            if ev["type"] == "report" || kind == "question" || kind == "follow_up" {
                next = Some(ev);
                break;
            }
        }
        let ev = next.expect("a prompt or the report");
        if ev["type"] == "report" {
            break;
        }
        prompt = ev;
    }
    assert!(received.iter().any(|e| e["type"] == "evaluation"));
    let closing = &received[received.len() - 2];
    assert_eq!(closing["kind"], "closing");
    assert_eq!(closing["turn"], 3);

    // Logged events are numbered 1, 2, 3, ... with nothing missing, and are what the client got.
    let seqs: Vec<u64> = received.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(logged(&log, "s-full"), received);

    let rec = view(&actor).await;
    assert_eq!(rec.phase, Phase::Completed);
    assert_eq!(rec.report_seq, Some(rec.last_seq()));
    assert!(rec.items.iter().all(|i| i.score.is_some()));
    actor.stop(None);
}

#[tokio::test]
async fn refused_answers_change_nothing() {
    let (actor, log) = session("s-refused", 2).await;
    let mut c = Client::new();
    attach(&actor, &c).await;
    c.expect("interviewer").await;
    let q = c.expect("interviewer").await;
    let seq = q["seq"].as_u64().unwrap();

    // Another turn, another prompt's seq, an empty text: each an error carrying the last seq.
    for (msg, code) in [
        (answer("late", Some(2), None), "stale_answer"),
        (answer("late", Some(1), Some(seq - 1)), "stale_answer"),
        (answer("   ", Some(1), Some(seq)), "empty_answer"),
    ] {
        send(&actor, &c, msg);
        let e = c.expect("error").await;
        assert_eq!(e["code"], code);
        assert_eq!(e["seq"], seq);
        assert_eq!(e["ephemeral"], true);
    }
    // A ping is answered with the last logged seq too.
    send(&actor, &c, ClientMessage::Ping);
    let pong = c.expect("pong").await;
    assert_eq!(pong["seq"], seq);

    let rec = view(&actor).await;
    assert_eq!((rec.phase, rec.last_seq()), (Phase::AwaitingAnswer, seq));
    assert_eq!(logged(&log, "s-refused").len() as u64, seq);
    actor.stop(None);
}

#[tokio::test]
async fn skip_moves_on_and_end_closes_early() {
    let (actor, _log) = session("s-skip", 3).await;
    let mut c = Client::new();
    attach(&actor, &c).await;
    c.expect("interviewer").await;
    c.expect("interviewer").await;

    // Skipping another turn than the open one is refused; the open one is skipped.
    send(&actor, &c, ClientMessage::Skip { turn: Some(3) });
    assert_eq!(c.expect("error").await["code"], "stale_answer");
    send(&actor, &c, ClientMessage::Skip { turn: Some(1) });
    let skipped = c.expect("skipped").await;
    assert_eq!(
        (skipped["turn"].as_u64(), skipped["follow_up"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(c.expect("interviewer").await["kind"], "reaction");
    let q2 = c.expect("interviewer").await;
    assert_eq!(
        (q2["kind"].as_str(), q2["turn"].as_u64()),
        (Some("question"), Some(2))
    );

    // `end` closes now, with a report; a second `end` is refused.
    send(&actor, &c, ClientMessage::End);
    let events = c.until("report").await;
    assert_eq!(events[events.len() - 2]["kind"], "closing");
    assert_eq!(events[events.len() - 1]["report"]["state"], "ended_early");
    send(&actor, &c, ClientMessage::End);
    assert_eq!(c.expect("error").await["code"], "interview_finished");
    assert_eq!(view(&actor).await.phase, Phase::EndedEarly);
    actor.stop(None);
}

#[tokio::test]
async fn a_reconnecting_client_gets_nothing_until_resume_then_everything_in_order() {
    let (actor, _log) = session("s-resume", 2).await;
    let mut first = Client::new();
    attach(&actor, &first).await;
    let greeting = first.expect("interviewer").await;
    let q1 = first.expect("interviewer").await;

    // A second connection takes over: the first is closed, the second is not live yet.
    let mut second = Client::new();
    let ready = attach(&actor, &second).await;
    assert_eq!(ready["seq"], q1["seq"]);
    assert_eq!(ready["state"], "awaiting_answer");
    assert!(first.next().await.unwrap()["close"]
        .as_str()
        .unwrap()
        .contains("replaced"));
    // The old connection's messages are ignored.
    send(&actor, &first, ClientMessage::Ping);
    assert!(second.quiet(Duration::from_millis(200)).await);

    send(&actor, &second, ClientMessage::Resume { last_seq: 0 });
    assert_eq!(second.next().await.unwrap(), greeting);
    assert_eq!(second.next().await.unwrap(), q1);
    // From here on it is live: an answer's events arrive at once.
    send(
        &actor,
        &second,
        answer(GOOD_ANSWER, Some(1), q1["seq"].as_u64()),
    );
    let ev = second.expect("evaluation").await;
    assert_eq!(ev["seq"], q1["seq"].as_u64().unwrap() + 1);
    actor.stop(None);
}
