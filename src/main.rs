//! The `ldawt` binary: parse the command line, set up logging, run one subcommand and map its
//! outcome to a process exit code. All logic lives in the library; this file is glue only.

use std::process::ExitCode;

use clap::Parser;
use ldawt::commands::cli::Cli;

/// Async worker threads: one core fewer than the machine has (at least one). The engine's
/// writer thread, which hashes and archives every image, gets the last core to itself; on a
/// 2-core machine one worker plus the writer measured 7 % more images/s at 9 % less CPU per
/// image than two workers competing with it (see BENCHMARKS.md).
fn async_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ldawt::telemetry::init(cli.global.verbose, cli.global.log_format);
    // Sockets are file descriptors: a seeder under many peers (or a flood of connections)
    // needs more than the usual soft limit of 1,024.
    if let Some((before, after)) = ldawt::node::rlimit::raise_nofile() {
        tracing::debug!("open-file limit raised from {before} to {after}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(async_workers())
        .enable_all()
        .thread_name("ldawt")
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(ldawt::exit::INTERNAL);
        }
    };
    // The command runs as a task on the workers, not on this thread: a future driven by
    // `block_on` is woken across threads (a futex call and a context switch) by every task
    // it waits for — thousands of times a second in the engine's dispatcher.
    let outcome = runtime.block_on(async { tokio::spawn(ldawt::commands::run(cli)).await });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("error: the command's task failed: {err}");
            return ExitCode::from(ldawt::exit::INTERNAL);
        }
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            // A closed stdout (`ldawt peers | head`) is not an error worth reporting.
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::BrokenPipe
                {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("error: {err:#}");
            ExitCode::from(ldawt::exit::code_for(&err))
        }
    }
}
