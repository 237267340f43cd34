//! `serve`: starts the engine (its own multi-threaded tokio runtime with the actor tree) and the HTTP
//! server (actix-web workers), and shuts both down in phases.
//!
//! The engine's actors form one supervision tree under `EngineRoot` (actors/src/root.rs): the
//! interview supervisor, the router, the reuse cache and the GPU and speech node pools are its
//! children.
//!
//! Shutdown, on SIGTERM or Ctrl-C (phases 2-7 are [`Engine::shutdown`]):
//! 1. actix stops accepting connections and gives open requests `server.shutdown_grace_s` to finish;
//! 2. the interview supervisor stops its sessions (every step they took is already committed);
//! 3. sled is flushed, so every acknowledged write is on disk; in cluster mode the interview leases
//!    are released and the node leaves the member list, so its clients reconnect elsewhere at once;
//! 4. the router stops its key actors (nothing new is admitted; their usage blocks are written);
//! 5. the GPU and speech node pools stop (nobody calls them any more);
//! 6. the reuse cache stops (sessions and the gateway wrote through it until now), and sled is
//!    flushed a last time;
//! 7. the root stops, then the engine runtime is shut down with a bounded wait.

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
use actors::supervisor::{InterviewSupervisor, LiveSessions, SupervisorMsg};
use ractor::{Actor, ActorRef};

use crate::cluster::{ClusterCapacity, ClusterRuntime};
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
    /// The database directory could not be opened (another process may hold it).
    #[error("cannot open the database at {path}: {source}{hint}")]
    OpenStorage {
        /// The directory, absolute.
        path: String,
        /// Why.
        source: actors::storage::StorageError,
        /// What to do about it.
        hint: &'static str,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        /// `server.bind`.
        addr: String,
        /// Why.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The runtime or the HTTP server failed.
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
    /// Speech-to-text (none: audio is refused with `audio_unsupported`).
    pub stt: Option<actors::voice::stt_pool::SttPool>,
    /// Text-to-speech for voice interviews.
    pub tts: Option<actors::voice::tts_pool::TtsPool>,
    /// Live sessions and their cap.
    pub live: Arc<LiveSessions>,
    /// Cluster mode: Redis, membership, shared windows and interview leases (`None`: one node).
    pub cluster: Option<Arc<ClusterRuntime>>,
    /// What the root of the supervision tree saw (children that failed).
    pub root_health: Arc<actors::root::RootHealth>,
    router: ActorRef<RouterMsg>,
    root: ActorRef<actors::root::RootMsg>,
}

