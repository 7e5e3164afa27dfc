//! Streaming parquet splitter behind `ldawt split`: pass 1 reads only the class (and optional
//! size) column and weighs every class; `crate::model::split_plan::plan_lpt` assigns classes to
//! groups; pass 2 reads every column batch by batch and routes each row to its group's writer.
//! Only the per-class weights and one record batch are ever in memory. Null classes form a class
//! of their own; classes are never renamed; output files appear atomically (temp + rename).

mod keys;
mod write;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::input::InputError;
use crate::model::split_plan::{ClassWeight, SplitPlan, plan_lpt};

pub use keys::{check_class_type, class_keys, is_class_type, wrong_type};

/// Rows per record batch in both passes.
const BATCH_ROWS: usize = 16_384;

/// What a group's load is measured in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// Number of rows (images).
    Rows,
    /// Sum of an integer size column (bytes); null sizes weigh 0.
    Bytes {
        /// The size column.
        size_col: String,
    },
}

/// Everything `split_parquet` needs.
#[derive(Debug, Clone)]
pub struct SplitRequest {
    /// The input parquet.
    pub input: PathBuf,
    /// The class column.
    pub group_col: String,
    /// How many groups (≥ 1); groups that would receive no class are not written.
    pub groups: usize,
    /// The output directory (created if missing).
    pub out_dir: PathBuf,
    /// What to balance.
    pub balance: Balance,
    /// Replace existing `group_*.parquet` files.
    pub overwrite: bool,
}

/// The outcome of a split.
#[derive(Debug, Clone)]
pub struct SplitOutcome {
    /// The plan (class → group, loads).
    pub plan: SplitPlan,
    /// Rows written per group.
    pub rows_per_group: Vec<u64>,
    /// The files written, `group_1.parquet` first.
    pub files: Vec<PathBuf>,
    /// Rows in the input.
    pub input_rows: u64,
    /// Rows whose class was null (kept, as their own class).
    pub null_class_rows: u64,
}

/// Problems while splitting.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The input is missing, unreadable, lacks a column or has a wrong column type.
    #[error(transparent)]
    Input(#[from] InputError),
    /// `--groups 0`.
    #[error("--groups must be at least 1")]
    NoGroups,
    /// The output directory cannot be created or written.
    #[error("cannot write to output directory {path}: {reason}")]
    Unwritable {
        /// The directory or file.
        path: String,
        /// Why.
        reason: String,
    },
    /// An output file exists and overwriting was not asked for.
    #[error("{path} already exists (pass --force to replace it)")]
    Exists {
        /// The file.
        path: String,
    },
    /// Reading or writing failed mid-run.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl SplitError {
    /// True when the user's input is at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, SplitError::Io { .. })
    }
}

/// The path of group `index` (0-based) inside `out_dir`: `group_{index+1}.parquet`.
pub fn group_file(out_dir: &Path, index: usize) -> PathBuf {
    out_dir.join(format!("group_{}.parquet", index + 1))
}

/// Opens `path` as parquet, mapping failures to `InputError`s that name the file.
pub(crate) fn open_parquet(
    path: &Path,
) -> Result<ParquetRecordBatchReaderBuilder<File>, InputError> {
    let shown = path.display().to_string();
    let mut file = File::open(path).map_err(|e| crate::input::open_error(&shown, e))?;
    let mut magic = [0u8; 4];
    let is_parquet = std::io::Read::read_exact(&mut file, &mut magic).is_ok() && &magic == b"PAR1";
    if !is_parquet {
        return Err(InputError::Unreadable {
            reason: not_parquet_reason(path),
            path: shown,
        });
    }
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| InputError::Unreadable {
        path: shown,
        reason: e.to_string(),
    })
}

/// Why a file without the parquet magic bytes is refused, with a hint for CSV files.
fn not_parquet_reason(path: &Path) -> String {
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        "this command reads parquet files only, and this looks like a CSV; convert it to \
         parquet first (`download` and `size` read CSV directly)"
            .to_string()
    } else {
        "not a parquet file (it does not start with the PAR1 magic bytes)".to_string()
    }
}

