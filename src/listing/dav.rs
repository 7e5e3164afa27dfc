//! WebDAV collection listings: a breadth-first walk with Depth-1 PROPFINDs, files recorded
//! with paths relative to the starting collection and their `getcontentlength`.

use reqwest::Url;

use super::{Listing, ListingError};
use crate::webdav::client::child_collection_url;
use crate::webdav::{WebDavClient, WebDavError};

/// Upper bound on collections visited, so a misbehaving server cannot loop forever.
const MAX_COLLECTIONS: usize = 100_000;

/// Lists the collection at `url` recursively. A missing collection is an error naming it.
pub async fn read_webdav(client: &WebDavClient, url: &Url) -> Result<Listing, ListingError> {
    let mut out = Listing::new();
    let mut queue = std::collections::VecDeque::from([(url.clone(), String::new())]);
    let mut visited = 0usize;
    let mut first = true;
    while let Some((dir, prefix)) = queue.pop_front() {
        visited += 1;
        if visited > MAX_COLLECTIONS {
            return Err(super::unreadable(
                url.as_str(),
                format!("more than {MAX_COLLECTIONS} collections"),
            ));
        }
        // The first request fails fast (no retries) so a wrong address or password is quick.
        let entries = client.list(&dir, !first).await?.ok_or_else(|| {
            ListingError::WebDav(WebDavError::BadUrl {
                url: dir.to_string(),
                reason: "no such WebDAV collection (HTTP 404)".into(),
            })
        })?;
        first = false;
        for e in entries {
            let rel = format!("{prefix}{}", e.name);
            if e.is_dir {
                queue.push_back((child_collection_url(&dir, &e.name), format!("{rel}/")));
            } else {
                out.insert(rel, e.size);
            }
        }
    }
    Ok(out)
}