impl Engine {
    /// Opens storage and starts the actor tree on a new runtime; `local` is the address the HTTP
    /// server listens on (the cluster's default node id and advertise URL come from it).
    pub fn start(config: &Config, local: std::net::SocketAddr) -> Result<Engine, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("engine")
            .enable_all()
            .build()?;
        let store = SledStore::open_with_cache(&config.storage.path, config.storage.cache_mb << 20)
            .map_err(|source| {
                let text = source.to_string();
                StartError::OpenStorage {
                    path: data_path(config),
                    hint: if text.contains("lock") || text.contains("Resource temporarily unavailable") {
                        " (is another interview-engine using this directory? stop it, or set storage.path / IE_STORAGE__PATH)"
                    } else {
                        " (set storage.path / IE_STORAGE__PATH to a writable directory)"
                    },
                    source,
                }
            })?;
        let ledger: Arc<dyn UsageLedger> = Arc::new(store.clone());
        let env = |k: &str| std::env::var(k).ok();
        let keys = key_configs(config, &env, ledger.as_ref())?;
        let mut active_providers: Vec<String> =
            keys.iter().map(|k| k.spec.provider.clone()).collect();
        active_providers.dedup();
        let key_count = keys.len();
        let live = Arc::new(LiveSessions::new(config.limits.max_live_sessions as usize));
        let cluster = if config.cluster.enabled() {
            let mut cfg = config.clone();
            cfg.server.bind = local.to_string();
            let local_log: Arc<dyn actors::storage::SessionLog> = Arc::new(store.clone());
            Some(Arc::new(runtime.block_on(ClusterRuntime::start(
                &cfg,
                &keys,
                local_log,
                live.clone(),
            ))?))
        } else {
            None
        };
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
        let (root, root_health) = runtime
            .block_on(actors::root::start())
            .map_err(|e| StartError::Actor(format!("root: {e}")))?;
        let (router, _) = runtime
            .block_on(Actor::spawn_linked(
                Some("router".into()),
                RouterActor,
                RouterArgs {
                    keys,
                    ledger: ledger.clone(),
                    directory: directory.clone(),
                },
                root.get_cell(),
            ))
            .map_err(|e| StartError::Actor(e.to_string()))?;
        let gpu = runtime.block_on(start_gpu_pool(config, &http, root.get_cell()))?;
        let (stt, tts) =
            runtime.block_on(start_voice(config, &http, &store, &ledger, root.get_cell()))?;
        let (cache, _) = runtime
            .block_on(actors::cache::spawn_under(
                store.db().clone(),
                config.cache.to_cache_config(),
                Some(root.get_cell()),
            ))
            .map_err(|e| StartError::Actor(format!("cache: {e}")))?;
        // Cluster mode: the reuse cache's values are shared by every node.
        let cache = match &cluster {
            Some(c) => cache.with_shared(actors::cluster::cache::SharedCache::new(
                c.cluster.clone(),
                config.cache.to_cache_config(),
            )),
            None => cache,
        };
        let mut pool = Pool::new(router.clone(), directory, http);
        if let Some(g) = &gpu {
            pool = pool.with_gpu(g.clone(), config.gpu.fallback_to_cloud);
        }
        // Content is validated at start: a broken file stops the server with its path and line.
        let templates = Arc::new(Templates::load_embedded()?);
        let questions = Arc::new(QuestionPool::load_embedded()?);
        tracing::info!(questions = questions.len(), "question pool loaded");
        let stats = Arc::new(actors::stats::OptimizationStats::default());
        let capacity: Box<dyn actors::budget::CapacitySource> = match &cluster {
            // Cluster mode: the cluster's usage today, less the other nodes' live holds.
            Some(c) => Box::new(ClusterCapacity::new(Box::new(pool.clone()), c.clone())),
            None => Box::new(pool.clone()),
        };
        let budget = Arc::new(
            actors::budget::Budget::new(capacity)
                .with_hold_ttl(Duration::from_secs(config.interview.idle_timeout_s)),
        );
        if let Some(c) = &cluster {
            c.set_budget(budget.clone());
        }
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
            voice: (stt.is_some() || tts.is_some()).then(|| {
                Arc::new(actors::session::VoiceDeps {
                    tts: tts.clone(),
                    away: Duration::from_secs(config.voice.away_s),
                })
            }),
            pending_ttl: Duration::from_secs(config.limits.pending_ttl_s),
            hibernate_after: (config.interview.hibernate_after_s > 0)
                .then(|| Duration::from_secs(config.interview.hibernate_after_s)),
            live: live.clone(),
            cluster: cluster.as_ref().map(|c| c.sessions.clone()),
            embedder: embedder(&config.scoring),
        });
        let (supervisor, _) = runtime
            .block_on(Actor::spawn_linked(
                Some("interviews".into()),
                InterviewSupervisor,
                deps,
                root.get_cell(),
            ))
            .map_err(|e| StartError::Actor(e.to_string()))?;
        Ok(Engine {
            stt,
            tts,
            cluster,
            live,
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
            root,
            root_health,
        })
    }

    /// The GPU pool, when nodes are configured.
    pub fn gpu(&self) -> Option<&GpuPool> {
        self.pool.gpu()
    }

    /// Phases 2-7 of shutdown (see the module's doc): the root's children in order, users before
    /// what they use, with storage flushed after the sessions and at the end.
    pub fn shutdown(self) {
        let router = self.router.clone();
        let supervisor = self.supervisor.clone();
        let store = self.store.clone();
        let cluster = self.cluster.clone();
        let cache = self.cache.actor().get_cell();
        let root = self.root.clone();
        let node_pools: Vec<ractor::ActorCell> = [
            self.pool.gpu(),
            self.stt.as_ref().and_then(|s| s.nodes()),
            self.tts.as_ref().and_then(|t| t.nodes()),
        ]
        .into_iter()
        .flatten()
        .map(|g| g.actor().get_cell())
        .collect();
        self.runtime.block_on(async move {
            let wait = Some(Duration::from_secs(5));
            let stop = |why: &str| Some(why.to_string());
            // 2. Sessions first: every step they took is already committed and flushed.
            let _ = supervisor.stop_and_wait(stop("shutdown"), wait).await;
            // 3. Flushed (and appended to redis): the leases go, so this node's clients reconnect
            // to another node that takes their interviews at once.
            if let Err(e) = store.flush().await {
                tracing::error!(error = %e, "storage flush failed");
            }
            if let Some(c) = &cluster {
                c.leave().await;
            }
            // 4. The router and its key actors.
            let _ = router.stop_and_wait(stop("shutdown"), wait).await;
            // 5. The GPU and speech node pools.
            for p in node_pools {
                let _ = p.stop_and_wait(stop("shutdown"), wait).await;
            }
            // 6. The reuse cache, then the last flush.
            let _ = cache.stop_and_wait(stop("shutdown"), wait).await;
            if let Err(e) = store.flush().await {
                tracing::error!(error = %e, "final storage flush failed");
            }
            // 7. The root (its children are all stopped).
            let _ = root.stop_and_wait(stop("shutdown"), wait).await;
        });
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        tracing::info!("shutdown complete");
    }
}

