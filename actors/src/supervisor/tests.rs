//! In-process tests of the interview supervisor: finding and spawning sessions from the log, the
//! live-session cap, restarting a failed session (restart.rs's rule, bounded) and leaving one that
//! exited alone. A temporary sled log, no provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ractor::{call, Actor, ActorRef};

use super::{InterviewSupervisor, SessionError, SupervisorMsg, MAX_SESSION_RESTARTS};
use crate::protocol::ClientMessage;
use crate::session::SessionMsg;
use crate::storage::SledStore;
use crate::testkit::{self, Client};

async fn supervisor(max_live: usize) -> (ActorRef<SupervisorMsg>, SledStore) {
    let log = testkit::store();
    let deps = testkit::deps(log.clone(), max_live);
    let (sup, _) = Actor::spawn(None, InterviewSupervisor, deps).await.unwrap();
    (sup, log)
}

async fn get(
    sup: &ActorRef<SupervisorMsg>,
    id: &str,
) -> Result<ActorRef<SessionMsg>, SessionError> {
    call!(sup, SupervisorMsg::Get, id.to_string()).unwrap()
}

async fn live(sup: &ActorRef<SupervisorMsg>) -> usize {
    call!(sup, SupervisorMsg::Live).unwrap()
}

fn answer(text: &str) -> ClientMessage {
    ClientMessage::Answer {
        text: text.into(),
        audio_duration_s: None,
        turn: None,
        seq: None,
        words: None,
    }
}

/// Connects a client to interview `id`'s session and reads the greeting and first question.
async fn connect(sup: &ActorRef<SupervisorMsg>, id: &str) -> (ActorRef<SessionMsg>, Client) {
    let session = get(sup, id).await.unwrap();
    let mut c = Client::new();
    let _: serde_json::Value = call!(session, SessionMsg::Attach, c.handle.clone()).unwrap();
    c.expect("interviewer").await;
    c.expect("interviewer").await;
    (session, c)
}

#[tokio::test]
async fn sessions_come_from_the_log_once_each_and_unknown_ids_are_not_found() {
    let (sup, log) = supervisor(10).await;
    assert!(matches!(
        get(&sup, "nope").await,
        Err(SessionError::NotFound)
    ));
    testkit::create(&log, "a", 2).await;
    let first = get(&sup, "a").await.unwrap();
    let again = get(&sup, "a").await.unwrap();
    assert_eq!(first.get_id(), again.get_id());
    assert_eq!(live(&sup).await, 1);
    sup.stop(None);
}

#[tokio::test]
async fn the_live_session_cap_refuses_one_more() {
    let (sup, log) = supervisor(1).await;
    testkit::create(&log, "a", 2).await;
    testkit::create(&log, "b", 2).await;
    get(&sup, "a").await.unwrap();
    assert!(matches!(get(&sup, "b").await, Err(SessionError::Busy)));
    // The live one is still found.
    assert!(get(&sup, "a").await.is_ok());
    sup.stop(None);
}

#[tokio::test]
async fn a_failing_session_is_restarted_from_its_log_then_closed_after_the_bound() {
    let (sup, log) = supervisor(10).await;
    testkit::create(&log, "p", 2).await;
    let (mut session, mut c) = connect(&sup, "p").await;
    for restart in 1..=MAX_SESSION_RESTARTS {
        // The test hook panics the session in its handler.
        session
            .cast(SessionMsg::Client(c.handle.id, answer("__panic__"), None))
            .unwrap();
        let e = c.expect("error").await;
        assert_eq!(e["code"], "session_restarted", "restart {restart}");
        assert_eq!(e["seq"], 2, "nothing was lost or added");
        let again = get(&sup, "p").await.unwrap();
        assert_ne!(again.get_id(), session.get_id(), "a new actor");
        session = again;
        // The restarted session carries on where the log left off.
        let rec: crate::interview::InterviewRecord = call!(session, SessionMsg::View).unwrap();
        assert_eq!(
            (rec.phase, rec.last_seq()),
            (crate::interview::Phase::AwaitingAnswer, 2)
        );
    }
    // One failure more than the bound: the client is told and closed; the interview is not served.
    session
        .cast(SessionMsg::Client(c.handle.id, answer("__panic__"), None))
        .unwrap();
    assert_eq!(c.expect("error").await["code"], "interview_failed");
    assert!(c.next().await.unwrap()["close"].is_string());
    assert!(matches!(get(&sup, "p").await, Err(SessionError::Failed)));
    assert_eq!(live(&sup).await, 0);
    sup.stop(None);
}

#[tokio::test]
async fn a_session_that_exits_is_not_restarted_and_comes_back_from_the_log() {
    let (sup, log) = supervisor(10).await;
    testkit::create(&log, "e", 2).await;
    let (session, mut c) = connect(&sup, "e").await;
    session
        .cast(SessionMsg::Client(c.handle.id, ClientMessage::End, None))
        .unwrap();
    c.until("report").await;
    // Finished and detached: the session stops itself.
    session.cast(SessionMsg::Detach(c.handle.id)).unwrap();
    for _ in 0..100 {
        if live(&sup).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live(&sup).await, 0, "not restarted");
    assert!(
        c.quiet(Duration::from_millis(200)).await,
        "no session_restarted"
    );
    // A later connection finds it again, finished.
    let back = get(&sup, "e").await.unwrap();
    assert_ne!(back.get_id(), session.get_id());
    let rec: crate::interview::InterviewRecord = call!(back, SessionMsg::View).unwrap();
    assert_eq!(rec.phase, crate::interview::Phase::EndedEarly);
    sup.stop(None);
}
