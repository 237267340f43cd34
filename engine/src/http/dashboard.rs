//! `GET /admin` (admin): the operator's dashboard, a server-rendered page (minijinja, auto-escaped, no
//! scripts, no external resources) over the same documents as `/api/system_status` and
//! `/api/optimization_stats`; it reloads itself.
//!
//! What the page shows is prepared here, not in the template: one bar per rate window for every key
//! and every provider (used / limit, coloured from [`WARN_PERCENT`] and [`ALERT_PERCENT`], both marked
//! on the bar), an SVG chart of provider requests and interviews per hour over the last 24 hours (from
//! [`crate::timeline`]), and figures rounded for people ([`people`]).
//!
//! "Live" has two meanings in the engine, so the page names them apart and says what each counts:
//! **open sessions** are interviews whose session actor is running (from the first connection to
//! the report, or until `idle_timeout_s` passes without activity); **reserving quota** are
//! unfinished interviews that hold a share of today's provider quota (the call budget's holds: from
//! admission until the report, or the same idle timeout without a turn).

use std::fmt::Write as _;

use actix_web::{HttpRequest, HttpResponse};
use minijinja::context;
use serde::Serialize;
use serde_json::Value;

use super::status::{live_sessions, optimization_document, system_document};
use super::State;
use crate::error::ApiError;
use crate::timeline::Hour;

const TEMPLATE: &str = include_str!("assets/admin.html.j2");

/// Seconds between the page's own reloads.
const REFRESH_S: u32 = 10;

/// A window this full is marked amber (and the bar's first mark sits here).
pub const WARN_PERCENT: f64 = 75.0;
/// A window this full is marked red (the bar's second mark; status alerts start here too).
pub const ALERT_PERCENT: f64 = 90.0;

/// The windows in the order they are shown.
const WINDOWS: [&str; 4] = ["rpm", "rpd", "tpm", "tpd"];

/// `GET /admin`.
pub async fn admin(state: State, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let mut status = system_document(&state).await?;
    // Cluster mode: the nodes and the shared windows (GET /api/cluster) on the same page.
    if let Some(c) = state.cluster.clone() {
        status["cluster"] = state.on_engine(async move { c.document().await }).await?;
    }
    let stats = optimization_document(&state);
    let live = live_sessions(&state).await;
    let hours = {
        let st = state.get_ref().clone();
        let now = state
            .on_engine(
                async move { crate::timeline::totals(&st.pool, &st.budget, &st.stats).await },
            )
            .await?;
        let t = chrono::Utc::now();
        state.timeline.sample(t, now);
        state.timeline.last_day(t)
    };
    let page = Page {
        status: &status,
        stats: &stats,
        live,
        hours: &hours,
        logout: state.admin.token_configured() && req.cookie(super::auth::COOKIE).is_some(),
    };
    let html = render(&page).map_err(|e| {
        tracing::error!(error = %e, "dashboard template failed");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .body(html))
}

/// What the page is rendered from.
pub struct Page<'a> {
    /// The `/api/system_status` document.
    pub status: &'a Value,
    /// The `/api/optimization_stats` document.
    pub stats: &'a Value,
    /// Open sessions (`None` when the supervisor did not answer in time).
    pub live: Option<usize>,
    /// The last 24 hours, oldest first.
    pub hours: &'a [Hour],
    /// Show the log-out button (the visitor has a login cookie).
    pub logout: bool,
}

/// One rate window as a bar.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bar {
    /// `rpm`, `rpd`, `tpm` or `tpd`.
    pub window: &'static str,
    /// Used in the window.
    pub used: u64,
    /// The limit; `None` is no limit.
    pub limit: Option<u64>,
    /// Percent used, 0-100 (clamped), `None` without a limit.
    pub percent: Option<f64>,
    /// `ok`, `warn` (≥ 75 %) or `alert` (≥ 90 %).
    pub level: &'static str,
    /// `28 / 30`, `123k / 500k`, `900 / no limit`.
    pub label: String,
    /// `93 %`, `<1 %`, or empty without a limit.
    pub percent_label: String,
}

