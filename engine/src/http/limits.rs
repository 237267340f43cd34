//! Per-client limits (`[limits]`): who the client is, and how much one client may do.
//!
//! The client is the peer's address, or, when the peer is a trusted proxy (`limits.trusted_proxies`),
//! the right-most address in `X-Forwarded-For` that is not itself a trusted proxy (the left part of
//! that header is whatever the client wrote, so it is never believed). IPv6 clients are counted per
//! /64, the block one subscriber usually holds. Loopback peers that are not trusted proxies (local
//! tools, tests, the load test) are exempt unless `limits.loopback` is set.
//!
//! Limits are token buckets (governor's GCRA): interview creations per minute with a burst, resume
//! analyses per hour, answers per second per connection; and a count of open WebSockets per client.
//! A refusal carries the time until the client may try again (`Retry-After`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use parking_lot::Mutex;

use crate::config::{ConfigError, LimitsConfig};
use crate::error::ApiError;

/// Who sent a request, as far as limits are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address (an IPv6 address reduced to its /64).
    pub bucket: IpAddr,
    /// False for an exempt (loopback) client.
    pub limited: bool,
}

/// The limits of one engine.
pub struct ClientLimits {
    trusted: Vec<IpNet>,
    loopback: bool,
    creations: Option<DefaultKeyedRateLimiter<IpAddr>>,
    resumes: Option<DefaultKeyedRateLimiter<IpAddr>>,
    answers: Option<Quota>,
    answers_per_second: u32,
    sockets_max: u32,
    sockets: Arc<Mutex<HashMap<IpAddr, u32>>>,
    clock: DefaultClock,
}

impl std::fmt::Debug for ClientLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimits")
            .field("trusted", &self.trusted)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

/// An open WebSocket counted against its client; dropping it frees the place.
pub struct SocketSlot {
    bucket: Option<IpAddr>,
    sockets: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let Some(b) = self.bucket else { return };
        let mut map = self.sockets.lock();
        if let Some(n) = map.get_mut(&b) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&b);
            }
        }
    }
}

