//! Integration tests of the swarm: nodes in one process over real loopback sockets, and real
//! `ldawt node` processes (seeder + `--join` workers, `kill -9` of a worker and of the seeder),
//! all downloading from the HTTP fixture. Each ends by checking that every input row is
//! accounted for exactly once and that no archive member is duplicated.

mod common;
#[path = "common/faults.rs"]
mod fault_tools;
#[path = "common/node_proc.rs"]
mod node_proc;
#[path = "common/proxy.rs"]
mod proxy;

#[path = "swarm/busy_seeder.rs"]
mod busy_seeder;
#[path = "swarm/dashboard.rs"]
mod dashboard;
#[path = "swarm/defaults.rs"]
mod defaults;
#[path = "swarm/faults.rs"]
mod faults;
#[path = "swarm/faults_restart.rs"]
mod faults_restart;
#[path = "swarm/faults_stall.rs"]
mod faults_stall;
#[path = "swarm/formats.rs"]
mod formats;
#[path = "swarm/formats_forged.rs"]
mod formats_forged;
#[path = "swarm/formats_retry.rs"]
mod formats_retry;
#[path = "swarm/hostile.rs"]
mod hostile;
#[path = "swarm/hostile_results.rs"]
mod hostile_results;
#[path = "swarm/inprocess.rs"]
mod inprocess;
#[path = "swarm/kit.rs"]
mod kit;
#[path = "swarm/manual_clock.rs"]
mod manual_clock;
#[path = "swarm/politeness.rs"]
mod politeness;
#[path = "swarm/processes.rs"]
mod processes;
#[path = "swarm/util.rs"]
mod util;
