//! `ldawt-dev transfer-bench`: measures the archive transfer protocol between two
//! machines or namespaces with the same code path the swarm uses (`net::Client::send_file`).
//! `serve` accepts and verifies every file; `send` pushes a file (or a generated one) and
//! prints one JSON line with the achieved rate. Used by `scripts/bench-swarm.sh`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use sha2::{Digest, Sha256};

use ldawt::exit::UsageError;
use ldawt::model::ids::{DatasetId, Epoch, ShardId};
use ldawt::net::{self, Event, FileDecision, NetConfig};
use ldawt::protocol::transfer::{FileKind, TransferHeader};

/// Arguments of `ldawt-dev transfer-bench`.
#[derive(Debug, Args)]
pub struct TransferBenchArgs {
    /// Which side to run.
    #[command(subcommand)]
    pub side: Side,
}

/// The two sides of the measurement.
#[derive(Debug, Subcommand)]
pub enum Side {
    /// Receive files into a directory; prints the `/p2p` listen addresses, one per line.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/0")]
        listen: Multiaddr,
        /// Where received files go (deleted after verification unless `--keep`).
        #[arg(long)]
        dir: PathBuf,
        /// Exit after this many verified files (0 = run until killed).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Keep the received files.
        #[arg(long)]
        keep: bool,
    },
    /// Send one file and print `{"bytes":…,"seconds":…,"mb_per_s":…}`.
    Send {
        /// The receiver's address, with `/p2p/<peer id>`.
        #[arg(long)]
        to: Multiaddr,
        /// The file to send; without it a random file of `--size-mb` is generated.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Size of the generated file in MiB.
        #[arg(long, default_value_t = 50)]
        size_mb: u64,
    },
}

/// Runs `ldawt-dev transfer-bench`.
pub async fn run(args: TransferBenchArgs) -> anyhow::Result<ExitCode> {
    match args.side {
        Side::Serve {
            listen,
            dir,
            count,
            keep,
        } => serve(listen, dir, count, keep).await,
        Side::Send { to, file, size_mb } => send(to, file, size_mb).await,
    }
}

/// Both sides use this fixed swarm key: it protects nothing here, but the bench then measures
/// the private-swarm path (pnet's XSalsa20 under Noise) that every swarm uses by default.
const BENCH_SWARM_KEY: [u8; 32] = [0xbe; 32];

fn config(listen: Multiaddr) -> NetConfig {
    let mut cfg = NetConfig::new(Keypair::generate_ed25519());
    cfg.listen = vec![listen];
    cfg.mdns = false;
    cfg.psk = Some(net::PreSharedKey::new(BENCH_SWARM_KEY));
    cfg
}

async fn serve(
    listen: Multiaddr,
    dir: PathBuf,
    count: u64,
    keep: bool,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (client, mut events, event_loop) = net::new(config(listen))?;
    tokio::spawn(event_loop.run());
    let addrs = client.listen_addrs().await?;
    {
        let mut out = std::io::stdout().lock();
        for addr in addrs {
            writeln!(out, "{addr}")?;
        }
        out.flush()?;
    }
    let mut stored = 0u64;
    while let Some(event) = events.recv().await {
        match event {
            Event::IncomingFile { header, decide, .. } => {
                let part = dir.join(format!("{}.part", hex::encode(header.sha256)));
                let _ = decide.send(FileDecision::Accept { part_path: part });
            }
            Event::FileReceived {
                part_path, verdict, ..
            } => {
                if !keep {
                    std::fs::remove_file(&part_path).ok();
                }
                let _ = verdict.send(Ok(()));
                stored += 1;
                if count > 0 && stored >= count {
                    // Let the final frame reach the sender before closing.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
            Event::Request { .. } | Event::Gossip { .. } | Event::TransferProgress { .. } => {}
            Event::PeerConnected { .. } | Event::PeerDisconnected { .. } => {}
            Event::PeerIdentified { .. } => {}
        }
    }
    client.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn send(to: Multiaddr, file: Option<PathBuf>, size_mb: u64) -> anyhow::Result<ExitCode> {
    let Some(peer) = net::peer_of(&to) else {
        return Err(UsageError::new(format!("--to {to} has no /p2p/<peer id> part")).into());
    };
    let scratch = tempfile_dir()?;
    let path = match file {
        Some(p) => p,
        None => {
            let p = scratch.join("payload.bin");
            let mut rng = fastrand::Rng::new();
            let mut bytes = vec![0u8; (size_mb as usize) << 20];
            rng.fill(&mut bytes);
            std::fs::write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
            p
        }
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let header = TransferHeader {
        dataset: DatasetId([0; 16]),
        shard: ShardId(0),
        epoch: Epoch(0),
        kind: FileKind::Archive,
        size: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
    };
    drop(bytes);
    let (client, _events, event_loop) = net::new(config("/ip4/0.0.0.0/tcp/0".parse()?))?;
    tokio::spawn(event_loop.run());
    client
        .dial(to.clone())
        .await
        .map_err(|e| UsageError::new(format!("cannot reach {to}: {e}")))?;
    let started = Instant::now();
    let sent = client.send_file(peer, header.clone(), &path).await;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&scratch).ok();
    client.shutdown().await;
    if let Err(e) = sent {
        bail!("transfer to {to} failed: {e}");
    }
    println!(
        "{{\"bytes\":{},\"seconds\":{seconds:.3},\"mb_per_s\":{:.3}}}",
        header.size,
        header.size as f64 / 1e6 / seconds
    );
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ldawt-transfer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
