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
    let o = clipflow_run(&s, &out, &[]);
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

#[test]
fn analysis_tables_equal_numpy_and_foreign_stores_load() {
    let tmp = tempfile::tempdir().unwrap();
    let pq = hf_parquet(tmp.path(), ImageColumn::Binary);
    let s = study(
        tmp.path(),
        &format!(
            "name: an\ndataset:\n  format: parquet\n  path: {}\n  caption_column: text\n  label_column: label\nnoise:\n  - kind: gaussian\n    sigma: 0.2\nmodels:\n  - path: {}\ntexts:\n  prompts:\n    templates: ['a photo of a {{}}.', 'a blurry photo of a {{}}.']\nanalysis:\n  retrieval:\n  zero_shot:\n  cluster:\n  probe:\n    knn_k: 1\n    test_fraction: 0.5\n  similarity:\n",
            pq.display(),
            fixture("models/xenova").display()
        ),
    );
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for t in [
        "retrieval",
        "zero_shot",
        "cluster",
        "probe",
        "robustness",
        "similarity",
        "retrieval_galleries",
    ] {
        assert!(
            out.join("tables").join(format!("{t}.parquet")).exists(),
            "{t}"
        );
        assert!(out.join("tables").join(format!("{t}.md")).exists(), "{t}");
    }
    assert!(out.join("plots/robustness_xenova_gaussian.png").exists());
    assert!(out.join("plots/similarity_xenova.svg").exists());
    let check = std::process::Command::new(python())
        .arg(root().join("scripts/check_analysis.py"))
        .arg(&out)
        .arg(env!("CARGO_BIN_EXE_clipflow"))
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "analysis check failed:\n{}\n{}",
        stdout(&check),
        stderr(&check)
    );
}
