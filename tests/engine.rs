//! Integration tests of the acquisition engine, `ldawt download`, `ldawt size` and the HTTP
//! fixture, all against the real fixture server on loopback and the real binary.

mod common;

#[path = "engine/fixture.rs"]
mod fixture;
