//! Admin access as an operator meets it: the login form and the `ie_admin` cookie against the real
//! binary over HTTP (every admin route, tampering, expiry by logout, `Secure` behind an HTTPS proxy),
//! the start-up rule for non-loopback binds without a token, and the dashboard in headless Chromium
//! with a token set: log in, read the key and provider bars and the chart, log out.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::config::Config;
use common::fake::FakeProvider;
use common::server::Engine;
use serde_json::json;

const TOKEN: &str = "adm-tok-SECRETVALUE-0123456789";
const KEY: &str = "admin-key-SECRETVALUE";

fn config(fake: &FakeProvider) -> String {
    Config::new()
        .set("server.admin_token", TOKEN)
        .set("interview.questions", 2)
        .set("interview.mode", "balanced")
        .openai_provider("fakeai", &fake.base, "{ rpm = 600, rpd = 900 }")
        .toml()
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The `ie_admin=...` pair of a Set-Cookie header, and the header itself.
fn session_cookie(resp: &reqwest::Response) -> (String, String) {
    let header = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ie_admin="))
        .unwrap_or_else(|| panic!("no ie_admin cookie in {:?}", resp.headers()))
        .to_string();
    let pair = header.split(';').next().unwrap().trim().to_string();
    (pair, header)
}

async fn login(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.post(format!("{base}/admin/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn status_with_cookie(http: &reqwest::Client, url: &str, cookie: &str) -> u16 {
    http.get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_opens_every_admin_route_and_logout_closes_them() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&fake),
        &[("FAKEAI_API_KEYS", KEY.into())],
    );
    let base = &engine.base;
    let http = client();

    // Without a session: the page sends a browser to the form; the JSON routes say 401 and how.
    let r = http.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
    let r = http
        .get(format!("{base}/admin?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        303,
        "a token in the URL is not a login"
    );
    for path in [
        "/api/system_status",
        "/metrics",
        "/api/optimization_stats",
        "/v1/models",
    ] {
        let r = engine.get(path, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text);
        assert_eq!(r.json["error"]["code"], "unauthorized");
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/admin/login"),
            "the error says how to get in: {}",
            r.text
        );
    }
    let form = http
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 200);
    let page = form.text().await.unwrap();
    assert!(
        page.contains("name=\"token\"") && page.contains("action=\"/admin/login\""),
        "{page}"
    );

    // A wrong token: the form again, 401, no cookie.
    let r = login(&http, base, "nope").await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("not the admin token"));

    // The right one: 303 to /admin with a session cookie that is HttpOnly, SameSite=Strict, expiring.
    let r = login(&http, base, TOKEN).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/admin");
    let (cookie, header) = session_cookie(&r);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(header.contains(attr), "{attr} in {header}");
    }
    assert!(
        !header.contains("Secure"),
        "plain HTTP: not Secure ({header})"
    );
    assert!(!header.contains(TOKEN), "the cookie is not the token");

    for path in [
        "/admin",
        "/api/system_status",
        "/metrics",
        "/api/optimization_stats",
        "/v1/models",
    ] {
        assert_eq!(
            status_with_cookie(&http, &format!("{base}{path}"), &cookie).await,
            200,
            "{path} with the cookie"
        );
    }
    // The gateway takes the cookie too.
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .header("cookie", &cookie)
        .json(&json!({"model": "auto", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());

    // A tampered cookie (a later expiry, or another signature) is refused.
    let value = cookie.strip_prefix("ie_admin=").unwrap();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 4, "{value}");
    let later = format!(
        "ie_admin=v1.{}.{}.{}",
        parts[1].parse::<i64>().unwrap() + 86400,
        parts[2],
        parts[3]
    );
    let mut bad_mac = parts[3].to_string();
    bad_mac.replace_range(0..2, if &bad_mac[0..2] == "00" { "11" } else { "00" });
    let resigned = format!("ie_admin=v1.{}.{}.{bad_mac}", parts[1], parts[2]);
    for bad in [later.as_str(), resigned.as_str(), "ie_admin=junk"] {
        assert_eq!(
            status_with_cookie(&http, &format!("{base}/api/system_status"), bad).await,
            401,
            "{bad}"
        );
    }

    // Logout clears the cookie and the old value stops working even if a client kept it.
    let r = http
        .post(format!("{base}/admin/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/admin/login");
    let (cleared, header) = session_cookie(&r);
    assert_eq!(cleared, "ie_admin=");
    assert!(header.contains("Max-Age=0"), "{header}");
    assert_eq!(
        status_with_cookie(&http, &format!("{base}/api/system_status"), &cookie).await,
        401
    );
    let r = http
        .get(format!("{base}/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "back to the form");

    // The Bearer token works without any cookie; behind an HTTPS proxy the cookie is Secure.
    assert_eq!(
        engine.get("/api/system_status", Some(TOKEN)).await.status,
        200
    );
    assert_eq!(
        engine.get("/api/system_status", Some("wrong")).await.status,
        401
    );
    let r = http
        .post(format!("{base}/admin/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let (_, header) = session_cookie(&r);
    assert!(header.contains("Secure"), "{header}");

    assert!(
        !engine.log().contains("SECRETVALUE"),
        "no token or key in the log"
    );
}

/// Starts the binary with `config`, expecting it to exit; returns (exit code, stderr).
fn run_to_exit(dir: &std::path::Path, config: &str) -> (i32, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_interview-engine"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_means_loopback_only_and_open_binds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A non-loopback bind without a token does not start, and says what to set.
    let (code, err) = run_to_exit(
        dir.path(),
        "[server]\nbind = \"0.0.0.0:0\"\n[storage]\npath = \"data\"\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("server.admin_token")
            && err.contains("0.0.0.0:0")
            && err.contains("allow_open_admin"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before opening storage"
    );

    // allow_open_admin = true starts it, with a warning that admin routes are open.
    let open = Engine::start(
        dir.path(),
        "[server]\nbind = \"0.0.0.0:0\"\nallow_open_admin = true\n[storage]\npath = \"data\"\n",
        &[],
    );
    let port = open.base.rsplit(':').next().unwrap();
    let local = reqwest::get(format!("http://127.0.0.1:{port}/api/system_status"))
        .await
        .unwrap()
        .status();
    assert_eq!(local.as_u16(), 200);
    assert!(
        open.log().contains("allow_open_admin = true"),
        "{}",
        open.log()
    );
    drop(open);

    // The default loopback bind without a token: admin routes answer (to loopback clients).
    let dir = tempfile::tempdir().unwrap();
    let local = Engine::start(
        dir.path(),
        "[server]\nbind = \"127.0.0.1:0\"\n[storage]\npath = \"data\"\n",
        &[],
    );
    assert_eq!(local.get("/api/system_status", None).await.status, 200);
    // With no token there is nothing to log in to: the form says so.
    let page = local.get("/admin/login", None).await.text;
    assert!(page.contains("No admin token is configured"), "{page}");
}

/// The bar of `window` for a key (`data-key`) or provider (`data-provider`): (used, limit, level, text).
async fn bar(b: &Browser, attr: &str, name: &str, window: &str) -> (u64, String, String, String) {
    let css = format!("#keys .bar[{attr}='{name}'][data-window='{window}']");
    let el = b.find(&css).await.unwrap_or_else(|| panic!("no bar {css}"));
    let used = b.attr(&el, "data-used").await.unwrap().parse().unwrap();
    let limit = b.attr(&el, "data-limit").await.unwrap();
    let level = b.attr(&el, "data-level").await.unwrap();
    (used, limit, level, b.text(&el).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_login_in_chromium_reads_the_key_bars_and_logs_out() {
    let fake = FakeProvider::start().await;
    fake.add_interviewer_key(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(
        dir.path(),
        &config(&fake),
        &[("FAKEAI_API_KEYS", KEY.into())],
    );
    // One balanced interview, so the key has requests in its windows and the chart has an interview.
    let c = common::ws::create(
        &engine.base,
        json!({"candidate": {"id": "adm-1", "name": "Dana"}, "role": "Backend Engineer",
               "track": "technical", "mode": "balanced", "questions": 2}),
    )
    .await;
    let mut client = common::ws::Client::connect(&engine.base, &c).await;
    client.finish_with(common::ws::GOOD_ANSWER).await;
    let served = fake.stats().await[KEY]["served"].as_u64().unwrap();
    assert!(served > 0);

    let b = Browser::start().await;
    b.goto(&format!("{}/admin", engine.base)).await;
    // Sent to the form.
    let field = b
        .wait_for("#login input[name='token']", Duration::from_secs(10))
        .await;
    assert!(b.url().await.ends_with("/admin/login"), "{}", b.url().await);
    b.type_into(&field, "wrong-token").await;
    b.click(&b.find("#login-submit").await.unwrap()).await;
    let err = b.wait_for("#login-error", Duration::from_secs(10)).await;
    assert!(b.text(&err).await.contains("not the admin token"));
    let field = b.find("#login input[name='token']").await.unwrap();
    b.type_into(&field, TOKEN).await;
    b.click(&b.find("#login-submit").await.unwrap()).await;

    // The dashboard.
    b.wait_for("#keys tr[data-key='fakeai#1']", Duration::from_secs(10))
        .await;
    assert!(b.url().await.ends_with("/admin"), "{}", b.url().await);
    let cookies = b.exec("return document.cookie;", vec![]).await;
    assert!(
        !cookies.as_str().unwrap_or_default().contains("ie_admin"),
        "HttpOnly: scripts cannot read the session ({cookies})"
    );

    // The key's daily request bar: every request served, out of 900, with both marks.
    let (used, limit, level, text) = bar(&b, "data-key", "fakeai#1", "rpd").await;
    assert_eq!(
        (used, limit.as_str(), level.as_str()),
        (served, "900", "ok"),
        "{text}"
    );
    assert!(text.contains(&format!("{served} / 900")), "{text}");
    let marks = b
        .find_all("#keys .bar[data-key='fakeai#1'][data-window='rpd'] .mark")
        .await;
    assert_eq!(marks.len(), 2, "the 75 % and 90 % marks");
    let (used, limit, _, _) = bar(&b, "data-key", "fakeai#1", "rpm").await;
    assert!(used <= served && limit == "600", "{used} {limit}");
    let (_, tpd_limit, _, tpd_text) = bar(&b, "data-key", "fakeai#1", "tpd").await;
    assert_eq!(tpd_limit, "", "no token limit configured");
    assert!(tpd_text.contains("no limit"), "{tpd_text}");
    // The provider's bar sums its (one) key.
    let (p_used, p_limit, _, _) = bar(&b, "data-provider", "fakeai", "rpd").await;
    assert_eq!((p_used, p_limit.as_str()), (served, "900"));

    // The chart: 24 hours holding the interview, started and completed, and every request (summed
    // over the hours: the run may straddle the turn of an hour).
    let hours = b.find_all("#chart rect.req").await;
    assert_eq!(hours.len(), 24);
    let sums = b
        .exec(
            "const sum = (sel, f) => [...document.querySelectorAll(sel)].reduce((a, e) => a + Number(e.dataset[f]), 0); \
             return [sum('#chart g[data-started]', 'started'), sum('#chart g[data-started]', 'completed'), \
                     sum('#chart rect.req', 'requests')];",
            vec![],
        )
        .await;
    assert_eq!(sums[0], json!(1), "one interview started: {sums}");
    assert_eq!(sums[1], json!(1), "and completed: {sums}");
    assert_eq!(sums[2], json!(served), "every provider request: {sums}");

    // The two "live" figures are named apart and explained.
    let totals = b.text(&b.find("#totals").await.unwrap()).await;
    assert!(
        totals.contains("open sessions") && totals.contains("reserving quota"),
        "{totals}"
    );
    assert!(
        totals.contains("from the first connection") && totals.contains("from their admission"),
        "{totals}"
    );
    assert!(
        !b.source().await.contains("SECRETVALUE"),
        "no token or key on the page"
    );

    // Log out: back at the form, and the dashboard is closed again.
    b.click(&b.find("#logout").await.unwrap()).await;
    b.wait_for("#login input[name='token']", Duration::from_secs(10))
        .await;
    b.goto(&format!("{}/admin", engine.base)).await;
    b.wait_for("#login input[name='token']", Duration::from_secs(10))
        .await;
    assert!(b.find("#keys").await.is_none());
    let shot = std::env::temp_dir().join("ie-admin-login-dashboard.png");
    b.screenshot(&shot).await;
    b.quit().await;
}
