//! A caching DNS resolver for reqwest: `tokio::net::lookup_host` behind a TTL cache, so a
//! shard of a million URLs on one host resolves that host once per TTL, not once per connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolved addresses per host name, each with the instant it was resolved.
type Cache = HashMap<String, (Instant, Arc<Vec<SocketAddr>>)>;

/// A resolver that remembers successful answers for `ttl`. Failures are not cached.
#[derive(Debug)]
pub struct CachingResolver {
    ttl: Duration,
    cache: Arc<Mutex<Cache>>,
}

impl CachingResolver {
    /// A resolver keeping answers for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Resolve for CachingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let ttl = self.ttl;
        let cache = Arc::clone(&self.cache);
        Box::pin(async move {
            if let Some((at, addrs)) = lock(&cache).get(&host)
                && at.elapsed() < ttl
            {
                let addrs: Addrs = Box::new(addrs.as_ref().clone().into_iter());
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            lock(&cache).insert(host, (Instant::now(), Arc::new(found.clone())));
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}
