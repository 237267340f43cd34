//! `GET /api/system_status`: per provider and key (redacted ids only) the limits, usage, remaining,
//! percentage used, health and cool-down; totals and alerts for the operator. `GET
//! /api/optimization_stats`: content by source, cache hit rates, calls per interview per mode.

use actix_web::HttpResponse;
use actors::budget::Capacity;
use actors::key::KeyStatus;
use serde_json::{json, Value};

use super::State;
use crate::error::ApiError;

/// Provider calls a balanced interview of `questions` questions is expected to cost (the call budget's
/// figure, rounded up); turns remaining requests into an interview estimate.
pub fn calls_per_interview(questions: u32) -> u64 {
    let c =
        actors::budget::default_cost(actors::budget::Level::Balanced).calls(f64::from(questions));
    (c.ceil() as u64).max(1)
}

fn window(used: u64, limit: Option<u64>) -> Value {
    match limit {
        Some(l) => json!({
            "limit": l, "used": used, "remaining": l.saturating_sub(used),
            "percent_used": ((used as f64 / l as f64) * 1000.0).round() / 10.0,
        }),
        None => json!({"limit": null, "used": used, "remaining": null, "percent_used": null}),
    }
}

/// The windows of one quota: the minute and day ones, and those only some providers have (monthly,
/// a daily cost-unit budget, a daily spend cap in the price's currency).
fn windows_json(l: &actors::quota::Limits, u: &actors::quota::QuotaUsage) -> Value {
    let mut w = json!({
        "rpm": window(u.rpm_used, l.rpm.map(u64::from)),
        "rpd": window(u.rpd_used, l.rpd.map(u64::from)),
        "tpm": window(u.tpm_used, l.tpm),
        "tpd": window(u.tpd_used, l.tpd),
    });
    for (name, used, limit) in [
        (
            "requests_per_month",
            u.requests_month_used,
            l.requests_per_month,
        ),
        ("tokens_per_month", u.tokens_month_used, l.tokens_per_month),
        ("daily_units", u.units_used, l.daily_units),
    ] {
        if limit.is_some() {
            w[name] = window(used, limit);
        }
    }
    if let Some(cap) = l.daily_spend_micros {
        let money = |m: u64| (m as f64 / 1e6 * 1e4).round() / 1e4;
        w["daily_spend"] = json!({
            "limit": money(cap), "used": money(u.spend_micros_used),
            "remaining": money(cap.saturating_sub(u.spend_micros_used)),
            "percent_used": ((u.spend_micros_used as f64 / cap.max(1) as f64) * 1000.0).round() / 10.0,
        });
    }
    w
}

fn key_json(k: &KeyStatus) -> Value {
    let l = &k.limits;
    json!({
        "id": k.id,
        "model": k.model,
        "priority": k.priority,
        "scope": k.scope,
        "health": k.health,
        "cooldown_s": k.cooldown_s,
        "last_error": k.last_error,
        "queued": k.queued,
        "in_flight": k.usage.in_flight,
        "concurrency_limit": l.concurrency,
        "served": k.served,
        "failed": k.failed,
        "rate_limited_by_provider": k.rate_limited,
        "service_ms": k.service_ms,
        "paid": k.paid,
        "free_today": k.day_left,
        "windows": windows_json(l, &k.usage),
        "models": k.models.iter().map(|m| json!({
            "model": m.model, "scope": m.scope, "windows": windows_json(&m.limits, &m.usage),
        })).collect::<Vec<_>>(),
    })
}

