//! What a worker may tell a remote seeder about a failed row: the error kind and the HTTP
//! status, nothing else. Raw error texts name internal hosts, addresses, ports and resolver
//! details (`connection refused` vs `timed out` tells a prober which internal ports exist), so
//! results sent to another peer carry [`sanitized_error`] instead of the row's message.

use super::{RowResult, RowStatus};

/// Longest error kind passed on; longer (or odd) kinds become `error`.
const MAX_KIND: usize = 40;

/// The short message for `row` that may leave the machine: `"<kind>"` or
/// `"<kind> (HTTP <status>)"`; `None` for a stored row. A kind that is not a plain
/// `[a-z0-9_]` word is replaced by `error` so nothing but the fixed vocabulary goes out.
pub fn sanitized_error(row: &RowResult) -> Option<String> {
    if row.status == RowStatus::Ok {
        return None;
    }
    let kind = row
        .error_kind
        .as_deref()
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_KIND
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .unwrap_or("error");
    Some(match row.http_status {
        Some(status) => format!("{kind} (HTTP {status})"),
        None => kind.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: RowStatus, kind: Option<&str>, http: Option<u16>, msg: &str) -> RowResult {
        RowResult {
            index: 7,
            url: Some("http://10.0.0.5:6379/secret".into()),
            class: None,
            status,
            http_status: http,
            error_kind: kind.map(str::to_string),
            error_message: Some(msg.into()),
            bytes: 0,
            sha256: None,
            member: None,
            attempts: 1,
            elapsed_ms: 3,
        }
    }

    #[test]
    fn only_the_kind_and_status_go_out() {
        let r = row(
            RowStatus::Failed,
            Some("connect"),
            None,
            "error sending request for url (http://10.0.0.5:6379/): tcp connect error: \
             Connection refused (os error 111)",
        );
        assert_eq!(sanitized_error(&r).as_deref(), Some("connect"));
        let r = row(RowStatus::Failed, Some("http_404"), Some(404), "HTTP 404");
        assert_eq!(sanitized_error(&r).as_deref(), Some("http_404 (HTTP 404)"));
        let r = row(
            RowStatus::Failed,
            Some("dns_nxdomain"),
            None,
            "DNS lookup of intranet.corp: no such host (NXDOMAIN)",
        );
        assert_eq!(sanitized_error(&r).as_deref(), Some("dns_nxdomain"));
        let r = row(
            RowStatus::Failed,
            Some("blocked_address"),
            None,
            "127.0.0.1: the URL points to an internal address (blocked)",
        );
        assert_eq!(sanitized_error(&r).as_deref(), Some("blocked_address"));
        let r = row(RowStatus::Skipped, Some("interrupted"), None, "x");
        assert_eq!(sanitized_error(&r).as_deref(), Some("interrupted"));
    }

    #[test]
    fn odd_kinds_and_stored_rows() {
        let r = row(
            RowStatus::Failed,
            Some("Connection refused 10.0.0.5"),
            None,
            "",
        );
        assert_eq!(sanitized_error(&r).as_deref(), Some("error"));
        let r = row(RowStatus::Failed, None, Some(500), "");
        assert_eq!(sanitized_error(&r).as_deref(), Some("error (HTTP 500)"));
        let mut ok = row(RowStatus::Ok, None, Some(200), "");
        ok.error_message = None;
        assert_eq!(sanitized_error(&ok), None);
    }
}
