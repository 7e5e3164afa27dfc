//! Creators' opt-outs sent in `X-Robots-Tag` response headers, pure: which directives a
//! response carries for ldawt, and whether one of them is on the disallowed list
//! (`--disallowed-header-directives`, by default `noai`, `noimageai`, `noindex`,
//! `noimageindex`).
//!
//! A header value is a comma-separated list of directives. An item of the form `agent: rule`
//! scopes that rule, and the rules after it in the same value, to `agent`; only unscoped rules
//! and rules scoped to `ldawt` or `*` apply to us, other agents' rules are ignored. Rules that
//! take a value themselves (`unavailable_after: …`, `max-image-preview: …`) are recognised and
//! never mistaken for a scope. Several `X-Robots-Tag` headers are read independently.

/// The user-agent token a response may address ldawt by (`X-Robots-Tag: ldawt: noai`).
pub const ROBOTS_TOKEN: &str = "ldawt";

/// The directives that stop a body from being stored unless told otherwise.
pub const DEFAULT_DISALLOWED: [&str; 4] = ["noai", "noimageai", "noindex", "noimageindex"];

/// Directives whose own syntax is `name: value`; their colon does not open a scope.
const VALUED: [&str; 5] = [
    "unavailable_after",
    "max-snippet",
    "max-image-preview",
    "max-video-preview",
    "indexifembedded",
];

/// The first directive of `values` (the `X-Robots-Tag` header values of one response) that
/// applies to `token` and is in `disallowed` (compared case-insensitively; `disallowed` is
/// expected lower-case), or `None` when the response may be stored.
pub fn disallowed_directive(values: &[&str], disallowed: &[String], token: &str) -> Option<String> {
    if disallowed.is_empty() {
        return None;
    }
    values
        .iter()
        .flat_map(|v| applicable(v, token))
        .find(|d| disallowed.iter().any(|x| x == d))
}

/// The directives of one header value that apply to `token`, lower-cased.
pub fn applicable(value: &str, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut applies = true;
    for item in value.split(',') {
        let item = item.trim();
        let rule = match item.split_once(':') {
            Some((head, rest)) if is_scope(head) => {
                let scope = head.trim();
                applies = scope == "*" || scope.eq_ignore_ascii_case(token);
                rest.trim()
            }
            _ => item,
        };
        if applies && !rule.is_empty() {
            out.push(rule.to_ascii_lowercase());
        }
    }
    out
}

/// True when `head` (the text before a colon) names a user agent rather than a valued rule.
fn is_scope(head: &str) -> bool {
    let head = head.trim();
    !head.is_empty()
        && !head.contains(char::is_whitespace)
        && !VALUED.iter().any(|v| head.eq_ignore_ascii_case(v))
}

/// The disallowed directive of a response's headers, if any (see [`disallowed_directive`]).
pub fn opt_out(headers: &reqwest::header::HeaderMap, disallowed: &[String]) -> Option<String> {
    if disallowed.is_empty() {
        return None;
    }
    let values: Vec<&str> = headers
        .get_all("x-robots-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    disallowed_directive(&values, disallowed, ROBOTS_TOKEN)
}

/// Parses `--disallowed-header-directives a,b`: lower-cased, blanks dropped; an empty string
/// gives an empty list (opt-outs not checked).
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_DISALLOWED.iter().map(|s| s.to_string()).collect()
    }

    fn check(values: &[&str]) -> Option<String> {
        disallowed_directive(values, &defaults(), ROBOTS_TOKEN)
    }

    #[test]
    fn unscoped_directives_apply() {
        assert_eq!(check(&["noai"]).as_deref(), Some("noai"));
        assert_eq!(check(&["NoImageAI"]).as_deref(), Some("noimageai"));
        assert_eq!(check(&["nofollow, noindex"]).as_deref(), Some("noindex"));
        assert_eq!(
            check(&["noarchive", "noimageindex"]).as_deref(),
            Some("noimageindex")
        );
        assert_eq!(check(&["nofollow, noarchive"]), None);
        assert_eq!(check(&[]), None);
        assert_eq!(check(&[""]), None);
    }

    #[test]
    fn scopes_for_us_or_everyone_apply_others_do_not() {
        assert_eq!(check(&["ldawt: noai"]).as_deref(), Some("noai"));
        assert_eq!(check(&["LDAWT:noindex"]).as_deref(), Some("noindex"));
        assert_eq!(check(&["*: noimageai"]).as_deref(), Some("noimageai"));
        assert_eq!(check(&["googlebot: noindex"]), None);
        assert_eq!(
            check(&["otherbot: noai, noindex"]),
            None,
            "scope carries on"
        );
        assert_eq!(
            check(&["otherbot: noai, ldawt: noimageindex"]).as_deref(),
            Some("noimageindex")
        );
        assert_eq!(
            check(&["otherbot: noai", "noindex"]).as_deref(),
            Some("noindex")
        );
    }

    #[test]
    fn valued_rules_are_not_scopes() {
        assert_eq!(
            check(&["unavailable_after: 25 Jun 2010 15:00:00 PST"]),
            None
        );
        assert_eq!(
            check(&["max-image-preview: large, noai"]).as_deref(),
            Some("noai")
        );
        assert_eq!(
            applicable("otherbot: noai, max-snippet: 20", ROBOTS_TOKEN),
            Vec::<String>::new()
        );
        assert_eq!(
            applicable("max-snippet: 20, noai", ROBOTS_TOKEN),
            vec!["max-snippet: 20".to_string(), "noai".to_string()]
        );
    }

    #[test]
    fn the_list_can_be_changed_or_disabled() {
        let only_noai = parse_list(" NoAI , ");
        assert_eq!(only_noai, vec!["noai".to_string()]);
        assert_eq!(
            disallowed_directive(&["noindex"], &only_noai, ROBOTS_TOKEN),
            None
        );
        assert_eq!(
            disallowed_directive(&["noai"], &only_noai, ROBOTS_TOKEN).as_deref(),
            Some("noai")
        );
        assert!(parse_list("").is_empty());
        assert_eq!(disallowed_directive(&["noai"], &[], ROBOTS_TOKEN), None);
    }
}
