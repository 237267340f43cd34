//! Interview routes: create (checks the request, then `actors::creation` does the rest), state and transcript,
//! the report (JSON or HTML), a candidate's history, and `POST /api/resume/analyze`.
//!
//! Reads need the interview's token or the admin token in `Authorization: Bearer`; the report also
//! takes its read-only report token (header or `?token=`, for links). See [`Access`].

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actors::budget::Mode;
use actors::content::{Difficulty, Track};
use actors::creation::{Created, NewInterview};
use actors::interview::{
    report_token, report_token_matches, same_secret, token_matches, InterviewRecord, Phase,
};
use actors::resumes::ResumeFor;
use actors::storage::SessionLog;
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::{FieldHints, JsonBody};
use super::{bearer, AppState, State};
use crate::error::ApiError;

/// `POST /api/interviews` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInterview {
    candidate: CandidateIn,
    role: Option<String>,
    track: Option<Track>,
    difficulty: Option<Difficulty>,
    questions: Option<u32>,
    mode: Option<String>,
    resume_text: Option<String>,
    /// The interviewer speaks (text-to-speech), for a candidate answering by voice.
    voice: Option<bool>,
}

impl FieldHints for CreateInterview {
    fn expected(path: &str) -> Option<&'static str> {
        match path {
            "candidate" => Some("an object such as {\"id\": \"c-42\", \"name\": \"Ada\"}"),
            "candidate.name" => Some("the candidate's name, a string"),
            "candidate.id" => Some("a string of 1-64 letters, digits, '-' or '_'"),
            "questions" => Some("a whole number from 1 to 50"),
            "mode" => Some("one of economy, balanced, adaptive, auto"),
            "track" => Some("one of technical, behavioral, mixed"),
            "difficulty" => Some("one of easy, medium, hard"),
            "role" => Some("a string such as \"Backend Engineer\""),
            "resume_text" => Some("the resume as plain text"),
            "voice" => Some("true or false"),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CandidateIn {
    id: Option<String>,
    name: String,
}

/// Largest resume accepted.
pub const MAX_RESUME_CHARS: usize = 50_000;
/// Longest candidate name.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest role.
pub const MAX_ROLE_CHARS: usize = 100;
/// Longest candidate id.
pub const MAX_CANDIDATE_ID_CHARS: usize = 64;
/// Most questions per interview.
pub const MAX_QUESTIONS: u32 = 50;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CANDIDATE_ID_CHARS
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What a request wants to do with an interview, which decides the credentials it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open its WebSocket: the interview token (`Authorization: Bearer`, or `?token=` since browsers
    /// cannot set headers on a WebSocket), or the admin token in the header.
    Socket,
    /// Read its state and transcript: the interview token or the admin token, in the header only.
    Read,
    /// Read its report: as `Read`, or the read-only report token (header or `?token=`, for the
    /// report link).
    Report,
}

/// `?token=` of a request.
/// The token a WebSocket client presented (bearer header, or `?token=`), to carry to the owner node
/// when its connection is relayed there (the owner checks it again).
pub(crate) fn socket_token(req: &HttpRequest) -> Option<String> {
    super::bearer(req)
        .map(str::to_string)
        .or_else(|| query_token(req))
}

fn query_token(req: &HttpRequest) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("token").cloned())
}

/// Cluster mode: brings this node's copy of the interview up to date from Redis, so every node answers
/// reads of every interview (a single node: nothing to do).
pub async fn refresh_from_cluster(state: &AppState, id: &str) -> Result<(), ApiError> {
    let Some(c) = state.cluster.clone() else {
        return Ok(());
    };
    if !valid_id(id) {
        return Ok(());
    }
    let owned = id.to_string();
    let r = state
        .on_engine(async move { c.sessions.refresh_local(&owned).await })
        .await?;
    match r {
        Ok(()) => Ok(()),
        // Redis unreachable: this node's own copy is what it can show, if it has one.
        Err(e) if e.is_unreachable() => match state.store.load(id) {
            Ok(Some(_)) => Ok(()),
            _ => Err(ApiError::Unavailable(
                "the cluster's store is unreachable and this node has no copy of the interview; try again shortly".into(),
            )),
        },
        Err(e) => Err(ApiError::Unavailable(format!("cluster: {e}"))),
    }
}

