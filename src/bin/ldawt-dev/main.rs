//! `ldawt-dev`: measurement tools that are not part of the product, built only with the
//! `dev-tools` feature (which `cargo test` enables through the crate's dev-dependency on
//! itself; `cargo build --release --features dev-tools --bin ldawt-dev` for the benchmark
//! scripts). The release `ldawt` binary does not contain them.

mod transfer_bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ldawt's development tools (tests and benchmarks).
#[derive(Debug, Parser)]
#[command(name = "ldawt-dev", version)]
struct DevCli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: DevCommand,
}

/// The tools.
#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Measure the archive transfer protocol between two nodes (`scripts/bench-swarm.sh`).
    TransferBench(transfer_bench::TransferBenchArgs),
}

fn main() -> ExitCode {
    let cli = DevCli::parse();
    ldawt::telemetry::init(cli.verbose, ldawt::telemetry::LogFormat::Pretty);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(ldawt::exit::INTERNAL);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            DevCommand::TransferBench(args) => transfer_bench::run(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(ldawt::exit::code_for(&err))
        }
    }
}
