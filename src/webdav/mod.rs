//! WebDAV: the client behind `ldawt upload`, `ldawt compare` (WebDAV sides) and the node's
//! `--upload-to` — PROPFIND listings, MKCOL, streaming PUT with retries, credentials from
//! `--user` + `LDAWT_PASSWORD` or `~/.netrc` — and the parallel uploader built on it.

pub mod client;
pub mod credentials;
pub mod propfind;
pub mod queue;
pub mod upload;

pub use crate::model::retry::RetryPolicy;
pub use client::WebDavClient;
pub use credentials::Credentials;
pub use propfind::DavEntry;
pub use upload::{FileOutcome, UploadReport, upload_file};

/// WebDAV failures. Each names the URL (or local path) concerned.
#[derive(Debug, thiserror::Error)]
pub enum WebDavError {
    /// The URL is not an http(s) URL.
    #[error("{url} is not a usable WebDAV URL: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server could not be reached (refused, DNS, timeout), after retries if any.
    #[error("cannot reach WebDAV server at {url}: {reason}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The network error.
        reason: String,
    },
    /// The server rejected the credentials (401) or the access (403).
    #[error(
        "WebDAV server rejected the credentials for {url} (HTTP {status}); set --user and LDAWT_PASSWORD or a ~/.netrc entry"
    )]
    Unauthorized {
        /// The URL requested.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// Any other unexpected HTTP status.
    #[error("{method} {url} failed: HTTP {status}")]
    Http {
        /// The WebDAV method.
        method: String,
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The server's reply could not be understood.
    #[error("{url}: unexpected WebDAV reply: {reason}")]
    BadReply {
        /// The URL whose reply could not be parsed.
        url: String,
        /// Why.
        reason: String,
    },
    /// After a PUT, the server reports a different size than the local file.
    #[error("{url}: uploaded {expected} bytes but the server reports {found}")]
    SizeMismatch {
        /// The uploaded file's URL.
        url: String,
        /// Local size.
        expected: u64,
        /// Remote size.
        found: u64,
    },
    /// A local file or directory could not be read.
    #[error("{path}: {reason}")]
    Local {
        /// The local path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {reason}")]
    Client {
        /// Why.
        reason: String,
    },
}

impl WebDavError {
    /// True for problems with what the user gave (URL, credentials, a server address that is
    /// down or does not speak WebDAV, local paths): exit code 2 when they stop a run before it
    /// starts.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            WebDavError::BadUrl { .. }
                | WebDavError::BadReply { .. }
                | WebDavError::Unreachable { .. }
                | WebDavError::Unauthorized { .. }
                | WebDavError::Local { .. }
        )
    }
}

/// Parses `text` as an http(s) collection URL.
pub fn parse_url(text: &str) -> Result<reqwest::Url, WebDavError> {
    let url = reqwest::Url::parse(text).map_err(|e| WebDavError::BadUrl {
        url: text.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(WebDavError::BadUrl {
            url: text.to_string(),
            reason: "expected http://host/path or https://host/path".into(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(WebDavError::BadUrl {
            url: shown.to_string(),
            reason:
                "credentials do not belong in the URL; use --user with LDAWT_PASSWORD or ~/.netrc"
                    .into(),
        });
    }
    Ok(url)
}