/// Loads an interview and checks the credentials for `access`. Tokens are compared in constant
/// time; the admin token is taken from the `Authorization` header only (a URL ends up in logs and
/// browser history); cookies are never read here, so a page on another site cannot use a
/// browser's credentials on these routes (nor open an interview's WebSocket).
pub fn authorized_record(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    access: Access,
) -> Result<InterviewRecord, ApiError> {
    let header = bearer(req).map(str::to_string);
    let query = match access {
        Access::Socket | Access::Report => query_token(req),
        Access::Read => None,
    };
    if header.is_none() && query.is_none() {
        return Err(ApiError::Unauthorized);
    }
    let record = state
        .store
        .load(id)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no interview {id}")))?;
    let admin = state.config.server.admin_token.0.expose();
    let by_header = header.as_deref().is_some_and(|t| {
        token_matches(&record, t)
            || (!admin.is_empty() && same_secret(t, admin))
            || (access == Access::Report && report_token_matches(&record, t))
    });
    let by_query = query.as_deref().is_some_and(|t| match access {
        Access::Socket => token_matches(&record, t),
        Access::Report => report_token_matches(&record, t),
        Access::Read => false,
    });
    if by_header || by_query {
        Ok(record)
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `POST /api/interviews`.
pub async fn create(
    state: State,
    req: HttpRequest,
    body: JsonBody<CreateInterview>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let client = state.limits.client(&req);
    state.limits.creation(&client)?;
    if b.resume_text
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty())
    {
        state.limits.resume_analysis(&client)?;
    }
    state.room_for_a_session()?;
    let name = b.candidate.name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::BadRequest(
            "candidate.name: required, at most 100 characters".into(),
        ));
    }
    let candidate_id = match b.candidate.id {
        Some(id) if valid_id(&id) => id,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "candidate.id: 1-64 letters, digits, '-' or '_'".into(),
            ))
        }
        None => format!("c-{}", uuid::Uuid::new_v4().simple()),
    };
    let role = b
        .role
        .unwrap_or_else(|| "Software Engineer".into())
        .trim()
        .to_string();
    if role.is_empty() || role.chars().count() > MAX_ROLE_CHARS {
        return Err(ApiError::InvalidField {
            field: "role".into(),
            message: format!(
                "expected 1 to {MAX_ROLE_CHARS} characters, got {}",
                role.chars().count()
            ),
        });
    }
    let voice = b.voice.unwrap_or(false);
    let count = b.questions.unwrap_or(state.config.interview.questions);
    if !(1..=MAX_QUESTIONS).contains(&count) {
        return Err(ApiError::InvalidField {
            field: "questions".into(),
            message: format!("expected a whole number from 1 to {MAX_QUESTIONS}, got {count}"),
        });
    }
    let mode = match b.mode {
        None => state.config.interview.mode,
        Some(m) => m.parse::<Mode>().map_err(|e| ApiError::InvalidField {
            field: "mode".into(),
            message: e.to_string(),
        })?,
    };
    let resume_text = b.resume_text.unwrap_or_default();
    if resume_text.chars().count() > MAX_RESUME_CHARS {
        return Err(ApiError::InvalidField {
            field: "resume_text".into(),
            message: format!(
                "expected at most {MAX_RESUME_CHARS} characters, got {}",
                resume_text.chars().count()
            ),
        });
    }
    let new = NewInterview {
        candidate_id,
        name,
        role,
        track: b.track.unwrap_or_default(),
        difficulty: b.difficulty.unwrap_or_default(),
        questions: count as usize,
        mode,
        resume_text,
        voice,
    };
    let st = state.get_ref().clone();
    let created = state
        .on_engine(async move { st.interviews.create(new).await })
        .await?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let Created {
        id,
        token,
        mode,
        level,
        questions_total: total,
    } = created;
    let report = report_token(&token);
    let mut created = json!({
        "interview_id": id, "token": token, "ws_url": format!("/ws/interviews/{id}"),
        "mode": mode, "level": level, "report_token": report,
        "report_url": format!("/api/interviews/{id}/report?format=html&token={report}"),
        "questions_total": total, "questions_requested": count,
    });
    if total < count as usize {
        created["note"] = json!(format!(
            "{count} questions were asked for; the question pool has {total} for this role, track and \
             difficulty (questions from the candidate's last 5 interviews are left out), so the interview \
             has {total}"
        ));
    }
    if voice {
        // What the server can do for a voice interview: the client falls back to text where not.
        created["voice"] = json!({
            "interviewer_speaks": state.tts.is_some(),
            "speech_to_text": state.stt.is_some(),
        });
    }
    Ok(HttpResponse::Created().json(created))
}

/// `GET /api/interviews/{id}`: state and the transcript (the logged events).
pub async fn get(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    refresh_from_cluster(&state, &path).await?;
    let rec = authorized_record(&state, &req, &path, Access::Read)?;
    let events: Vec<Value> = state
        .store
        .events_after(&rec.id, 0, rec.last_seq())
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .into_iter()
        .filter_map(|(_, t)| serde_json::from_str(&t).ok())
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "interview_id": rec.id, "state": rec.phase.as_str(),
        "candidate": rec.candidate, "role": rec.role, "track": rec.track, "difficulty": rec.difficulty,
        "mode": rec.mode, "level": rec.level, "level_steps": rec.steps, "question_index": (rec.current + 1).min(rec.questions.len()),
        "questions_total": rec.questions.len(), "last_seq": rec.last_seq(),
        "resume": rec.resume, "transcript": events,
        "report_token": report_token_for(&rec),
    })))
}

