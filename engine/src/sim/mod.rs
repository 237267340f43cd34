//! A simulated day: the engine's real actors (router and key actors, the pool and its windows, the
//! call budget, the cache, the supervisor and one session actor per interview, sled in a scratch
//! directory) run in this process on one tokio runtime whose time is paused, so the engine's
//! [`Clock`] is virtual and a day of interviews passes in minutes. Every provider of the catalogue
//! gets one key, served in process by a [`provider::SimProvider`] that enforces that key's free-tier
//! windows; an optional GPU node of a given throughput is a [`provider::SimGpu`]. Candidates arrive
//! on a day's curve ([`curve`]) and answer through the session actor's own messages
//! ([`candidate`]).
//!
//! It exists to check, before a real day does, that the admission levels, the windows and the
//! budget's pacing hold up under a day's load: every interview completes, no provider answers 429,
//! and what the day costs agrees with `plan`'s arithmetic. `interview-engine simulate`
//! (`cli/simulate.rs`) prints it; `tests/simulate.rs` asserts it at a reduced size.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::budget::{Budget, Level};
use actors::clock::Clock;
use actors::content::question_pool::QuestionPool;
use actors::content::templates::Templates;
use actors::gpu_node::GpuNodeSpec;
use actors::gpu_pool::{GpuPool, GpuPoolConfig};
use actors::inproc::{self, Registration};
use actors::pool::Pool;
use actors::router::{KeyDirectory, RouterActor, RouterArgs};
use actors::session::SessionDeps;
use actors::storage::{SledStore, UsageLedger};
use actors::supervisor::{InterviewSupervisor, LiveSessions};
use ractor::Actor;
use serde::Serialize;

use crate::config::{Config, GpuNodeConfig};

pub mod candidate;
pub mod curve;
// The fake provider's interviewer persona, shared with that binary (whose `Parsed` has more fields).
#[allow(dead_code, clippy::needless_update)]
#[path = "../../../fake-provider/src/persona.rs"]
mod persona;
pub mod provider;

use provider::Parsed;
use provider::{SimGpu, SimProvider};

/// Seconds one GPU call takes in the simulation: `plan`'s assumption, so that a node of `rps` calls a
/// second has `rps × ASSUMED_GPU_CALL_S` slots in both.
pub const GPU_CALL_S: f64 = crate::cli::plan::ASSUMED_GPU_CALL_S;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Interviews in the day.
    pub interviews: usize,
    /// Share of the day's arrivals in each hour (UTC).
    pub curve: curve::Curve,
    /// An in-process GPU node serving this many calls a second.
    pub gpu_node_rps: Option<f64>,
    /// Time a candidate takes to answer (virtual).
    pub think: Duration,
    /// Time a provider takes to answer (virtual).
    pub provider_latency: Duration,
    /// Scratch directory for sled (default: a new directory under /dev/shm, else the temp dir).
    pub data_dir: Option<PathBuf>,
    /// Write a progress line to stderr every virtual hour.
    pub progress: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            interviews: 20_000,
            curve: curve::Curve::workday(),
            gpu_node_rps: None,
            think: Duration::from_secs(40),
            provider_latency: Duration::from_millis(800),
            data_dir: None,
            progress: false,
        }
    }
}

/// Why the simulation could not run (an invariant failing is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The runtime or the scratch directory.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Storage.
    #[error("storage: {0}")]
    Storage(#[from] actors::storage::StorageError),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Content files.
    #[error("content: {0}")]
    Content(#[from] actors::content::ContentError),
    /// An actor did not start.
    #[error("actor start failed: {0}")]
    Actor(String),
}

/// One hour of the simulated day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HourRow {
    /// Hour since the start of the day (0 = 00:00 UTC; 24 and up are the next day's).
    pub hour: u32,
    /// Interviews that arrived.
    pub arrivals: u64,
    /// Admissions per level (heuristic, economy, balanced, adaptive).
    pub admitted: [u64; 4],
    /// Provider calls answered (cloud keys).
    pub provider_calls: u64,
    /// GPU calls answered.
    pub gpu_calls: u64,
    /// Highest fill of any key's minute window (rpm or tpm) at an admission this hour, 0..=1.
    pub minute_window_peak: f64,
    /// Requests used so far today over the day's request capacity (`plan`'s daily requests).
    pub day_requests_used: f64,
    /// Answers graded by a model (fresh or cached), of the answers of interviews that finished.
    pub answers: u64,
    /// Of which graded by a model.
    pub llm_graded: u64,
    /// Interviews that finished with their report.
    pub completed: u64,
}

