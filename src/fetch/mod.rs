//! One HTTP attempt for one URL: the shared reqwest client (rustls + ring, pooled keep-alive
//! connections, HTTP/2 when offered, `TCP_NODELAY`, caching async DNS ([`dns`]), bounded
//! redirects, and the optional guard against internal addresses ([`blocked`])) and the
//! streaming read of one response under first-byte / idle / total timeouts and the size cap.
//! Bodies above [`SPILL_AT`] go to a spill file (hashed as they stream) so memory stays bounded
//! by concurrency, not body size; bodies in memory are hashed later, where there is CPU to
//! spare (see [`crate::engine`]'s writer). Deciding whether to retry is not done here (see
//! [`crate::model::retry`]).

pub mod blocked;
mod config;
pub mod dns;
mod dns_cache;
pub mod hosts;
mod probe;
pub mod robots_cache;
pub mod robots_tag;
pub mod robots_txt;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout, timeout_at};

use crate::model::content::{check_content, jpeg_truncated};
use crate::model::host_conns::POOL_IDLE_TIMEOUT;
use crate::model::naming::{choose_extension, is_precompressed};
use crate::model::retry::{Failure, parse_retry_after};

pub use blocked::is_blocked;
pub use config::{
    FetchConfig, PROJECT_URL, check_user_agent_token, default_user_agent, user_agent_with_token,
};
pub use dns::{CachingResolver, ResolveError, ResolveFailure};
pub use probe::content_range_total;

/// Bodies larger than this are written to a spill file instead of memory.
pub const SPILL_AT: usize = 1024 * 1024;

/// Bytes of an error response read (and dropped) so its connection can be reused.
const ERROR_BODY_DRAIN: usize = 64 * 1024;

/// A downloaded body.
#[derive(Debug)]
pub enum Body {
    /// Held in memory: the chunks as the connection read them. They are not copied: each
    /// shares the connection's read buffer until the writer has archived it (copying every
    /// image once into a body buffer cost about 5 % of the engine's CPU).
    Memory(Vec<Bytes>),
    /// Written to a spill file (removed once archived).
    Spilled {
        /// The spill file.
        path: PathBuf,
    },
}

/// A successful attempt.
#[derive(Debug)]
pub struct Fetched {
    /// The bytes.
    pub body: Body,
    /// Their length.
    pub len: u64,
    /// Their sha256 for a spilled body (hashed while it streamed to disk); `None` for a body in
    /// memory, which is hashed later by whichever thread has time (see [`sha256_of`]).
    pub sha256: Option<[u8; 32]>,
    /// The extension to store them under (without the dot).
    pub extension: String,
    /// True when the bytes are an already-compressed image format (stored, not deflated).
    pub precompressed: bool,
}

/// A failed attempt.
#[derive(Debug)]
pub struct AttemptError {
    /// What kind of failure (drives the retry decision).
    pub failure: Failure,
    /// The HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// The server's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// A human-readable message.
    pub message: String,
}

impl AttemptError {
    fn new(failure: Failure, message: impl Into<String>) -> Self {
        Self {
            failure,
            http_status: None,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// Failures building the HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The DNS resolver could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Dns(#[from] dns::ResolverSetupError),
}

/// Redirects followed before the attempt fails as `too_many_redirects`.
const MAX_REDIRECTS: usize = 10;

/// The shared HTTP client and the limits every attempt obeys.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    total_timeout: Duration,
    max_file_size: u64,
    accept_types: Arc<Vec<String>>,
    block_private: bool,
    disallowed: Arc<Vec<String>>,
}

/// The error and its causes on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The first error of type `T` among `err` and its causes.
fn find_cause<T: std::error::Error + 'static>(err: &reqwest::Error) -> Option<&T> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // TLS errors arrive wrapped in io::Errors, whose `source()` skips the wrapped error.
        cause = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    None
}

/// True when a certificate check failed somewhere in `err`'s causes.
fn is_certificate_error(err: &reqwest::Error) -> bool {
    find_cause::<rustls::Error>(err).is_some_and(|tls| {
        matches!(
            tls,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        )
    })
}

fn map_send_error(err: &reqwest::Error) -> Failure {
    // The resolver's (and the redirect guard's) typed failure travels in the source chain.
    if let Some(dns) = find_cause::<ResolveError>(err) {
        dns.kind.failure()
    } else if is_certificate_error(err) {
        Failure::Tls
    } else if err.is_redirect() {
        Failure::Redirects
    } else if err.is_builder() {
        Failure::InvalidUrl
    } else if err.is_connect() {
        Failure::Connect
    } else if err.is_timeout() {
        Failure::FirstByteTimeout
    } else {
        Failure::Broken
    }
}