/// The report token of an interview (the record keeps it: see [`report_token`]).
fn report_token_for(rec: &InterviewRecord) -> &str {
    &rec.token_sha256
}

/// `GET /api/interviews/{id}/report[?format=html]`.
pub async fn report(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    refresh_from_cluster(&state, &path).await?;
    let rec = authorized_record(&state, &req, &path, Access::Report)?;
    if rec.phase == Phase::Reporting {
        // Its end-of-interview work was cut off by a restart: waking the session runs it again.
        let sup = state.supervisor.clone();
        let id = rec.id.clone();
        state.engine.spawn(async move {
            let _ = sup
                .call(
                    |r| actors::supervisor::SupervisorMsg::Get(id, r),
                    Some(Duration::from_secs(5)),
                )
                .await;
        });
        return Err(ApiError::Conflict(
            "the report is being written; ask again in a few seconds".into(),
        ));
    }
    let Some(report) = rec.report_value() else {
        return Err(ApiError::Conflict(
            "the report is written when the interview ends".into(),
        ));
    };
    let html =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("format").cloned())
            .is_some_and(|f| f == "html");
    if html {
        // The progress page, linked with the read-only report token (never the interview's token).
        let progress = Some(report_token_for(&rec).to_string())
            .filter(|t| !t.is_empty())
            .map(|t| {
                let enc = |s: &str| {
                    s.bytes()
                        .map(|b| match b {
                            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                                (b as char).to_string()
                            }
                            _ => format!("%{b:02X}"),
                        })
                        .collect::<String>()
                };
                format!(
                    "/candidates/{}?interview={}&token={}",
                    enc(&rec.candidate.id),
                    enc(&rec.id),
                    enc(&t)
                )
            });
        let page = crate::report_html::render(&report, progress.as_deref()).map_err(|e| {
            tracing::error!(error = %e, "report rendering failed");
            ApiError::Internal
        })?;
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page));
    }
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/candidates/{id}/history` (admin): every interview of a candidate, oldest first.
pub async fn history(state: State, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let ids = match state.cluster.clone() {
        // Cluster mode: the interviews every node created, each brought up to date here.
        Some(c) => {
            let cand = path.clone();
            let ids = state
                .on_engine(async move { c.sessions.candidate_interviews(&cand).await })
                .await?
                .map_err(|e| ApiError::Unavailable(format!("cluster: {e}")))?;
            for id in &ids {
                refresh_from_cluster(&state, id).await?;
            }
            ids
        }
        None => state
            .store
            .candidate_interviews(&path)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?,
    };
    let mut out = Vec::new();
    for id in ids {
        if let Ok(Some(r)) = state.store.load(&id) {
            out.push(json!({
                "interview_id": r.id, "role": r.role, "track": r.track, "state": r.phase.as_str(),
                "created_at": chrono::DateTime::from_timestamp_millis(r.created_ms).map(|d| d.to_rfc3339()),
                "overall_score": r.report_value().map(|rep| rep["overall_score"].clone()),
                "questions": r.items.iter().map(|i| json!({"question_id": i.question_id, "score": i.score})).collect::<Vec<_>>(),
            }));
        }
    }
    Ok(HttpResponse::Ok().json(json!({"candidate_id": path.into_inner(), "interviews": out})))
}

/// `POST /api/resume/analyze` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeResume {
    resume_text: String,
}

impl FieldHints for AnalyzeResume {
    fn expected(path: &str) -> Option<&'static str> {
        (path == "resume_text").then_some("the resume as plain text, a string")
    }
}

/// `POST /api/resume/analyze`.
pub async fn analyze(
    state: State,
    req: HttpRequest,
    body: JsonBody<AnalyzeResume>,
) -> Result<HttpResponse, ApiError> {
    let text = body.into_inner().resume_text;
    if text.trim().is_empty() || text.chars().count() > MAX_RESUME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "resume_text: 1 to {MAX_RESUME_CHARS} characters"
        )));
    }
    state.limits.resume_analysis(&state.limits.client(&req))?;
    let st = state.get_ref().clone();
    let (analysis, source) = state
        .on_engine(async move { st.resumes.analyze(&text, ResumeFor::Request).await })
        .await?;
    let mut v = serde_json::to_value(analysis).map_err(|_| ApiError::Internal)?;
    v["source"] = json!(source);
    Ok(HttpResponse::Ok().json(v))
}
