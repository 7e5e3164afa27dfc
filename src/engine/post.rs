//! What happens to a fetched row between the network and the writer, in order: the hash check
//! (`--verify-hash`), the dimension filters, the resize; and, for a webdataset, reading the
//! dimensions its `.json` reports when neither of the two before did. Each step passes rows
//! that were not stored through unchanged.

use std::sync::Arc;

use super::format::Dims;
use super::writer::WriterMsg;
use super::{
    EngineConfig, HashAlgorithm, ImageFilters, OutputFormat, ResizeMode, ResizeOptions, filter,
    resize, verify,
};

/// The steps a run applies (shared by every row task).
pub(crate) struct Steps {
    filters: Option<ImageFilters>,
    resize: Option<(ResizeOptions, Arc<resize::DecodePool>)>,
    measure: bool,
}

impl Steps {
    /// The steps `cfg` asks for.
    pub(crate) fn new(cfg: &EngineConfig) -> Arc<Self> {
        Arc::new(Self {
            filters: cfg.filters.active().then(|| cfg.filters.clone()),
            resize: (cfg.resize.mode != ResizeMode::No)
                .then(|| (cfg.resize.clone(), resize::pool())),
            measure: matches!(cfg.format, OutputFormat::Webdataset | OutputFormat::Parquet),
        })
    }
}

/// True when a run under `cfg` reads images' dimensions (so the results record them).
pub(crate) fn measures(cfg: &EngineConfig) -> bool {
    cfg.filters.active()
        || cfg.resize.mode != ResizeMode::No
        || matches!(cfg.format, OutputFormat::Webdataset | OutputFormat::Parquet)
}

/// A row's expected digest: (algorithm, column, cell).
pub(crate) type Expected = (HashAlgorithm, String, String);

/// Runs the steps on one row; returns it with its dimensions when known.
pub(crate) async fn apply(
    mut msg: WriterMsg,
    expected: Option<Expected>,
    steps: &Steps,
) -> (WriterMsg, Option<Dims>) {
    if let Some((algorithm, column, cell)) = expected {
        msg = verify::check(msg, algorithm, column, cell).await;
    }
    let mut dims = None;
    if let Some(filters) = &steps.filters {
        let (m, d) = filter::check(msg, filters.clone()).await;
        msg = m;
        dims = d.map(|d| Dims {
            original: d,
            stored: d,
        });
    }
    if let Some((opts, pool)) = &steps.resize {
        let (m, d) = resize::apply(msg, opts.clone(), Arc::clone(pool)).await;
        msg = m;
        dims = d.map(|(original, stored)| Dims { original, stored });
    }
    if steps.measure && dims.is_none() {
        let (m, d) = filter::measure(msg).await;
        msg = m;
        dims = d.map(|d| Dims {
            original: d,
            stored: d,
        });
    }
    (msg, dims)
}
