//! Pages people read: the candidate's page at `/` (embedded in the binary, with the server's limits
//! written into it so that its form and counter match what the server accepts). The report page is
//! rendered by `report_html` from `GET /api/interviews/{id}/report?format=html`; the progress page
//! by `progress`.

use actix_web::HttpResponse;
use serde_json::json;

use super::interviews::{
    MAX_CANDIDATE_ID_CHARS, MAX_NAME_CHARS, MAX_QUESTIONS, MAX_RESUME_CHARS, MAX_ROLE_CHARS,
};
use super::State;

const INDEX: &str = include_str!("assets/index.html");

/// The limits the page enforces, as the server does: `answer_bytes` is the largest WebSocket text
/// frame (`server.max_ws_frame_bytes`), the others the create request's limits.
pub fn limits(max_ws_frame_bytes: usize) -> serde_json::Value {
    json!({
        "answer_bytes": max_ws_frame_bytes,
        "name_chars": MAX_NAME_CHARS,
        "role_chars": MAX_ROLE_CHARS,
        "candidate_id_chars": MAX_CANDIDATE_ID_CHARS,
        "questions_min": 1,
        "questions_max": MAX_QUESTIONS,
        "resume_chars": MAX_RESUME_CHARS,
    })
}

/// `GET /`.
pub async fn index(state: State) -> HttpResponse {
    // Numbers only, so nothing in it can close the script element it sits in.
    let page = INDEX.replacen(
        "__IE_LIMITS__",
        &limits(state.config.server.max_ws_frame_bytes).to_string(),
        1,
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}
