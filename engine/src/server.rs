//! `serve`: starts the engine (its own multi-threaded tokio runtime with the actor tree) and the HTTP
//! server (actix-web workers), and shuts both down in phases.
//!
//! Shutdown, on SIGTERM or Ctrl-C:
//! 1. actix stops accepting connections and gives open requests `server.shutdown_grace_s` to finish;
//! 2. the router stops its key actors (nothing new is admitted);
//! 3. sled is flushed, so every acknowledged write is on disk;
//! 4. the engine runtime is shut down with a bounded wait.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use actors::content::question_pool::QuestionPool;
use actors::content::templates::Templates;
use actors::gpu_node::GpuNodeSpec;
use actors::gpu_pool::{GpuPool, GpuPoolConfig};
use actors::pool::Pool;
use actors::router::{KeyDirectory, RouterActor, RouterArgs, RouterMsg};
use actors::secret::Secret;
use actors::session::SessionDeps;
use actors::storage::{SledStore, UsageLedger};
use actors::supervisor::{InterviewSupervisor, SupervisorMsg};
use ractor::{Actor, ActorRef};

use crate::config::{Config, ConfigError};
use crate::http::{self, AppState};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] actors::storage::StorageError),
    /// The address could not be bound, or the runtime failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An actor failed to start.
    #[error("actor start failed: {0}")]
    Actor(String),
    /// A template or question-pool file is broken (path and line in the message).
    #[error("content: {0}")]
    Content(#[from] actors::content::ContentError),
}

/// The running engine: its runtime, actors and storage.
pub struct Engine {
    /// The engine runtime (multi-threaded); actors live here.
    pub runtime: tokio::runtime::Runtime,
    /// The provider pool handle.
    pub pool: Pool,
    /// The database.
    pub store: SledStore,
    /// Providers that have keys.
    pub active_providers: Vec<String>,
    /// The interview supervisor.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The question pool.
    pub questions: Arc<QuestionPool>,
    /// The reuse cache.
    pub cache: actors::cache::Cache,
    /// Optimization counters.
    pub stats: Arc<actors::stats::OptimizationStats>,
    /// The call budget.
    pub budget: Arc<actors::budget::Budget>,
    router: ActorRef<RouterMsg>,
}

impl Engine {
    /// Opens storage and starts the actor tree on a new runtime.
    pub fn start(config: &Config) -> Result<Engine, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("engine")
            .enable_all()
            .build()?;
        let store =
            SledStore::open_with_cache(&config.storage.path, config.storage.cache_mb << 20)?;
        let ledger: Arc<dyn UsageLedger> = Arc::new(store.clone());
        let env = |k: &str| std::env::var(k).ok();
        let keys = config.key_configs(&env, ledger.as_ref())?;
        let mut active_providers: Vec<String> =
            keys.iter().map(|k| k.spec.provider.clone()).collect();
        active_providers.dedup();
        let key_count = keys.len();
        let directory = KeyDirectory::default();
        if key_count == 0 {
            tracing::warn!("no provider keys configured: interviews use templates, the question pool and heuristic scoring only");
        } else {
            tracing::info!(keys = key_count, providers = ?active_providers, "provider pool configured");
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| StartError::Actor(format!("http client: {e}")))?;
        let (router, _) = runtime
            .block_on(Actor::spawn(
                Some("router".into()),
                RouterActor,
                RouterArgs {
                    keys,
                    ledger,
                    directory: directory.clone(),
                },
            ))
            .map_err(|e| StartError::Actor(e.to_string()))?;
        let gpu = runtime.block_on(start_gpu_pool(config, &http))?;
        let (cache, _) = runtime
            .block_on(actors::cache::spawn(
                store.db().clone(),
                config.cache.to_cache_config(),
            ))
            .map_err(|e| StartError::Actor(format!("cache: {e}")))?;
        let mut pool = Pool::new(router.clone(), directory, http);
        if let Some(g) = &gpu {
            pool = pool.with_gpu(g.clone(), config.gpu.fallback_to_cloud);
        }
        // Content is validated at start: a broken file stops the server with its path and line.
        let templates = Arc::new(Templates::load_embedded()?);
        let questions = Arc::new(QuestionPool::load_embedded()?);
        tracing::info!(questions = questions.len(), "question pool loaded");
        let stats = Arc::new(actors::stats::OptimizationStats::default());
        let budget = Arc::new(
            actors::budget::Budget::new(Box::new(pool.clone()))
                .with_hold_ttl(Duration::from_secs(config.interview.idle_timeout_s)),
        );
        let deps = Arc::new(SessionDeps {
            log: Arc::new(store.clone()),
            pool: Some(pool.clone()),
            templates,
            idle_timeout: Duration::from_secs(config.interview.idle_timeout_s),
            eval_deadline: Duration::from_millis(config.interview.eval_deadline_ms),
            test_hooks: config.interview.test_hooks,
            stats: stats.clone(),
            cache: Some(cache.clone()),
            budget: budget.clone(),
            questions: Arc::default(),
            embedder: embedder(&config.scoring),
        });
        let (supervisor, _) = runtime
            .block_on(Actor::spawn(
                Some("interviews".into()),
                InterviewSupervisor,
                deps,
            ))
            .map_err(|e| StartError::Actor(e.to_string()))?;
        Ok(Engine {
            stats,
            budget,
            cache,
            runtime,
            pool,
            store,
            active_providers,
            supervisor,
            questions,
            router,
        })
    }

    /// The GPU pool, when nodes are configured.
    pub fn gpu(&self) -> Option<&GpuPool> {
        self.pool.gpu()
    }

    /// Phases 2-4 of shutdown: stop the actors, flush storage, stop the runtime.
    pub fn shutdown(self) {
        let router = self.router.clone();
        let supervisor = self.supervisor.clone();
        let store = self.store.clone();
        self.runtime.block_on(async move {
            // Sessions first: every step they took is already committed and flushed.
            let _ = supervisor
                .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
                .await;
            let _ = router
                .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
                .await;
            if let Err(e) = store.flush().await {
                tracing::error!(error = %e, "final storage flush failed");
            }
        });
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        tracing::info!("shutdown complete");
    }
}

