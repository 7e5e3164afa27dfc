//! The HTTP client's DNS resolver: hickory-resolver (async, tokio, the system configuration
//! from `/etc/resolv.conf` and `/etc/hosts`) behind reqwest's `dns_resolver` hook, with
//!
//! * a bounded cache of positive **and** negative answers, kept for their clamped TTL
//!   ([`super::dns_cache`]), so a dead domain with 1,000 rows is asked about once, not 1,000
//!   times;
//! * one query in flight per name: concurrent lookups of the same name wait for the first one
//!   (which runs in its own task, so it completes and fills the cache even when the connection
//!   that asked gave up);
//! * at most [`MAX_CONCURRENT_LOOKUPS`] names resolved at once;
//! * typed failures ([`ResolveError`]) that reqwest carries in its error's source chain, so a
//!   row can record `dns_nxdomain` / `dns_servfail` / `dns_timeout` / `blocked_address`;
//! * the SSRF guard: when blocking is on, internal addresses ([`super::blocked::is_blocked`])
//!   are removed from every answer, and a name left without an address fails as blocked.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::{ResolverBuilder, TokioResolver};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::{Semaphore, watch};

use super::blocked::is_blocked;
use super::dns_cache::{DnsCache, TRANSIENT_TTL, negative_ttl, positive_ttl};
use crate::model::retry::Failure;

/// Names resolved at once (more wait their turn).
pub const MAX_CONCURRENT_LOOKUPS: usize = 32;
/// Names the cache holds. An entry costs about 100 bytes plus the name and 16–32 bytes per
/// address, so a full cache stays around 2–3 MB.
pub const CACHE_ENTRIES: usize = 16_384;

/// Why a name could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    /// NXDOMAIN, or the name has no A/AAAA records.
    NxDomain,
    /// The name server answered with an error code (SERVFAIL, REFUSED…) or garbage.
    ServFail,
    /// No name server answered in time, or none could be reached.
    Timeout,
    /// Every address of the name is internal and the run blocks those.
    Blocked,
}

impl ResolveFailure {
    /// The row failure this becomes.
    pub fn failure(&self) -> Failure {
        match self {
            Self::NxDomain => Failure::DnsNxDomain,
            Self::ServFail => Failure::DnsServFail,
            Self::Timeout => Failure::DnsTimeout,
            Self::Blocked => Failure::BlockedAddress,
        }
    }
}

/// A failed resolution, as carried inside reqwest's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{host}: {detail}", if *kind == ResolveFailure::Blocked { "" } else { "DNS lookup of " })]
pub struct ResolveError {
    /// The name.
    pub host: String,
    /// What went wrong.
    pub kind: ResolveFailure,
    /// Details for the log and the results file.
    pub detail: String,
}

/// What a lookup produced (cached either way).
#[derive(Debug, Clone)]
enum Answer {
    Found(Arc<[IpAddr]>),
    Failed(ResolveFailure, Arc<str>),
}

type InFlight = HashMap<String, watch::Receiver<Option<Answer>>>;

struct Inner {
    resolver: TokioResolver,
    cache: Mutex<DnsCache<Answer>>,
    in_flight: Mutex<InFlight>,
    lookups: Semaphore,
    lookup_timeout: Duration,
    block_private: bool,
}

/// The resolver handed to reqwest. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct CachingResolver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CachingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingResolver")
            .field("block_private", &self.inner.block_private)
            .finish_non_exhaustive()
    }
}

/// The system DNS configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the system DNS configuration (/etc/resolv.conf): {0}")]
pub struct ResolverSetupError(String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl CachingResolver {
    /// A resolver on the system configuration; with `block_private`, internal addresses are
    /// never returned. A lookup taking longer than `lookup_timeout` fails as a timeout (keep
    /// it below the connect timeout, which also covers resolution, so the row sees why).
    pub fn new(block_private: bool, lookup_timeout: Duration) -> Result<Self, ResolverSetupError> {
        let builder =
            TokioResolver::builder_tokio().map_err(|e| ResolverSetupError(e.to_string()))?;
        Self::from_builder(builder, block_private, lookup_timeout)
    }

    fn from_builder(
        mut builder: ResolverBuilder<TokioRuntimeProvider>,
        block_private: bool,
        lookup_timeout: Duration,
    ) -> Result<Self, ResolverSetupError> {
        // This cache replaces hickory's (one place decides TTLs and bounds).
        builder.options_mut().cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| ResolverSetupError(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                resolver,
                cache: Mutex::new(DnsCache::new(CACHE_ENTRIES)),
                in_flight: Mutex::new(HashMap::new()),
                lookups: Semaphore::new(MAX_CONCURRENT_LOOKUPS),
                lookup_timeout,
                block_private,
            }),
        })
    }

    /// The usable addresses of `host` (port 0), or why there are none.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let answer = match host.parse::<IpAddr>() {
            Ok(ip) => Answer::Found(Arc::from([ip])),
            Err(_) => Arc::clone(&self.inner).answer(&host).await,
        };
        let fail = |kind, detail: String| ResolveError {
            host: host.clone(),
            kind,
            detail,
        };
        match answer {
            Answer::Failed(kind, detail) => Err(fail(kind, detail.to_string())),
            Answer::Found(addrs) if self.inner.block_private => {
                let allowed: Vec<IpAddr> = addrs
                    .iter()
                    .copied()
                    .filter(|ip| !is_blocked(*ip))
                    .collect();
                if allowed.is_empty() {
                    let list: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                    return Err(fail(
                        ResolveFailure::Blocked,
                        format!("resolves only to internal addresses ({})", list.join(", ")),
                    ));
                }
                Ok(allowed)
            }
            Answer::Found(addrs) => Ok(addrs.to_vec()),
        }
    }
}