/// `storage.path`, absolute when it can be made so.
pub fn data_path(config: &Config) -> String {
    std::path::absolute(&config.storage.path)
        .unwrap_or_else(|_| config.storage.path.clone())
        .display()
        .to_string()
}

/// Binds `server.bind` the way actix-web does (address reuse, a deep backlog), naming the address and
/// the likely fix when it fails.
pub fn bind(addr: &str) -> Result<std::net::TcpListener, StartError> {
    let fail = |source: std::io::Error| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => " (another process, perhaps another interview-engine, is listening there: stop it, or choose another address with server.bind / IE_SERVER__BIND)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: choose a port such as 8080)",
            std::io::ErrorKind::AddrNotAvailable => " (this machine has no such address: use 127.0.0.1 or 0.0.0.0)",
            _ => "",
        };
        StartError::Bind {
            addr: addr.to_string(),
            source,
            hint,
        }
    };
    let parsed: std::net::SocketAddr = addr.parse().map_err(|_| {
        fail(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not an address like 127.0.0.1:8080",
        ))
    })?;
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(parsed),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.bind(&parsed.into()).map_err(fail)?;
    socket.listen(2048).map_err(fail)?;
    Ok(socket.into())
}

/// Runs the server until SIGTERM / Ctrl-C.
pub fn serve(config: Config) -> Result<(), StartError> {
    crate::http::auth::check_bind(&config.server)?;
    if config.server.admin_token.0.is_empty() {
        if config.server.allow_open_admin {
            tracing::warn!("server.admin_token is empty and server.allow_open_admin = true: admin routes (/admin, /api/system_status, /metrics, /v1/...) are open to anyone who can reach {}", config.server.bind);
        } else {
            tracing::info!("server.admin_token is empty: admin routes (/admin, /api/system_status, /metrics, /v1/...) answer loopback clients only");
        }
    }
    // The address first: a taken port fails before the database is opened, and a port-0 bind is
    // known to the cluster (node id, advertise URL).
    let listener = bind(&config.server.bind)?;
    let local = listener.local_addr()?;
    let engine = Engine::start(&config, local)?;
    let timeline = Arc::new(
        crate::timeline::Timeline::open(engine.store.db())
            .map_err(|e| StartError::Actor(format!("timeline: {e}")))?,
    );
    let sampler = crate::timeline::spawn_sampler(
        engine.runtime.handle(),
        timeline.clone(),
        engine.pool.clone(),
        engine.budget.clone(),
        engine.stats.clone(),
    );
    let resumes = actors::resumes::ResumeAnalyzer::new(
        engine.pool.clone(),
        engine.cache.clone(),
        engine.stats.clone(),
    );
    let state = Arc::new(AppState {
        config: config.clone(),
        pool: engine.pool.clone(),
        engine: engine.runtime.handle().clone(),
        store: engine.store.clone(),
        active_providers: engine.active_providers.clone(),
        models: Arc::new(http::models::ModelCatalog::new(
            &config,
            &engine.active_providers,
        )),
        supervisor: engine.supervisor.clone(),
        questions: engine.questions.clone(),
        cache: engine.cache.clone(),
        stats: engine.stats.clone(),
        budget: engine.budget.clone(),
        stt: engine.stt.clone(),
        tts: engine.tts.clone(),
        resumes: resumes.clone(),
        interviews: actors::creation::Interviews::new(
            Arc::new(engine.store.clone()),
            engine.questions.clone(),
            engine.budget.clone(),
            resumes,
            engine.cluster.as_ref().map(|c| c.sessions.clone()),
        ),
        gateway_calls: actors::coalesce::Coalescer::new(),
        limits: http::limits::ClientLimits::new(&config.limits)?,
        live: engine.live.clone(),
        cluster: engine.cluster.clone(),
        admin: crate::http::auth::AdminAuth::new(&config.server),
        timeline,
    });
    // Rate-limit buckets of clients not seen lately are forgotten once a minute.
    let sweeper = {
        let state = state.clone();
        engine.runtime.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                state.limits.sweep();
            }
        })
    };
    let retention = spawn_retention(&engine, &config);
    let max_body = config.server.max_body_bytes;
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(|c| http::routes(c, max_body))
    })
    .workers(config.server.workers)
    // Events are small writes in quick succession (speech ended, then the transcript): with Nagle on,
    // the second waits for the client's delayed ACK (about 40 ms).
    .tcp_nodelay(true)
    .shutdown_timeout(config.server.shutdown_grace_s)
    .listen(listener)?;
    let addrs = server.addrs();
    let data = data_path(&config);
    let sources = config.sources.join(" + ");
    let result = actix_web::rt::System::new().block_on(async move {
        let running = server.run();
        for a in &addrs {
            // The first stdout line tells scripts and tests where the server listens (port 0 works).
            println!("listening on http://{a}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let shown: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
        tracing::info!(
            "interview-engine {} serving on {} (data in {data}; config: {sources})",
            env!("CARGO_PKG_VERSION"),
            shown.join(", ")
        );
        running.await
    });
    tracing::info!("http server stopped; stopping the engine");
    sweeper.abort();
    retention.abort();
    sampler.abort();
    engine.shutdown();
    result.map_err(StartError::Io)
}

/// Starts speech-to-text and text-to-speech: `[[stt_nodes]]` / `[[tts_nodes]]` as GPU pools of their
/// own, and the cloud keys of providers with an `stt_model` / `tts_model`.
async fn start_voice(
    config: &Config,
    http: &reqwest::Client,
    store: &SledStore,
    ledger: &Arc<dyn UsageLedger>,
    root: ractor::ActorCell,
) -> Result<
    (
        Option<actors::voice::stt_pool::SttPool>,
        Option<actors::voice::tts_pool::TtsPool>,
    ),
    StartError,
> {
    use actors::voice::{speech_cache, stt_pool, tts_pool};
    let env = |k: &str| std::env::var(k).ok();
    let v = &config.voice;
    let stt_nodes = start_node_pool(config, &config.stt_nodes, "stt", http, root.clone()).await?;
    let stt_keys = audio_keys(config, &env, ledger.clone(), AudioUse::Stt)?;
    let stt = stt_pool::SttPool::new(
        stt_nodes,
        stt_keys,
        stt_pool::SttSettings {
            deadline: Duration::from_millis(v.stt_deadline_ms),
            language: Some(v.stt_language.clone()).filter(|l| !l.is_empty()),
        },
        http.clone(),
    );
    let tts_nodes = start_node_pool(config, &config.tts_nodes, "tts", http, root).await?;
    let tts_keys = audio_keys(config, &env, ledger.clone(), AudioUse::Tts)?;
    let cache = speech_cache::SpeechCache::open(store.db(), v.tts_cache_mb << 20)
        .map_err(|e| StartError::Actor(format!("speech cache: {e}")))?;
    let tts = tts_pool::TtsPool::new(
        tts_nodes,
        tts_keys,
        tts_pool::TtsSettings {
            deadline: Duration::from_millis(v.tts_deadline_ms),
            voice: v.tts_voice.clone(),
            raw_rate: v.tts_raw_sample_rate,
        },
        Some(cache),
        http.clone(),
    );
    if stt.configured() {
        tracing::info!("speech-to-text configured: spoken answers are accepted");
    } else {
        tracing::info!("no [[stt_nodes]] and no provider stt_model with keys: audio frames are refused (audio_unsupported)");
    }
    Ok((
        stt.configured().then_some(stt),
        tts.configured().then_some(tts),
    ))
}

/// Starts a GPU pool over `nodes` (`[[stt_nodes]]`, `[[tts_nodes]]`): dispatched like GPU nodes.
async fn start_node_pool(
    config: &Config,
    nodes: &[crate::config::GpuNodeConfig],
    what: &str,
    http: &reqwest::Client,
    root: ractor::ActorCell,
) -> Result<Option<GpuPool>, StartError> {
    if nodes.is_empty() {
        return Ok(None);
    }
    let specs = node_specs(nodes, what)?;
    let g = &config.gpu;
    let cfg = GpuPoolConfig {
        probe_interval: Duration::from_millis(g.probe_interval_ms),
        queue_bound: g.queue_bound,
        request_timeout: Duration::from_millis(g.request_timeout_ms),
        breaker_failures: g.breaker_failures,
        breaker_cooldown: Duration::from_millis(g.breaker_cooldown_ms),
    };
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(nodes = ?names, "{what} nodes configured");
    let (pool, _) = GpuPool::start(specs, cfg, http.clone(), Some(root))
        .await
        .map_err(|e| StartError::Actor(format!("{what} nodes: {e}")))?;
    Ok(Some(pool))
}

/// Node specs from `[[gpu_nodes]]`-shaped config (keys from `api_key_env`).
fn node_specs(
    nodes: &[crate::config::GpuNodeConfig],
    what: &str,
) -> Result<Vec<GpuNodeSpec>, StartError> {
    let mut specs = Vec::with_capacity(nodes.len());
    for n in nodes {
        let api_key = match &n.api_key_env {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
                _ => {
                    return Err(StartError::Actor(format!(
                        "{what} node {:?}: api_key_env {var} is not set",
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
    Ok(specs)
}

/// The retention sweeper: once at start, then every `storage.sweep_interval_s`, removes transcripts
/// and reports past `storage.keep_days` / `report_keep_days` (sled reuses the space).
fn spawn_retention(engine: &Engine, config: &Config) -> tokio::task::JoinHandle<()> {
    let policy = config.storage.retention();
    let store = engine.store.clone();
    let every = Duration::from_secs(config.storage.sweep_interval_s);
    engine.runtime.spawn(async move {
        if policy.transcripts_ms.is_none() {
            return;
        }
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let store = store.clone();
            let now = chrono::Utc::now().timestamp_millis();
            let swept = tokio::task::spawn_blocking(move || {
                actors::storage::SessionLog::sweep(&store, &policy, now)
            })
            .await;
            match swept {
                Ok(Ok(s)) if s.transcripts + s.interviews > 0 => {
                    tracing::info!(
                        transcripts = s.transcripts,
                        interviews = s.interviews,
                        keys = s.keys,
                        "retention: old interviews removed"
                    )
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
                Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
            }
        }
    })
}

/// Starts the GPU pool over the configured `[[gpu_nodes]]` (none: no pool).
async fn start_gpu_pool(
    config: &Config,
    http: &reqwest::Client,
    root: ractor::ActorCell,
) -> Result<Option<GpuPool>, StartError> {
    if config.gpu_nodes.is_empty() {
        return Ok(None);
    }
    let specs = node_specs(&config.gpu_nodes, "gpu")?;
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
    let (pool, _) = GpuPool::start(specs, cfg, http.clone(), Some(root))
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

// Wiring: the actors' configuration built from the validated config, with their windows restored
// from the usage ledger (config.rs only layers and validates).

use actors::key::{KeyQuotas, KeySpec, SharedQuota};
use actors::providers::{FormatKind, Target};
use actors::quota::Rates;
use actors::router::KeyConfig;

use crate::config::{invalid, QuotaScope};

/// Which audio work a provider's keys are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioUse {
    /// Speech-to-text (`stt_model`).
    Stt,
    /// Text-to-speech (`tts_model`).
    Tts,
}

/// The cloud keys for speech-to-text or text-to-speech: one per key of every enabled provider
/// with an `stt_model` (`tts_model`), with their own windows restored from the ledger.
pub fn audio_keys(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    ledger: Arc<dyn UsageLedger>,
    kind: AudioUse,
) -> Result<Vec<Arc<actors::voice::audio_key::AudioKey>>, ConfigError> {
    use actors::voice::audio_key::{AudioKey, AudioKeySpec};
    let mut out = Vec::new();
    for (name, prov) in &config.providers {
        let (model, limits, voice, tag) = match kind {
            AudioUse::Stt => (&prov.stt_model, prov.stt_limits, None, "stt"),
            AudioUse::Tts => (
                &prov.tts_model,
                prov.tts_limits,
                prov.tts_voice.clone(),
                "tts",
            ),
        };
        let Some(model) = model.as_ref().filter(|_| prov.enabled) else {
            continue;
        };
        let keys: Vec<String> = env(&Config::keys_env(name, prov))
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        let tz: chrono_tz::Tz = prov
            .reset_tz
            .parse()
            .map_err(|_| invalid(format!("providers.{name}.reset_tz"), "unknown time zone"))?;
        for (i, key) in keys.into_iter().enumerate() {
            let id = format!("{name}#{}", i + 1);
            let spec = AudioKeySpec {
                id: id.clone(),
                provider: name.clone(),
                base_url: prov.base_url.trim_end_matches('/').to_string(),
                model: model.clone(),
                voice: voice.clone(),
                secret: Secret::new(key),
                priority: prov.priority,
                limits,
                tz,
                timeout: Duration::from_millis(config.pool.request_timeout_ms),
            };
            out.push(Arc::new(AudioKey::restored(
                spec,
                format!("{id}:{tag}"),
                ledger.clone(),
            )));
        }
    }
    Ok(out)
}

/// Builds the key actors' configuration from the providers and the keys in the environment.
/// Providers without keys are skipped with one log line each.
pub fn key_configs(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    ledger: &dyn UsageLedger,
) -> Result<Vec<KeyConfig>, ConfigError> {
    let mut out = Vec::new();
    for (name, prov) in &config.providers {
        let Some(format) = prov.format else { continue };
        if !prov.enabled {
            tracing::info!(provider = %name, "provider disabled in config; skipped");
            continue;
        }
        let var = Config::keys_env(name, prov);
        let keys: Vec<String> = env(&var)
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            tracing::info!(provider = %name, env = %var, "no keys configured; provider skipped");
            continue;
        }
        let mut base_url = prov.base_url.trim_end_matches('/').to_string();
        let mut account_id = None;
        match format {
            FormatKind::AzureOpenai if base_url.is_empty() => {
                base_url = env("AZURE_OPENAI_ENDPOINT")
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_string();
                if base_url.is_empty() {
                    return Err(invalid(
                        format!("providers.{name}.base_url"),
                        "empty and AZURE_OPENAI_ENDPOINT is not set",
                    ));
                }
            }
            FormatKind::Cloudflare => {
                account_id = env("CLOUDFLARE_ACCOUNT_ID").filter(|s| !s.trim().is_empty());
                if account_id.is_none() {
                    return Err(invalid(
                        format!("providers.{name}"),
                        "CLOUDFLARE_ACCOUNT_ID is not set (Workers AI URLs need the account id)",
                    ));
                }
            }
            _ => {}
        }
        let tz: chrono_tz::Tz = prov
            .reset_tz
            .parse()
            .map_err(|_| invalid(format!("providers.{name}.reset_tz"), "unknown time zone"))?;
        let limits = prov.effective_limits();
        let quotas_for = |scope: String| {
            let default = Arc::new(SharedQuota::restored(scope.clone(), limits, tz, ledger));
            let by_model = prov
                .model_limits
                .iter()
                .filter(|(m, _)| **m != prov.model)
                .map(|(m, ml)| {
                    let mut ml = *ml;
                    ml.daily_spend_micros = limits.daily_spend_micros;
                    let q = SharedQuota::restored(format!("{scope}/{m}"), ml, tz, ledger);
                    (m.clone(), Arc::new(q))
                })
                .collect();
            KeyQuotas { default, by_model }
        };
        let shared =
            (prov.quota_scope == QuotaScope::Shared).then(|| quotas_for(format!("{name}:shared")));
        let rates: std::collections::HashMap<String, Rates> = prov
            .served_models()
            .into_iter()
            .chain(prov.unit_rates.keys().cloned())
            .map(|m| {
                let r = prov.rates_for(&m);
                (m, r)
            })
            .collect();
        for (i, key) in keys.into_iter().enumerate() {
            let id = format!("{name}#{}", i + 1);
            let quotas = shared.clone().unwrap_or_else(|| quotas_for(id.clone()));
            let spec = KeySpec {
                id,
                provider: name.clone(),
                format,
                target: Target {
                    base_url: base_url.clone(),
                    model: prov.model.clone(),
                    secret: Secret::new(key),
                    account_id: account_id.clone(),
                    api_version: prov.api_version.clone(),
                    timeout: Duration::from_millis(config.pool.request_timeout_ms),
                },
                priority: prov.priority,
                breaker_failures: config.pool.breaker_failures,
                breaker_cooldown: Duration::from_millis(config.pool.breaker_cooldown_ms),
                queue_capacity: config.pool.queue_capacity,
                default_retry_after: Duration::from_millis(config.pool.default_retry_after_ms),
                models: prov.models.clone(),
                rates: rates.clone(),
                default_rates: Rates {
                    price_in: prov.cost.map_or(0.0, |c| c.input),
                    price_out: prov.cost.map_or(0.0, |c| c.output),
                    ..Rates::default()
                },
                paid: prov.cost.is_some_and(|c| c.input > 0.0 || c.output > 0.0),
            };
            out.push(KeyConfig {
                spec: Arc::new(spec),
                quotas,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_TOML;
    use actors::storage::NullLedger;
    use figment::providers::{Format, Toml};
    use figment::Figment;

    #[test]
    fn keys_come_from_env_and_scopes_share_quota() {
        let cfg: Config = Figment::from(Toml::string(DEFAULT_TOML)).extract().unwrap();
        let env = |k: &str| match k {
            "GROQ_API_KEYS" => Some("gsk_a, gsk_b".to_string()),
            "GEMINI_API_KEYS" => Some("g1,g2".to_string()),
            _ => None,
        };
        let keys = key_configs(&cfg, &env, &NullLedger).unwrap();
        let ids: Vec<_> = keys.iter().map(|k| k.spec.id.as_str()).collect();
        assert_eq!(ids, ["gemini#1", "gemini#2", "groq#1", "groq#2"]);
        assert!(
            Arc::ptr_eq(&keys[0].quotas.default, &keys[1].quotas.default),
            "gemini keys share one quota"
        );
        assert!(
            !Arc::ptr_eq(&keys[2].quotas.default, &keys[3].quotas.default),
            "groq keys have their own"
        );
        assert!(!format!("{:?}", keys[2].spec).contains("gsk_a"));
    }
}
