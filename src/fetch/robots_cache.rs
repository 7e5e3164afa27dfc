//! `--respect-robots-txt`: each origin's robots.txt is fetched once per run (concurrent rows of
//! one host wait for the same fetch) and kept for the run. As RFC 9309 §2.3.1 says: a 2xx
//! answer is parsed (its first 500 KiB); a 4xx answer means no restrictions; a 5xx answer, a
//! timeout or no connection means full disallow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::robots_tag::ROBOTS_TOKEN;
use super::robots_txt::Robots;

/// The part of a robots.txt that is parsed (RFC 9309 §2.5: at least 500 KiB).
const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// robots.txt of every origin seen in a run.
#[derive(Debug)]
pub struct RobotsCache {
    client: reqwest::Client,
    timeout: Duration,
    origins: Mutex<HashMap<String, Arc<OnceCell<Arc<Robots>>>>>,
}

impl RobotsCache {
    /// A cache fetching with `client`, each robots.txt within `timeout`.
    pub fn new(client: reqwest::Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            origins: Mutex::new(HashMap::new()),
        }
    }

    /// True when `url` may be fetched under its origin's robots.txt.
    pub async fn allows(&self, url: &reqwest::Url) -> bool {
        let origin = url.origin().ascii_serialization();
        let cell = {
            let mut map = match self.origins.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            Arc::clone(map.entry(origin.clone()).or_default())
        };
        let robots = cell.get_or_init(|| self.fetch(origin)).await;
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        robots.allows(&path)
    }

    async fn fetch(&self, origin: String) -> Arc<Robots> {
        let url = format!("{origin}/robots.txt");
        let robots = match tokio::time::timeout(self.timeout, self.read(&url)).await {
            Ok(Ok((status, text))) if (200..300).contains(&status) => {
                Robots::parse(&text, ROBOTS_TOKEN)
            }
            Ok(Ok((status, _))) if (400..500).contains(&status) => Robots::allow_all(),
            Ok(Ok((status, _))) => {
                tracing::info!(%url, status, "robots.txt unavailable: full disallow");
                Robots::disallow_all()
            }
            Ok(Err(e)) => {
                tracing::info!(%url, error = %e, "robots.txt unreachable: full disallow");
                Robots::disallow_all()
            }
            Err(_) => {
                tracing::info!(%url, "robots.txt timed out: full disallow");
                Robots::disallow_all()
            }
        };
        Arc::new(robots)
    }

    async fn read(&self, url: &str) -> Result<(u16, String), reqwest::Error> {
        let mut resp = self.client.get(url).send().await?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_ROBOTS_BYTES {
            match resp.chunk().await? {
                Some(c) => body.extend_from_slice(&c),
                None => break,
            }
        }
        body.truncate(MAX_ROBOTS_BYTES);
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}