impl Inner {
    /// The cached answer, or the answer of the one query in flight for `host`.
    async fn answer(self: Arc<Self>, host: &str) -> Answer {
        if let Some(a) = lock(&self.cache).get(host, Instant::now()) {
            return a;
        }
        let mut rx = {
            let mut in_flight = lock(&self.in_flight);
            // A query may have finished between the check above and taking this lock (it
            // fills the cache before leaving `in_flight`).
            if let Some(a) = lock(&self.cache).get(host, Instant::now()) {
                return a;
            }
            match in_flight.get(host) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(host.to_string(), rx.clone());
                    let inner = Arc::clone(&self);
                    let name = host.to_string();
                    tokio::spawn(async move { inner.query(name, tx).await });
                    rx
                }
            }
        };
        let answer = match rx.wait_for(Option::is_some).await {
            Ok(a) => a.clone(),
            Err(_) => None,
        };
        answer.unwrap_or_else(|| {
            // The query task died (panicked or its runtime shut down): let the next caller
            // start a new one.
            lock(&self.in_flight).remove(host);
            Answer::Failed(ResolveFailure::Timeout, "the lookup was abandoned".into())
        })
    }

    /// Runs the query for `host`, caches the answer and wakes every waiter.
    async fn query(self: Arc<Self>, host: String, tx: watch::Sender<Option<Answer>>) {
        let (answer, ttl) = {
            let _permit = self.lookups.acquire().await;
            match tokio::time::timeout(self.lookup_timeout, resolve(&self.resolver, &host)).await {
                Ok(found) => found,
                Err(_) => {
                    let detail = format!("no answer within {:?}", self.lookup_timeout);
                    (
                        Answer::Failed(ResolveFailure::Timeout, detail.into()),
                        TRANSIENT_TTL,
                    )
                }
            }
        };
        {
            let mut in_flight = lock(&self.in_flight);
            lock(&self.cache).insert(&host, answer.clone(), ttl, Instant::now());
            in_flight.remove(&host);
        }
        let _ = tx.send(Some(answer));
    }
}

/// One uncached lookup, with how long its answer may be kept.
async fn resolve(resolver: &TokioResolver, host: &str) -> (Answer, Duration) {
    // A dotted name is asked as is, fully qualified: trying search-domain suffixes after a
    // NXDOMAIN would multiply the queries for dead hosts. Single labels keep the search list.
    let name = if host.contains('.') {
        format!("{host}.")
    } else {
        host.to_string()
    };
    match resolver.lookup_ip(name.as_str()).await {
        Ok(lookup) => {
            let addrs: Vec<IpAddr> = lookup.iter().collect();
            if addrs.is_empty() {
                let detail = "the name has no address records".into();
                return (
                    Answer::Failed(ResolveFailure::NxDomain, detail),
                    negative_ttl(None),
                );
            }
            let ttl = lookup
                .valid_until()
                .saturating_duration_since(Instant::now());
            (Answer::Found(addrs.into()), positive_ttl(ttl))
        }
        Err(e) => classify(&e),
    }
}

/// The failure kind, message and cache time of a hickory error.
fn classify(e: &NetError) -> (Answer, Duration) {
    let failed = |kind, detail: String| Answer::Failed(kind, detail.into());
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            let detail = if nr.response_code == ResponseCode::NXDomain {
                "no such host (NXDOMAIN)".to_string()
            } else {
                "the name has no address records".to_string()
            };
            let soa = nr.negative_ttl.map(|s| Duration::from_secs(u64::from(s)));
            (failed(ResolveFailure::NxDomain, detail), negative_ttl(soa))
        }
        NetError::Dns(DnsError::ResponseCode(code)) => (
            failed(
                ResolveFailure::ServFail,
                format!("the name server answered {code}"),
            ),
            TRANSIENT_TTL,
        ),
        NetError::Timeout => (
            failed(
                ResolveFailure::Timeout,
                "no answer from the name servers".into(),
            ),
            TRANSIENT_TTL,
        ),
        NetError::Io(_) | NetError::NoConnections | NetError::Busy => (
            failed(
                ResolveFailure::Timeout,
                format!("no name server reachable: {e}"),
            ),
            TRANSIENT_TTL,
        ),
        other => (
            failed(
                ResolveFailure::ServFail,
                format!("unusable answer: {other}"),
            ),
            TRANSIENT_TTL,
        ),
    }
}

impl Resolve for CachingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let found = this.lookup(name.as_str()).await?;
            let addrs: Addrs = Box::new(found.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests;
