//! Pure logic: shard planning, the lease book, bidding scores, naming rules. Nothing in this
//! module performs I/O or reads a clock — time is always an argument (`now: UnixMillis`) — so
//! all of it is unit- and property-tested without sockets, files or sleeps.

pub mod bid;
pub mod content;
pub mod host_conns;
pub mod host_pace;
pub mod ids;
pub mod lease;
pub mod lease_state;
pub mod naming;
pub mod node_stats;
pub mod retry;
pub mod shard;
pub mod split_plan;
pub mod swarm_budget;
pub mod time;
