//! Admin authentication: who may use the admin routes (`/admin`, `/metrics`, `/api/system_status`,
//! `/api/optimization_stats`, `/api/candidates/{id}/history` and the gateway under `/v1`), and the
//! browser login that makes the dashboard usable once a token is set.
//!
//! * **With `server.admin_token` set**, a request is admitted by `Authorization: Bearer <token>` or by
//!   the `ie_admin` cookie that `POST /admin/login` (form field `token`) sets after checking the token.
//!   The cookie's value is `v1.<expiry>.<nonce>.<mac>`, the mac an HMAC-SHA256 over the rest keyed by a
//!   hash of the admin token: it expires by itself (`server.admin_session_hours`), is worthless once
//!   the token changes, and is valid on every node that shares the token. It is `HttpOnly;
//!   SameSite=Strict; Path=/`, and `Secure` when the request came over HTTPS (directly, or through a
//!   proxy that says so with `X-Forwarded-Proto` / `Forwarded`: a header that lies can only make the
//!   cookie stricter). `POST /admin/logout` clears it and revokes its nonce until it would have expired.
//! * **With no token**, admin routes answer only to loopback peers, and `serve` refuses to start on a
//!   non-loopback address unless `server.allow_open_admin = true` ([`check_bind`]), in which case they
//!   are open to everyone who reaches the port (logged as a warning at start).
//!
//! Every comparison of a presented secret goes through `actors::interview::same_secret`: constant time
//! (`subtle`), over SHA-256 digests so that not even the token's length leaks.

use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actors::interview::same_secret;
use actors::secret::Secret;
use hmac::{Hmac, Mac};
use minijinja::context;
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{bearer, State};
use crate::config::{ConfigError, ServerConfig};
use crate::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "ie_admin";

/// Revoked sessions remembered at most (the oldest-expiring are forgotten first).
const MAX_REVOKED: usize = 10_000;

/// Failed logins accepted per minute (over all clients) before `POST /admin/login` answers 429.
const MAX_FAILED_LOGINS_PER_MINUTE: u32 = 30;

const LOGIN_TEMPLATE: &str = include_str!("assets/login.html.j2");

/// How an admitted request proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The admin token as a Bearer header.
    Bearer,
    /// A valid `ie_admin` session cookie.
    Cookie,
    /// No token is configured and the peer is on loopback.
    Loopback,
    /// No token is configured and `server.allow_open_admin = true`.
    Open,
}

