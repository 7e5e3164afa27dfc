//! Seeding at start: seed the dataset (or find it seeded), claim `--out`, compute the
//! dataset's settings (with the webdataset class table) and start the coordinator.

use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{NodeConfig, NodeError, mkdir};
use crate::coordinator::{Coordinator, CoordinatorConfig, CoordinatorHandle, IntakeLimits};
use crate::model::ids::NodeId;
use crate::protocol::gossip::Gossip;
use crate::seed::{SeedSpec, SeededDataset};
use crate::store::Store;

/// A started seeder.
pub(super) struct Seeding {
    /// The dataset, and whether it was resumed.
    pub seeded: (SeededDataset, bool),
    /// Its coordinator.
    pub coord: CoordinatorHandle,
    /// Its `--out` directory.
    pub out: PathBuf,
}

/// Seeds `spec` and starts its coordinator (as peer `me`), which sends its lease gossip on
/// `gossip` and stops on `stop`.
pub(super) async fn start(
    cfg: &NodeConfig,
    spec: SeedSpec,
    me: NodeId,
    gossip: mpsc::UnboundedSender<Gossip>,
    stop: CancellationToken,
) -> Result<Seeding, NodeError> {
    let out = cfg.out.clone().unwrap_or_else(|| PathBuf::from("."));
    mkdir(&out)?;
    let data = cfg.data_dir.clone();
    let ds = tokio::task::spawn_blocking(move || crate::seed::seed(&spec, &data))
        .await
        .map_err(|e| NodeError::Io {
            path: "seeding".into(),
            source: std::io::Error::other(e),
        })??;
    claim_out_dir(&out, &ds)?;
    let settings = seeder_settings(&cfg.engine, &cfg.data_dir, &out, &ds).await?;
    let ds = parquet_names(ds, cfg.engine.format);
    let store = Store::open(&crate::layout::DataDir::new(&cfg.data_dir).leases_db())?;
    let mut c = Coordinator::new(
        CoordinatorConfig {
            out: out.clone(),
            data_dir: cfg.data_dir.clone(),
            lease: cfg.lease,
            stored: cfg.stored_files.clone(),
            intake: IntakeLimits {
                max_file_size: cfg.engine.fetch.max_file_size,
                max_archive_bytes: cfg.max_archive_bytes,
                ..IntakeLimits::default()
            },
            retry_failed: cfg.retry_failed,
            local_peer: Some(me),
            settings: Some(settings),
            swarm_per_host: cfg.swarm_per_host,
        },
        store,
    );
    let resumed = c.add_dataset(ds.clone(), cfg.clock.now()).await?;
    let coord = CoordinatorHandle::spawn(c, cfg.clock.clone(), gossip, stop);
    Ok(Seeding {
        seeded: (ds, resumed),
        coord,
        out,
    })
}

/// Claims `out` for `ds`: refuses a directory that already holds another dataset's results
/// (two seeds into one `--out` would overwrite each other's archives, results and overview).
fn claim_out_dir(out: &std::path::Path, ds: &SeededDataset) -> Result<(), NodeError> {
    let marker = crate::layout::OutDir::new(out).dataset_marker();
    let mine = format!("{} {}\n", ds.id.to_hex(), ds.name);
    match std::fs::read_to_string(&marker) {
        Ok(text) if text.split_whitespace().next() == Some(ds.id.to_hex().as_str()) => Ok(()),
        Ok(text) => Err(NodeError::OutTaken {
            out: out.display().to_string(),
            existing: text.trim().to_string(),
            new: ds.id.to_hex(),
        }),
        Err(_) => {
            crate::layout::write_atomic(&marker, mine.as_bytes()).map_err(|source| NodeError::Io {
                path: marker.display().to_string(),
                source,
            })
        }
    }
}

/// A seeder's dataset settings; for webdataset with the dataset's class table (computed over
/// every seeded row, written to `<out>/<name>.classes.json`, sent to every worker).
async fn seeder_settings(
    engine: &crate::engine::EngineConfig,
    data_dir: &std::path::Path,
    out: &std::path::Path,
    ds: &crate::seed::SeededDataset,
) -> Result<crate::protocol::settings::DatasetSettings, NodeError> {
    use crate::verify::classes;
    let mut settings = crate::protocol::settings::DatasetSettings::from_engine(engine);
    if engine.format != crate::engine::OutputFormat::Webdataset {
        return Ok(settings);
    }
    let path = classes::classes_file(out, ds);
    let io_err = |source: std::io::Error| NodeError::Io {
        path: path.display().to_string(),
        source,
    };
    let (data, seeded) = (data_dir.to_path_buf(), ds.clone());
    let names = tokio::task::spawn_blocking(move || classes::class_table(&data, &seeded))
        .await
        .map_err(|e| io_err(std::io::Error::other(e)))?
        .map_err(io_err)?;
    settings.class_names = names;
    settings.check().map_err(|e| {
        io_err(std::io::Error::other(format!(
            "the dataset's class table cannot be sent to workers: {e}"
        )))
    })?;
    classes::write_table(out, ds, &settings.class_names).map_err(io_err)?;
    Ok(settings)
}

/// With `--format parquet` each shard is one images parquet: `<stem>.parquet` instead of the
/// seeded `<stem>.tar.gz` (the grant, the stored file and the merged results all use it).
fn parquet_names(
    mut ds: crate::seed::SeededDataset,
    format: crate::engine::OutputFormat,
) -> crate::seed::SeededDataset {
    if format == crate::engine::OutputFormat::Parquet {
        for name in &mut ds.archive_names {
            *name = format!(
                "{}.parquet",
                crate::archive::archive_stem(std::path::Path::new(name))
            );
        }
    }
    ds
}
