//! WebDAV credentials: the user from `--user` (or netrc), the password from the
//! `LDAWT_PASSWORD` environment variable or from `~/.netrc` (`machine HOST login U password P`).
//! Passwords never come from the command line, so they never show in `ps` or shell history.

use std::path::Path;

/// A user name and password for HTTP basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The login.
    pub user: String,
    /// Sent only in the `Authorization` header; never printed (see the `Debug` impl).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// One `machine` (or `default`) entry of a netrc file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NetrcEntry {
    machine: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

fn parse_netrc(text: &str) -> Vec<NetrcEntry> {
    let mut entries: Vec<NetrcEntry> = Vec::new();
    let mut tokens = text.split_whitespace();
    while let Some(tok) = tokens.next() {
        match tok {
            "machine" => entries.push(NetrcEntry {
                machine: tokens.next().map(str::to_string),
                login: None,
                password: None,
            }),
            "default" => entries.push(NetrcEntry {
                machine: None,
                login: None,
                password: None,
            }),
            "login" | "password" | "account" | "macdef" => {
                let value = tokens.next().map(str::to_string);
                if let Some(e) = entries.last_mut() {
                    match tok {
                        "login" => e.login = value,
                        "password" => e.password = value,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    entries
}

/// Finds `host`'s login/password in netrc text (`default` as a fallback). When `user` is given,
/// only an entry with that login (or without a login) matches.
pub fn netrc_lookup(text: &str, host: &str, user: Option<&str>) -> Option<Credentials> {
    let entries = parse_netrc(text);
    let matches = |e: &&NetrcEntry| user.is_none_or(|u| e.login.as_deref().is_none_or(|l| l == u));
    let found = entries
        .iter()
        .filter(|e| e.machine.as_deref() == Some(host))
        .find(matches)
        .or_else(|| entries.iter().filter(|e| e.machine.is_none()).find(matches))?;
    Some(Credentials {
        user: user.map(str::to_string).or_else(|| found.login.clone())?,
        password: found.password.clone()?,
    })
}

/// Resolves credentials for `host`: `user` + `password_env` when both are set; otherwise the
/// netrc file at `netrc` (usually `~/.netrc`). `None` means anonymous access.
pub fn resolve(
    user: Option<&str>,
    password_env: Option<String>,
    host: &str,
    netrc: Option<&Path>,
) -> Option<Credentials> {
    if let (Some(u), Some(p)) = (user, password_env.clone()) {
        return Some(Credentials {
            user: u.to_string(),
            password: p,
        });
    }
    let from_file = netrc
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| netrc_lookup(&text, host, user));
    match (from_file, user, password_env) {
        (Some(c), _, _) => Some(c),
        (None, Some(u), None) => Some(Credentials {
            user: u.to_string(),
            password: String::new(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETRC: &str = "machine data.cyverse.org login alice password s3cret\n\
                         machine other login bob password b\ndefault login anon password x\n";

    #[test]
    fn netrc_finds_the_host_then_the_default() {
        let c = netrc_lookup(NETRC, "data.cyverse.org", None).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "s3cret"));
        let d = netrc_lookup(NETRC, "elsewhere", None).unwrap();
        assert_eq!(d.user, "anon");
        assert_eq!(netrc_lookup(NETRC, "data.cyverse.org", Some("carol")), None);
    }

    #[test]
    fn env_password_wins_and_is_never_printed() {
        let c = resolve(Some("u"), Some("p".into()), "h", None).unwrap();
        assert_eq!(c.password, "p");
        assert!(!format!("{c:?}").contains("\"p\""));
        assert!(resolve(None, None, "h", None).is_none());
    }
}
