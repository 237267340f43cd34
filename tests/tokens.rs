//! The token rules against the real binary: the admin token only in the `Authorization` header (never
//! in a URL), the interview token in a URL only to open the WebSocket (browsers cannot set its
//! headers), a read-only report token for the report link that cannot open the socket or read the
//! transcript, and WebSocket routes that read no cookies (no cross-site WebSocket hijacking).
#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod common;

use common::attack::RawWs;
use common::server::Engine;
use common::ws::{Client, Created, GOOD_ANSWER};
use serde_json::{json, Value};

const ADMIN: &str = "admin-token-for-tests-XYZ";

struct Interview {
    c: Created,
    report_token: String,
}

async fn create(engine: &Engine, name: &str) -> Interview {
    let body = json!({"candidate": {"id": name, "name": name}, "questions": 1});
    let r = engine.post("/api/interviews", &body, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["interview_id"].as_str().unwrap().to_string();
    let report_token = r.json["report_token"].as_str().unwrap().to_string();
    assert_eq!(
        r.json["report_url"],
        format!("/api/interviews/{id}/report?format=html&token={report_token}")
    );
    Interview {
        c: Created {
            id,
            token: r.json["token"].as_str().unwrap().into(),
        },
        report_token,
    }
}

/// Status of a WebSocket upgrade to interview `id` with `query` and `headers`.
async fn upgrade(engine: &Engine, id: &str, query: &str, headers: &[(&str, &str)]) -> u16 {
    match RawWs::connect(
        &engine.base,
        &format!("/ws/interviews/{id}{query}"),
        headers,
    )
    .await
    {
        Ok(_) => 101,
        Err((status, _)) => status,
    }
}

async fn get(engine: &Engine, path: &str, bearer: Option<&str>) -> (u16, Value) {
    let r = engine.get(path, bearer).await;
    (r.status, r.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_open_only_what_they_are_for() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[server]\nbind = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\n[storage]\npath = \"data\"\n"
    );
    let engine = Engine::start(dir.path(), &cfg, &[]);
    let a = create(&engine, "ada").await;
    let b = create(&engine, "bob").await;
    let (id, token, report) = (&a.c.id, &a.c.token, &a.report_token);
    assert_ne!(token, report);

    // The admin token: in the header, everywhere; in a URL, nowhere.
    let state = format!("/api/interviews/{id}");
    let report_path = format!("/api/interviews/{id}/report");
    assert_eq!(get(&engine, &state, Some(ADMIN)).await.0, 200);
    assert_eq!(
        get(&engine, &format!("{state}?token={ADMIN}"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        get(&engine, &format!("{report_path}?token={ADMIN}"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        upgrade(&engine, id, &format!("?token={ADMIN}"), &[]).await,
        401
    );
    let admin_header = format!("Bearer {ADMIN}");
    assert_eq!(
        upgrade(&engine, id, "", &[("Authorization", &admin_header)]).await,
        101
    );
    assert_eq!(
        get(&engine, &format!("/api/system_status?token={ADMIN}"), None)
            .await
            .0,
        401
    );

    // The interview token: the header on every route; in a URL only to open the socket.
    let (status, st) = get(&engine, &state, Some(token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        &st["report_token"], report,
        "the state tells its report token"
    );
    assert_eq!(
        get(&engine, &format!("{state}?token={token}"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        upgrade(&engine, &b.c.id, &format!("?token={token}"), &[]).await,
        401,
        "another interview's token"
    );

    // The report token: the report only, by link or header.
    assert_eq!(
        upgrade(&engine, id, &format!("?token={report}"), &[]).await,
        401
    );
    let report_header = format!("Bearer {report}");
    assert_eq!(
        upgrade(&engine, id, "", &[("Authorization", &report_header)]).await,
        401
    );
    assert_eq!(get(&engine, &state, Some(report)).await.0, 401);
    assert_eq!(
        get(&engine, &format!("{state}?token={report}"), None)
            .await
            .0,
        401
    );
    let (status, v) = get(&engine, &format!("{report_path}?token={report}"), None).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (409, &json!("not_ready")),
        "authorized, not written yet"
    );
    assert_eq!(
        get(
            &engine,
            &format!("/api/interviews/{}/report?token={report}", b.c.id),
            None
        )
        .await
        .0,
        401,
        "another interview's report"
    );
    // (The admin's socket above started the interview: catch up from the log.)
    let (mut client, _) = Client::reconnect(&engine.base, &a.c, 0).await;
    client.answer(GOOD_ANSWER).await;
    client.finish_with(GOOD_ANSWER).await;
    let (status, v) = get(&engine, &format!("{report_path}?token={report}"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["interview_id"], json!(id));
    assert_eq!(get(&engine, &report_path, Some(report)).await.0, 200);
    let html = engine
        .get(&format!("{report_path}?format=html&token={report}"), None)
        .await;
    assert!(
        html.status == 200 && html.text.contains("<html"),
        "{}",
        html.status
    );

    // No cookie opens a socket: not the admin session cookie, not a token in a cookie, whatever
    // page the request comes from.
    let evil = "https://evil.example";
    for cookie in [format!("ie_admin={ADMIN}"), format!("token={}", b.c.token)] {
        assert_eq!(
            upgrade(
                &engine,
                &b.c.id,
                "",
                &[("Cookie", &cookie), ("Origin", evil)]
            )
            .await,
            401,
            "{cookie}"
        );
    }
    // Secrets stay out of the log.
    let log = engine.log();
    assert!(
        !log.contains(ADMIN) && !log.contains(&b.c.token),
        "a token in the log"
    );
}
