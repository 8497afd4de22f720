//! Per-client rate limits: a token bucket per (route, client address), in a bounded map.
//!
//! When the map is full, buckets that have refilled completely (clients quiet long enough to
//! be indistinguishable from new ones) are dropped; if none has, the least recently seen is.
//! Forgetting a bucket can only give that client its burst again, never block anyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most buckets kept at once.
pub(crate) const BUCKETS_MAX: usize = 16_384;

/// Which limit a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Health,
    Metrics,
    TradingView,
    Signed,
    /// The REST API and the event stream.
    Api,
    /// The built-in issuer's endpoints and `whoami`.
    Auth,
    Telegram,
    MetatraderEa,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    seen: Instant,
}

/// Token buckets, `burst` deep, refilled at `per_second`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    capacity: usize,
    buckets: Mutex<HashMap<(Route, IpAddr), Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(per_second: u32, burst: u32, capacity: usize) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            capacity: capacity.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token; `Err(seconds)` until the next one when the bucket is empty.
    pub(crate) fn admit(&self, route: Route, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !buckets.contains_key(&(route, client)) && buckets.len() >= self.capacity {
            self.evict(&mut buckets, now);
        }
        let bucket = buckets.entry((route, client)).or_insert(Bucket { tokens: self.burst, seen: now });
        let elapsed = now.saturating_duration_since(bucket.seen).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.seen = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = std::time::Duration::from_secs_f64(((1.0 - bucket.tokens) / self.per_second).min(60.0));
            Err(wait.as_secs().saturating_add(1))
        }
    }

    fn evict(&self, buckets: &mut HashMap<(Route, IpAddr), Bucket>, now: Instant) {
        let full_after = self.burst / self.per_second;
        buckets.retain(|_, b| now.saturating_duration_since(b.seen).as_secs_f64() < full_after);
        if buckets.len() >= self.capacity
            && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.seen).map(|(k, _)| *k)
        {
            buckets.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate_per_client_and_route() {
        let limiter = RateLimiter::new(2, 3, 100);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit(Route::Signed, a, t0).is_ok());
        }
        assert_eq!(limiter.admit(Route::Signed, a, t0), Err(1));
        // Another client and another route have buckets of their own.
        assert!(limiter.admit(Route::Signed, b, t0).is_ok());
        assert!(limiter.admit(Route::Health, a, t0).is_ok());
        // Half a second gives one token back at 2 per second.
        assert!(limiter.admit(Route::Signed, a, t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.admit(Route::Signed, a, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = RateLimiter::new(1, 1, 8);
        let t0 = Instant::now();
        for i in 0..100u8 {
            let _ = limiter.admit(Route::Other, IpAddr::from([10, 0, 1, i]), t0 + Duration::from_millis(u64::from(i)));
            assert!(limiter.len() <= 8);
        }
    }
}
