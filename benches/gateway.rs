//! Gateway overhead end to end: chat completions sent straight to the fake provider and through the
//! engine's `/v1/chat/completions`, at concurrency 1, 16 and 64. Every request body is distinct (its
//! index is in the message), so the figures measure the proxy, not the cache or the coalescing.
//! Targets (issue 10): added p50 under 0.2 ms and p99 under 1 ms at concurrency 1; at least 10,000
//! req/s at 64; at most 0.1 ms engine CPU per request; then, with the upstream answering in 200 ms,
//! RSS under 64 MB with at least 250 requests in flight (256 clients).
//! With GATEWAY_BENCH_VIA=gpu the engine reaches the fake as four `[[gpu_nodes]]` instead of provider
//! keys: the GPU pool's dispatch overhead (issue 5).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Run: `cargo bench --bench gateway`. Both binaries are the release builds cargo makes for the bench.
// Knobs (environment): GATEWAY_BENCH_REQUESTS (per level and path, default 2000),
// GATEWAY_BENCH_STORAGE (parent directory of the engine's sled database, default the system temp
// directory; e.g. /dev/shm to take the disk out of the admission flush), GATEWAY_BENCH_ENGINE_BIN and
// GATEWAY_BENCH_FAKE_BIN (other builds of the two binaries, for A/B runs of a change),
// GATEWAY_BENCH_SLOW_REQUESTS (requests of the 200 ms phase, default 2560; 0 skips it),
// GATEWAY_BENCH_FAKE_BIND (the fake's address, default 127.0.0.1:0), and GATEWAY_BENCH_OTHER_URL with
// GATEWAY_BENCH_OTHER_PID: another gateway (e.g. the LiteLLM proxy, configured with a model `one` on
// the fake at GATEWAY_BENCH_FAKE_BIND) measured at the same levels with the same distinct bodies.
// The table goes to stdout, the same numbers as JSON to target/bench-gateway.json.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

const LEVELS: [usize; 3] = [1, 16, 64];
const KEYS: [&str; 4] = ["k1", "k2", "k3", "k4"];
const WARMUP: usize = 1_000;

/// Added to request indexes so that no two runs send the same body.
static RUN_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// A child process killed (and reaped) when dropped, also when the bench panics.
struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("stopped {}", self.name);
    }
}

/// Spawns `cmd` with stdout piped and returns it once its first stdout line (`listening on URL`) came.
fn spawn_listening(name: &'static str, mut cmd: Command) -> (ChildGuard, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard { name, child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the child never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name} printed no listening line within 30 s"));
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name}: unexpected first line {line:?}"))
        .trim_end_matches('/')
        .to_string();
    (guard, base)
}

fn via_gpu() -> bool {
    std::env::var("GATEWAY_BENCH_VIA").is_ok_and(|v| v == "gpu")
}

fn engine_config(fake_base: &str, data: &Path) -> String {
    if via_gpu() {
        let mut c = format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n",
            data.display()
        );
        for i in 0..KEYS.len() {
            c.push_str(&format!(
                "[[gpu_nodes]]\nname = \"n{i}\"\nurl = \"{fake_base}\"\nmodel = \"m\"\nmax_concurrency = 1000\napi_key_env = \"NODE_KEY_{i}\"\n"
            ));
        }
        return c;
    }
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"{}\"\n\
         [providers.one]\nformat = \"openai\"\nbase_url = \"{fake_base}/v1\"\nmodel = \"m\"\npriority = 1\n\
         keys_env = \"ONE_API_KEYS\"\nlimits = {{ concurrency = 1000 }}\nquota_scope = \"key\"\n",
        data.display()
    )
}

/// One request path under test.
#[derive(Clone)]
struct Target {
    url: String,
    /// Straight to the fake (bearer key per request, model `m`) rather than through the engine.
    direct: bool,
}