/// One provider key over the day.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderRow {
    /// Provider.
    pub provider: String,
    /// Requests answered.
    pub requests: u64,
    /// Tokens reported.
    pub tokens: u64,
    /// 429s, by window.
    pub refused: BTreeMap<&'static str, u64>,
    /// Highest fill of each window at an admission (1.0 = full; above would be exceeded).
    pub peak_use: BTreeMap<&'static str, f64>,
}

/// The day.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Interviews started.
    pub interviews: u64,
    /// Interviews that reached their report.
    pub completed: u64,
    /// Interviews that did not, with why (the first few).
    pub failures: Vec<String>,
    /// Interviews that did not complete.
    pub failed: u64,
    /// Provider 429s over all keys.
    pub provider_429s: u64,
    /// Windows filled beyond their limit (a key answered over its limit): must be empty.
    pub windows_exceeded: Vec<String>,
    /// Interviews per level at admission.
    pub admitted: [u64; 4],
    /// Interviews per level they finished at.
    pub finished: [u64; 4],
    /// Level steps (down and up) taken during interviews.
    pub steps: u64,
    /// Provider calls attributed to each level (the level the interview was at when the call was
    /// made), and interviews that finished at it: calls per interview per level.
    pub level_calls: [u64; 4],
    /// Tokens per level, likewise.
    pub level_tokens: [u64; 4],
    /// Cloud provider calls in the day.
    pub provider_calls: u64,
    /// GPU calls in the day.
    pub gpu_calls: u64,
    /// Answers, and of them graded by a model.
    pub answers: u64,
    /// Answers graded by a model.
    pub llm_graded: u64,
    /// Per hour.
    pub hours: Vec<HourRow>,
    /// Per provider key.
    pub providers: Vec<ProviderRow>,
    /// Virtual time from the first arrival's hour to the last report, seconds.
    pub virtual_s: f64,
    /// Real time the run took, seconds.
    pub real_s: f64,
    /// The GPU node's throughput, when there was one.
    pub gpu_node_rps: Option<f64>,
    /// Slots of that node (`rps × GPU_CALL_S`).
    pub gpu_node_slots: Option<u32>,
}

impl SimReport {
    /// The invariants of the issue: every interview completed, no provider 429, no window exceeded.
    pub fn invariant_failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.completed != self.interviews {
            out.push(format!(
                "{} of {} interviews completed",
                self.completed, self.interviews
            ));
        }
        if self.provider_429s > 0 {
            out.push(format!("{} provider 429s", self.provider_429s));
        }
        for w in &self.windows_exceeded {
            out.push(format!("window exceeded: {w}"));
        }
        out
    }
}

/// A provider the simulation gives a key: free (no price) and enabled, with a wire format.
fn simulated(prov: &crate::config::ProviderConfig) -> bool {
    prov.enabled
        && prov.format.is_some()
        && !prov.cost.is_some_and(|c| c.input > 0.0 || c.output > 0.0)
}

/// The config the simulation runs: `base` with every free provider at `inproc://sim-NAME`, a GPU
/// node `sim-gpu` when asked for, and the environment it reads keys from (one key per provider).
pub fn sim_config(base: &Config, gpu_node_rps: Option<f64>) -> (Config, BTreeMap<String, String>) {
    let mut cfg = base.clone();
    let mut env = BTreeMap::new();
    for (name, prov) in cfg.providers.iter_mut() {
        if !simulated(prov) {
            continue;
        }
        prov.base_url = format!("{}sim-{name}", inproc::SCHEME);
        env.insert(Config::keys_env(name, prov), format!("sim-key-{name}"));
    }
    env.insert("CLOUDFLARE_ACCOUNT_ID".into(), "sim-account".into());
    env.insert(
        "AZURE_OPENAI_ENDPOINT".into(),
        format!("{}sim-azure_openai", inproc::SCHEME),
    );
    cfg.gpu_nodes = gpu_node_rps
        .map(|rps| GpuNodeConfig {
            name: "sim-gpu".into(),
            url: format!("{}sim-gpu", inproc::SCHEME),
            model: "sim".into(),
            max_concurrency: gpu_slots(rps),
            api_key_env: None,
            priority: 0,
        })
        .into_iter()
        .collect();
    (cfg, env)
}

