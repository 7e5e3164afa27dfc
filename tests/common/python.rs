//! The Python side of the format tests: the interpreter of `target/pyvenv` (made by
//! `scripts/install-test-deps.sh`) with the `webdataset` and `pyarrow` packages, and the reader
//! scripts in `tests/engine/` that print what those packages see as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of `target/pyvenv` if it can import `webdataset` and `pyarrow`; otherwise the
/// skip reason.
pub fn pyvenv() -> Result<PathBuf, String> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyvenv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import webdataset, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import webdataset and pyarrow; run scripts/install-test-deps.sh",
            python.display()
        ))
    }
}

/// [`pyvenv`], or `None` after [`super::skip`] (a failure under `CI`): the caller returns.
pub fn pyvenv_or_skip() -> Option<PathBuf> {
    pyvenv().map_err(super::skip).ok()
}

/// Runs `tests/engine/<script>` on `file` with `python`; asserts it succeeds and returns its
/// stdout as JSON.
pub fn read_back(python: &Path, script: &str, file: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/engine")
        .join(script);
    let o = Command::new(python)
        .arg(script)
        .arg(file)
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json from the reader")
}

/// [`read_back`] of a reader that prints a JSON array: its elements.
pub fn read_back_all(python: &Path, script: &str, file: &Path) -> Vec<serde_json::Value> {
    serde_json::from_value(read_back(python, script, file)).expect("a JSON array")
}
