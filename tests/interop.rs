//! The written store opens in pyarrow, polars and DuckDB as they are (scripts/check_interop.py).
//! Needs the Python packages `scripts/setup` installs; `scripts/test` runs it first.

mod common;

use common::*;

fn python() -> String {
    std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string())
}

#[test]
fn embeddings_open_in_pyarrow_polars_and_duckdb() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = hf_parquet(tmp.path(), ImageColumn::Struct);
    let s = study(
        tmp.path(),
        &format!(
            "name: interop\ndataset:\n  format: parquet\n  path: {}\n  caption_column: text\n  label_column: label\nnoise:\n  - kind: blur\n    sigma: 1.5\nmodels:\n  - path: {}\n  - path: {}\n",
            pq.display(),
            fixture("models/xenova").display(),
            fixture("models/fastembed").display()
        ),
    );
    let out = tmp.path().join("run");
    let o = clipflow(&["run", s.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let check = std::process::Command::new(python())
        .arg(root().join("scripts/check_interop.py"))
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); run scripts/setup first", python()));
    assert!(
        check.status.success(),
        "interop check failed (run scripts/setup if packages are missing):\n{}\n{}",
        stdout(&check),
        stderr(&check)
    );
    assert!(stdout(&check).contains("interop ok"));
}
