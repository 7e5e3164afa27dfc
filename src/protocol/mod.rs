//! Explicit, versioned wire types. Each protocol keeps its name, version and size limits next to
//! its message types; every message round-trips in a unit test beside it.

pub mod settings;
pub mod status;
pub mod swarm;
