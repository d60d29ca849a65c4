//! Admission of connections before they are authenticated, so that clients
//! without a certificate cannot lock agents out:
//!
//! - one deadline for the TLS handshake and the Hello together
//!   (`limits.handshake_timeout`, kept by [`super::session`]), however slowly
//!   a client trickles bytes;
//! - their own limits (`limits.max_unauthenticated` in all and
//!   `limits.max_unauthenticated_per_address` from one address), apart from
//!   the authenticated sessions' `limits.max_connections`;
//! - refusals logged at most a few times a minute per reason, with the count
//!   of those not logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts of connections not yet authenticated.
#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The limits on unauthenticated connections, and their counts.
pub struct PreAuth {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<Counts>,
}

/// One unauthenticated connection's place; given back when dropped (or once
/// the connection is authenticated, with [`Held::release`]).
pub struct Held {
    pre: Arc<PreAuth>,
    ip: Option<IpAddr>,
}

impl Held {
    /// The connection is authenticated: its place goes back.
    pub fn release(&mut self) {
        if let Some(ip) = self.ip.take() {
            let mut c = self.pre.counts.lock().unwrap_or_else(|p| p.into_inner());
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.by_address.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    c.by_address.remove(&ip);
                }
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

impl PreAuth {
    /// Limits of `max_total` in all and `max_per_address` per address.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<PreAuth> {
        Arc::new(PreAuth {
            max_total,
            max_per_address,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A place for a new connection from `ip`, or why there is none. IPv6
    /// addresses count by their /64 (one site has a whole /64); IPv4-mapped
    /// ones as the IPv4 address they are.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Held, &'static str> {
        let ip = match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.max_total {
            return Err("too many connections not yet authenticated (limits.max_unauthenticated)");
        }
        let n = c.by_address.entry(ip).or_insert(0);
        if *n >= self.max_per_address {
            return Err("too many connections not yet authenticated from this address (limits.max_unauthenticated_per_address)");
        }
        *n += 1;
        c.total += 1;
        Ok(Held {
            pre: self.clone(),
            ip: Some(ip),
        })
    }

    /// Connections not yet authenticated.
    pub fn count(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// Lines logged per reason per window before the rest are only counted.
const LOG_BURST: u32 = 5;
/// The window.
const LOG_WINDOW: Duration = Duration::from_secs(60);

/// Rate limit for log lines about refused connections: a flood of them must
/// not push real alerts out of journald's rate limit.
#[derive(Default)]
pub struct LogLimit {
    by_reason: Mutex<HashMap<&'static str, (Instant, u32, u64)>>,
}

impl LogLimit {
    /// Whether to log a line for `reason` now; with it, how many lines for
    /// this reason were not logged since the last one that was.
    pub fn allow(&self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut m = self.by_reason.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(reason).or_insert((now, 0, 0));
        if now.duration_since(e.0) >= LOG_WINDOW {
            e.0 = now;
            e.1 = 0;
        }
        if e.1 < LOG_BURST {
            e.1 += 1;
            Some(std::mem::take(&mut e.2))
        } else {
            e.2 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn places_are_limited_in_all_and_per_address_and_given_back() {
        let p = PreAuth::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let h1 = p.admit(a).unwrap();
        let _h2 = p.admit(a).unwrap();
        assert!(p.admit(a).err().unwrap().contains("from this address"));
        let mut h3 = p.admit(b).unwrap();
        assert!(p.admit(b).err().unwrap().contains("max_unauthenticated"));
        h3.release();
        h3.release(); // twice is once
        assert_eq!(p.count(), 2);
        drop(h1);
        assert_eq!(p.count(), 1);
        let _h4 = p.admit(a).unwrap();
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let p = PreAuth::new(100, 2);
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = p.admit(x).unwrap();
        let _b = p.admit(y).unwrap();
        assert!(p.admit(x).is_err(), "a third from the same /64");
        let _c = p.admit(z).unwrap();
        let v4: IpAddr = "10.1.1.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.1.1".parse().unwrap();
        let _d = p.admit(v4).unwrap();
        let _e = p.admit(mapped).unwrap();
        assert!(p.admit(v4).is_err(), "mapped and plain are one address");
        let other: IpAddr = "::ffff:10.1.1.2".parse().unwrap();
        let _f = p.admit(other).unwrap();
    }

    #[test]
    fn log_lines_are_limited_and_counted() {
        let l = LogLimit::default();
        for _ in 0..LOG_BURST {
            assert_eq!(l.allow("x"), Some(0));
        }
        assert_eq!(l.allow("x"), None);
        assert_eq!(l.allow("x"), None);
        assert_eq!(l.allow("y"), Some(0), "reasons are counted apart");
    }
}
