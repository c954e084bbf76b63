//! The `duplicates` stage end to end, on a dataset with planted duplicates and planted leaks:
//! `scripts/check_duplicates.py plant` copies a generated texture set with a `split` column and
//! byte-identical or slightly brightened copies (in the other split, in the same split, and
//! without a split), the CLI runs a study with the stage, and `check_duplicates.py check`
//! recomputes every table from the stored embeddings with numpy and scikit-learn (pairs,
//! leaks, counts, FiftyOne's uniqueness, nearest neighbours, the kNN probe and retrieval with
//! and without the leaking items). The report then loads cleanly in Chromium with the pair
//! galleries and their thumbnails.

mod common;

use std::path::Path;

use common::*;

const STUDY: &str = "name: dups
seed: 5
dataset:
  format: parquet
  path: DATA
  image_column: image
  caption_column: caption
  label_column: label
  id_column: id
  attribute_columns: [split]
models:
  - name: texture-clip
    path: models/texture-clip
texts:
  captions: true
analysis:
  retrieval:
    k: [1, 5]
  probe:
    knn_k: 5
  duplicates:
    threshold: THRESHOLD
";

fn python() -> String {
    std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string())
}

fn script(args: &[&str]) -> String {
    let o = std::process::Command::new(python())
        .arg(root().join("scripts/check_duplicates.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): run scripts/setup", python()));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "check_duplicates.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

fn run_study(dir: &Path, data: &Path, threshold: &str) -> std::path::PathBuf {
    let study_path = dir.join(format!("study-{threshold}.yaml"));
    std::fs::write(
        &study_path,
        STUDY
            .replace("DATA", &data.display().to_string())
            .replace("THRESHOLD", threshold),
    )
    .unwrap();
    let out = dir.join(format!("run-{threshold}"));
    let o = clipflow_run(&study_path, &out, &["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn planted_duplicates_and_leaks_are_found_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = synth_textures(&tmp.path().join("textures"), 3, 21);
    let data = tmp.path().join("planted");
    script(&["plant", synth.to_str().unwrap(), data.to_str().unwrap()]);
    let planted = data.join("planted.json");

    let out = run_study(tmp.path(), &data.join("data.parquet"), "0.97");
    let report = script(&["check", out.to_str().unwrap(), planted.to_str().unwrap()]);
    assert!(report.contains("\"ok\": true"), "{report}");
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    let m = &v["models"]["texture-clip"];
    assert!(m["cross_pairs"].as_u64().unwrap() >= 5, "{m}");
    assert!(
        m["leak_effect_values_checked"].as_u64().unwrap() >= 6,
        "{m}"
    );
    assert_eq!(
        m["planted_found"],
        serde_json::json!({"leak": 3, "near_leak": 2, "dup": 2, "no_split": 1}),
        "every planted pair at 0.97"
    );

    // The tables the stage promises, and no note of a failure.
    for t in [
        "duplicates",
        "duplicate_pairs",
        "duplicate_leaks",
        "duplicate_items",
        "duplicate_leak_effect",
    ] {
        assert!(out.join(format!("tables/{t}.parquet")).is_file(), "{t}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let notes: Vec<&str> = manifest["analysis"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .filter(|n| n.contains("duplicates"))
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("have no `split` value")),
        "the copy without a split is noted: {notes:?}"
    );
    assert!(
        !notes
            .iter()
            .any(|n| n.contains("failed") || n.contains("skipped")),
        "{notes:?}"
    );
    assert_eq!(
        manifest["config"]["analysis"]["duplicates"]["threshold"], 0.97,
        "{}",
        manifest["config"]["analysis"]
    );

    // The report: the section, both galleries with thumbnails, and a clean load in Chromium.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"duplicates\""));
    assert!(html.contains("texture-clip: most similar image pairs"));
    assert!(html.contains("texture-clip: strongest pairs across groups"));
    assert!(
        html.contains("-leak [test]"),
        "a planted leak in the gallery"
    );
    let shot = tmp.path().join("report.png");
    let o = std::process::Command::new(python())
        .arg(root().join("scripts/check_report.py"))
        .arg(out.join("report.html"))
        .arg(&shot)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "check_report.py failed (exit {:?}; run scripts/setup if Chromium is missing):\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // A stricter threshold finds fewer pairs, the byte-identical copies still among them.
    let strict = run_study(tmp.path(), &data.join("data.parquet"), "0.9999");
    let report = script(&["check", strict.to_str().unwrap(), planted.to_str().unwrap()]);
    let s: serde_json::Value = serde_json::from_str(&report).unwrap();
    let s = &s["models"]["texture-clip"];
    assert!(s["pairs"].as_u64() <= m["pairs"].as_u64(), "{report}");
    assert_eq!(s["planted_found"]["leak"], 3, "{report}");

    // At the lowest threshold every pair is a duplicate: all of them are listed and checked,
    // and a note says the threshold singles out nothing.
    let all = run_study(tmp.path(), &data.join("data.parquet"), "-1");
    let report = script(&["check", all.to_str().unwrap(), planted.to_str().unwrap()]);
    let a: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        a["models"]["texture-clip"]["pairs"],
        68 * 67 / 2,
        "{report}"
    );
    let notes = std::fs::read_to_string(all.join("manifest.json")).unwrap();
    assert!(
        notes.contains("68 of 68 images have a near-duplicate at cosine ≥ -1"),
        "{notes}"
    );
}

#[test]
fn bad_settings_name_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = synth_textures(&tmp.path().join("textures"), 1, 3);
    for (setting, key, message) in [
        ("threshold: 1.5", "analysis.duplicates.threshold", "[-1, 1]"),
        (
            "max_pairs: 0",
            "analysis.duplicates.max_pairs",
            "at least 1",
        ),
        ("across: ''", "analysis.duplicates.across", "name a column"),
        (
            "path: /no/such/file.parquet",
            "analysis.duplicates.path",
            "does not exist",
        ),
        ("treshold: 0.9", "analysis.duplicates", "threshold"),
    ] {
        let yaml = format!(
            "name: bad\ndataset:\n  format: parquet\n  path: {}\n  image_column: image\n\
             models:\n  - name: m\n    path: models/texture-clip\nanalysis:\n  duplicates:\n    \
             {setting}\n",
            synth.display()
        );
        let path = study(tmp.path(), &yaml);
        let o = clipflow(&["validate", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{setting}: {err}");
        assert!(err.contains(key), "{setting}: {err}");
        assert!(err.contains("study.yaml:11:"), "{setting}: {err}");
        assert!(err.contains(message), "{setting}: {err}");
    }
}