/// The admin token, the cookie key derived from it, and the revoked sessions.
pub struct AdminAuth {
    token: Secret,
    key: [u8; 32],
    session_s: i64,
    allow_open: bool,
    revoked: Mutex<HashMap<String, i64>>,
    failed_logins: Mutex<(i64, u32)>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token)
            .field("session_s", &self.session_s)
            .field("allow_open", &self.allow_open)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl AdminAuth {
    /// From `[server]`: `admin_token`, `admin_session_hours`, `allow_open_admin`.
    pub fn new(server: &ServerConfig) -> AdminAuth {
        let token = server.admin_token.0.clone();
        let mut h = Sha256::new();
        h.update(b"interview-engine/ie_admin/v1\0");
        h.update(token.expose().as_bytes());
        AdminAuth {
            key: h.finalize().into(),
            token,
            session_s: i64::try_from(server.admin_session_hours.saturating_mul(3600))
                .unwrap_or(i64::MAX / 2),
            allow_open: server.allow_open_admin,
            revoked: Mutex::new(HashMap::new()),
            failed_logins: Mutex::new((0, 0)),
        }
    }

    /// Whether an admin token is configured.
    pub fn token_configured(&self) -> bool {
        !self.token.is_empty()
    }

    /// Whether `given` is the admin token (never true when none is configured).
    pub fn token_matches(&self, given: &str) -> bool {
        self.token_configured() && same_secret(given, self.token.expose())
    }

    /// Admits a request to an admin route, or says why not.
    pub fn check(&self, req: &HttpRequest) -> Result<Access, ApiError> {
        if !self.token_configured() {
            if self.allow_open {
                return Ok(Access::Open);
            }
            return match req.peer_addr().map(|a| a.ip()) {
                Some(ip) if is_loopback(ip) => Ok(Access::Loopback),
                _ => Err(ApiError::Forbidden(
                    "admin routes answer only on loopback while server.admin_token is empty".into(),
                )),
            };
        }
        if let Some(given) = bearer(req) {
            return if self.token_matches(given) {
                Ok(Access::Bearer)
            } else {
                Err(ApiError::Unauthorized)
            };
        }
        match req.cookie(COOKIE) {
            Some(c) if self.verify(c.value(), now()).is_some() => Ok(Access::Cookie),
            _ => Err(ApiError::Unauthorized),
        }
    }

    /// A new session cookie value, valid until `now + admin_session_hours`.
    pub fn issue(&self, now: i64) -> String {
        let body = format!(
            "v1.{}.{}",
            now.saturating_add(self.session_s),
            uuid::Uuid::new_v4().simple()
        );
        format!("{body}.{}", hex(&self.mac(&body)))
    }

    /// The nonce of a cookie value that is genuine, unexpired at `now` and not revoked.
    pub fn verify(&self, value: &str, now: i64) -> Option<String> {
        let (body, mac) = value.rsplit_once('.')?;
        let mut parts = body.split('.');
        let (Some("v1"), Some(expiry), Some(nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let mut m = HmacSha256::new_from_slice(&self.key).ok()?;
        m.update(body.as_bytes());
        // `verify_slice` compares in constant time.
        m.verify_slice(&unhex(mac)?).ok()?;
        let expiry: i64 = expiry.parse().ok()?;
        if expiry <= now || self.revoked.lock().contains_key(nonce) {
            return None;
        }
        Some(nonce.to_string())
    }

    /// Revokes a genuine cookie value until it would have expired.
    pub fn revoke(&self, value: &str, now: i64) {
        let Some(nonce) = self.verify(value, now) else {
            return;
        };
        let expiry = now.saturating_add(self.session_s);
        let mut revoked = self.revoked.lock();
        revoked.retain(|_, exp| *exp > now);
        if revoked.len() >= MAX_REVOKED {
            if let Some(oldest) = revoked
                .iter()
                .min_by_key(|(_, exp)| **exp)
                .map(|(n, _)| n.clone())
            {
                revoked.remove(&oldest);
            }
        }
        revoked.insert(nonce, expiry);
    }

    fn mac(&self, body: &str) -> Vec<u8> {
        match HmacSha256::new_from_slice(&self.key) {
            Ok(mut m) => {
                m.update(body.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            // HMAC takes keys of any length; this cannot happen.
            Err(_) => Vec::new(),
        }
    }

    /// Counts a failed login; `Some(seconds)` to wait when the minute's allowance is spent.
    fn failed_login(&self, now: i64) -> Option<i64> {
        let mut f = self.failed_logins.lock();
        let minute = now.div_euclid(60);
        if f.0 != minute {
            *f = (minute, 0);
        }
        f.1 += 1;
        (f.1 > MAX_FAILED_LOGINS_PER_MINUTE).then(|| 60 - now.rem_euclid(60))
    }

    fn logins_blocked(&self, now: i64) -> Option<i64> {
        let f = self.failed_logins.lock();
        (f.0 == now.div_euclid(60) && f.1 >= MAX_FAILED_LOGINS_PER_MINUTE)
            .then(|| 60 - now.rem_euclid(60))
    }
}

/// Whether `ip` is a loopback address (IPv4-mapped IPv6 included).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The start-up rule: without an admin token, only a loopback bind, unless `allow_open_admin`.
pub fn check_bind(server: &ServerConfig) -> Result<(), ConfigError> {
    if !server.admin_token.0.is_empty() || server.allow_open_admin {
        return Ok(());
    }
    let loopback = server
        .bind
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| is_loopback(a.ip()));
    if loopback {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        field: "server.admin_token".into(),
        message: format!(
            "empty while server.bind = {} is not a loopback address: anyone who reaches the port \
             could read the dashboard and use the provider keys through /v1. Set server.admin_token \
             (or IE_SERVER__ADMIN_TOKEN), or set server.allow_open_admin = true if a proxy in front \
             guards the admin routes",
            server.bind
        ),
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether the request reached us over HTTPS (directly or as a proxy reports).
fn over_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme().eq_ignore_ascii_case("https")
}

fn session_cookie(value: String, max_age_s: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age_s))
        .finish()
}

fn see_other(to: &str) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::SeeOther();
    b.insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

/// The login page, with an optional message (already plain text; the template escapes it).
fn login_page(
    state: &State,
    status: actix_web::http::StatusCode,
    message: Option<&str>,
) -> HttpResponse {
    let env = crate::report_html::environment();
    let html = env
        .template_from_named_str("login.html.j2", LOGIN_TEMPLATE)
        .and_then(|t| {
            t.render(context! {
                message,
                token_configured => state.admin.token_configured(),
            })
        });
    match html {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "login template failed");
            actix_web::ResponseError::error_response(&ApiError::Internal)
        }
    }
}

/// `GET /admin/login`: the form (or, already logged in, the dashboard).
pub async fn login_form(state: State, req: HttpRequest) -> HttpResponse {
    if state.admin.token_configured() && state.admin.check(&req).is_ok() {
        return see_other("/admin").finish();
    }
    login_page(&state, actix_web::http::StatusCode::OK, None)
}