impl Bar {
    fn new(window: &'static str, used: u64, limit: Option<u64>) -> Bar {
        let percent = limit.map(|l| {
            if l == 0 {
                100.0
            } else {
                (used as f64 / l as f64 * 100.0).clamp(0.0, 100.0)
            }
        });
        let level = match percent {
            Some(p) if p >= ALERT_PERCENT => "alert",
            Some(p) if p >= WARN_PERCENT => "warn",
            _ => "ok",
        };
        Bar {
            window,
            used,
            limit,
            percent,
            level,
            label: match limit {
                Some(l) => format!("{} / {}", people(used), people(l)),
                None => format!("{} / no limit", people(used)),
            },
            percent_label: match percent {
                None => String::new(),
                Some(p) if p > 0.0 && p < 1.0 => "<1 %".into(),
                Some(p) => format!("{:.0} %", p.floor()),
            },
        }
    }
}

/// A key's row.
#[derive(Debug, Clone, Serialize)]
struct KeyView {
    id: String,
    model: String,
    health: String,
    cooldown: String,
    in_flight: String,
    queued: String,
    served: String,
    failed: String,
    rate_limited: String,
    last_error: String,
    bars: Vec<Bar>,
}

/// A provider with its keys; its bars sum its quota scopes (a shared scope once).
#[derive(Debug, Clone, Serialize)]
struct ProviderView {
    name: String,
    format: String,
    model: String,
    keys: Vec<KeyView>,
    bars: Vec<Bar>,
}