/// Request `i`'s body: distinct per request, so nothing is served from the cache or shared.
fn body(direct: bool, i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": if direct { "m" } else if via_gpu() { "auto" } else { "one" },
        "max_tokens": 16,
        "messages": [{"role": "user", "content": format!("Say something short about Rust ({i}).")}],
    }))
    .unwrap()
}

struct Run {
    hist: Histogram<u64>,
    wall: Duration,
    errors: usize,
    /// Through the engine: how many requests each key (`x-served-by`) answered.
    served_by: BTreeMap<String, usize>,
}

/// Sends `n` requests over `conc` workers (each one request at a time) and records each latency (ns).
async fn run(client: &reqwest::Client, target: &Target, conc: usize, n: usize) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(conc);
    for _ in 0..conc {
        let (client, target, next) = (client.clone(), target.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
            let mut errors = 0;
            let mut served_by = BTreeMap::<String, usize>::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let mut rb = client
                    .post(&target.url)
                    .header("content-type", "application/json")
                    .body(body(
                        target.direct,
                        i + RUN_OFFSET.fetch_add(0, Ordering::Relaxed),
                    ));
                if target.direct {
                    rb = rb.bearer_auth(KEYS[i % KEYS.len()]);
                }
                let start = Instant::now();
                let ok = match rb.send().await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        if let Some(k) = resp
                            .headers()
                            .get("x-served-by")
                            .and_then(|v| v.to_str().ok())
                        {
                            *served_by.entry(k.to_string()).or_default() += 1;
                        }
                        // Read the whole body: the request is done when its last byte is in.
                        resp.bytes().await.is_ok() && ok
                    }
                    Err(_) => false,
                };
                let ns = start.elapsed().as_nanos() as u64;
                if ok {
                    h.record(ns.max(1)).unwrap();
                } else {
                    errors += 1;
                }
            }
            (h, errors, served_by)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut errors = 0;
    let mut served_by = BTreeMap::new();
    for t in tasks {
        let (h, e, s) = t.await.unwrap();
        hist.add(h).unwrap();
        errors += e;
        for (k, c) in s {
            *served_by.entry(k).or_default() += c;
        }
    }
    Run {
        hist,
        wall: t0.elapsed(),
        errors,
        served_by,
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// User + system CPU time of a process so far, in µs (Linux `/proc/PID/stat`, USER_HZ = 100); 0 elsewhere.
fn cpu_us(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() * 10_000
}

/// Resident set size of a process now, KiB (Linux `/proc/PID/status`); 0 elsewhere.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy CPU time of the whole machine so far (all CPUs, `/proc/stat`), in µs; 0 elsewhere.
fn machine_busy_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let first = stat.lines().next().unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = first
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum::<u64>()
        * 10_000
}

/// CPU µs per request spent by the engine, the fake and this client during one run, and by
/// everything else on the machine (other processes, unattributed interrupts): a check that the
/// machine was otherwise quiet.
#[derive(Clone, Copy, Default)]
struct Cpu {
    engine: f64,
    fake: f64,
    client: f64,
    other: f64,
}

async fn measured(
    client: &reqwest::Client,
    target: &Target,
    conc: usize,
    n: usize,
    pids: &[String; 3],
) -> (Run, Cpu) {
    let machine0 = machine_busy_us();
    let before: Vec<u64> = pids.iter().map(|p| cpu_us(p)).collect();
    let r = run(client, target, conc, n).await;
    RUN_OFFSET.fetch_add(n, Ordering::Relaxed);
    let after: Vec<u64> = pids.iter().map(|p| cpu_us(p)).collect();
    let machine = machine_busy_us().saturating_sub(machine0) as f64 / n as f64;
    let per = |i: usize| after[i].saturating_sub(before[i]) as f64 / n as f64;
    (
        r,
        Cpu {
            engine: per(0),
            fake: per(1),
            client: per(2),
            other: (machine - per(0) - per(1) - per(2)).max(0.0),
        },
    )
}

