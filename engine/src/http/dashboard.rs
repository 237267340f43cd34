//! `GET /admin` (admin): the operator's dashboard, a server-rendered page (minijinja, auto-escaped) over
//! the same documents as `/api/system_status` and `/api/optimization_stats`; it reloads itself.

use actix_web::HttpResponse;
use minijinja::context;
use serde_json::Value;

use super::status::{live_sessions, optimization_document, system_document};
use super::State;
use crate::error::ApiError;

const TEMPLATE: &str = include_str!("assets/admin.html.j2");

/// Seconds between the page's own reloads.
const REFRESH_S: u32 = 10;

/// `GET /admin`.
pub async fn admin(state: State) -> Result<HttpResponse, ApiError> {
    let mut status = system_document(&state).await?;
    // Cluster mode: the nodes and the shared windows (GET /api/cluster) on the same page.
    if let Some(c) = state.cluster.clone() {
        status["cluster"] = state.on_engine(async move { c.document().await }).await?;
    }
    let stats = optimization_document(&state);
    let live = live_sessions(&state).await;
    let html = render(&status, &stats, live).map_err(|e| {
        tracing::error!(error = %e, "dashboard template failed");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(html))
}

/// The page for a status document, a stats document and the live session count.
pub fn render(
    status: &Value,
    stats: &Value,
    live: Option<usize>,
) -> Result<String, minijinja::Error> {
    // Auto-escaped: every value shown (provider errors included) is untrusted text.
    let env = crate::report_html::environment();
    let tpl = env.template_from_named_str("admin.html.j2", TEMPLATE)?;
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    tpl.render(context! {
        status, stats, live, now, refresh_s => REFRESH_S,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Value {
        json!({
            "providers": [{"name": "groq", "format": "openai", "model": "m", "keys": [{
                "id": "groq#1", "model": "m", "priority": 1, "scope": "groq#1", "health": "cooling_down",
                "cooldown_s": 4.2, "last_error": "<script>alert(1)</script>", "queued": 0, "in_flight": 1,
                "concurrency_limit": null, "served": 7, "failed": 1, "rate_limited_by_provider": 1,
                "windows": {
                    "rpm": {"limit": 30, "used": 28, "remaining": 2, "percent_used": 93.3},
                    "rpd": {"limit": 1000, "used": 7, "remaining": 993, "percent_used": 0.7},
                    "tpm": {"limit": null, "used": 900, "remaining": null, "percent_used": null},
                    "tpd": {"limit": null, "used": 900, "remaining": null, "percent_used": null}
                }}]}],
            "totals": {"keys": 1, "keys_healthy": 0, "providers_active": 1, "requests_remaining_today": 993,
                       "estimated_interviews_remaining": 76, "calls_per_interview_assumed": 13, "gpu_nodes": 0},
            "alerts": ["groq#1: cooling down after a 429 from groq"],
            "budget": {"live_by_level": {"heuristic": 0, "economy": 1, "balanced": 2, "adaptive": 0},
                       "admitted_by_level": {"heuristic": 0, "economy": 1, "balanced": 2, "adaptive": 0},
                       "steps_down": 1, "steps_up": 0, "capacity": {"requests": 993, "tokens": null},
                       "reserved_calls": 27.5, "reserved_tokens": 15000.0, "created_today": 3,
                       "expected_rest_of_day": 12.25,
                       "recent_steps": [{"interview_id": "0123456789abcdef", "turn": 3, "from": "balanced",
                                         "to": "economy", "reason": "quota low", "at": "2026-11-23T10:00:00Z"}]}
        })
    }

    fn stats() -> Value {
        json!({
            "requests_by_source": {"template": 5, "pool": 12, "llm": 9, "dedup": 2},
            "cache": {"kinds": [{"kind": "evaluation", "hits": 1, "misses": 3, "hit_rate": 0.25, "entries": 3,
                                 "puts": 3, "evictions": 0, "expired": 0}]},
            "modes": [{"mode": "balanced", "completed_interviews": 2, "provider_calls": 27,
                       "provider_calls_per_completed_interview": 13.5, "provider_tokens": 14000,
                       "provider_tokens_per_completed_interview": 7000.0}],
            "gpu": null, "budget": {}
        })
    }

    #[test]
    fn renders_every_section_and_escapes_provider_text() {
        let html = render(&status(), &stats(), Some(4)).unwrap();
        for id in ["alerts", "totals", "budget", "keys", "modes", "cache"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
        }
        assert!(html.contains("data-key=\"groq#1\""));
        assert!(html.contains("cooling down after a 429"));
        assert!(html.contains("28 <small>/ 30</small>"), "the rpm window");
        assert!(html.contains("class=\"hot\""), "93 % of a window is marked");
        assert!(html.contains("13.5"), "calls per interview");
        assert!(html.contains("balanced → economy"), "the recent step");
        assert!(!html.contains("<script>alert(1)</script>"), "escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("id=\"gpu\""), "no GPU section without nodes");
    }

    #[test]
    fn renders_the_cluster_section_in_cluster_mode() {
        let mut s = status();
        assert!(!render(&s, &stats(), None)
            .unwrap()
            .contains("id=\"cluster\""));
        s["cluster"] = json!({
            "node_id": "n<1>", "mode": "fallback", "redis": {"reachable": false},
            "this_node": {"leases_held": 3, "unsynced_interviews": 2},
            "nodes": [{"node_id": "n2", "last_beat_ms": 120,
                       "info": {"advertise_url": "http://10.0.0.2:8080", "live_sessions": 7,
                                "budget": {"reserved_calls": 12.5}}}],
            "scopes": [{"scope": "groq#1", "fallback": true, "concurrency": {"limit": 4, "in_flight": 1},
                        "windows": [{"counts": "requests", "period": "sliding(60)", "used": 9, "limit": 30}]}],
        });
        let html = render(&s, &stats(), None).unwrap();
        assert!(html.contains("id=\"cluster\""));
        assert!(html.contains("n&lt;1&gt;"), "escaped node id");
        assert!(html.contains("10.0.0.2:8080") && html.contains("12.5"));
        assert!(html.contains("requests/sliding(60): 9 / 30"));
        assert!(html.contains("own share") && html.contains("unreachable"));
        assert!(html.contains("2 interviews not yet in Redis"));
    }

    #[test]
    fn renders_with_no_keys_and_no_session_count() {
        let mut s = status();
        s["providers"] = json!([]);
        s["alerts"] = json!([]);
        let html = render(&s, &stats(), None).unwrap();
        assert!(html.contains("No provider keys configured"));
        assert!(html.contains("No alerts."));
    }
}
