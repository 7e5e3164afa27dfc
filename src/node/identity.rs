//! The node's libp2p identity, kept in the data dir (`identity.key`, protobuf-encoded ed25519
//! keypair, mode 0600) so a restarted node has the same peer id and its `--join` line stays
//! valid.

use std::path::Path;

use libp2p::identity::Keypair;

/// Identity file problems.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read or written.
    #[error("identity file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("identity file {path} is not a valid key: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Loads the keypair at `path`, creating a new ed25519 one if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| IdentityError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| io(std::io::Error::other(e)))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            crate::layout::write_atomic_mode(path, &bytes, 0o600).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/identity.key");
        let a = load_or_create(&p).unwrap();
        let b = load_or_create(&p).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "the key is private");
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(
            load_or_create(&p),
            Err(IdentityError::Invalid { .. })
        ));
    }
}