fn main() {
    let n: usize = std::env::var("GATEWAY_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let storage_parent = std::env::var_os("GATEWAY_BENCH_STORAGE")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("bench-gateway-")
        .tempdir_in(&storage_parent)
        .expect("temporary directory");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Fake provider, 0 ms latency, four keys with no limits.
    let bin = |var: &str, built: &str| std::env::var_os(var).unwrap_or_else(|| built.into());
    let fake_bin = std::env::var_os("GATEWAY_BENCH_FAKE_BIN").map_or_else(
        || fake_provider::binary().expect("the fake-provider binary"),
        std::path::PathBuf::from,
    );
    let mut fake_cmd = Command::new(fake_bin);
    fake_cmd
        .arg("--bind")
        .arg(std::env::var("GATEWAY_BENCH_FAKE_BIND").unwrap_or_else(|_| "127.0.0.1:0".into()))
        .stderr(Stdio::inherit());
    let (fake, fake_base) = spawn_listening("fake-provider", fake_cmd);
    let control = reqwest::Client::new();
    rt.block_on(async {
        for k in KEYS {
            let r = control
                .post(format!("{fake_base}/_fake/keys"))
                .json(&json!({"key": k, "limits": {}, "latency_ms": 0}))
                .send()
                .await
                .expect("register key");
            assert!(r.status().is_success(), "register {k}: {}", r.status());
        }
    });

    // Engine: one provider over the four keys, concurrency 1000 per key and no windows.
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        engine_config(&fake_base, &dir.path().join("data")),
    )
    .unwrap();
    let log_path = dir.path().join("engine.log");
    let mut engine_cmd = Command::new(bin(
        "GATEWAY_BENCH_ENGINE_BIN",
        env!("CARGO_BIN_EXE_interview-engine"),
    ));
    engine_cmd
        .args(["serve", "--config"])
        .arg(&config_path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("ONE_API_KEYS", KEYS.join(","))
        .envs(
            KEYS.iter()
                .enumerate()
                .map(|(i, k)| (format!("NODE_KEY_{i}"), *k)),
        )
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .current_dir(dir.path());
    let (engine, engine_base) = spawn_listening("interview-engine", engine_cmd);
    let pids = [
        engine.pid().to_string(),
        fake.pid().to_string(),
        "self".to_string(),
    ];

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let direct = Target {
        url: format!("{fake_base}/v1/chat/completions"),
        direct: true,
    };
    let via = Target {
        url: format!("{engine_base}/v1/chat/completions"),
        direct: false,
    };

    println!(
        "gateway bench: {n} requests per level and path; fake {fake_base}, engine {engine_base}, sled in {}",
        dir.path().display()
    );
    let mut rows = Vec::new();
    rt.block_on(async {
        // Warm-up: open the connections of the widest level on both paths and let both processes reach
        // a steady state; fail early if either path does not answer.
        for target in [&direct, &via] {
            let w = run(&client, target, 64, WARMUP).await;
            RUN_OFFSET.fetch_add(WARMUP, Ordering::Relaxed);
            assert_eq!(
                w.errors,
                0,
                "warm-up to {} failed {} times; engine log:\n{}",
                target.url,
                w.errors,
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        for conc in LEVELS {
            let (d, dc) = measured(&client, &direct, conc, n, &pids).await;
            let (v, vc) = measured(&client, &via, conc, n, &pids).await;
            assert_eq!(
                d.errors + v.errors,
                0,
                "errors at concurrency {conc}: direct {}, via engine {}; engine log:\n{}",
                d.errors,
                v.errors,
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            rows.push((conc, d, v, dc, vc));
        }
    });
    if let Ok(url) = std::env::var("GATEWAY_BENCH_OTHER_URL") {
        let other = Target { url, direct: false };
        let pid = std::env::var("GATEWAY_BENCH_OTHER_PID").unwrap_or_else(|_| "0".into());
        rt.block_on(async {
            let w = run(&client, &other, 64, WARMUP).await;
            RUN_OFFSET.fetch_add(WARMUP, Ordering::Relaxed);
            println!("other gateway {}: warm-up errors {}", other.url, w.errors);
            for conc in LEVELS {
                let before = cpu_us(&pid);
                let r = run(&client, &other, conc, n).await;
                RUN_OFFSET.fetch_add(n, Ordering::Relaxed);
                let cpu = cpu_us(&pid).saturating_sub(before) as f64 / n as f64;
                println!(
                    "other gateway, concurrency {conc}: p50 {:.3} ms, p99 {:.3} ms, {:.0} req/s, {} errors, {cpu:.0} µs CPU per request",
                    ms(r.hist.value_at_quantile(0.5)),
                    ms(r.hist.value_at_quantile(0.99)),
                    n as f64 / r.wall.as_secs_f64(),
                    r.errors
                );
            }
        });
    }

    println!();
    println!(
        "{:>5} | {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10} | {:>11} {:>11}",
        "conc",
        "direct p50",
        "direct p99",
        "via p50",
        "via p99",
        "added p50",
        "added p99",
        "direct rps",
        "via rps"
    );
    println!("{}", "-".repeat(106));
    let mut json_rows = Vec::new();
    for (conc, d, v, dc, vc) in &rows {
        let q = |r: &Run, p: f64| ms(r.hist.value_at_quantile(p));
        let (dp50, dp99, vp50, vp99) = (q(d, 0.5), q(d, 0.99), q(v, 0.5), q(v, 0.99));
        let drps = n as f64 / d.wall.as_secs_f64();
        let vrps = n as f64 / v.wall.as_secs_f64();
        println!(
            "{conc:>5} | {dp50:>7.3} ms {dp99:>7.3} ms | {vp50:>7.3} ms {vp99:>7.3} ms | {:>7.3} ms {:>7.3} ms | {drps:>7.0} r/s {vrps:>7.0} r/s",
            vp50 - dp50,
            vp99 - dp99
        );
        json_rows.push(json!({
            "concurrency": conc,
            "requests": n,
            "direct": {"p50_ms": dp50, "p90_ms": q(d, 0.9), "p99_ms": dp99, "max_ms": ms(d.hist.max()), "throughput_rps": drps},
            "via_engine": {"p50_ms": vp50, "p90_ms": q(v, 0.9), "p99_ms": vp99, "max_ms": ms(v.hist.max()), "throughput_rps": vrps},
            "added": {"p50_ms": vp50 - dp50, "p99_ms": vp99 - dp99},
            "cpu_us_per_request": {
                "direct": {"engine": dc.engine, "fake": dc.fake, "client": dc.client, "other": dc.other},
                "via_engine": {"engine": vc.engine, "fake": vc.fake, "client": vc.client, "other": vc.other},
            },
            "served_by": v.served_by,
        }));
    }
    println!(
        "\nCPU per request (µs, user+system from /proc, 10 ms ticks; `other` = rest of the machine) and keys used through the engine:"
    );
    for (conc, _, v, dc, vc) in &rows {
        println!(
            "{conc:>5} | direct: fake {:>4.0} client {:>4.0} other {:>4.0} | via: engine {:>4.0} fake {:>4.0} client {:>4.0} other {:>4.0} | served by {:?}",
            dc.fake, dc.client, dc.other, vc.engine, vc.fake, vc.client, vc.other, v.served_by
        );
    }
    // Issue 10's targets.
    let c1 = rows.iter().find(|r| r.0 == 1);
    let c64 = rows.iter().find(|r| r.0 == 64);
    let q = |r: &Run, p: f64| ms(r.hist.value_at_quantile(p));
    let added_p50 = c1.map_or(f64::NAN, |(_, d, v, _, _)| q(v, 0.5) - q(d, 0.5));
    let added_p99 = c1.map_or(f64::NAN, |(_, d, v, _, _)| q(v, 0.99) - q(d, 0.99));
    let rps64 = c64.map_or(0.0, |(_, _, v, _, _)| n as f64 / v.wall.as_secs_f64());
    let cpu_ms = rows
        .iter()
        .map(|(_, _, _, _, vc)| vc.engine / 1000.0)
        .fold(f64::MIN, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!("\nTargets (issue 10):");
    println!(
        "  added p50 at concurrency 1: {added_p50:.3} ms (< 0.2 ms): {}",
        verdict(added_p50 < 0.2)
    );
    println!(
        "  added p99 at concurrency 1: {added_p99:.3} ms (< 1 ms): {}",
        verdict(added_p99 < 1.0)
    );
    println!(
        "  throughput at concurrency 64: {rps64:.0} req/s (>= 10,000): {}",
        verdict(rps64 >= 10_000.0)
    );
    println!(
        "  engine CPU per request, worst level: {cpu_ms:.3} ms (<= 0.1 ms): {}",
        verdict(cpu_ms <= 0.1)
    );

    // The memory phase: the upstream answers in 200 ms and 256 clients keep requests in flight.
    let slow_n: usize = std::env::var("GATEWAY_BENCH_SLOW_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_560);
    let slow = (slow_n > 0).then(|| {
        rt.block_on(async {
            for k in KEYS {
                let r = control
                    .post(format!("{fake_base}/_fake/keys/{k}/latency"))
                    .json(&json!({"latency_ms": 200}))
                    .send()
                    .await
                    .expect("set latency");
                assert!(r.status().is_success());
            }
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let sampler = {
                let (stop, control, fake_base, pid) = (
                    stop.clone(),
                    control.clone(),
                    fake_base.clone(),
                    engine.pid(),
                );
                tokio::spawn(async move {
                    let (mut peak_rss, mut peak_flight) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        peak_rss = peak_rss.max(rss_kib(pid));
                        if let Ok(r) = control.get(format!("{fake_base}/_fake/stats")).send().await
                        {
                            if let Ok(v) = r.json::<Value>().await {
                                let f: u64 = KEYS
                                    .iter()
                                    .map(|k| v[k]["in_flight"].as_u64().unwrap_or(0))
                                    .sum();
                                peak_flight = peak_flight.max(f);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    (peak_rss, peak_flight)
                })
            };
            let r = run(&client, &via, 256, slow_n).await;
            stop.store(true, Ordering::Relaxed);
            let (peak_rss, peak_flight) = sampler.await.unwrap();
            assert_eq!(r.errors, 0, "errors in the 200 ms phase");
            (peak_rss, peak_flight, r)
        })
    });
    let slow_json = slow.as_ref().map(|(rss, flight, r)| {
        let rss_mb = *rss as f64 / 1024.0;
        println!(
            "  RSS with a 200 ms upstream and 256 clients: peak {rss_mb:.1} MiB with up to {flight} requests in flight at the upstream (< 64 MB with >= 250 in flight): {}; {:.0} req/s, via p50 {:.1} ms",
            verdict(rss_mb < 64.0 && *flight >= 250),
            slow_n as f64 / r.wall.as_secs_f64(),
            ms(r.hist.value_at_quantile(0.5))
        );
        json!({"requests": slow_n, "clients": 256, "upstream_latency_ms": 200,
               "peak_rss_mib": rss_mb, "peak_in_flight_at_upstream": flight,
               "via_p50_ms": ms(r.hist.value_at_quantile(0.5))})
    });
    let out = json!({
        "bench": "gateway",
        "requests_per_level": n,
        "warmup_requests": WARMUP,
        "distinct_bodies": true,
        "storage_dir": dir.path().display().to_string(),
        "targets": {
            "added_p50_ms_c1": added_p50, "added_p99_ms_c1": added_p99,
            "rps_c64": rps64, "engine_cpu_ms_per_request": cpu_ms,
        },
        "levels": json_rows,
        "slow_upstream": slow_json,
    });
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let _ = std::fs::create_dir_all(&target_dir);
    let file = target_dir.join("bench-gateway.json");
    std::fs::write(&file, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("wrote {}", file.display());
    // `engine` and `fake` are dropped here (and on any panic above): both processes are killed.
    drop(engine);
    drop(fake);
}
