//! `GET /candidates/{id}`: a candidate's progress page (see `progress_page.rs`). Token-protected
//! like the history API: the admin token when one is configured (open when none is, as the history
//! API is), or `?interview=ID&token=REPORT_TOKEN` for an interview of this candidate, which is how the
//! candidate's report links here.

use actix_web::{web, HttpRequest, HttpResponse};
use actors::interview::report_token_matches;
use actors::storage::SessionLog;

use super::State;
use crate::error::ApiError;

/// `GET /candidates/{id}`.
pub async fn candidate(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let candidate_id = path.into_inner();
    authorize(&state, &req, &candidate_id)?;
    let ids = state
        .store
        .candidate_interviews(&candidate_id)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let mut reports = Vec::new();
    for id in ids {
        if let Ok(Some(r)) = state.store.load(&id) {
            if let Some(rep) = r.report_value() {
                reports.push((r.created_ms, rep));
            }
        }
    }
    reports.sort_by_key(|(t, _)| *t);
    let reports: Vec<serde_json::Value> = reports.into_iter().map(|(_, r)| r).collect();
    let pool = state.questions.clone();
    let p = crate::progress_page::progress(&reports, |qid| {
        pool.get(qid).map(|q| q.tags.clone()).unwrap_or_default()
    });
    let html = crate::progress_page::render(&candidate_id, &p).map_err(|e| {
        tracing::error!(error = %e, "progress page failed");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(html))
}

/// The admin token (as the history API takes it), or the report token of an interview of this
/// candidate (read-only: it never opens an interview).
fn authorize(state: &State, req: &HttpRequest, candidate_id: &str) -> Result<(), ApiError> {
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    if let (Some(iid), Some(token)) = (query.get("interview"), query.get("token")) {
        let record = state
            .store
            .load(iid)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        return match record {
            Some(r) if r.candidate.id == candidate_id && report_token_matches(&r, token) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        };
    }
    state.require_admin(req)
}
