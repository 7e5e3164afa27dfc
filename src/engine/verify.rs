//! `--verify-hash`: a downloaded body's digest is compared with the one the input lists for its
//! row; a mismatch turns the row into a failed `hash_mismatch` and the body is dropped, never
//! stored. The comparison is pure ([`compare`]); hashing runs on the blocking pool (a spilled
//! body is read back from its file). A sha256 computed here is kept for the results, so the
//! writer does not hash the body again.

use std::io::Read;

use md5::Md5;
use sha2::{Digest, Sha256};

use super::writer::WriterMsg;
use super::{HashAlgorithm, RowResult, RowStatus};
use crate::fetch::{Body, sha256_of};

/// The error kind of a row whose body does not match its listed digest.
pub const HASH_MISMATCH: &str = "hash_mismatch";

/// Compares the listed digest `expected` (hex, any case, surrounding blanks ignored) with the
/// body's `actual` hex digest. The error says what differs.
pub fn compare(
    expected: &str,
    actual: &str,
    algorithm: HashAlgorithm,
    column: &str,
) -> Result<(), String> {
    let want = expected.trim().to_ascii_lowercase();
    let name = algorithm.name();
    if want.len() != algorithm.hex_len() || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "column '{column}' holds '{}', not a {name} ({} hex digits)",
            expected.trim(),
            algorithm.hex_len()
        ));
    }
    if want == actual {
        Ok(())
    } else {
        Err(format!(
            "{name} of the body is {actual}, column '{column}' lists {want}"
        ))
    }
}

/// The hex digest of a file's bytes under the hash `D`, read in 64 KiB pieces.
fn digest_of_file<D: Digest>(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = D::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

/// The body's hex digest; a sha256 is also written into `result` if it was missing.
fn digest(
    result: &mut RowResult,
    body: &Body,
    algorithm: HashAlgorithm,
) -> std::io::Result<String> {
    match (algorithm, body) {
        (HashAlgorithm::Sha256, _) if result.sha256.is_some() => {
            Ok(result.sha256.clone().unwrap_or_default())
        }
        (HashAlgorithm::Sha256, Body::Memory(chunks)) => {
            let hex = hex::encode(sha256_of(chunks));
            result.sha256 = Some(hex.clone());
            Ok(hex)
        }
        (HashAlgorithm::Sha256, Body::Spilled { path }) => digest_of_file::<Sha256>(path),
        (HashAlgorithm::Md5, Body::Memory(chunks)) => {
            let mut h = Md5::new();
            for c in chunks {
                h.update(c);
            }
            Ok(hex::encode(h.finalize()))
        }
        (HashAlgorithm::Md5, Body::Spilled { path }) => digest_of_file::<Md5>(path),
    }
}

/// Checks a fetched row against `expected` (the row's cell of `column`); rows that were not
/// stored pass through unchanged.
pub(crate) async fn check(
    msg: WriterMsg,
    algorithm: HashAlgorithm,
    column: String,
    expected: String,
) -> WriterMsg {
    let WriterMsg::Stored {
        mut result,
        body,
        precompressed,
    } = msg
    else {
        return msg;
    };
    let base = RowResult {
        status: RowStatus::Failed,
        error_kind: Some(HASH_MISMATCH.to_string()),
        bytes: 0,
        sha256: None,
        member: None,
        ..result.clone()
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let verdict = match digest(&mut result, &body, algorithm) {
            Ok(actual) => compare(&expected, &actual, algorithm, &column),
            Err(e) => Err(format!("cannot read the body back to hash it: {e}")),
        };
        match verdict {
            Ok(()) => WriterMsg::Stored {
                result,
                body,
                precompressed,
            },
            Err(message) => {
                if let Body::Spilled { path } = &body {
                    let _ = std::fs::remove_file(path);
                }
                WriterMsg::Record(RowResult {
                    status: RowStatus::Failed,
                    error_kind: Some(HASH_MISMATCH.to_string()),
                    error_message: Some(message),
                    bytes: 0,
                    sha256: None,
                    member: None,
                    ..result
                })
            }
        }
    })
    .await;
    outcome.unwrap_or_else(|e| {
        // The hashing task panicked: nothing can be said of the body, so it is not stored.
        WriterMsg::Record(RowResult {
            error_message: Some(format!("hash check failed: {e}")),
            ..base
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const ABC_MD5: &str = "900150983cd24fb0d6963f7d28e17f72";

    #[test]
    fn digests_compare_as_hex_in_any_case() {
        let actual = hex::encode(sha256_of(&[bytes::Bytes::from_static(b"abc")]));
        assert_eq!(actual, ABC_SHA256);
        let ok = compare(
            &format!(" {} ", ABC_SHA256.to_uppercase()),
            &actual,
            HashAlgorithm::Sha256,
            "h",
        );
        assert_eq!(ok, Ok(()));
        let e = compare(ABC_MD5, ABC_SHA256, HashAlgorithm::Sha256, "h").unwrap_err();
        assert!(e.contains("not a sha256"), "{e}");
        let other = ABC_SHA256.replace('b', "c");
        let e = compare(&other, ABC_SHA256, HashAlgorithm::Sha256, "h").unwrap_err();
        assert!(e.contains(&other) && e.contains("column 'h'"), "{e}");
        assert!(compare("xyz", ABC_MD5, HashAlgorithm::Md5, "h").is_err());
    }

    #[test]
    fn md5_of_memory_and_file_agree() {
        let mut r = RowResult {
            index: 0,
            url: None,
            class: None,
            status: RowStatus::Ok,
            http_status: Some(200),
            error_kind: None,
            error_message: None,
            bytes: 3,
            sha256: None,
            member: None,
            attempts: 1,
            elapsed_ms: 0,
        };
        let mem = Body::Memory(vec![
            bytes::Bytes::from_static(b"a"),
            bytes::Bytes::from_static(b"bc"),
        ]);
        assert_eq!(digest(&mut r, &mem, HashAlgorithm::Md5).unwrap(), ABC_MD5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill");
        std::fs::write(&path, b"abc").unwrap();
        let spilled = Body::Spilled { path };
        assert_eq!(
            digest(&mut r, &spilled, HashAlgorithm::Md5).unwrap(),
            ABC_MD5
        );
        assert_eq!(r.sha256, None);
        assert_eq!(
            digest(&mut r, &spilled, HashAlgorithm::Sha256).unwrap(),
            ABC_SHA256
        );
        assert_eq!(
            digest(&mut r, &mem, HashAlgorithm::Sha256).unwrap(),
            ABC_SHA256
        );
        assert_eq!(r.sha256.as_deref(), Some(ABC_SHA256));
    }
}
