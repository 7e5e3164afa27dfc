//! Command layer: one file per subcommand, each exposing its clap `*Args` and an async
//! `run(args, global) -> anyhow::Result<ExitCode>`. This is glue between the command line and
//! the library; `anyhow` is used here and nowhere below.

use std::process::ExitCode;

use cli::{Cli, Command};

pub mod cli;
pub mod compare;
pub mod config;
pub mod demo;
pub mod download;
pub mod engine_args;
pub mod fixture_server;
pub mod monitor;
pub mod node;
pub mod peers;
pub mod reconstruct;
pub mod size;
pub mod slurm;
pub mod split;
pub mod upload;

/// Runs the subcommand chosen on the command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Node(args) => node::run(*args, &global).await,
        Command::Demo(args) => demo::run(args, &global).await,
        Command::Peers(args) => peers::run(args, &global).await,
        Command::Split(args) => split::run(args, &global).await,
        Command::Size(args) => size::run(args, &global).await,
        Command::Download(args) => download::run(args, &global).await,
        Command::Reconstruct(args) => reconstruct::run(args, &global).await,
        Command::Monitor(args) => monitor::run(args, &global).await,
        Command::Compare(args) => compare::run(args, &global).await,
        Command::Slurm(args) => slurm::run(args, &global).await,
        Command::Upload(args) => upload::run(args, &global).await,
        Command::FixtureServer(args) => fixture_server::run(args, &global).await,
    }
}
