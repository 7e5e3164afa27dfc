//! Webdataset deliveries (pure): an `ok` row's image member is `KEY.<ext>` (KEY the row index
//! zero-padded to ten digits, as the engine names samples, so keys are unique in the dataset)
//! and it comes with `KEY.json` (bounded, a JSON object naming the same key, index and
//! sha256), `KEY.cls` when the row has a class (the id the seeder's class table gives it, so
//! every shard agrees) and `KEY.txt` with a caption column (bounded UTF-8). Nothing else.

use std::collections::HashMap;

use super::Invalid;
use super::rows::{ExpectedMember, MemberKind};
use crate::engine::sample_key;

/// Largest `KEY.json` accepted (URL, class, caption and extra cells are each bounded by the
/// results' own limits).
pub const MAX_JSON: u64 = 256 << 10;
/// Largest `KEY.txt` accepted.
pub const MAX_TXT: u64 = 128 << 10;
/// Largest `KEY.cls` accepted (a u32 in decimal).
pub const MAX_CLS: u64 = 10;

/// What a webdataset shard must hold beyond the images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleRules {
    /// The dataset's class table (name → id).
    pub class_ids: HashMap<String, u32>,
    /// Samples carry `KEY.txt`.
    pub captions: bool,
}

/// True when `ext` is 1–5 lower-case ASCII letters or digits.
pub fn is_extension(ext: &str) -> bool {
    (1..=5).contains(&ext.len())
        && ext
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Checks the image member name of row `index` (`KEY.<ext>`) and returns the members of its
/// sample: the image, then its side members.
pub fn sample_members(
    rules: &SampleRules,
    member: &str,
    index: u64,
    class: Option<&str>,
    image: ExpectedMember,
) -> Result<Vec<(String, ExpectedMember)>, String> {
    let key = sample_key(index);
    let ext = member
        .strip_prefix(&key)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or("not KEY.<ext> with the row's key")?;
    if !is_extension(ext) {
        return Err("not a 1-5 character lower-case extension".into());
    }
    if matches!(ext, "json" | "cls" | "txt") {
        return Err("an image named like a side member".into());
    }
    let side = |kind| ExpectedMember {
        kind,
        ..image.clone()
    };
    let mut out = vec![(format!("{key}.json"), side(MemberKind::Json))];
    if let Some(c) = class {
        let id = *rules
            .class_ids
            .get(c)
            .ok_or("its class is not in the dataset's class table")?;
        out.push((format!("{key}.cls"), side(MemberKind::Cls(id))));
    }
    if rules.captions {
        out.push((format!("{key}.txt"), side(MemberKind::Txt)));
    }
    out.insert(0, (member.to_string(), image));
    Ok(out)
}

/// The largest size a side member may announce.
pub fn side_limit(kind: &MemberKind) -> u64 {
    match kind {
        MemberKind::Image => u64::MAX,
        MemberKind::Json => MAX_JSON,
        MemberKind::Cls(_) => MAX_CLS,
        MemberKind::Txt => MAX_TXT,
    }
}

/// Checks a side member's content.
pub fn check_side(member: &str, want: &ExpectedMember, data: &[u8]) -> Result<(), Invalid> {
    let bad = |why: String| Invalid::UnexpectedEntry {
        path: member.chars().take(200).collect(),
        why,
    };
    match &want.kind {
        MemberKind::Image => Ok(()),
        MemberKind::Cls(id) => {
            let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8".into()))?;
            if text.trim() != id.to_string() {
                return Err(bad(format!(
                    "class id '{}' is not the dataset's id {id} for the row's class",
                    text.escape_default()
                        .to_string()
                        .chars()
                        .take(20)
                        .collect::<String>()
                )));
            }
            Ok(())
        }
        MemberKind::Txt => std::str::from_utf8(data)
            .map(|_| ())
            .map_err(|_| bad("caption not UTF-8".into())),
        MemberKind::Json => {
            let doc: serde_json::Value =
                serde_json::from_slice(data).map_err(|e| bad(format!("not JSON: {e}")))?;
            let key = sample_key(want.index);
            let sha = hex::encode(want.sha256);
            let ok = doc.get("key").and_then(|v| v.as_str()) == Some(key.as_str())
                && doc.get("index").and_then(serde_json::Value::as_u64) == Some(want.index)
                && doc.get("sha256").and_then(|v| v.as_str()) == Some(sha.as_str());
            if !ok {
                return Err(bad("not the row's key, index and sha256".into()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ExpectedMember {
        ExpectedMember {
            index: 7,
            size: 3,
            sha256: [1; 32],
            kind: MemberKind::Image,
        }
    }

    #[test]
    fn a_sample_is_its_image_and_its_side_members() {
        let rules = SampleRules {
            class_ids: [("bee".to_string(), 4)].into(),
            captions: true,
        };
        let m = sample_members(&rules, "0000000007.jpg", 7, Some("bee"), image()).unwrap();
        let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "0000000007.jpg",
                "0000000007.json",
                "0000000007.cls",
                "0000000007.txt"
            ]
        );
        assert_eq!(m[2].1.kind, MemberKind::Cls(4));
        for bad in [
            "0000000008.jpg",
            "../0000000007.jpg",
            "0000000007.JPG",
            "0000000007.json",
            "0000000007",
            "x/0000000007.jpg",
        ] {
            assert!(
                sample_members(&rules, bad, 7, Some("bee"), image()).is_err(),
                "{bad}"
            );
        }
        assert!(sample_members(&rules, "0000000007.jpg", 7, Some("wasp"), image()).is_err());
    }

    #[test]
    fn side_members_are_parsed_and_compared() {
        let cls = ExpectedMember {
            kind: MemberKind::Cls(4),
            ..image()
        };
        assert!(check_side("k.cls", &cls, b"4").is_ok());
        assert!(check_side("k.cls", &cls, b"5").is_err());
        let json = ExpectedMember {
            kind: MemberKind::Json,
            ..image()
        };
        let good = format!(
            r#"{{"key":"0000000007","index":7,"sha256":"{}"}}"#,
            hex::encode([1u8; 32])
        );
        assert!(check_side("k.json", &json, good.as_bytes()).is_ok());
        assert!(check_side("k.json", &json, b"{").is_err());
        assert!(check_side("k.json", &json, br#"{"key":"0000000007","index":7}"#).is_err());
    }
}
