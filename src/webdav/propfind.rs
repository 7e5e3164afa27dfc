//! Parsing of WebDAV `PROPFIND` (Depth: 1) multistatus replies into [`DavEntry`]s: name,
//! whether it is a collection, and its size. Pure functions, no I/O.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One member of a WebDAV collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavEntry {
    /// The decoded last path segment (file or folder name).
    pub name: String,
    /// The decoded absolute path on the server (from `href`), without a trailing slash.
    pub path: String,
    /// True for collections (folders).
    pub is_dir: bool,
    /// `getcontentlength`, when the server gave it.
    pub size: Option<u64>,
}

/// The body of a Depth-1 PROPFIND asking for what listing and skipping need.
pub const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>"#;

/// Decodes `%XX` escapes (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The path part of an href (which may be a full URL), decoded, without a trailing slash.
fn href_path(href: &str) -> String {
    let path = match href.find("://") {
        Some(p) => href[p + 3..].find('/').map_or("/", |q| &href[p + 3 + q..]),
        None => href,
    };
    let decoded = percent_decode(path);
    let trimmed = decoded.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Parses a multistatus reply; `self_path` (the collection asked for, decoded) is left out.
pub fn parse_multistatus(xml: &str, self_path: &str) -> Result<Vec<DavEntry>, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let self_path = href_path(self_path);
    let mut entries = Vec::new();
    let (mut href, mut is_dir, mut size) = (String::new(), false, None);
    let mut text = String::new();
    let mut in_response = false;
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("bad PROPFIND XML: {e}"))?
        {
            Event::Start(e) => {
                text.clear();
                match e.local_name().as_ref() {
                    b"response" => {
                        in_response = true;
                        (href, is_dir, size) = (String::new(), false, None);
                    }
                    b"collection" => is_dir = true,
                    _ => {}
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == b"collection" => is_dir = true,
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                if let Some(c) = r.resolve_char_ref().ok().flatten() {
                    text.push(c);
                } else if let Some(c) = predefined_entity(&name) {
                    text.push(c);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"href" if in_response => href = text.trim().to_string(),
                b"getcontentlength" if in_response => size = text.trim().parse().ok(),
                b"response" => {
                    in_response = false;
                    let path = href_path(&href);
                    if !href.is_empty() && path != self_path {
                        let name = path.rsplit('/').next().unwrap_or_default().to_string();
                        entries.push(DavEntry {
                            name,
                            path,
                            is_dir,
                            size,
                        });
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RCLONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/a/</D:href><D:propstat><D:prop><D:resourcetype><D:collection xmlns:D="DAV:"/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/a/h%20x.txt</D:href><D:propstat><D:prop><D:resourcetype></D:resourcetype><D:getcontentlength>6</D:getcontentlength></D:prop></D:propstat></D:response><D:response><D:href>http://host:1/a/sub/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response></D:multistatus>"#;

    #[test]
    fn parses_files_and_folders_and_skips_self() {
        let e = parse_multistatus(RCLONE, "/a/").unwrap();
        assert_eq!(
            e,
            vec![
                DavEntry {
                    name: "h x.txt".into(),
                    path: "/a/h x.txt".into(),
                    is_dir: false,
                    size: Some(6)
                },
                DavEntry {
                    name: "sub".into(),
                    path: "/a/sub".into(),
                    is_dir: true,
                    size: None
                },
            ]
        );
    }

    #[test]
    fn entities_and_escapes_are_decoded() {
        let xml = r#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>/x/a&amp;b%C3%A9.tar</d:href><d:propstat><d:prop><d:getcontentlength>12</d:getcontentlength></d:prop></d:propstat></d:response></d:multistatus>"#;
        let e = parse_multistatus(xml, "/x").unwrap();
        assert_eq!(e[0].name, "a&bé.tar");
        assert_eq!(e[0].size, Some(12));
        assert!(parse_multistatus("<a><b></a>", "/").is_err());
    }

    #[test]
    fn percent_decode_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
