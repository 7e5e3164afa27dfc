//! Integration tests of LDAWT's toolbox (`split`, `reconstruct`, `compare`, `upload`, `slurm`,
//! `monitor`), each driven through the real `ldawt` binary against real files and real servers
//! on loopback. One test binary; one module per subcommand under `tests/tools/`.

mod common;

#[path = "tools/util.rs"]
mod util;

#[path = "tools/split.rs"]
mod split;

#[path = "tools/dav.rs"]
mod dav;

#[path = "tools/upload.rs"]
mod upload;

#[path = "tools/compare.rs"]
mod compare;

#[path = "tools/reconstruct.rs"]
mod reconstruct;

#[path = "tools/monitor.rs"]
mod monitor;

#[path = "tools/closed_pipe.rs"]
mod closed_pipe;

#[path = "tools/slurm_harness.rs"]
mod slurm_harness;

#[path = "tools/slurm.rs"]
mod slurm;