fn nz(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The address limits count: IPv4 as is (an IPv4-mapped IPv6 address as IPv4), IPv6 per /64.
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl ClientLimits {
    /// The limits `cfg` describes.
    pub fn new(cfg: &LimitsConfig) -> Result<Self, ConfigError> {
        let creations = nz(cfg.creations_per_minute)
            .zip(nz(cfg.creations_burst))
            .map(|(rate, burst)| RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)));
        let resumes =
            nz(cfg.resume_analyses_per_hour).map(|rate| RateLimiter::keyed(Quota::per_hour(rate)));
        let answers = nz(cfg.answers_per_second)
            .zip(nz(cfg.answers_burst))
            .map(|(rate, burst)| Quota::per_second(rate).allow_burst(burst));
        Ok(ClientLimits {
            trusted: cfg.proxies()?,
            loopback: cfg.loopback,
            creations,
            resumes,
            answers,
            answers_per_second: cfg.answers_per_second,
            sockets_max: cfg.websockets_per_client,
            sockets: Arc::default(),
            clock: DefaultClock::default(),
        })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request whose peer is `peer` and whose `X-Forwarded-For` values are `xff`.
    pub fn client_from(&self, peer: IpAddr, xff: &[&str]) -> Client {
        let peer = unmapped(peer);
        if !self.trusted(peer) {
            return Client {
                bucket: bucket_of(peer),
                limited: self.loopback || !peer.is_loopback(),
            };
        }
        let peer = bucket_of(peer);
        // Right to left: the nearest hop a trusted proxy did not add is the client.
        let hops: Vec<&str> = xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>().map(unmapped) {
                Ok(ip) => {
                    client = bucket_of(ip);
                    if !self.trusted(ip) {
                        break;
                    }
                }
                Err(_) => break, // garbage: the last address we could believe stands
            }
        }
        Client {
            bucket: client,
            limited: true,
        }
    }

    /// The client of `req`.
    pub fn client(&self, req: &HttpRequest) -> Client {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let xff: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.client_from(peer, &xff)
    }

    fn check(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<IpAddr>>,
        client: &Client,
        what: &str,
    ) -> Result<(), ApiError> {
        let Some(l) = limiter.as_ref().filter(|_| client.limited) else {
            return Ok(());
        };
        l.check_key(&client.bucket).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited {
                retry_after: wait,
                message: format!(
                    "too many {what} from this address; try again in {} s",
                    wait.as_millis().div_ceil(1000).max(1)
                ),
            }
        })
    }

    /// One interview creation by `client`.
    pub fn creation(&self, client: &Client) -> Result<(), ApiError> {
        self.check(&self.creations, client, "interview creations")
    }

    /// One resume analysis for `client`.
    pub fn resume_analysis(&self, client: &Client) -> Result<(), ApiError> {
        self.check(&self.resumes, client, "resume analyses")
    }

    /// A place for one more open WebSocket of `client`.
    pub fn open_socket(&self, client: &Client) -> Result<SocketSlot, ApiError> {
        if !client.limited || self.sockets_max == 0 {
            return Ok(SocketSlot {
                bucket: None,
                sockets: self.sockets.clone(),
            });
        }
        let mut map = self.sockets.lock();
        let n = map.entry(client.bucket).or_insert(0);
        if *n >= self.sockets_max {
            return Err(ApiError::RateLimited {
                retry_after: Duration::from_secs(5),
                message: format!(
                    "at most {} interview connections may be open from one address; close one first",
                    self.sockets_max
                ),
            });
        }
        *n += 1;
        Ok(SocketSlot {
            bucket: Some(client.bucket),
            sockets: self.sockets.clone(),
        })
    }

    /// The answer limiter of one connection of `client` (None: not limited).
    pub fn answer_limiter(&self, client: &Client) -> Option<AnswerLimiter> {
        let quota = self.answers.filter(|_| client.limited)?;
        Some(AnswerLimiter {
            limiter: RateLimiter::direct(quota),
            per_second: self.answers_per_second,
        })
    }

    /// Forgets buckets that are full again (run now and then so that memory follows the clients
    /// seen recently, not every client ever seen).
    pub fn sweep(&self) {
        for l in [&self.creations, &self.resumes].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Answers per second on one connection.
pub struct AnswerLimiter {
    limiter: DefaultDirectRateLimiter,
    per_second: u32,
}

impl AnswerLimiter {
    /// Takes one answer; the sentence for the client when it is one too many.
    pub fn take(&self) -> Result<(), String> {
        self.limiter.check().map_err(|_| {
            format!(
                "at most {} answers per second on one connection: this one was not recorded; send it again",
                self.per_second
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(trusted: &[&str], loopback: bool) -> ClientLimits {
        ClientLimits::new(&LimitsConfig {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            loopback,
            creations_per_minute: 10,
            creations_burst: 3,
            resume_analyses_per_hour: 2,
            websockets_per_client: 2,
            answers_per_second: 1,
            answers_burst: 2,
            pending_ttl_s: 600,
            max_live_sessions: 10,
            busy_retry_after_s: 30,
        })
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let l = limits(&["10.0.0.0/8"], false);
        // Not a trusted peer: its header is ignored.
        let c = l.client_from(ip("203.0.113.9"), &["198.51.100.1"]);
        assert_eq!(c.bucket, ip("203.0.113.9"));
        // A trusted peer: the right-most hop it did not add is the client; what the client wrote
        // to the left of it is not believed.
        let c = l.client_from(ip("10.1.1.1"), &["6.6.6.6, 198.51.100.7", "10.2.2.2"]);
        assert_eq!((c.bucket, c.limited), (ip("198.51.100.7"), true));
        // A trusted peer without the header: the peer is the client.
        assert_eq!(l.client_from(ip("10.1.1.1"), &[]).bucket, ip("10.1.1.1"));
        // Garbage stops the walk at the last address that could be believed.
        let c = l.client_from(ip("10.1.1.1"), &["198.51.100.7, nonsense"]);
        assert_eq!(c.bucket, ip("10.1.1.1"));
    }

    #[test]
    fn loopback_is_exempt_unless_asked_or_behind_a_trusted_proxy() {
        assert!(!limits(&[], false).client_from(ip("127.0.0.1"), &[]).limited);
        assert!(!limits(&[], false).client_from(ip("::1"), &[]).limited);
        assert!(
            !limits(&[], false)
                .client_from(ip("::ffff:127.0.0.1"), &[])
                .limited
        );
        assert!(limits(&[], true).client_from(ip("127.0.0.1"), &[]).limited);
        let behind = limits(&["127.0.0.1/32"], false);
        let c = behind.client_from(ip("127.0.0.1"), &["198.51.100.7"]);
        assert_eq!((c.bucket, c.limited), (ip("198.51.100.7"), true));
        // Forwarded-for from an untrusted loopback peer: ignored, and the peer is exempt.
        let c = limits(&[], false).client_from(ip("127.0.0.1"), &["198.51.100.7"]);
        assert_eq!((c.bucket, c.limited), (ip("127.0.0.1"), false));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let l = limits(&[], false);
        let a = l.client_from(ip("2001:db8:1:2:aaaa::1"), &[]);
        let b = l.client_from(ip("2001:db8:1:2:bbbb::2"), &[]);
        assert_eq!(a.bucket, b.bucket);
        assert_eq!(
            l.client_from(ip("::ffff:192.0.2.1"), &[]).bucket,
            ip("192.0.2.1")
        );
    }

    #[test]
    fn buckets_refuse_with_a_retry_time_per_client() {
        let l = limits(&[], false);
        let a = l.client_from(ip("192.0.2.1"), &[]);
        let b = l.client_from(ip("192.0.2.2"), &[]);
        for _ in 0..3 {
            l.creation(&a).unwrap();
        }
        match l.creation(&a) {
            Err(ApiError::RateLimited { retry_after, .. }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(6))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        l.creation(&b).unwrap();
        let local = l.client_from(ip("127.0.0.1"), &[]);
        for _ in 0..10 {
            l.creation(&local).unwrap();
        }
        l.resume_analysis(&a).unwrap();
        l.resume_analysis(&a).unwrap();
        assert!(l.resume_analysis(&a).is_err());
    }

    #[test]
    fn sockets_are_counted_while_open() {
        let l = limits(&[], false);
        let a = l.client_from(ip("192.0.2.1"), &[]);
        let s1 = l.open_socket(&a).unwrap();
        let _s2 = l.open_socket(&a).unwrap();
        assert!(l.open_socket(&a).is_err());
        drop(s1);
        let _s3 = l.open_socket(&a).unwrap();
        let limiter = l.answer_limiter(&a).unwrap();
        assert!(limiter.take().is_ok() && limiter.take().is_ok());
        assert!(limiter.take().is_err(), "the burst is 2");
        assert!(l
            .answer_limiter(&l.client_from(ip("127.0.0.1"), &[]))
            .is_none());
    }
}
