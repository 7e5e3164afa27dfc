//! Integration tests of the acquisition engine, `ldawt download`, `ldawt size` and the HTTP
//! fixture, all against the real fixture server on loopback and the real binary.

mod common;

#[path = "common/netns.rs"]
mod netns;

#[path = "common/proxy.rs"]
mod proxy;

#[path = "engine/fixture.rs"]
mod fixture;

#[path = "engine/download.rs"]
mod download;

#[path = "engine/resume.rs"]
mod resume;

#[path = "engine/bad_input.rs"]
mod bad_input;

#[path = "engine/memory.rs"]
mod memory;

#[path = "engine/size.rs"]
mod size;

#[path = "engine/pacing.rs"]
mod pacing;

#[path = "engine/spill.rs"]
mod spill;

#[path = "engine/tls.rs"]
mod tls;

#[path = "engine/ssrf.rs"]
mod ssrf;

#[path = "engine/dataset.rs"]
mod dataset;
#[path = "engine/dns.rs"]
mod dns;
#[path = "engine/everyday.rs"]
mod everyday;

#[path = "engine/dataset_formats.rs"]
mod dataset_formats;

#[path = "engine/dataset_images.rs"]
mod dataset_images;

#[path = "engine/dataset_resume.rs"]
mod dataset_resume;

#[path = "engine/many_hosts.rs"]
mod many_hosts;