/// Slots of a node serving `rps` calls a second when each takes [`GPU_CALL_S`].
pub fn gpu_slots(rps: f64) -> u32 {
    (rps * GPU_CALL_S).round().max(1.0) as u32
}

/// Runs the simulated day on a new current-thread runtime with paused time.
pub fn run(base: &Config, opts: &SimOptions) -> Result<SimReport, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    let dir = scratch_dir(opts)?;
    let result = rt.block_on(day(base, opts, &dir));
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn scratch_dir(opts: &SimOptions) -> Result<PathBuf, SimError> {
    let name = format!("ie-sim-{}", uuid::Uuid::new_v4().simple());
    let dir = match &opts.data_dir {
        Some(d) => d.join(name),
        None => {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm.join(name)
            } else {
                std::env::temp_dir().join(name)
            }
        }
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Everything the candidates share.
pub struct World {
    /// The session supervisor.
    pub supervisor: ractor::ActorRef<actors::supervisor::SupervisorMsg>,
    /// The database (interviews are created in it as the HTTP layer does).
    pub store: SledStore,
    /// The question pool.
    pub questions: Arc<QuestionPool>,
    /// The call budget (creation previews the level with it).
    pub budget: Arc<Budget>,
    /// Questions per interview.
    pub questions_per_interview: u32,
    /// Answering time.
    pub think: Duration,
    /// The start of the simulated day.
    pub start: Instant,
}

async fn day(
    base: &Config,
    opts: &SimOptions,
    dir: &std::path::Path,
) -> Result<SimReport, SimError> {
    let real0 = Instant::now();
    // The day starts at the next midnight UTC, on the virtual clock, before anything is started.
    let wall = Clock::wall();
    let midnight = provider::next_midnight(wall);
    if let Ok(d) = (midnight - wall).to_std() {
        tokio::time::advance(d).await;
    }
    let start = Clock::now();
    let (cfg, env) = sim_config(base, opts.gpu_node_rps);
    let store = SledStore::open(&dir.join("data"))?;
    let ledger: Arc<dyn UsageLedger> = Arc::new(store.clone());
    let getenv = |k: &str| env.get(k).cloned();
    let keys = crate::server::key_configs(&cfg, &getenv, ledger.as_ref())?;
    // One in-process provider per key (one key per provider).
    let mut registrations: Vec<Registration> = Vec::new();
    let mut sims: Vec<Arc<SimProvider>> = Vec::new();
    for k in &keys {
        let Some(prov) = cfg.providers.get(&k.spec.provider) else {
            continue;
        };
        let tz = prov.reset_tz.parse().unwrap_or(chrono_tz::UTC);
        let sim = Arc::new(SimProvider::new(
            &k.spec.provider,
            prov.effective_limits(),
            prov.rates_for(&prov.model),
            tz,
            opts.provider_latency,
            start,
        ));
        let name = k.spec.target.base_url.trim_start_matches(inproc::SCHEME);
        registrations.push(inproc::register(name, sim.clone()));
        sims.push(sim);
    }
    let http = reqwest::Client::new();
    let directory = KeyDirectory::default();
    let (router, _) = Actor::spawn(
        None,
        RouterActor,
        RouterArgs {
            keys,
            ledger: ledger.clone(),
            directory: directory.clone(),
        },
    )
    .await
    .map_err(|e| SimError::Actor(e.to_string()))?;
    let mut pool = Pool::new(router.clone(), directory, http.clone());
    let mut gpu_sim = None;
    if let (Some(rps), Some(node)) = (opts.gpu_node_rps, cfg.gpu_nodes.first()) {
        let slots = node.max_concurrency;
        let latency = Duration::from_secs_f64(f64::from(slots) / rps.max(1e-6));
        let sim = Arc::new(SimGpu::new(latency, start));
        registrations.push(inproc::register("sim-gpu", sim.clone()));
        gpu_sim = Some(sim);
        let g = &cfg.gpu;
        let (gpu, _) = GpuPool::start(
            vec![GpuNodeSpec {
                name: node.name.clone(),
                url: node.url.clone(),
                model: node.model.clone(),
                max_concurrency: slots,
                api_key: None,
                priority: 0,
            }],
            GpuPoolConfig {
                probe_interval: Duration::from_millis(g.probe_interval_ms),
                queue_bound: g.queue_bound,
                request_timeout: Duration::from_millis(g.request_timeout_ms),
                breaker_failures: g.breaker_failures,
                breaker_cooldown: Duration::from_millis(g.breaker_cooldown_ms),
            },
            http.clone(),
            None,
        )
        .await
        .map_err(|e| SimError::Actor(format!("gpu pool: {e}")))?;
        pool = pool.with_gpu(gpu, cfg.gpu.fallback_to_cloud);
        // The node's first probe marks it up.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (cache, _) = actors::cache::spawn(store.db().clone(), cfg.cache.to_cache_config())
        .await
        .map_err(|e| SimError::Actor(format!("cache: {e}")))?;
    let templates = Arc::new(Templates::load_embedded()?);
    let questions = Arc::new(QuestionPool::load_embedded()?);
    let stats = Arc::new(actors::stats::OptimizationStats::default());
    let idle = Duration::from_secs(cfg.interview.idle_timeout_s);
    let budget = Arc::new(Budget::new(Box::new(pool.clone())).with_hold_ttl(idle));
    let deps = Arc::new(SessionDeps {
        log: Arc::new(store.clone()),
        pool: Some(pool.clone()),
        templates,
        idle_timeout: idle,
        eval_deadline: Duration::from_millis(cfg.interview.eval_deadline_ms),
        test_hooks: false,
        stats: stats.clone(),
        cache: Some(cache),
        budget: budget.clone(),
        questions: Arc::default(),
        voice: None,
        pending_ttl: Duration::from_secs(cfg.limits.pending_ttl_s),
        hibernate_after: (cfg.interview.hibernate_after_s > 0)
            .then(|| Duration::from_secs(cfg.interview.hibernate_after_s)),
        live: Arc::new(LiveSessions::new(usize::MAX / 2)),
        cluster: None,
        embedder: None,
    });
    let (supervisor, _) = Actor::spawn(None, InterviewSupervisor, deps)
        .await
        .map_err(|e| SimError::Actor(e.to_string()))?;
    let world = Arc::new(World {
        supervisor: supervisor.clone(),
        store: store.clone(),
        questions,
        budget,
        questions_per_interview: cfg.interview.questions,
        think: opts.think,
        start,
    });
    let arrivals = opts.curve.arrivals(opts.interviews);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(arrivals.len());
    for (n, at) in arrivals.iter().enumerate() {
        let world = world.clone();
        let at = start + *at;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            let outcome = candidate::run(&world, n).await;
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            outcome
        }));
    }
    let total = arrivals.len();
    let progress = opts.progress.then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                eprintln!(
                    "simulate: {:.0} h virtual, {} of {total} interviews ended, {:.0} s real",
                    Clock::since(start).as_secs_f64() / 3600.0,
                    done.load(std::sync::atomic::Ordering::Relaxed),
                    real0.elapsed().as_secs_f64()
                );
            }
        })
    });
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(match t.await {
            Ok(o) => o,
            Err(e) => Err(format!("candidate task: {e}")),
        });
    }
    if let Some(p) = progress {
        p.abort();
    }
    let virtual_s = Clock::since(start).as_secs_f64();
    let _ = supervisor
        .stop_and_wait(None, Some(Duration::from_secs(30)))
        .await;
    let _ = router
        .stop_and_wait(None, Some(Duration::from_secs(30)))
        .await;
    let _ = store.flush().await;
    let mut report = tally(&arrivals, &outcomes, &sims, gpu_sim.as_deref(), &stats);
    report.virtual_s = virtual_s;
    report.real_s = real0.elapsed().as_secs_f64();
    report.gpu_node_rps = opts.gpu_node_rps;
    report.gpu_node_slots = cfg.gpu_nodes.first().map(|n| n.max_concurrency);
    drop(registrations);
    Ok(report)
}

