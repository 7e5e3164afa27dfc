//! Explicit, versioned wire types. Each protocol keeps its name, version and size limits next to
//! its message types; every message round-trips in a unit test, and `wire_tests` pins the
//! encoded bytes of a sample of each.
//!
//! - [`control`]: worker ↔ seeder requests and responses (bids, grants, rows, renewals,
//!   completions, give-backs, typed refusals);
//! - [`transfer`]: the header of an archive/results transfer stream;
//! - [`gossip`]: the adverts published on the swarm's topic;
//! - [`codec`]: the versioned postcard envelope and size limits shared by all three;
//! - [`settings`]: a dataset's engine settings, sent with a grant;
//! - [`status`]: the node's HTTP status document.

pub mod codec;
pub mod control;
pub mod gossip;
pub mod settings;
pub mod status;
pub mod transfer;

pub use codec::{CodecError, Envelope, decode, encode};

#[cfg(test)]
mod wire_tests;