/// Runs the server until SIGTERM / Ctrl-C.
pub fn serve(config: Config) -> Result<(), StartError> {
    if config.server.admin_token.0.is_empty() {
        tracing::warn!("server.admin_token is empty: admin routes (/admin, /api/system_status, /metrics, /v1/...) are open to anyone who can reach {}", config.server.bind);
    }
    let engine = Engine::start(&config)?;
    let state = Arc::new(AppState {
        config: config.clone(),
        pool: engine.pool.clone(),
        engine: engine.runtime.handle().clone(),
        store: engine.store.clone(),
        active_providers: engine.active_providers.clone(),
        supervisor: engine.supervisor.clone(),
        questions: engine.questions.clone(),
        cache: engine.cache.clone(),
        stats: engine.stats.clone(),
        budget: engine.budget.clone(),
        resume_calls: actors::coalesce::Coalescer::new(),
        gateway_calls: actors::coalesce::Coalescer::new(),
    });
    let max_body = config.server.max_body_bytes;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(|c| http::routes(c, max_body))
    })
    .workers(config.server.workers)
    .shutdown_timeout(config.server.shutdown_grace_s)
    .bind(&config.server.bind)?;
    let addrs = server.addrs();
    let result = actix_web::rt::System::new().block_on(async move {
        let running = server.run();
        for a in &addrs {
            // The first stdout line tells scripts and tests where the server listens (port 0 works).
            println!("listening on http://{a}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!(addrs = ?addrs, "serving");
        running.await
    });
    tracing::info!("http server stopped; stopping the engine");
    engine.shutdown();
    result.map_err(StartError::Io)
}

/// Starts the GPU pool over the configured `[[gpu_nodes]]` (none: no pool).
async fn start_gpu_pool(
    config: &Config,
    http: &reqwest::Client,
) -> Result<Option<GpuPool>, StartError> {
    if config.gpu_nodes.is_empty() {
        return Ok(None);
    }
    let mut specs = Vec::with_capacity(config.gpu_nodes.len());
    for n in &config.gpu_nodes {
        let api_key = match &n.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
                _ => {
                    return Err(StartError::Actor(format!(
                        "gpu node {:?}: api_key_env {var} is not set",
                        n.name
                    )))
                }
            },
            None => None,
        };
        specs.push(GpuNodeSpec {
            name: n.name.clone(),
            url: n.url.clone(),
            model: n.model.clone(),
            max_concurrency: n.max_concurrency,
            api_key,
            // Config: lower is tried first (as for providers); the GPU pool prefers higher.
            priority: -i32::try_from(n.priority).unwrap_or(i32::MAX),
        });
    }
    let g = &config.gpu;
    let cfg = GpuPoolConfig {
        probe_interval: Duration::from_millis(g.probe_interval_ms),
        queue_bound: g.queue_bound,
        request_timeout: Duration::from_millis(g.request_timeout_ms),
        breaker_failures: g.breaker_failures,
        breaker_cooldown: Duration::from_millis(g.breaker_cooldown_ms),
    };
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(nodes = ?names, "GPU pool configured: nodes are tried before cloud keys");
    let (pool, _) = GpuPool::start(specs, cfg, http.clone(), None)
        .await
        .map_err(|e| StartError::Actor(format!("gpu pool: {e}")))?;
    Ok(Some(pool))
}

/// The rubric scorer's embeddings client, when `[scoring] embeddings_url` is set.
fn embedder(sc: &crate::config::ScoringConfig) -> Option<Arc<actors::embedder::Embedder>> {
    if sc.embeddings_url.is_empty() {
        return None;
    }
    let key = (!sc.embeddings_key_env.is_empty())
        .then(|| std::env::var(&sc.embeddings_key_env).ok())
        .flatten()
        .filter(|k| !k.is_empty())
        .map(actors::secret::Secret::new);
    tracing::info!(url = %sc.embeddings_url, "rubric scorer: semantic signal from an embeddings server");
    Some(Arc::new(actors::embedder::Embedder::new(
        actors::embedder::EmbedderConfig {
            url: sc.embeddings_url.clone(),
            model: sc.embeddings_model.clone(),
            key,
            stated_at: sc.stated_at,
            touched_at: sc.touched_at,
            timeout: Duration::from_millis(sc.timeout_ms),
        },
    )))
}
