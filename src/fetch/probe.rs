//! Size probes for `ldawt size`: `HEAD` first; when it gives no length (or is refused), a
//! `GET` with `Range: bytes=0-0` read from the 206's `Content-Range` (or from a 200's
//! `Content-Length` when the server ignores ranges, without reading that body).

use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, RANGE, RETRY_AFTER};
use tokio::time::timeout;

use super::{AttemptError, Fetcher, chain, hosts, map_send_error};
use crate::model::retry::{Failure, parse_retry_after};

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `bytes 0-0/12345` → 12345 (`*` totals are unknown).
pub fn content_range_total(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes ")?
        .rsplit_once('/')?
        .1
        .trim()
        .parse()
        .ok()
}

impl Fetcher {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, AttemptError> {
        match timeout(self.first_byte_timeout, req.send()).await {
            Err(_) => Err(AttemptError::new(
                Failure::FirstByteTimeout,
                format!("no response headers within {:?}", self.first_byte_timeout),
            )),
            Ok(Err(e)) => Err(AttemptError::new(map_send_error(&e), chain(&e))),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// The size in bytes of what `url` serves, without downloading it.
    pub async fn probe_size(&self, url: &reqwest::Url) -> Result<u64, AttemptError> {
        self.check_literal(url)?;
        let head = self.send(self.client.head(url.clone())).await?;
        let status = head.status().as_u16();
        let is_html =
            |h: &HeaderMap| header(h, CONTENT_TYPE).is_some_and(|t| t.contains("text/html"));
        if status == 200
            && !is_html(head.headers())
            && let Some(len) = header(head.headers(), CONTENT_LENGTH).and_then(|v| v.parse().ok())
        {
            return Ok(len);
        }
        if matches!(status, 404 | 410) {
            return Err(http_error(status, head.headers()));
        }
        let mut resp = self
            .send(self.client.get(url.clone()).header(RANGE, "bytes=0-0"))
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let found = match status {
            206 => header(&headers, CONTENT_RANGE).and_then(content_range_total),
            200 if !is_html(&headers) => {
                header(&headers, CONTENT_LENGTH).and_then(|v| v.parse().ok())
            }
            200 => {
                return Err(AttemptError {
                    http_status: Some(200),
                    ..AttemptError::new(Failure::NotImage, "the server sent an HTML page")
                });
            }
            _ => return Err(http_error(status, &headers)),
        };
        if status == 206 {
            // One byte: read it so the connection can be reused.
            let _ = timeout(Duration::from_secs(2), resp.chunk()).await;
        }
        found.ok_or_else(|| AttemptError {
            http_status: Some(status),
            ..AttemptError::new(
                Failure::Http(status),
                "the server announces no length (HEAD and Range both without one)",
            )
        })
    }
}

fn http_error(status: u16, headers: &HeaderMap) -> AttemptError {
    AttemptError {
        failure: Failure::Http(status),
        http_status: Some(status),
        retry_after: header(headers, RETRY_AFTER).and_then(|v| parse_retry_after(v, hosts::now())),
        message: format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::content_range_total;

    #[test]
    fn content_range_totals() {
        assert_eq!(content_range_total("bytes 0-0/12345"), Some(12345));
        assert_eq!(content_range_total("bytes 0-0/*"), None);
        assert_eq!(content_range_total("items 0-0/5"), None);
    }
}
