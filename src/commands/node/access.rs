//! The swarm-access flags of `ldawt node` (swarm key, `--open`, `--allow-peer`,
//! `--allow-private-urls`) and the choice of the key's source: `--swarm-key FILE`, then
//! `LDAWT_SWARM_KEY`, then — for a seeder only — its own `swarm.key` in the data dir, created on
//! first run. A worker with none of them and no `--open` is refused.

use std::path::{Path, PathBuf};

use clap::Args;
use libp2p::PeerId;

use crate::exit::UsageError;
use crate::node::swarm_key::{self, KEY_ENV, KEY_FILE, KeySource};

/// Who may join the swarm, and what a remote seeder may ask of this worker.
#[derive(Debug, Args)]
#[command(next_help_heading = "Swarm access")]
pub struct AccessArgs {
    /// The swarm key file (`/key/swarm/psk/1.0.0/` format) of the swarm to join: the seeder
    /// prints its path with the `--join` line (`<data dir>/swarm.key`). Alternatively set
    /// LDAWT_SWARM_KEY to its 64 hex digits. A seeder without either creates its own key.
    #[arg(long, value_name = "FILE", conflicts_with = "open")]
    pub swarm_key: Option<PathBuf>,
    /// Run an open swarm, without a key: any host that can reach this node can join it,
    /// receive its rows and report results. Only for trusted, isolated networks.
    #[arg(long)]
    pub open: bool,
    /// Only this peer may connect (repeatable); connections with any other peer are closed.
    /// Applies on top of the swarm key.
    #[arg(long = "allow-peer", value_name = "PEER_ID")]
    pub allow_peers: Vec<PeerId>,
    /// Let rows of a remote seeder point at loopback, private, link-local or multicast
    /// addresses. Needed for tests and lab-internal mirrors; without it, a seeder cannot make
    /// this worker probe its own network.
    #[arg(long)]
    pub allow_private_urls: bool,
}

/// Where the node's swarm key comes from. `env_key` is the value of `LDAWT_SWARM_KEY`.
pub fn key_source(
    a: &AccessArgs,
    seeding: bool,
    data_dir: &Path,
    env_key: Option<&str>,
) -> Result<KeySource, UsageError> {
    if a.open {
        if env_key.is_some() {
            tracing::warn!("--open: {KEY_ENV} is ignored");
        }
        return Ok(KeySource::Open);
    }
    if let Some(p) = &a.swarm_key {
        // Read now so a missing or malformed file is refused before anything is created.
        swarm_key::load(p).map_err(|e| UsageError::new(e.to_string()))?;
        return Ok(KeySource::File(p.clone()));
    }
    if let Some(hex) = env_key.filter(|v| !v.trim().is_empty()) {
        let key = swarm_key::parse_hex(hex, KEY_ENV).map_err(|e| UsageError::new(e.to_string()))?;
        return Ok(KeySource::Env(key));
    }
    if seeding {
        return Ok(KeySource::CreateOrReuse(
            crate::layout::DataDir::new(data_dir).swarm_key(),
        ));
    }
    Err(UsageError::new(format!(
        "this node has no swarm key: pass --swarm-key FILE with the key its seeder printed \
         (<seeder data dir>/{KEY_FILE}), or set {KEY_ENV} to the key's 64 hex digits; \
         --open runs a keyless swarm that anyone on the network can join"
    )))
}