/// Builds the status document from key statuses.
pub fn status_document(keys: &[KeyStatus], gpu_nodes: usize, questions: u32) -> Value {
    let per_interview = calls_per_interview(questions);
    let mut providers: Vec<(String, Vec<&KeyStatus>)> = Vec::new();
    for k in keys {
        match providers.iter_mut().find(|(p, _)| *p == k.provider) {
            Some((_, v)) => v.push(k),
            None => providers.push((k.provider.clone(), vec![k])),
        }
    }
    let mut alerts = Vec::new();
    // Today's room, as the call budget reads it: each quota scope once, none from a parked one,
    // only what is free (a paid key counts what its daily spend cap allows, else nothing).
    let usable = keys.iter().filter(|k| k.health != "invalid");
    let capacity = Capacity::over_scopes(usable.map(|k| (k.scope.as_str(), k.day_left)));
    let remaining_today = capacity.requests;
    let mut active = 0;
    for (name, ks) in &providers {
        if ks.iter().any(|k| k.health != "invalid") {
            active += 1;
        }
        for k in ks.iter() {
            match k.health {
                "invalid" => alerts.push(format!(
                    "{}: key refused by {name} ({}); no traffic is sent to it",
                    k.id,
                    k.last_error.as_deref().unwrap_or("401/403")
                )),
                "circuit_open" => alerts.push(format!(
                    "{}: breaker open after repeated failures ({})",
                    k.id,
                    k.last_error.as_deref().unwrap_or("errors")
                )),
                "day_exhausted" => alerts.push(format!(
                    "{}: daily quota spent; parked until the reset",
                    k.id
                )),
                "cooling_down" => {
                    alerts.push(format!("{}: cooling down after a 429 from {name}", k.id))
                }
                _ => {}
            }
            if let Some(units) = k.limits.daily_units {
                if k.usage.units_used as f64 >= 0.9 * units as f64 && k.health != "day_exhausted" {
                    alerts.push(format!(
                        "{}: {}% of the daily cost-unit budget ({units}) used",
                        k.id,
                        (k.usage.units_used * 100) / units.max(1)
                    ));
                }
            }
            if let Some(rpd) = k.limits.rpd {
                if k.usage.rpd_used as f64 >= 0.9 * f64::from(rpd) && k.health != "day_exhausted" {
                    alerts.push(format!(
                        "{}: {}% of the daily request quota used",
                        k.id,
                        (k.usage.rpd_used * 100) / u64::from(rpd).max(1)
                    ));
                }
            }
        }
    }
    let providers_json: Vec<Value> = providers
        .iter()
        .map(|(name, ks)| {
            let first = ks.first();
            json!({
                "name": name,
                "format": first.map(|k| k.format),
                "model": first.map(|k| k.model.clone()),
                "keys": ks.iter().map(|k| key_json(k)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "providers": providers_json,
        "totals": {
            "keys": keys.len(),
            "keys_healthy": keys.iter().filter(|k| k.health == "healthy").count(),
            "providers_active": active,
            "requests_remaining_today": remaining_today,
            "tokens_remaining_today": capacity.tokens,
            "estimated_interviews_remaining": remaining_today.map(|r| r / per_interview),
            "calls_per_interview_assumed": per_interview,
            "gpu_nodes": gpu_nodes,
        },
        "alerts": alerts,
    })
}

/// `GET /api/system_status` (admin).
pub async fn system_status(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(system_document(&state).await?))
}

/// The system status document: keys and totals, GPU nodes, the call budget and the alerts.
pub async fn system_document(state: &State) -> Result<Value, ApiError> {
    let pool = state.pool.clone();
    let keys = state
        .on_engine(async move { pool.status().await })
        .await??;
    let mut doc = status_document(
        &keys,
        state.config.gpu_nodes.len(),
        state.config.interview.questions,
    );
    if let Some(g) = state.pool.gpu() {
        let nodes = g.status();
        let down: Vec<String> = nodes
            .iter()
            .filter(|n| !n.state.is_usable())
            .map(|n| {
                format!(
                    "gpu node {} is down: {}",
                    n.name,
                    n.reason.as_deref().unwrap_or("no answer yet")
                )
            })
            .collect();
        if let Some(alerts) = doc["alerts"].as_array_mut() {
            alerts.extend(down.into_iter().map(Value::from));
        }
        doc["gpu"] = json!({"nodes": nodes, "stats": g.stats()});
    }
    let budget = state.budget.snapshot();
    // A step down in the last 15 minutes: quota is running low for what interviews ask for.
    let recent = chrono::Utc::now() - chrono::Duration::minutes(15);
    let stepped_down = budget.recent_steps.iter().rev().find(|s| {
        s.to < s.from
            && chrono::DateTime::parse_from_rfc3339(&s.at).is_ok_and(|at| at.to_utc() >= recent)
    });
    if let (Some(step), Some(alerts)) = (stepped_down, doc["alerts"].as_array_mut()) {
        alerts.push(Value::from(format!(
            "call budget: interviews are stepping down (latest: {} → {}; {})",
            step.from.as_str(),
            step.to.as_str(),
            step.reason
        )));
    }
    doc["budget"] = json!(budget);
    Ok(doc)
}

/// `GET /api/optimization_stats` (admin): where interview content came from, cache hit rates, calls
/// saved by coalescing, and provider calls per completed interview per mode (since this process
/// started).
pub async fn optimization_stats(state: State) -> HttpResponse {
    HttpResponse::Ok().json(optimization_document(&state))
}

/// The optimization stats document.
pub fn optimization_document(state: &State) -> Value {
    let mut by_source: serde_json::Map<String, Value> = state
        .stats
        .by_source()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    by_source.insert("dedup".into(), json!(state.stats.dedup()));
    json!({
        "requests_by_source": by_source,
        "cache": state.cache.stats(),
        "modes": state.stats.modes(),
        "gpu": state.pool.gpu().map(|g| g.stats()),
        "budget": state.budget.snapshot(),
    })
}

/// Interview session actors running now (`None` when the supervisor does not answer in time).
pub async fn live_sessions(state: &State) -> Option<usize> {
    let supervisor = state.supervisor.clone();
    let live = state
        .on_engine(async move {
            supervisor
                .call(
                    actors::supervisor::SupervisorMsg::Live,
                    Some(std::time::Duration::from_secs(5)),
                )
                .await
        })
        .await
        .ok()?;
    match live {
        Ok(ractor::rpc::CallResult::Success(n)) => Some(n),
        _ => None,
    }
}
