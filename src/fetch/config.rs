//! What the fetcher needs to know about a run: timeouts, limits, accepted types, the
//! User-Agent and the address guard. The engine builds it from its own configuration
//! (`EngineConfig::fetch_config`), so this layer does not depend on the engine.

use std::time::Duration;

/// The fetcher's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchConfig {
    /// Idle keep-alive connections kept per host (the engine's per-host concurrency).
    pub per_host: usize,
    /// Time allowed to establish a connection (DNS resolution gets 90 % of it).
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to the response headers.
    pub first_byte_timeout: Duration,
    /// Longest pause allowed between two body chunks.
    pub idle_timeout: Duration,
    /// Time allowed for one attempt, end to end.
    pub total_timeout: Duration,
    /// Bodies larger than this are rejected while streaming.
    pub max_file_size: u64,
    /// Accepted `Content-Type` patterns (`image/*` style).
    pub accept_types: Vec<String>,
    /// The User-Agent header sent, token included.
    pub user_agent: String,
    /// Refuse internal addresses (after DNS, for IP literals and on every redirect).
    pub block_private_addresses: bool,
    /// `X-Robots-Tag` directives (lower-case) that make a body an opt-out.
    pub disallowed_header_directives: Vec<String>,
}