fn u(v: &Value) -> Option<u64> {
    v.as_u64()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Per provider: its keys' bars, and its own bars over its distinct quota scopes.
fn providers(status: &Value) -> Vec<ProviderView> {
    let mut out = Vec::new();
    for p in status["providers"].as_array().into_iter().flatten() {
        let keys: Vec<&Value> = p["keys"].as_array().into_iter().flatten().collect();
        let mut scopes_seen = std::collections::HashSet::new();
        let mut sums: Vec<(u64, Option<u64>)> = vec![(0, Some(0)); WINDOWS.len()];
        for k in &keys {
            // Keys of a shared scope show the same windows: count each scope once.
            if !scopes_seen.insert(text(&k["scope"])) {
                continue;
            }
            for (i, w) in WINDOWS.iter().enumerate() {
                let win = &k["windows"][*w];
                sums[i].0 += u(&win["used"]).unwrap_or(0);
                sums[i].1 = match (sums[i].1, u(&win["limit"])) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
        }
        let key_views = keys
            .iter()
            .map(|k| KeyView {
                id: text(&k["id"]),
                model: text(&k["model"]),
                health: text(&k["health"]),
                cooldown: k["cooldown_s"]
                    .as_f64()
                    .filter(|s| *s > 0.0)
                    .map(|s| format!("{} s", s.ceil() as u64))
                    .unwrap_or_default(),
                in_flight: people_v(&k["in_flight"]),
                queued: people_v(&k["queued"]),
                served: people_v(&k["served"]),
                failed: people_v(&k["failed"]),
                rate_limited: people_v(&k["rate_limited_by_provider"]),
                last_error: text(&k["last_error"]),
                bars: WINDOWS
                    .iter()
                    .map(|w| {
                        let win = &k["windows"][*w];
                        Bar::new(w, u(&win["used"]).unwrap_or(0), u(&win["limit"]))
                    })
                    .collect(),
            })
            .collect();
        out.push(ProviderView {
            name: text(&p["name"]),
            format: text(&p["format"]),
            model: text(&p["model"]),
            keys: key_views,
            bars: WINDOWS
                .iter()
                .zip(&sums)
                .map(|(w, (used, limit))| Bar::new(w, *used, *limit))
                .collect(),
        });
    }
    out
}

/// A count as people read it: `950`, `9,876`, `12.3k`, `123k`, `1.2M`.
pub fn people(n: u64) -> String {
    match n {
        0..=9_999 => group(n),
        10_000..=99_999 => trim_zero(format!("{:.1}k", n as f64 / 1e3)),
        100_000..=999_999 => format!("{:.0}k", n as f64 / 1e3),
        1_000_000..=99_999_999 => trim_zero(format!("{:.1}M", n as f64 / 1e6)),
        _ => format!("{:.0}M", n as f64 / 1e6),
    }
}

/// A figure that may be a fraction: whole numbers as [`people`], others with at most one decimal.
pub fn people_f(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let x = x.max(0.0);
    if x >= 100.0 || x.fract() == 0.0 {
        return people(x.round() as u64);
    }
    trim_zero(format!("{x:.1}"))
}

fn people_v(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(i) => people(i),
            None => people_f(n.as_f64().unwrap_or(0.0)),
        },
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn trim_zero(s: String) -> String {
    s.replace(".0k", "k")
        .replace(".0M", "M")
        .trim_end_matches(".0")
        .to_string()
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn people_filter(v: minijinja::Value) -> String {
    match serde_json::to_value(&v) {
        Ok(j) => people_v(&j),
        Err(_) => v.to_string(),
    }
}

/// The chart: provider requests per hour (top) and interviews started and completed per hour
/// (bottom), each panel with its own scale, hours along the bottom; every bar has a `<title>`.
pub fn chart_svg(hours: &[Hour]) -> String {
    const W: f64 = 1100.0;
    const LEFT: f64 = 48.0;
    const PANEL: f64 = 80.0;
    const GAP: f64 = 34.0;
    const TOP: f64 = 18.0;
    let n = hours.len().max(1) as f64;
    let step = (W - LEFT - 8.0) / n;
    let bar_w = (step * 0.7).max(1.0);
    let max_req = hours.iter().map(|h| h.requests).max().unwrap_or(0).max(1);
    let max_int = hours
        .iter()
        .map(|h| h.started.max(h.completed))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = TOP + PANEL + GAP + PANEL + 26.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="100%" role="img" aria-labelledby="chart-title"><title id="chart-title">Provider requests and interviews per hour, last 24 hours (UTC)</title>"#
    );
    let panels = [
        (TOP, "provider requests / hour", max_req),
        (TOP + PANEL + GAP, "interviews / hour", max_int),
    ];
    for (y0, title, max) in panels {
        let _ = write!(
            s,
            r##"<text x="{LEFT}" y="{}" class="t">{title}</text><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" class="axis"/><text x="{}" y="{}" class="y">{}</text><text x="{}" y="{}" class="y">0</text>"##,
            y0 - 5.0,
            y0 + PANEL,
            W - 8.0,
            y0 + PANEL,
            LEFT - 6.0,
            y0 + 10.0,
            people(max),
            LEFT - 6.0,
            y0 + PANEL,
        );
    }
    for (i, h) in hours.iter().enumerate() {
        let x = LEFT + i as f64 * step + (step - bar_w) / 2.0;
        let bar = |v: u64, max: u64| (v as f64 / max as f64) * PANEL;
        let rh = bar(h.requests, max_req);
        let _ = write!(
            s,
            r#"<rect class="req" data-hour="{}" data-requests="{}" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{rh:.1}"><title>{} UTC: {} provider requests</title></rect>"#,
            h.label,
            h.requests,
            TOP + PANEL - rh,
            h.label,
            people(h.requests)
        );
        let y1 = TOP + PANEL + GAP;
        let sh = bar(h.started, max_int);
        let ch = bar(h.completed, max_int);
        let _ = write!(
            s,
            r#"<g data-hour="{}" data-started="{}" data-completed="{}"><title>{} UTC: {} interviews started, {} completed</title><rect class="started" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{sh:.1}"/><rect class="completed" x="{:.1}" y="{:.1}" width="{:.1}" height="{ch:.1}"/></g>"#,
            h.label,
            h.started,
            h.completed,
            h.label,
            people(h.started),
            people(h.completed),
            y1 + PANEL - sh,
            x + bar_w * 0.25,
            y1 + PANEL - ch,
            bar_w * 0.5,
        );
        if i % 3 == 0 || i + 1 == hours.len() {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" class="x">{}</text>"#,
                x + bar_w / 2.0,
                y1 + PANEL + 16.0,
                if i + 1 == hours.len() {
                    "now"
                } else {
                    h.label.as_str()
                }
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// The page.
pub fn render(page: &Page<'_>) -> Result<String, minijinja::Error> {
    // Auto-escaped: every value shown (provider errors included) is untrusted text.
    let mut env = crate::report_html::environment();
    env.add_filter("people", people_filter);
    let tpl = env.template_from_named_str("admin.html.j2", TEMPLATE)?;
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let b = &page.status["budget"];
    let reserving: u64 = b["live_by_level"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    let pace_hours = b["pace_since"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| (chrono::Utc::now() - t.to_utc()).num_minutes() as f64 / 60.0);
    let expected = b["expected_rest_of_day"]
        .as_f64()
        .map(|x| people(x.round().max(0.0) as u64));
    let requests_24h: u64 = page.hours.iter().map(|h| h.requests).sum();
    let started_24h: u64 = page.hours.iter().map(|h| h.started).sum();
    let completed_24h: u64 = page.hours.iter().map(|h| h.completed).sum();
    tpl.render(context! {
        status => page.status,
        stats => page.stats,
        live => page.live,
        reserving,
        now,
        refresh_s => REFRESH_S,
        providers => providers(page.status),
        chart => minijinja::Value::from_safe_string(chart_svg(page.hours)),
        requests_24h, started_24h, completed_24h,
        expected,
        pace => pace_hours.map(|h| if h < 1.0 {
            format!("{} min", ((h * 60.0).floor() as u64).max(1))
        } else {
            format!("{} h", people_f((h * 10.0).round() / 10.0))
        }),
        pace_short => pace_hours.is_some_and(|h| h < 1.0),
        warn_percent => WARN_PERCENT,
        alert_percent => ALERT_PERCENT,
        logout => page.logout,
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
                "concurrency_limit": null, "served": 9876, "failed": 1, "rate_limited_by_provider": 1,
                "windows": {
                    "rpm": {"limit": 30, "used": 28, "remaining": 2, "percent_used": 93.3},
                    "rpd": {"limit": 1000, "used": 780, "remaining": 220, "percent_used": 78.0},
                    "tpm": {"limit": null, "used": 900, "remaining": null, "percent_used": null},
                    "tpd": {"limit": 500000, "used": 123456, "remaining": 376544, "percent_used": 24.7}
                }}, {
                "id": "groq#2", "model": "m", "priority": 1, "scope": "groq#2", "health": "healthy",
                "cooldown_s": null, "last_error": null, "queued": 0, "in_flight": 0,
                "concurrency_limit": null, "served": 3, "failed": 0, "rate_limited_by_provider": 0,
                "windows": {
                    "rpm": {"limit": 30, "used": 2, "remaining": 28, "percent_used": 6.7},
                    "rpd": {"limit": 1000, "used": 20, "remaining": 980, "percent_used": 2.0},
                    "tpm": {"limit": null, "used": 100, "remaining": null, "percent_used": null},
                    "tpd": {"limit": 500000, "used": 100, "remaining": 499900, "percent_used": 0.02}
                }}]}],
            "totals": {"keys": 2, "keys_healthy": 1, "providers_active": 1, "requests_remaining_today": 1200,
                       "estimated_interviews_remaining": 92, "calls_per_interview_assumed": 13, "gpu_nodes": 0},
            "alerts": ["groq#1: cooling down after a 429 from groq"],
            "budget": {"live_by_level": {"heuristic": 0, "economy": 1, "balanced": 2, "adaptive": 0},
                       "admitted_by_level": {"heuristic": 0, "economy": 1, "balanced": 2, "adaptive": 0},
                       "steps_down": 1, "steps_up": 0, "capacity": {"requests": 993, "tokens": null},
                       "reserved_calls": 27.5, "reserved_tokens": 15000.0, "created_today": 3,
                       "expected_rest_of_day": 5872.2, "pace_since": chrono::Utc::now().to_rfc3339(),
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

    fn hours() -> Vec<Hour> {
        (0..24)
            .map(|i| Hour {
                label: format!("{i:02}:00"),
                start: String::new(),
                requests: if i == 23 { 130 } else { i },
                started: if i == 23 { 10 } else { 0 },
                completed: if i == 23 { 7 } else { 0 },
            })
            .collect()
    }

    fn page(html_for: impl FnOnce(&mut Value)) -> String {
        let mut s = status();
        html_for(&mut s);
        let h = hours();
        render(&Page {
            status: &s,
            stats: &stats(),
            live: Some(4),
            hours: &h,
            logout: true,
        })
        .unwrap()
    }

    #[test]
    fn renders_every_section_and_escapes_provider_text() {
        let html = page(|_| {});
        for id in [
            "alerts", "totals", "chart", "budget", "keys", "modes", "cache", "logout",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
        }
        assert!(html.contains("data-key=\"groq#1\""));
        assert!(html.contains("cooling down after a 429"));
        assert!(html.contains("13.5"), "calls per interview");
        assert!(html.contains("balanced → economy"), "the recent step");
        assert!(!html.contains("<script>alert(1)</script>"), "escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("id=\"gpu\""), "no GPU section without nodes");
        assert!(!html.contains("<script"), "no scripts at all");
    }

    #[test]
    fn key_and_provider_bars_carry_the_window_and_its_thresholds() {
        let html = page(|_| {});
        let rpm = r#"data-key="groq#1" data-window="rpm" data-used="28" data-limit="30" data-level="alert""#;
        assert!(html.contains(rpm), "{html}");
        assert!(html.contains(r#"data-key="groq#1" data-window="rpd" data-used="780" data-limit="1000" data-level="warn""#));
        // minijinja escapes '/' as &#x2f; (the browser shows "28 / 30").
        let shown = html.replace("&#x2f;", "/");
        assert!(shown.contains("28 / 30"));
        assert!(shown.contains("123k / 500k"), "tokens rounded for people");
        assert!(shown.contains("900 / no limit"));
        // The provider's bar sums its two keys.
        assert!(html.contains(r#"data-provider="groq" data-window="rpm" data-used="30" data-limit="60" data-level="ok""#), "{html}");
        assert!(
            html.contains("left: 75%") && html.contains("left: 90%"),
            "the marks"
        );
        assert!(html.contains("9,876"), "served, grouped");
    }

    #[test]
    fn live_figures_are_named_apart_and_the_pace_is_rounded() {
        let html = page(|_| {});
        assert!(html.contains("open sessions") && html.contains("reserving quota"));
        assert!(html.contains(r#"id="open-sessions"><b>4</b>"#), "{html}");
        assert!(html.contains(r#"id="reserving"><b>3</b>"#));
        assert!(html.contains("5,872"), "whole interviews");
        assert!(!html.contains("5872.2"));
        assert!(
            html.contains("less than an hour"),
            "a short pace is flagged"
        );
    }

    #[test]
    fn the_chart_has_every_hour() {
        let svg = chart_svg(&hours());
        assert_eq!(svg.matches("class=\"req\"").count(), 24);
        assert!(svg.contains(r#"data-hour="23:00" data-requests="130""#));
        assert!(svg.contains(r#"data-hour="23:00" data-started="10" data-completed="7""#));
        assert!(svg.contains("23:00 UTC: 130 provider requests"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn renders_the_cluster_section_in_cluster_mode() {
        assert!(!page(|_| {}).contains("id=\"cluster\""));
        let html = page(|s| {
            s["cluster"] = json!({
                "node_id": "n<1>", "mode": "fallback", "redis": {"reachable": false},
                "this_node": {"leases_held": 3, "unsynced_interviews": 2},
                "nodes": [{"node_id": "n2", "last_beat_ms": 120,
                           "info": {"advertise_url": "http://10.0.0.2:8080", "live_sessions": 7,
                                    "budget": {"reserved_calls": 12.5}}}],
                "scopes": [{"scope": "groq#1", "fallback": true, "concurrency": {"limit": 4, "in_flight": 1},
                            "windows": [{"counts": "requests", "period": "sliding(60)", "used": 9, "limit": 30}]}],
            });
        });
        assert!(html.contains("id=\"cluster\""));
        assert!(html.contains("n&lt;1&gt;"), "escaped node id");
        // minijinja escapes '/' as &#x2f;.
        let shown = html.replace("&#x2f;", "/");
        assert!(shown.contains("10.0.0.2:8080") && shown.contains("12.5"));
        assert!(shown.contains("requests/sliding(60): 9 / 30"));
        assert!(shown.contains("own share") && shown.contains("unreachable"));
        assert!(shown.contains("2 interviews not yet in Redis"));
    }

    #[test]
    fn renders_with_no_keys_and_no_session_count() {
        let mut s = status();
        s["providers"] = json!([]);
        s["alerts"] = json!([]);
        s["totals"]["keys"] = json!(0);
        let html = render(&Page {
            status: &s,
            stats: &stats(),
            live: None,
            hours: &[],
            logout: false,
        })
        .unwrap();
        assert!(html.contains("No provider keys configured"));
        assert!(
            html.contains("id=\"keyless\""),
            "keyless interviews are unlimited, not 0"
        );
        assert!(html.contains("No alerts."));
        assert!(!html.contains("id=\"logout\""));
    }

    #[test]
    fn people_round_figures() {
        assert_eq!(people(0), "0");
        assert_eq!(people(950), "950");
        assert_eq!(people(9_876), "9,876");
        assert_eq!(people(12_345), "12.3k");
        assert_eq!(people(20_000), "20k");
        assert_eq!(people(123_456), "123k");
        assert_eq!(people(1_200_000), "1.2M");
        assert_eq!(people(250_000_000), "250M");
        assert_eq!(people_f(13.46), "13.5");
        assert_eq!(people_f(2.0), "2");
        assert_eq!(people_f(5872.2), "5,872");
        let b = Bar::new("tpd", 1, Some(500_000));
        assert_eq!((b.percent_label.as_str(), b.level), ("<1 %", "ok"));
        let b = Bar::new("rpm", 31, Some(30));
        assert_eq!(
            (b.percent_label.as_str(), b.level, b.percent),
            ("100 %", "alert", Some(100.0))
        );
    }
}