impl Fetcher {
    /// Builds the client for `cfg` (installs the ring TLS provider first).
    pub fn new(cfg: &FetchConfig) -> Result<Self, ClientError> {
        // A second installation (several runs in one process) reports an error: harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let block_private = cfg.block_private_addresses;
        // Resolution counts against the connect timeout: give up on DNS a little earlier so
        // the row records the DNS timeout rather than a connect timeout.
        let resolver = CachingResolver::new(
            block_private,
            cfg.connect_timeout
                .mul_f64(0.9)
                .max(Duration::from_millis(100)),
        )?;
        let limited = reqwest::redirect::Policy::limited(MAX_REDIRECTS);
        // Names in redirect targets go through the resolver (and its guard); IP literals do
        // not, so they are checked here.
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if block_private
                && let Some(ip) = blocked::literal_ip(attempt.url())
                && is_blocked(ip)
            {
                return attempt.error(blocked_literal(ip, "a redirect"));
            }
            limited.redirect(attempt)
        });
        let client = reqwest::Client::builder()
            .user_agent(cfg.user_agent_header())
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(cfg.per_host.max(1))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http2_adaptive_window(true)
            .redirect(redirects)
            .dns_resolver(Arc::new(resolver))
            .build()?;
        Ok(Self {
            client,
            first_byte_timeout: cfg.first_byte_timeout,
            idle_timeout: cfg.idle_timeout,
            total_timeout: cfg.total_timeout,
            max_file_size: cfg.max_file_size,
            accept_types: Arc::new(cfg.accept_types.clone()),
            block_private,
            disallowed: Arc::new(cfg.disallowed_header_directives.clone()),
        })
    }

    /// The HTTP client (shared with the robots.txt cache).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The `blocked_address` failure for an IP-literal URL the guard refuses (names are
    /// checked by the resolver, after resolution).
    fn check_literal(&self, url: &reqwest::Url) -> Result<(), AttemptError> {
        match blocked::literal_ip(url) {
            Some(ip) if self.block_private && is_blocked(ip) => Err(AttemptError::new(
                Failure::BlockedAddress,
                blocked_literal(ip, "the URL").to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// One attempt at `url`. Bodies over [`SPILL_AT`] are written to `spill`. Without
    /// `keep_alive` the request asks the server to close the connection once it answered (no
    /// row of the host waits for it, see [`hosts::HostPermit::keep_alive`]).
    pub async fn fetch_once(
        &self,
        url: &reqwest::Url,
        spill: &Path,
        keep_alive: bool,
    ) -> Result<Fetched, AttemptError> {
        let deadline = Instant::now() + self.total_timeout;
        match timeout_at(deadline, self.attempt(url, spill, keep_alive)).await {
            Ok(result) => result,
            Err(_) => {
                let _ = tokio::fs::remove_file(spill).await;
                Err(AttemptError::new(
                    Failure::TotalTimeout,
                    format!("no complete response within {:?}", self.total_timeout),
                ))
            }
        }
    }

    async fn attempt(
        &self,
        url: &reqwest::Url,
        spill: &Path,
        keep_alive: bool,
    ) -> Result<Fetched, AttemptError> {
        self.check_literal(url)?;
        let mut request = self.client.get(url.clone());
        if !keep_alive {
            // HTTP/1.1: the server closes after answering and the connection never enters
            // the pool (HTTP/2 strips the header: its one connection per host is shared).
            request = request.header(reqwest::header::CONNECTION, "close");
        }
        let send = request.send();
        let mut resp = match timeout(self.first_byte_timeout, send).await {
            Err(_) => {
                return Err(AttemptError::new(
                    Failure::FirstByteTimeout,
                    format!("no response headers within {:?}", self.first_byte_timeout),
                ));
            }
            Ok(Err(e)) => return Err(AttemptError::new(map_send_error(&e), chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        if status != 200 {
            let retry_after = header(reqwest::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(&v, hosts::now()));
            self.drain(&mut resp).await;
            return Err(AttemptError {
                failure: Failure::Http(status),
                http_status: Some(status),
                retry_after,
                message: format!("HTTP {status}"),
            });
        }
        if let Some(directive) = robots_tag::opt_out(resp.headers(), &self.disallowed) {
            self.drain(&mut resp).await;
            return Err(AttemptError {
                http_status: Some(status),
                ..AttemptError::new(
                    Failure::OptedOut,
                    format!("X-Robots-Tag carries '{directive}': the creator opted out"),
                )
            });
        }
        if let Some(len) = resp.content_length()
            && len > self.max_file_size
        {
            return Err(self.too_large(format!("announced {len} bytes")));
        }
        let mut read = BodyRead::new();
        loop {
            let chunk = match timeout(self.idle_timeout, resp.chunk()).await {
                Err(_) => {
                    read.discard(spill).await;
                    return Err(AttemptError {
                        http_status: Some(status),
                        ..AttemptError::new(
                            Failure::IdleTimeout,
                            format!(
                                "body stalled for {:?} after {} bytes",
                                self.idle_timeout, read.len
                            ),
                        )
                    });
                }
                Ok(Err(e)) => {
                    read.discard(spill).await;
                    return Err(AttemptError {
                        http_status: Some(status),
                        ..AttemptError::new(
                            Failure::Broken,
                            format!("after {} bytes: {}", read.len, chain(&e)),
                        )
                    });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if read.len + chunk.len() as u64 > self.max_file_size {
                read.discard(spill).await;
                return Err(self.too_large(format!("more than {} bytes", self.max_file_size)));
            }
            if let Err(e) = read.push(chunk, spill).await {
                read.discard(spill).await;
                return Err(AttemptError::new(
                    Failure::Broken,
                    format!("spill file: {e}"),
                ));
            }
        }
        let fail = |failure, message: String| AttemptError {
            http_status: Some(status),
            ..AttemptError::new(failure, message)
        };
        if let Err(reason) = check_content(content_type.as_deref(), &read.head, &self.accept_types)
        {
            read.discard(spill).await;
            return Err(fail(Failure::NotImage, reason));
        }
        if jpeg_truncated(&read.head, read.last_two) {
            read.discard(spill).await;
            return Err(fail(
                Failure::Truncated,
                format!("JPEG without its end marker after {} bytes", read.len),
            ));
        }
        let extension = choose_extension(url.as_str(), content_type.as_deref(), &read.head);
        read.precompressed = is_precompressed(&read.head);
        read.finish(extension, spill)
            .await
            .map_err(|e| fail(Failure::Broken, format!("spill file: {e}")))
    }

    fn too_large(&self, detail: String) -> AttemptError {
        AttemptError {
            http_status: Some(200),
            ..AttemptError::new(
                Failure::TooLarge,
                format!(
                    "body exceeds --max-file-size {} ({detail})",
                    self.max_file_size
                ),
            )
        }
    }

    /// Reads a little of an error body so the connection can go back to the pool.
    async fn drain(&self, resp: &mut reqwest::Response) {
        let mut seen = 0usize;
        while seen < ERROR_BODY_DRAIN {
            match timeout(Duration::from_millis(500), resp.chunk()).await {
                Ok(Ok(Some(c))) => seen += c.len(),
                _ => return,
            }
        }
    }
}

/// The typed error for an internal IP literal (`what`: "the URL", "a redirect").
fn blocked_literal(ip: std::net::IpAddr, what: &str) -> ResolveError {
    ResolveError {
        host: ip.to_string(),
        kind: ResolveFailure::Blocked,
        detail: format!("{what} points to an internal address (blocked)"),
    }
}

/// The sha256 of a body held in memory.
pub fn sha256_of(chunks: &[Bytes]) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c);
    }
    h.finalize().into()
}

/// A body being read: in memory until it grows past [`SPILL_AT`], then in a spill file (and
/// hashed from then on).
struct BodyRead {
    mem: Vec<Bytes>,
    file: Option<tokio::fs::File>,
    hasher: Option<Sha256>,
    len: u64,
    head: Vec<u8>,
    last_two: [u8; 2],
    precompressed: bool,
}

impl BodyRead {
    fn new() -> Self {
        Self {
            mem: Vec::new(),
            file: None,
            hasher: None,
            len: 0,
            head: Vec::with_capacity(32),
            last_two: [0, 0],
            precompressed: false,
        }
    }

    async fn push(&mut self, chunk: Bytes, spill: &Path) -> std::io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        if let Some(h) = &mut self.hasher {
            h.update(&chunk);
        }
        if self.head.len() < 32 {
            let take = (32 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        match &chunk[..] {
            [.., a, b] => self.last_two = [*a, *b],
            [b] => self.last_two = [self.last_two[1], *b],
            [] => {}
        }
        self.len += chunk.len() as u64;
        if let Some(file) = self.file.as_mut() {
            return file.write_all(&chunk).await;
        }
        // Still in memory, so `len` is the memory's size with this chunk.
        if self.len > SPILL_AT as u64 {
            let mut hasher = Sha256::new();
            let mut file = tokio::fs::File::create(spill).await?;
            for c in std::mem::take(&mut self.mem).iter().chain([&chunk]) {
                hasher.update(c);
                file.write_all(c).await?;
            }
            self.hasher = Some(hasher);
            self.file = Some(file);
            return Ok(());
        }
        self.mem.push(chunk);
        Ok(())
    }

    async fn discard(&mut self, spill: &Path) {
        if self.file.take().is_some() {
            let _ = tokio::fs::remove_file(spill).await;
        }
    }

    async fn finish(self, extension: String, spill: &Path) -> std::io::Result<Fetched> {
        let body = match self.file {
            Some(mut file) => {
                file.flush().await?;
                Body::Spilled {
                    path: spill.to_path_buf(),
                }
            }
            None => Body::Memory(self.mem),
        };
        Ok(Fetched {
            body,
            len: self.len,
            sha256: self.hasher.map(|h| h.finalize().into()),
            extension,
            precompressed: self.precompressed,
        })
    }
}
