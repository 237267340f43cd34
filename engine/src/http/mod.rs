//! The HTTP surface: routes, the shared application state, admin-token checks and JSON error
//! handling. One file per group of routes; handlers are thin and call into the engine's actors.

pub mod auth;
pub mod cluster;
pub mod dashboard;
pub mod gateway;
pub mod health;
pub mod interviews;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod pages;
pub mod progress;
pub mod relay;
pub mod status;
pub mod ws;
pub mod ws_frames;

use std::sync::Arc;

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
    /// What a gateway client's `model` may name.
    pub models: Arc<models::ModelCatalog>,
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
    /// Speech-to-text, when configured (spoken answers on the socket).
    pub stt: Option<actors::voice::stt_pool::SttPool>,
    /// Text-to-speech, when configured (voice interviews).
    pub tts: Option<actors::voice::tts_pool::TtsPool>,
    /// Identical concurrent gateway requests share one provider call.
    pub gateway_calls:
        actors::coalesce::Coalescer<String, Result<serde_json::Value, actors::pool::PoolError>>,
    /// Resume analysis (cache, shared concurrent calls, the pool, the offline extractor).
    pub resumes: actors::resumes::ResumeAnalyzer,
    /// Interview creation (level preview, resume, questions, the durable write).
    pub interviews: actors::creation::Interviews,
    /// Per-client limits (`[limits]`).
    pub limits: limits::ClientLimits,
    /// Live sessions on this node and their cap.
    pub live: Arc<actors::supervisor::LiveSessions>,
    /// Cluster mode: Redis, membership, leases (`None`: a single node).
    pub cluster: Option<Arc<crate::cluster::ClusterRuntime>>,
    /// Admin access: the token, login sessions, the loopback rule.
    pub admin: auth::AdminAuth,
    /// Provider requests and interviews per hour, for the dashboard's chart.
    pub timeline: Arc<crate::timeline::Timeline>,
}

impl AppState {
    /// 503 with `Retry-After` when the node holds as many live sessions as it may.
    pub fn room_for_a_session(&self) -> Result<(), ApiError> {
        if self.live.full() {
            return Err(ApiError::Busy {
                retry_after_s: self.config.limits.busy_retry_after_s,
            });
        }
        Ok(())
    }

    /// Admits a request to an admin route (Bearer token, login cookie, or loopback without a
    /// token; see [`auth`]).
    pub fn require_admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.admin.check(req).map(|_| ())
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
        web::resource("/api/cluster")
            .wrap(from_fn(admin_guard))
            .route(web::get().to(cluster::cluster)),
    )
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
        web::resource("/admin/login")
            .app_data(auth::form_config())
            .route(web::get().to(auth::login_form))
            .route(web::post().to(auth::login)),
    )
    .route("/admin/logout", web::post().to(auth::logout))
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
            .route("/models", web::get().to(models::list)),
    )
    .default_service(web::to(not_found));
}

/// Middleware for admin routes: checks the token or login cookie before any extractor reads the body,
/// so an unauthenticated client learns nothing about the route but 401. A browser asking for the
/// dashboard page without a session is sent to the login form instead.
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
        Err(ApiError::Unauthorized)
            if req.method() == actix_web::http::Method::GET && req.path() == "/admin" =>
        {
            let resp = actix_web::HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, "/admin/login"))
                .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                .finish();
            Ok(req.into_response(resp).map_into_right_body())
        }
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