/// Index of `column` among the top-level fields, or a `MissingColumn` error listing them.
pub(crate) fn column_index(
    builder: &ParquetRecordBatchReaderBuilder<File>,
    path: &Path,
    column: &str,
) -> Result<usize, InputError> {
    let schema = builder.schema();
    schema
        .index_of(column)
        .map_err(|_| InputError::MissingColumn {
            path: path.display().to_string(),
            column: column.to_string(),
            available: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Pass 1: weighs every class of `req.group_col`. Returns the weights (sorted by class), the
/// row count and the null-class row count.
pub fn weigh_classes(req: &SplitRequest) -> Result<(Vec<ClassWeight>, u64, u64), SplitError> {
    let path = req.input.as_path();
    let builder = open_parquet(path)?;
    let class_idx = column_index(&builder, path, &req.group_col)?;
    keys::check_class_type(
        builder.schema().field(class_idx).data_type(),
        path,
        &req.group_col,
    )?;
    let mut roots = vec![class_idx];
    let size_col = match &req.balance {
        Balance::Rows => None,
        Balance::Bytes { size_col } => {
            let idx = column_index(&builder, path, size_col)?;
            let dt = builder.schema().field(idx).data_type().clone();
            if !dt.is_integer() {
                return Err(
                    keys::wrong_type(path, size_col, &dt, "an integer size in bytes").into(),
                );
            }
            roots.push(idx);
            Some(size_col.clone())
        }
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| io_err(path, e))?;
    let mut weights: BTreeMap<Option<String>, u64> = BTreeMap::new();
    let (mut rows, mut nulls) = (0u64, 0u64);
    for batch in reader {
        let batch = batch.map_err(|e| io_err(path, e))?;
        let classes = class_keys(
            batch
                .column_by_name(&req.group_col)
                .ok_or_else(|| io_err(path, "class column vanished from a batch"))?,
        )
        .map_err(|e| io_err(path, e))?;
        let sizes = match &size_col {
            Some(col) => {
                Some(keys::sizes(batch.column_by_name(col).ok_or_else(|| {
                    io_err(path, "size column vanished from a batch")
                })?))
            }
            None => None,
        };
        for (i, class) in classes.into_iter().enumerate() {
            let w = sizes.as_ref().map_or(1, |s| s[i]);
            nulls += u64::from(class.is_none());
            *weights.entry(class).or_default() += w;
        }
        rows += batch.num_rows() as u64;
    }
    let weights = weights
        .into_iter()
        .map(|(class, weight)| ClassWeight { class, weight })
        .collect();
    Ok((weights, rows, nulls))
}

/// Splits `req.input` into `req.groups` parquet files in `req.out_dir` (see the module doc).
/// On any error, no `group_*.parquet` of this run is left behind.
pub fn split_parquet(req: &SplitRequest) -> Result<SplitOutcome, SplitError> {
    if req.groups == 0 {
        return Err(SplitError::NoGroups);
    }
    let (weights, input_rows, null_class_rows) = weigh_classes(req)?;
    if input_rows == 0 {
        return Err(InputError::Empty {
            path: req.input.display().to_string(),
        }
        .into());
    }
    let plan = without_empty_groups(plan_lpt(&weights, req.groups));
    let files: Vec<PathBuf> = (0..plan.loads.len())
        .map(|g| group_file(&req.out_dir, g))
        .collect();
    prepare_out_dir(&req.out_dir, &files, req.overwrite)?;
    let rows_per_group = write::write_groups(req, &plan, &files, BATCH_ROWS)?;
    Ok(SplitOutcome {
        plan,
        rows_per_group,
        files,
        input_rows,
        null_class_rows,
    })
}

/// Drops the groups that received no class (more groups asked than there are classes) and
/// renumbers the rest in order, so no empty group file is ever written.
pub fn without_empty_groups(plan: SplitPlan) -> SplitPlan {
    let mut new_index = vec![None; plan.loads.len()];
    let mut next = 0usize;
    for (g, n) in plan.classes_per_group.iter().enumerate() {
        if *n > 0 {
            new_index[g] = Some(next);
            next += 1;
        }
    }
    let keep = |g: &usize| plan.classes_per_group[*g] > 0;
    SplitPlan {
        assignment: plan
            .assignment
            .iter()
            .filter_map(|(class, g)| new_index[*g].map(|n| (class.clone(), n)))
            .collect(),
        loads: (0..plan.loads.len())
            .filter(keep)
            .map(|g| plan.loads[g])
            .collect(),
        classes_per_group: (0..plan.loads.len())
            .filter(keep)
            .map(|g| plan.classes_per_group[g])
            .collect(),
    }
}

fn prepare_out_dir(dir: &Path, files: &[PathBuf], overwrite: bool) -> Result<(), SplitError> {
    std::fs::create_dir_all(dir).map_err(|e| SplitError::Unwritable {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    if !overwrite && let Some(existing) = files.iter().find(|f| f.exists()) {
        return Err(SplitError::Exists {
            path: existing.display().to_string(),
        });
    }
    Ok(())
}

/// An I/O failure mid-run on `path` (exit code 3, not bad input).
pub(crate) fn io_err(path: &Path, e: impl std::fmt::Display) -> SplitError {
    SplitError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}
