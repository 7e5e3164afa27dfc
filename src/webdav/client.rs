//! The WebDAV client: PROPFIND (Depth 1) listings, MKCOL (creating missing parents), streaming
//! PUT with a size check afterwards, all with retries and backoff on transient failures.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::io::AsyncReadExt;

use super::WebDavError;
use super::credentials::Credentials;
use super::propfind::{DavEntry, PROPFIND_BODY, parse_multistatus, percent_decode};
use crate::model::retry::RetryPolicy;

/// Bytes per chunk of a streamed PUT body.
const CHUNK: usize = 256 * 1024;
/// How deep `ensure_collection` climbs to create missing parents.
const MAX_PARENT_DEPTH: usize = 32;

/// A WebDAV client bound to one set of credentials.
#[derive(Debug, Clone)]
pub struct WebDavClient {
    http: reqwest::Client,
    propfind: Method,
    mkcol: Method,
    creds: Option<Credentials>,
    policy: RetryPolicy,
}

/// The URL of `name` inside collection `dir` (a file; the name is percent-encoded).
pub fn child_url(dir: &Url, name: &str) -> Url {
    let mut url = dir.clone();
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.pop_if_empty().push(name);
    }
    url
}

/// The URL of collection `name` inside `dir`, with its trailing slash.
pub fn child_collection_url(dir: &Url, name: &str) -> Url {
    let mut url = child_url(dir, name);
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.push("");
    }
    url
}

/// `url` with a trailing slash (collections).
pub fn as_collection(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/')
        && let Ok(mut segs) = url.path_segments_mut()
    {
        segs.push("");
    }
    url
}

fn parent_collection(url: &Url) -> Option<Url> {
    let mut parent = url.clone();
    {
        let mut segs = parent.path_segments_mut().ok()?;
        segs.pop_if_empty().pop();
        segs.push("");
    }
    (parent != *url && parent.path() != url.path()).then_some(parent)
}