fn hour_of(d: Duration) -> u32 {
    u32::try_from(d.as_secs() / 3600).unwrap_or(u32::MAX)
}

fn tally(
    arrivals: &[Duration],
    outcomes: &[Result<candidate::Outcome, String>],
    sims: &[Arc<SimProvider>],
    gpu: Option<&SimGpu>,
    stats: &actors::stats::OptimizationStats,
) -> SimReport {
    let mut hours: BTreeMap<u32, HourRow> = BTreeMap::new();
    let mut report = SimReport {
        interviews: outcomes.len() as u64,
        completed: 0,
        failures: Vec::new(),
        failed: 0,
        provider_429s: 0,
        windows_exceeded: Vec::new(),
        admitted: [0; 4],
        finished: [0; 4],
        steps: 0,
        level_calls: [0; 4],
        level_tokens: [0; 4],
        provider_calls: 0,
        gpu_calls: 0,
        answers: 0,
        llm_graded: 0,
        hours: Vec::new(),
        providers: Vec::new(),
        virtual_s: 0.0,
        real_s: 0.0,
        gpu_node_rps: None,
        gpu_node_slots: None,
    };
    for (at, o) in arrivals.iter().zip(outcomes) {
        let h = hour_of(*at);
        hours.entry(h).or_default().arrivals += 1;
        match o {
            Ok(o) => {
                let r = hours.entry(h).or_default();
                r.admitted[o.admitted as usize] += 1;
                report.admitted[o.admitted as usize] += 1;
                report.finished[o.finished as usize] += 1;
                report.steps += o.steps;
                let done = hours.entry(hour_of(o.finished_at)).or_default();
                done.completed += 1;
                done.answers += o.answers;
                done.llm_graded += o.llm_graded;
                report.completed += 1;
                report.answers += o.answers;
                report.llm_graded += o.llm_graded;
            }
            Err(e) => {
                report.failed += 1;
                if report.failures.len() < 10 {
                    report.failures.push(e.clone());
                }
            }
        }
    }
    for sim in sims {
        let c = sim.counts();
        for (h, n) in &c.calls {
            hours.entry(*h).or_default().provider_calls += n;
        }
        for (h, peak) in &c.minute_peak {
            let r = hours.entry(*h).or_default();
            r.minute_window_peak = r.minute_window_peak.max(*peak);
        }
        report.provider_429s += c.refused.values().sum::<u64>();
        report.provider_calls += c.requests;
        for (w, p) in &c.peak_use {
            if *p > 1.0 + 1e-9 {
                report
                    .windows_exceeded
                    .push(format!("{} {w} at {:.0} %", sim.name, p * 100.0));
            }
        }
        report.providers.push(ProviderRow {
            provider: sim.name.clone(),
            requests: c.requests,
            tokens: c.tokens,
            refused: c.refused.clone(),
            peak_use: c.peak_use.clone(),
        });
    }
    if let Some(g) = gpu {
        for (h, n) in g.calls() {
            hours.entry(h).or_default().gpu_calls += n;
            report.gpu_calls += n;
        }
    }
    for l in stats.levels() {
        let i = Level::ALL
            .iter()
            .position(|x| x.as_str() == l.level)
            .unwrap_or(0);
        report.level_calls[i] = l.provider_calls;
        report.level_tokens[i] = l.provider_tokens;
    }
    report.hours = hours
        .into_iter()
        .map(|(h, mut r)| {
            r.hour = h;
            r
        })
        .collect();
    report
}

/// Fills each hour's `day_requests_used` from the day's request capacity (`plan`'s figure).
pub fn fill_day_share(report: &mut SimReport, day_requests: Option<u64>) {
    let mut used = 0u64;
    for r in &mut report.hours {
        used += r.provider_calls;
        r.day_requests_used = match day_requests {
            Some(cap) if cap > 0 => used as f64 / cap as f64,
            _ => 0.0,
        };
    }
}
