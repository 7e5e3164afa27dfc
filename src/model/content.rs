//! Content rules, pure: is a 200 response an acceptable image? An HTML page (by type or by its
//! first bytes) never is; a declared type must match the accepted patterns (`image/*` style);
//! an absent or generic type (`application/octet-stream`, S3's `binary/octet-stream`) is
//! accepted when the bytes sniff as an accepted type. Also detects JPEGs cut short.

use crate::model::naming::{looks_like_html, sniff_extension};

/// The bare, lower-cased media type of a `Content-Type` value (parameters stripped).
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// True when `media` matches one of `accept` (`image/*`, `image/png`, `*/*`).
pub fn type_accepted(media: &str, accept: &[String]) -> bool {
    accept.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*/*" || pattern == media {
            return true;
        }
        pattern
            .strip_suffix("/*")
            .is_some_and(|top| media.split('/').next() == Some(top))
    })
}

fn sniffed_media(head: &[u8]) -> Option<&'static str> {
    Some(match sniff_extension(head)? {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "tiff" => "image/tiff",
        "bmp" => "image/bmp",
        "avif" => "image/avif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// Checks a 200 response's type and first bytes; `Err` carries the reason for the results.
pub fn check_content(
    content_type: Option<&str>,
    head: &[u8],
    accept: &[String],
) -> Result<(), String> {
    let media = content_type.map(media_type).filter(|m| !m.is_empty());
    if looks_like_html(head) || media.as_deref().is_some_and(|m| m == "text/html") {
        return Err(format!(
            "the server sent an HTML page (Content-Type {}), not an image",
            media.as_deref().unwrap_or("absent")
        ));
    }
    match media.as_deref() {
        Some(m) if type_accepted(m, accept) => Ok(()),
        None | Some("application/octet-stream" | "binary/octet-stream") => {
            match sniffed_media(head) {
                Some(sniffed) if type_accepted(sniffed, accept) => Ok(()),
                _ => Err(format!(
                    "Content-Type {} and the bytes are not a recognised accepted type",
                    media.as_deref().unwrap_or("absent")
                )),
            }
        }
        Some(m) => Err(format!("Content-Type {m} is not accepted")),
    }
}

/// True when a body that starts like a JPEG does not end with its end-of-image marker (a
/// truncated transfer). Trailing zero padding is tolerated.
pub fn jpeg_truncated(head: &[u8], last_two: [u8; 2]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF]) && last_two != [0xFF, 0xD9] && last_two[1] != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10];

    fn images() -> Vec<String> {
        vec!["image/*".to_string()]
    }

    #[test]
    fn declared_types_are_matched() {
        assert!(check_content(Some("image/jpeg; charset=x"), JPEG, &images()).is_ok());
        assert!(check_content(Some("IMAGE/PNG"), b"\x89PNG", &images()).is_ok());
        assert!(check_content(Some("application/json"), b"{}", &images()).is_err());
        let pdf = vec!["application/pdf".to_string()];
        assert!(check_content(Some("application/pdf"), b"%PDF-1.4", &pdf).is_ok());
    }

    #[test]
    fn html_is_never_an_image() {
        assert!(check_content(Some("text/html"), b"<html>", &images()).is_err());
        assert!(check_content(Some("image/jpeg"), b"<!DOCTYPE html>", &images()).is_err());
        assert!(check_content(None, b"<html>", &images()).is_err());
    }

    #[test]
    fn absent_or_generic_types_fall_back_to_sniffing() {
        assert!(check_content(None, JPEG, &images()).is_ok());
        assert!(check_content(Some("binary/octet-stream"), JPEG, &images()).is_ok());
        assert!(check_content(Some("application/octet-stream"), b"zzzz", &images()).is_err());
    }

    #[test]
    fn truncated_jpegs_are_detected() {
        assert!(!jpeg_truncated(JPEG, [0xFF, 0xD9]));
        assert!(!jpeg_truncated(JPEG, [0xD9, 0x00]));
        assert!(jpeg_truncated(JPEG, [0x12, 0x34]));
        assert!(!jpeg_truncated(b"\x89PNG", [0x12, 0x34]));
    }
}
