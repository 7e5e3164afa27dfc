//! The swarm key: a libp2p pnet pre-shared key in the `/key/swarm/psk/1.0.0/` text format
//! (three lines: the type, `/base16/`, 64 hex digits — the format go-ipfs/kubo use). A seeder
//! creates one in its data dir on first run (`swarm.key`, mode 0600) and reuses it; workers
//! read it from `--swarm-key FILE` or from `LDAWT_SWARM_KEY` (64 hex digits), never from a
//! command-line value that `ps` would show.

use std::path::{Path, PathBuf};

use crate::net::PreSharedKey;

/// The key file's name in a seeder's data dir.
pub const KEY_FILE: &str = crate::layout::SWARM_KEY_FILE;

/// The environment variable that may hold the key as 64 hex digits.
pub const KEY_ENV: &str = "LDAWT_SWARM_KEY";

/// Where a node gets its swarm key.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// No key: an open swarm (`--open`).
    Open,
    /// An existing key file (`--swarm-key FILE`).
    File(PathBuf),
    /// A key given in the environment ([`KEY_ENV`]).
    Env(PreSharedKey),
    /// The seeder's own key file, created on first run.
    CreateOrReuse(PathBuf),
}

/// The key a node runs with.
#[derive(Debug, Clone)]
pub struct SwarmKey {
    /// The key; `None` for an open swarm.
    pub psk: Option<PreSharedKey>,
    /// The file it came from (absolute when it could be resolved), if any.
    pub file: Option<PathBuf>,
    /// True when the file was created by this run.
    pub created: bool,
}

/// Swarm-key problems.
#[derive(Debug, thiserror::Error)]
pub enum SwarmKeyError {
    /// The file could not be read or written.
    #[error("swarm key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The text is not a swarm key.
    #[error("{origin} is not a swarm key: {reason}")]
    Invalid {
        /// The file or variable.
        origin: String,
        /// What is expected.
        reason: String,
    },
}

/// Parses a key file's text.
pub fn parse_file_text(text: &str, origin: &str) -> Result<PreSharedKey, SwarmKeyError> {
    text.parse::<PreSharedKey>()
        .map_err(|e| SwarmKeyError::Invalid {
            origin: origin.to_string(),
            reason: format!(
                "{e:?}; expected three lines: /key/swarm/psk/1.0.0/, /base16/, 64 hex digits"
            ),
        })
}

/// Parses 64 hex digits (surrounding whitespace ignored).
pub fn parse_hex(hex_text: &str, origin: &str) -> Result<PreSharedKey, SwarmKeyError> {
    let t = hex_text.trim();
    let bad = |reason: String| SwarmKeyError::Invalid {
        origin: origin.to_string(),
        reason,
    };
    let bytes = hex::decode(t).map_err(|e| bad(format!("{e}; expected 64 hex digits")))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(format!("{} bytes; expected 32 (64 hex digits)", b.len())))?;
    Ok(PreSharedKey::new(key))
}

/// Reads the key file at `path`.
pub fn load(path: &Path) -> Result<PreSharedKey, SwarmKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| SwarmKeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_file_text(&text, &path.display().to_string())
}

/// A fresh key from the operating system's random source.
pub fn generate() -> std::io::Result<PreSharedKey> {
    let mut key = [0u8; 32];
    let n = rustix::rand::getrandom(&mut key, rustix::rand::GetRandomFlags::empty())?;
    if n != key.len() {
        return Err(std::io::Error::other("short read from the random source"));
    }
    Ok(PreSharedKey::new(key))
}

/// Reads the key at `path`, or creates it (mode 0600, written atomically) when missing.
/// Returns the key and whether it was created.
pub fn load_or_create(path: &Path) -> Result<(PreSharedKey, bool), SwarmKeyError> {
    let io = |source| SwarmKeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(_) => return load(path).map(|k| (k, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let key = generate().map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::layout::write_atomic_mode(path, key.to_key_file().as_bytes(), 0o600).map_err(io)?;
    Ok((key, true))
}

/// Resolves `source` into the key the node runs with.
pub fn resolve(source: &KeySource) -> Result<SwarmKey, SwarmKeyError> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    Ok(match source {
        KeySource::Open => SwarmKey {
            psk: None,
            file: None,
            created: false,
        },
        KeySource::Env(k) => SwarmKey {
            psk: Some(*k),
            file: None,
            created: false,
        },
        KeySource::File(p) => {
            let psk = load(p)?;
            warn_if_readable_by_others(p);
            SwarmKey {
                psk: Some(psk),
                file: Some(absolute(p)),
                created: false,
            }
        }
        KeySource::CreateOrReuse(p) => {
            let (psk, created) = load_or_create(p)?;
            if !created {
                warn_if_readable_by_others(p);
            }
            SwarmKey {
                psk: Some(psk),
                file: Some(absolute(p)),
                created,
            }
        }
    })
}

/// Logs a warning when other users may read the key file.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the swarm key file is readable by other users; chmod 600 it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_private_reused_and_in_the_libp2p_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join(KEY_FILE);
        let (a, created) = load_or_create(&p).unwrap();
        assert!(created);
        let (b, created) = load_or_create(&p).unwrap();
        assert!(!created);
        assert_eq!(a, b);
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["/key/swarm/psk/1.0.0/", "/base16/"]);
        assert_eq!(lines[2].len(), 64);
        assert_eq!(parse_hex(lines[2], "env").unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = dir.path().join("other.key");
        let (c, _) = load_or_create(&other).unwrap();
        assert_ne!(a, c, "every seeder gets its own random key");
    }

    #[test]
    fn bad_keys_are_refused_naming_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.key");
        std::fs::write(&p, "hello\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.key") && e.contains("/key/swarm/psk/1.0.0/"),
            "{e}"
        );
        let e = parse_hex("abcd", KEY_ENV).unwrap_err().to_string();
        assert!(e.contains(KEY_ENV) && e.contains("64 hex"), "{e}");
        assert!(parse_hex(&"zz".repeat(32), KEY_ENV).is_err());
        assert!(matches!(
            load(&dir.path().join("missing.key")),
            Err(SwarmKeyError::Io { .. })
        ));
    }
}
