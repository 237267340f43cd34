//! The HTTP surface: routes, the shared application state, admin-token checks and JSON error
//! handling. One file per group of routes; handlers are thin and call into the engine's actors.

pub mod dashboard;
pub mod gateway;
pub mod health;
pub mod interviews;
pub mod metrics;
pub mod pages;
pub mod progress;
pub mod status;
pub mod ws;

use std::sync::Arc;

use actors::content::resume::ResumeAnalysis;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest};
use actors::pool::Pool;
use actors::storage::SledStore;

use crate::config::Config;
use crate::error::{json_error, ApiError};

/// What every handler can reach. Cloned per worker as `web::Data`.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The provider pool.
    pub pool: Pool,
    /// The engine runtime: actor and provider work is spawned here, never on an HTTP worker.
    pub engine: tokio::runtime::Handle,
    /// The database.
    pub store: SledStore,
    /// Names of providers that have keys.
    pub active_providers: Vec<String>,
    /// The interview supervisor.
    pub supervisor: ractor::ActorRef<actors::supervisor::SupervisorMsg>,
    /// The question pool.
    pub questions: Arc<actors::content::question_pool::QuestionPool>,
    /// The reuse cache (sled).
    pub cache: actors::cache::Cache,
    /// Optimization counters shared with the sessions.
    pub stats: Arc<actors::stats::OptimizationStats>,
    /// The call budget (admission and per-turn levels).
    pub budget: Arc<actors::budget::Budget>,
    /// Identical concurrent gateway requests share one provider call.
    pub gateway_calls:
        actors::coalesce::Coalescer<String, Result<serde_json::Value, actors::pool::PoolError>>,
    /// Identical concurrent resume analyses share one provider call.
    pub resume_calls: actors::coalesce::Coalescer<String, (ResumeAnalysis, String)>,
}

impl AppState {
    /// Checks the admin bearer token when one is configured.
    pub fn require_admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let token = &self.config.server.admin_token.0;
        if token.is_empty() {
            return Ok(());
        }
        match bearer(req) {
            Some(given) if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        }
    }

    /// Runs `fut` on the engine runtime and waits for it.
    pub async fn on_engine<F, T>(&self, fut: F) -> Result<T, ApiError>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.engine.spawn(fut).await.map_err(|e| {
            tracing::error!(error = %e, "engine task failed");
            ApiError::Internal
        })
    }
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .error_handler(move |err, _| json_error(err, max_body).into()),
    )
    .app_data(web::PayloadConfig::default().limit(max_body))
    .route("/", web::get().to(pages::index))
    .route("/candidates/{id}", web::get().to(progress::candidate))
    .route("/api/interviews", web::post().to(interviews::create))
    .route("/api/interviews/{id}", web::get().to(interviews::get))
    .route(
        "/api/interviews/{id}/report",
        web::get().to(interviews::report),
    )
    .route("/api/resume/analyze", web::post().to(interviews::analyze))
    .route("/ws/interviews/{id}", web::get().to(ws::connect))
    .service(
        web::resource("/api/candidates/{id}/history")
            .wrap(from_fn(admin_guard))
            .route(web::get().to(interviews::history)),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .service(
        web::resource("/api/system_status")
            .wrap(from_fn(admin_guard))
            .route(web::get().to(status::system_status)),
    )
    .service(
        web::resource("/admin")
            .wrap(from_fn(admin_guard))
            .route(web::get().to(dashboard::admin)),
    )
    .service(
        web::resource("/metrics")
            .wrap(from_fn(admin_guard))
            .route(web::get().to(metrics::metrics)),
    )
    .service(
        web::resource("/api/optimization_stats")
            .wrap(from_fn(admin_guard))
            .route(web::get().to(status::optimization_stats)),
    )
    .service(
        web::scope("/v1")
            .wrap(from_fn(admin_guard))
            .route(
                "/chat/completions",
                web::post().to(gateway::chat_completions),
            )
            .route("/models", web::get().to(gateway::models)),
    )
    .default_service(web::to(not_found));
}

/// Middleware for admin routes: checks the bearer token before any extractor reads the body, so an
/// unauthenticated client learns nothing about the route but 401.
async fn admin_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let allowed = match req.app_data::<State>() {
        Some(state) => state.require_admin(req.request()),
        None => Err(ApiError::Internal),
    };
    match allowed {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(e) => {
            let resp = actix_web::ResponseError::error_response(&e);
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// The shared state type as handlers extract it.
pub type State = web::Data<Arc<AppState>>;
