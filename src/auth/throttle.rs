//! Failed logins counted per source address: after `FAILURES_MAX` within
//! `WINDOW`, an address's CONNECTs with a password are refused without
//! being checked, the same way a wrong password is, until the window
//! ends. Guessing passwords then costs the guesser time, and costs us no
//! hashing. The map is bounded: a flood from many addresses cannot grow it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(60);
const FAILURES_MAX: u32 = 10;
const ADDRESSES_MAX: usize = 10_000;

#[derive(Default)]
pub struct Throttle {
    addresses: Mutex<BTreeMap<IpAddr, Failures>>,
    /// Refused CONNECTs, checked or not, since the start.
    refused: AtomicU64,
}

struct Failures {
    since: Instant,
    count: u32,
}

impl Throttle {
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        addresses
            .get(&ip)
            .is_some_and(|f| f.count >= FAILURES_MAX && f.since.elapsed() < WINDOW)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A CONNECT from `ip` was refused; `checked` when its password was.
    pub fn failed(&self, ip: IpAddr, checked: bool) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !checked {
            return;
        }
        let now = Instant::now();
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if addresses.len() >= ADDRESSES_MAX && !addresses.contains_key(&ip) {
            addresses.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if addresses.len() >= ADDRESSES_MAX {
                addresses.pop_first();
            }
        }
        let failures = addresses.entry(ip).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.duration_since(failures.since) >= WINDOW {
            *failures = Failures {
                since: now,
                count: 0,
            };
        }
        failures.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_address_is_blocked_after_its_failures_until_the_window_ends() {
        let throttle = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..FAILURES_MAX {
            assert!(!throttle.is_blocked(a));
            throttle.failed(a, true);
        }
        assert!(throttle.is_blocked(a));
        assert!(!throttle.is_blocked(b), "only that address");
        throttle.failed(a, false);
        assert_eq!(throttle.refused(), u64::from(FAILURES_MAX) + 1);
        tokio::time::advance(WINDOW).await;
        assert!(!throttle.is_blocked(a));
    }

    #[tokio::test(start_paused = true)]
    async fn the_map_of_addresses_is_bounded() {
        let throttle = Throttle::default();
        for i in 0..(ADDRESSES_MAX as u32 + 100) {
            throttle.failed(IpAddr::from(i.to_be_bytes()), true);
        }
        let len = throttle.addresses.lock().unwrap().len();
        assert_eq!(len, ADDRESSES_MAX);
    }
}
