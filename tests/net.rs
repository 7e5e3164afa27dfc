//! Transport tests with real sockets: in-process nodes on 127.0.0.1 (mDNS off), the status
//! endpoint and `ldawt peers` through the binary, and mDNS discovery inside network namespaces
//! the test creates (skipped with a printed reason when not root).

#[path = "net/busy_link.rs"]
mod busy_link;
mod common;
#[path = "net/harness.rs"]
mod harness;
#[path = "net/hostile.rs"]
mod hostile;
#[path = "net/hostile_load.rs"]
mod hostile_load;
#[path = "net/mdns.rs"]
mod mdns;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/node_proc.rs"]
mod node_proc;
#[path = "net/peers_cli.rs"]
mod peers_cli;
#[path = "net/swarm_netns.rs"]
mod swarm_netns;
#[path = "net/transfer.rs"]
mod transfer;
#[path = "net/transfer_bench_cli.rs"]
mod transfer_bench_cli;
#[path = "net/transport.rs"]
mod transport;
