//! robots.txt (RFC 9309), pure: the rules of the group that applies to our product token, and
//! whether a path may be fetched under them.
//!
//! Groups are the `user-agent` lines that follow each other plus the rules after them; every
//! group naming our token (case-insensitively) applies, merged; failing that, every `*` group;
//! failing that, nothing is disallowed. A path is matched by the rule with the longest pattern
//! (`*` matches any run of characters, a final `$` anchors the end); on a tie `allow` wins.
//! An empty `disallow` disallows nothing, and `/robots.txt` itself is always allowed.

/// The rules that apply to one product token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Robots {
    /// (allow, pattern), in file order.
    rules: Vec<(bool, String)>,
    /// Everything is disallowed (the file could not be fetched for a server-side reason).
    deny_all: bool,
}

impl Robots {
    /// No restrictions (no robots.txt, or a 4xx answer).
    pub fn allow_all() -> Self {
        Self::default()
    }

    /// Full disallow (RFC 9309 §2.3.1.4: the file is unreachable, e.g. 5xx or no connection).
    pub fn disallow_all() -> Self {
        Self {
            rules: Vec::new(),
            deny_all: true,
        }
    }

    /// Parses `text` for `token` (`ldawt`).
    pub fn parse(text: &str, token: &str) -> Self {
        let mut ours: Vec<(bool, String)> = Vec::new();
        let mut star: Vec<(bool, String)> = Vec::new();
        let mut matched_ours = false;
        // The current group's agents: (names us, names *); a rule after agent lines closes
        // the agent list.
        let (mut for_us, mut for_star, mut in_agents) = (false, false, false);
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !in_agents {
                        (for_us, for_star) = (false, false);
                        in_agents = true;
                    }
                    let agent = value.split_whitespace().next().unwrap_or("");
                    if agent.eq_ignore_ascii_case(token) {
                        for_us = true;
                        matched_ours = true;
                    } else if agent == "*" {
                        for_star = true;
                    }
                }
                "allow" | "disallow" => {
                    in_agents = false;
                    let rule = (key == "allow", value.to_string());
                    if for_us {
                        ours.push(rule.clone());
                    }
                    if for_star {
                        star.push(rule);
                    }
                }
                _ => {}
            }
        }
        Self {
            rules: if matched_ours { ours } else { star },
            deny_all: false,
        }
    }

    /// True when `path` (path and query, starting with `/`) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        if path == "/robots.txt" {
            return true;
        }
        if self.deny_all {
            return false;
        }
        let mut best: Option<(usize, bool)> = None;
        for (allow, pattern) in &self.rules {
            if pattern.is_empty() || !matches(pattern, path) {
                continue;
            }
            let len = pattern.len();
            best = match best {
                Some((l, a)) if l > len || (l == len && a) => Some((l, a)),
                _ => Some((len, *allow)),
            };
        }
        best.is_none_or(|(_, allow)| allow)
    }
}

/// True when robots `pattern` matches the start of `path`.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    let Some(rest) = path.strip_prefix(parts[0]) else {
        return false;
    };
    if parts.len() == 1 {
        return !anchored || rest.is_empty();
    }
    let mut pos = path.len() - rest.len();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == last && anchored {
            return path.len() - pos >= part.len() && path.ends_with(part);
        }
        match path[pos..].find(part) {
            Some(at) => pos += at + part.len(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comments and unknown lines are ignored
User-agent: otherbot
Disallow: /

User-agent: *
Disallow: /private/
Allow: /private/ok/

User-Agent: LDAWT
User-agent: somebot
Disallow: /photos/*/original.jpg$
Disallow: /tmp
Allow: /tmp/keep
Sitemap: https://example.org/sitemap.xml
";

    #[test]
    fn our_group_applies_before_the_star_group() {
        let r = Robots::parse(FILE, "ldawt");
        assert!(r.allows("/private/x.jpg"), "the * group is not ours");
        assert!(!r.allows("/photos/1/original.jpg"));
        assert!(r.allows("/photos/1/original.jpg?x=1"), "$ anchors the end");
        assert!(r.allows("/photos/1/medium.jpg"));
        assert!(!r.allows("/tmp/a"));
        assert!(r.allows("/tmp/keep/a"), "the longer allow wins");
        assert!(r.allows("/robots.txt"));
    }

    #[test]
    fn the_star_group_applies_to_unnamed_agents() {
        let r = Robots::parse(FILE, "nobody");
        assert!(!r.allows("/private/x.jpg"));
        assert!(r.allows("/private/ok/x.jpg"));
        assert!(r.allows("/photos/1/original.jpg"));
    }

    #[test]
    fn ties_allow_and_empty_rules_are_ignored() {
        let r = Robots::parse(
            "user-agent: *\ndisallow: /a\nallow: /a\ndisallow:\n",
            "ldawt",
        );
        assert!(r.allows("/a/b"));
        assert!(r.allows("/b"));
        assert!(Robots::parse("", "ldawt").allows("/x"));
        assert!(Robots::allow_all().allows("/x"));
        let none = Robots::disallow_all();
        assert!(!none.allows("/x") && none.allows("/robots.txt"));
    }

    #[test]
    fn wildcards_match_runs() {
        assert!(matches("/*.jpg", "/a/b.jpg"));
        assert!(matches("/a*b*c", "/axxbyyc/z"));
        assert!(!matches("/a*b*c", "/axxcyyb"));
        assert!(matches("/*.jpg$", "/x.jpg"));
        assert!(!matches("/*.jpg$", "/x.jpg.html"));
        assert!(matches("/exact$", "/exact"));
        assert!(!matches("/exact$", "/exact/"));
        assert!(matches("*", "/anything"));
    }
}
