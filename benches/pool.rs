//! Admission and routing with no network: router plan, key reservation across every window, settle.
//! Target (issue 2): under 20 µs per request at p50. Run: `cargo bench --bench pool`.
#![allow(missing_docs, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use actors::key::{KeyQuotas, KeySpec, SharedQuota};
use actors::pool::{CallOptions, Pool};
use actors::providers::{FormatKind, Target};
use actors::quota::Limits;
use actors::router::{KeyConfig, KeyDirectory, RouterActor, RouterArgs};
use actors::secret::Secret;
use actors::storage::{NullLedger, SledStore, UsageLedger};
use criterion::{criterion_group, criterion_main, Criterion};
use ractor::Actor;

fn keys(n: usize, ledger: &dyn UsageLedger) -> Vec<KeyConfig> {
    (0..n)
        .map(|i| {
            let id = format!("bench#{}", i + 1);
            let limits = Limits {
                rpm: Some(u32::MAX / 2),
                rpd: Some(u32::MAX / 2),
                tpm: Some(u64::MAX / 4),
                tpd: Some(u64::MAX / 4),
                concurrency: Some(1_000_000),
                ..Limits::default()
            };
            KeyConfig {
                quotas: KeyQuotas::single(Arc::new(SharedQuota::restored(
                    id.clone(),
                    limits,
                    chrono_tz::UTC,
                    ledger,
                ))),
                spec: Arc::new(KeySpec {
                    id,
                    provider: "bench".into(),
                    format: FormatKind::Openai,
                    target: Target {
                        base_url: "http://127.0.0.1:9".into(),
                        model: "m".into(),
                        secret: Secret::new("k"),
                        account_id: None,
                        api_version: None,
                        timeout: Duration::from_secs(1),
                    },
                    priority: (i % 3) as u32,
                    breaker_failures: 3,
                    breaker_cooldown: Duration::from_secs(30),
                    queue_capacity: 64,
                    default_retry_after: Duration::from_secs(10),
                    models: Vec::new(),
                    rates: Default::default(),
                    default_rates: Default::default(),
                    paid: false,
                }),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let opts = CallOptions::default();
    for (label, ledger) in [
        (
            "admission_no_ledger_13_keys",
            Arc::new(NullLedger) as Arc<dyn UsageLedger>,
        ),
        (
            "admission_sled_ledger_13_keys",
            Arc::new(SledStore::temporary().expect("sled")) as Arc<dyn UsageLedger>,
        ),
    ] {
        let pool = rt.block_on(async {
            let directory = KeyDirectory::default();
            let (router, _) = Actor::spawn(
                None,
                RouterActor,
                RouterArgs {
                    keys: keys(13, ledger.as_ref()),
                    ledger: ledger.clone(),
                    directory: directory.clone(),
                },
            )
            .await
            .expect("router");
            Pool::new(router, directory, reqwest::Client::new())
        });
        // Percentiles (criterion reports means): 20,000 admissions one after another.
        let hist = rt.block_on(async {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            for _ in 0..20_000 {
                let t0 = std::time::Instant::now();
                let permit = pool.acquire(600, &opts).await.expect("admitted");
                permit.settle(300, 100);
                h.record(t0.elapsed().as_nanos() as u64).expect("record");
            }
            h
        });
        println!(
            "{label}: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.9) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0
        );
        c.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let permit = pool.acquire(600, &opts).await.expect("admitted");
                permit.settle(300, 100);
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
