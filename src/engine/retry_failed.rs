//! `--retry-failed`, pure: which outcomes of a previous run are final (kept as they are) and
//! which are worth another try. A row is retried when it failed with a kind another attempt
//! may cure (timeouts, broken connections, 5xx, 429, unknown kinds) or was interrupted; rows
//! refused for good (404, not an image, opted out, hash mismatch, filtered…) keep their result.

use super::{RowResult, RowStatus};
use crate::model::retry::Failure;

/// True when a previous run's `result` stands (carried over by `--retry-failed`).
pub fn is_final(result: &RowResult) -> bool {
    match result.status {
        RowStatus::Ok => true,
        RowStatus::Skipped => result.error_kind.as_deref() != Some("interrupted"),
        RowStatus::Failed => result.error_kind.as_deref().is_some_and(is_final_kind),
    }
}

/// True for failure kinds no retry can cure. Unknown kinds are retried: a retry costs one
/// request, a wrongly final row costs an image.
pub fn is_final_kind(kind: &str) -> bool {
    if let Some(code) = kind
        .strip_prefix("http_")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return !Failure::Http(code).is_retryable();
    }
    matches!(
        kind,
        "invalid_url"
            | "too_many_redirects"
            | "too_large"
            | "not_image"
            | "tls_certificate"
            | "opted_out"
            | "hash_mismatch"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: RowStatus, kind: Option<&str>) -> RowResult {
        RowResult {
            index: 0,
            url: None,
            class: None,
            status,
            http_status: None,
            error_kind: kind.map(str::to_string),
            error_message: None,
            bytes: 0,
            sha256: None,
            member: None,
            attempts: 1,
            elapsed_ms: 0,
        }
    }

    #[test]
    fn final_and_retryable_outcomes() {
        assert!(is_final(&row(RowStatus::Ok, None)));
        for kind in [
            "http_404",
            "http_403",
            "not_image",
            "hash_mismatch",
            "opted_out",
        ] {
            assert!(is_final(&row(RowStatus::Failed, Some(kind))), "{kind}");
        }
        for kind in [
            "http_503",
            "http_429",
            "timeout_idle",
            "connect",
            "dns_timeout",
        ] {
            assert!(!is_final(&row(RowStatus::Failed, Some(kind))), "{kind}");
        }
        assert!(!is_final(&row(RowStatus::Failed, None)));
        assert!(is_final(&row(
            RowStatus::Skipped,
            Some("robots_disallowed")
        )));
        assert!(is_final(&row(RowStatus::Skipped, Some("image_too_small"))));
        assert!(!is_final(&row(RowStatus::Skipped, Some("interrupted"))));
    }
}