/// `POST /admin/login` form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `POST /admin/login`: checks the token; right → `303 /admin` with the session cookie; wrong → the
/// form again with 401.
pub async fn login(state: State, req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    let auth = &state.admin;
    if !auth.token_configured() {
        // Nothing to log in to: the dashboard is open on loopback (or refused elsewhere).
        return see_other("/admin").finish();
    }
    let t = now();
    if let Some(wait) = auth.logins_blocked(t) {
        return actix_web::ResponseError::error_response(&ApiError::TooManyLogins(wait));
    }
    let given = form.token.trim();
    if auth.token_matches(given) {
        let cookie = session_cookie(auth.issue(t), auth.session_s, over_https(&req));
        tracing::info!(peer = ?req.peer_addr(), "admin logged in");
        return see_other("/admin").cookie(cookie).finish();
    }
    tracing::warn!(peer = ?req.peer_addr(), "admin login refused: wrong token");
    if let Some(wait) = auth.failed_login(t) {
        return actix_web::ResponseError::error_response(&ApiError::TooManyLogins(wait));
    }
    let message = if given.is_empty() {
        "Enter the admin token (server.admin_token)."
    } else {
        "That is not the admin token."
    };
    login_page(
        &state,
        actix_web::http::StatusCode::UNAUTHORIZED,
        Some(message),
    )
}

/// `POST /admin/logout`: revokes the session and clears the cookie; `303 /admin/login`.
pub async fn logout(state: State, req: HttpRequest) -> HttpResponse {
    if let Some(c) = req.cookie(COOKIE) {
        state.admin.revoke(c.value(), now());
    }
    let mut gone = session_cookie(String::new(), 0, over_https(&req));
    gone.make_removal();
    see_other("/admin/login").cookie(gone).finish()
}

/// Form errors of `POST /admin/login` (wrong content type, too large) as JSON errors.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(4096)
        .error_handler(|err, _| ApiError::BadRequest(format!("login form: {err}")).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn auth(token: &str) -> AdminAuth {
        let mut cfg = Config::load(None).unwrap().server;
        cfg.admin_token = token.to_string().into();
        AdminAuth::new(&cfg)
    }

    #[test]
    fn cookies_expire_are_bound_to_the_token_and_can_be_revoked() {
        let a = auth("tok-1");
        let v = a.issue(1_000);
        assert!(a.verify(&v, 1_001).is_some());
        assert!(a.verify(&v, 1_000 + 12 * 3600).is_none(), "expired");
        assert!(auth("tok-2").verify(&v, 1_001).is_none(), "another token");
        assert!(
            auth("tok-1").verify(&v, 1_001).is_some(),
            "same token, new process"
        );
        // Tampering with the expiry breaks the mac.
        let forged = v.replacen(&format!("{}", 1_000 + 12 * 3600), "99999999999", 1);
        assert_ne!(forged, v);
        assert!(a.verify(&forged, 1_001).is_none());
        for junk in [
            "",
            "v1",
            "v1.x.y.zz",
            "v2.1.2.00",
            &format!("{v}.extra"),
            &v[..v.len() - 1],
        ] {
            assert!(a.verify(junk, 1_001).is_none(), "{junk:?}");
        }
        a.revoke(&v, 1_002);
        assert!(a.verify(&v, 1_003).is_none(), "revoked");
        assert!(
            a.verify(&a.issue(1_004), 1_005).is_some(),
            "others still valid"
        );
    }

    #[test]
    fn no_token_means_loopback_binds_only_unless_allowed() {
        let mut s = Config::load(None).unwrap().server;
        assert!(check_bind(&s).is_ok(), "127.0.0.1 by default");
        s.bind = "[::1]:8080".into();
        assert!(check_bind(&s).is_ok());
        s.bind = "0.0.0.0:8080".into();
        let e = check_bind(&s).unwrap_err().to_string();
        assert!(
            e.contains("server.admin_token") && e.contains("0.0.0.0:8080"),
            "{e}"
        );
        assert!(e.contains("allow_open_admin"), "{e}");
        s.allow_open_admin = true;
        assert!(check_bind(&s).is_ok());
        s.allow_open_admin = false;
        s.admin_token = "t".to_string().into();
        assert!(check_bind(&s).is_ok());
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn failed_logins_are_limited_per_minute() {
        let a = auth("t");
        let t = 6_000; // the start of a minute
        for _ in 0..MAX_FAILED_LOGINS_PER_MINUTE {
            assert_eq!(a.failed_login(t), None);
        }
        assert_eq!(a.logins_blocked(t + 5), Some(55));
        assert_eq!(a.failed_login(t + 5), Some(55));
        assert_eq!(a.logins_blocked(t + 60), None, "a new minute");
    }

    #[test]
    fn debug_hides_the_token() {
        let a = auth("super-SECRETVALUE");
        assert!(!format!("{a:?}").contains("SECRETVALUE"));
    }
}
