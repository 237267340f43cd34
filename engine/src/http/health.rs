//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: storage open, actors up).

use actix_web::HttpResponse;
use serde_json::json;

use super::State;

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers and the router is running, else 503.
pub async fn readyz(state: State) -> HttpResponse {
    let storage_ok = state.store.db().get(b"__readyz").is_ok();
    let router_ok = state.pool.router().get_status() == ractor::ActorStatus::Running;
    let body = json!({"storage": storage_ok, "router": router_ok});
    if storage_ok && router_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