impl WebDavClient {
    /// A client using `creds` (None = anonymous) and `policy` for retries.
    pub fn new(creds: Option<Credentials>, policy: RetryPolicy) -> Result<Self, WebDavError> {
        // reqwest is built without a default TLS provider; installing ring twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("ldawt/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebDavError::Client {
                reason: e.to_string(),
            })?;
        let method = |name: &[u8]| {
            Method::from_bytes(name).map_err(|e| WebDavError::Client {
                reason: e.to_string(),
            })
        };
        Ok(Self {
            http,
            propfind: method(b"PROPFIND")?,
            mkcol: method(b"MKCOL")?,
            creds,
            policy,
        })
    }

    fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        let rb = self.http.request(method, url.clone());
        match &self.creds {
            Some(c) => rb.basic_auth(&c.user, Some(&c.password)),
            None => rb,
        }
    }

    /// Sends the request built by `build`, retrying transient failures (server errors,
    /// dropped connections); a refused or failed connection is retried only when
    /// `retry_connect` is set. Returns the final response whatever its status (callers judge
    /// it), or the last network error as `Unreachable`.
    async fn send(
        &self,
        url: &Url,
        retry_connect: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, WebDavError> {
        let attempts = self.policy.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = build().send().await;
            let transient = match &outcome {
                Ok(r) => RetryPolicy::is_retryable_status(r.status().as_u16()),
                Err(e) => retry_connect || !e.is_connect(),
            };
            if !transient || attempt >= attempts {
                return outcome.map_err(|e| WebDavError::Unreachable {
                    url: url.to_string(),
                    reason: error_chain(&e),
                });
            }
            tracing::debug!(%url, attempt, "transient WebDAV failure; retrying");
            tokio::time::sleep(self.policy.wait(attempt, fastrand::f64())).await;
        }
    }

    /// Lists collection `url` (Depth 1). `Ok(None)` when it does not exist. Without `retry`,
    /// a refused connection fails at once (used to probe a server before a run); other
    /// transient failures are retried either way.
    pub async fn list(&self, url: &Url, retry: bool) -> Result<Option<Vec<DavEntry>>, WebDavError> {
        let url = as_collection(url);
        let resp = self
            .send(&url, retry, || {
                self.request(self.propfind.clone(), &url)
                    .header("Depth", "1")
                    .header("Content-Type", "application/xml; charset=utf-8")
                    .body(PROPFIND_BODY)
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_IMPLEMENTED {
            return Err(WebDavError::BadReply {
                url: url.to_string(),
                reason: format!("the server refuses PROPFIND ({status}): not a WebDAV endpoint"),
            });
        }
        check_status(&url, "PROPFIND", status)?;
        if status != StatusCode::MULTI_STATUS {
            return Err(WebDavError::BadReply {
                url: url.to_string(),
                reason: format!(
                    "PROPFIND answered {status}, not 207 Multi-Status: is this a WebDAV collection?"
                ),
            });
        }
        let body = resp.text().await.map_err(|e| WebDavError::Unreachable {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        let entries = parse_multistatus(&body, &percent_decode(url.path())).map_err(|reason| {
            WebDavError::BadReply {
                url: url.to_string(),
                reason,
            }
        })?;
        Ok(Some(entries))
    }

    /// Creates collection `url`, creating missing parents first (like `mkdir -p`).
    pub async fn ensure_collection(&self, url: &Url) -> Result<(), WebDavError> {
        let mut missing = vec![as_collection(url)];
        while let Some(top) = missing.last().cloned() {
            let resp = self
                .send(&top, true, || self.request(self.mkcol.clone(), &top))
                .await?;
            match resp.status() {
                // 405: it already exists.
                s if s.is_success() || s == StatusCode::METHOD_NOT_ALLOWED => {
                    missing.pop();
                }
                StatusCode::CONFLICT if missing.len() < MAX_PARENT_DEPTH => {
                    match parent_collection(&top) {
                        Some(parent) => missing.push(parent),
                        None => return Err(http_error(&top, "MKCOL", StatusCode::CONFLICT)),
                    }
                }
                s => {
                    check_status(&top, "MKCOL", s)?;
                    return Err(http_error(&top, "MKCOL", s));
                }
            }
        }
        Ok(())
    }

    /// Streams `local` to `url` with PUT (retrying transient failures from the start of the
    /// file), then checks that the server reports the same size. `sent` counts bytes sent.
    pub async fn put_file(
        &self,
        local: &Path,
        url: &Url,
        sent: &AtomicU64,
    ) -> Result<u64, WebDavError> {
        let local_err = |e: std::io::Error| WebDavError::Local {
            path: local.display().to_string(),
            reason: e.to_string(),
        };
        let size = tokio::fs::metadata(local).await.map_err(local_err)?.len();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let file = tokio::fs::File::open(local).await.map_err(local_err)?;
            let counted = std::sync::Arc::new(AtomicU64::new(0));
            let body = file_stream(file, counted.clone());
            let outcome = self
                .request(Method::PUT, url)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await;
            let n = counted.load(Ordering::Relaxed);
            sent.fetch_add(n, Ordering::Relaxed);
            let failure = match outcome {
                Ok(resp) if resp.status().is_success() => match self.remote_size(url).await? {
                    Some(remote) if remote != size => WebDavError::SizeMismatch {
                        url: url.to_string(),
                        expected: size,
                        found: remote,
                    },
                    _ => return Ok(size),
                },
                Ok(resp) if !RetryPolicy::is_retryable_status(resp.status().as_u16()) => {
                    check_status(url, "PUT", resp.status())?;
                    return Err(http_error(url, "PUT", resp.status()));
                }
                Ok(resp) => http_error(url, "PUT", resp.status()),
                Err(e) => WebDavError::Unreachable {
                    url: url.to_string(),
                    reason: error_chain(&e),
                },
            };
            sent.fetch_sub(n, Ordering::Relaxed);
            if attempt >= self.policy.max_attempts.max(1) {
                return Err(failure);
            }
            tracing::info!(%url, attempt, error = %failure, "upload failed; retrying");
            tokio::time::sleep(self.policy.wait(attempt, fastrand::f64())).await;
        }
    }

    /// The size the server reports for `url` (HEAD `Content-Length`), if it reports one.
    pub async fn remote_size(&self, url: &Url) -> Result<Option<u64>, WebDavError> {
        let resp = self
            .send(url, true, || self.request(Method::HEAD, url))
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        Ok(resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }
}

fn file_stream(
    file: tokio::fs::File,
    counted: std::sync::Arc<AtomicU64>,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures::stream::unfold(Some(file), move |state| {
        let counted = counted.clone();
        async move {
            let mut file = state?;
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    counted.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok(buf), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    })
    .boxed()
}

fn http_error(url: &Url, method: &str, status: StatusCode) -> WebDavError {
    WebDavError::Http {
        method: method.to_string(),
        url: url.to_string(),
        status: status.as_u16(),
    }
}

/// Maps 401/403 to `Unauthorized`, other failures to `Http`.
fn check_status(url: &Url, method: &str, status: StatusCode) -> Result<(), WebDavError> {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(WebDavError::Unauthorized {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    if status.is_success() || status == StatusCode::MULTI_STATUS {
        Ok(())
    } else {
        Err(http_error(url, method, status))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
