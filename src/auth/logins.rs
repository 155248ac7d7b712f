//! Failed logins, counted per peer address across the broker: past
//! `--login-failures-per-minute` failures in a minute, a peer's logins are refused
//! without checking the password until the minute is over. That bounds password
//! guessing from one address to a few tries a minute, and the hashing work a peer can
//! make the broker do.
//!
//! One limiter serves every shard, behind a mutex (`SharedLoginLimiter`): the kernel
//! spreads one peer's connections over the shards, and counts kept per shard would let
//! it try shards × N times a minute. A login is rare next to the messages a connection
//! carries, and the lock is held for one map lookup. An IPv6 peer is counted by its /64, which one host usually holds whole. The
//! map holds at most `PEERS_TRACKED_MAX` peers; past it the peer whose last failure is
//! oldest is forgotten. A success does not clear a peer's failures: a valid account
//! must not reset the guessing of another's password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Peers whose failures the broker remembers at most.
pub const PEERS_TRACKED_MAX: usize = 4096;
/// The window failures are counted in.
pub const WINDOW_MS: i64 = 60_000;

/// The key a peer's failures are counted under: an IPv4 address (an IPv4-mapped IPv6
/// one included), or the /64 of an IPv6 address.
fn key_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// When the current window began (the first failure in it).
    since_ms: i64,
    count: u32,
    last_ms: i64,
}

/// The broker's failed-login counts, shared by its shards (each `Shard::logins`).
#[derive(Debug, Clone)]
pub struct SharedLoginLimiter(Arc<Mutex<LoginLimiter>>);

impl SharedLoginLimiter {
    pub fn new(max_per_minute: u32) -> SharedLoginLimiter {
        SharedLoginLimiter(Arc::new(Mutex::new(LoginLimiter::new(max_per_minute))))
    }

    /// The counts, locked. A panic while they were held left them whole (each change
    /// is one map update), so a poisoned lock is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, LoginLimiter> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Failed-login counts per peer.
#[derive(Debug)]
pub struct LoginLimiter {
    max_per_minute: u32,
    peers: HashMap<IpAddr, Failures>,
}

impl LoginLimiter {
    pub fn new(max_per_minute: u32) -> LoginLimiter {
        LoginLimiter {
            max_per_minute: max_per_minute.max(1),
            peers: HashMap::new(),
        }
    }

    /// Whether a login from `peer` may be checked now.
    pub fn permitted(&self, peer: IpAddr, now_ms: i64) -> bool {
        match self.peers.get(&key_of(peer)) {
            Some(f) => now_ms - f.since_ms >= WINDOW_MS || f.count < self.max_per_minute,
            None => true,
        }
    }

    /// Counts a failed login from `peer`; true when this failure reached the limit
    /// (the caller logs that once).
    pub fn failed(&mut self, peer: IpAddr, now_ms: i64) -> bool {
        let key = key_of(peer);
        if !self.peers.contains_key(&key) && self.peers.len() >= PEERS_TRACKED_MAX {
            self.forget_oldest(now_ms);
        }
        let f = self.peers.entry(key).or_insert(Failures {
            since_ms: now_ms,
            count: 0,
            last_ms: now_ms,
        });
        if now_ms - f.since_ms >= WINDOW_MS {
            f.since_ms = now_ms;
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last_ms = now_ms;
        f.count == self.max_per_minute
    }

    /// Peers remembered now.
    pub fn tracked(&self) -> usize {
        self.peers.len()
    }

    /// Drops peers whose window is over, or else the one whose last failure is oldest.
    fn forget_oldest(&mut self, now_ms: i64) {
        self.peers.retain(|_, f| now_ms - f.since_ms < WINDOW_MS);
        if self.peers.len() < PEERS_TRACKED_MAX {
            return;
        }
        let oldest = self
            .peers
            .iter()
            .min_by_key(|(_, f)| f.last_ms)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.peers.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn a_peer_is_refused_past_its_failures_until_the_minute_is_over() {
        let mut limiter = LoginLimiter::new(3);
        let peer = ip("192.0.2.7");
        assert!(!limiter.failed(peer, 0));
        assert!(!limiter.failed(peer, 10));
        assert!(limiter.permitted(peer, 20));
        assert!(
            limiter.failed(peer, 20),
            "the third failure reaches the limit"
        );
        assert!(!limiter.permitted(peer, 30));
        assert!(!limiter.permitted(peer, WINDOW_MS - 1));
        // Another address is not affected; the same host over IPv4-mapped IPv6 is.
        assert!(limiter.permitted(ip("192.0.2.8"), 30));
        assert!(!limiter.permitted(ip("::ffff:192.0.2.7"), 30));
        // A minute after the window began, it starts again.
        assert!(limiter.permitted(peer, WINDOW_MS));
        assert!(!limiter.failed(peer, WINDOW_MS));
        assert!(limiter.permitted(peer, WINDOW_MS + 1));
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let mut limiter = LoginLimiter::new(2);
        limiter.failed(ip("2001:db8:1:2::1"), 0);
        limiter.failed(ip("2001:db8:1:2:ffff::9"), 1);
        assert!(!limiter.permitted(ip("2001:db8:1:2::77"), 2));
        assert!(limiter.permitted(ip("2001:db8:1:3::1"), 2));
    }

    #[test]
    fn the_map_is_bounded_and_forgets_the_oldest_peer() {
        let mut limiter = LoginLimiter::new(1);
        let first = ip("10.0.0.1");
        limiter.failed(first, 0);
        for i in 1..PEERS_TRACKED_MAX as u32 {
            let peer = IpAddr::V4((0x0b00_0000 + i).into());
            limiter.failed(peer, 1 + i64::from(i));
        }
        assert_eq!(limiter.tracked(), PEERS_TRACKED_MAX);
        assert!(!limiter.permitted(first, 5000));
        // One more peer: the first (oldest failure) is forgotten.
        limiter.failed(ip("12.0.0.1"), 5000);
        assert_eq!(limiter.tracked(), PEERS_TRACKED_MAX);
        assert!(limiter.permitted(first, 5000));
        // Once their windows are over, all of them go at the next insertion.
        limiter.failed(ip("13.0.0.1"), 5000 + WINDOW_MS);
        assert!(limiter.tracked() <= 3, "{}", limiter.tracked());
    }
}
