//! What the fetcher needs to know about a run: timeouts, limits, accepted types, the
//! User-Agent and the address guard. [`crate::engine::EngineConfig`] embeds it (flattened: its
//! fields sit at the top level of the engine configuration's JSON), so this layer does not
//! depend on the engine. The User-Agent is kept as given plus the user's contact token; the
//! header actually sent is composed in one place, [`FetchConfig::user_agent_header`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The project's address, named in the default User-Agent.
pub const PROJECT_URL: &str = "https://github.com/ldawt/ldawt";

/// The fetcher's settings. `Default` gives production defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchConfig {
    /// Requests in flight per host (the engine's per-host cap); as many idle keep-alive
    /// connections are kept per host.
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
    /// Accepted `Content-Type` patterns (`image/*` style); an HTML page served with 200 fails.
    pub accept_types: Vec<String>,
    /// The User-Agent as given, before the token (see [`Self::user_agent_header`]).
    pub user_agent: String,
    /// Refuse to connect to internal addresses (loopback, private, CGNAT, link-local,
    /// multicast, unique-local…), checked after DNS resolution, for IP-literal URLs and for
    /// every redirect; such rows fail as `blocked_address`. Swarm workers set it for rows of a
    /// remote seeder so a rogue seeder cannot probe the worker's internal network.
    #[serde(default)]
    pub block_private_addresses: bool,
    /// `X-Robots-Tag` directives (lower-case) that stop a body from being stored: the row is
    /// skipped as `opted_out`. Empty: opt-outs are not checked.
    #[serde(default = "default_disallowed")]
    pub disallowed_header_directives: Vec<String>,
    /// The user's contact, added to the User-Agent's comment.
    #[serde(default)]
    pub user_agent_token: Option<String>,
}

fn default_disallowed() -> Vec<String> {
    super::robots_tag::DEFAULT_DISALLOWED
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            per_host: 128,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
            max_file_size: 500 * 1024 * 1024,
            accept_types: vec!["image/*".to_string()],
            user_agent: default_user_agent(),
            block_private_addresses: false,
            disallowed_header_directives: default_disallowed(),
            user_agent_token: None,
        }
    }
}

impl FetchConfig {
    /// The User-Agent header sent: [`Self::user_agent`] with [`Self::user_agent_token`], if
    /// any, inside its comment.
    pub fn user_agent_header(&self) -> String {
        user_agent_with_token(&self.user_agent, self.user_agent_token.as_deref())
    }
}

/// The default User-Agent: `ldawt/<version> (+<project URL>)`.
pub fn default_user_agent() -> String {
    format!("ldawt/{} (+{PROJECT_URL})", env!("CARGO_PKG_VERSION"))
}

/// `user_agent` with the user's `token` (a contact: e-mail or URL) added inside its comment:
/// `ldawt/0.1.0 (+https://…)` → `ldawt/0.1.0 (+https://…; me@example.org)`.
pub fn user_agent_with_token(user_agent: &str, token: Option<&str>) -> String {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        None => user_agent.to_string(),
        Some(t) => match user_agent.strip_suffix(')') {
            Some(head) if head.contains('(') => format!("{head}; {t})"),
            _ => format!("{user_agent} ({t})"),
        },
    }
}

/// Checks a `--user-agent-token`: printable ASCII without parentheses (it goes inside the
/// User-Agent's comment).
pub fn check_user_agent_token(token: &str) -> Result<(), String> {
    if token.trim().is_empty() {
        return Err("--user-agent-token is empty".into());
    }
    if let Some(c) = token
        .chars()
        .find(|c| !(' '..='~').contains(c) || matches!(c, '(' | ')'))
    {
        return Err(format!(
            "--user-agent-token {token:?}: character {c:?} is not allowed (printable ASCII \
             without parentheses)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_token_goes_into_the_comment() {
        let ua = default_user_agent();
        assert!(ua.starts_with("ldawt/") && ua.ends_with(&format!("(+{PROJECT_URL})")));
        assert_eq!(user_agent_with_token(&ua, None), ua);
        let with = user_agent_with_token(&ua, Some("me@example.org"));
        assert_eq!(
            with,
            format!(
                "ldawt/{} (+{PROJECT_URL}; me@example.org)",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(user_agent_with_token("custom", Some("x")), "custom (x)");
        assert!(check_user_agent_token("me@example.org").is_ok());
        assert!(check_user_agent_token("a)b").is_err());
        assert!(check_user_agent_token("a\nb").is_err());
        assert!(check_user_agent_token(" ").is_err());
    }

    #[test]
    fn the_header_sent_is_the_user_agent_with_its_token() {
        let cfg = FetchConfig {
            user_agent: "custom".into(),
            user_agent_token: Some(" me@example.org ".into()),
            ..FetchConfig::default()
        };
        assert_eq!(cfg.user_agent_header(), "custom (me@example.org)");
        assert_eq!(
            FetchConfig::default().user_agent_header(),
            default_user_agent()
        );
    }
}
