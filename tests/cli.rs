//! `clipflow run` / `validate` / `inspect` as a user runs them: datasets in every layout, the
//! run directory contract, errors.parquet, exit codes, resume, shards and determinism.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, StringArray};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The values (as strings) of `column` in every row of a Parquet file, or of every Parquet
/// file under a folder.
fn read_column(dir: &Path, column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let files: Vec<std::path::PathBuf> = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        files_under(dir)
            .into_iter()
            .map(|(n, _)| dir.join(n))
            .collect()
    };
    for path in files {
        if !path.to_string_lossy().ends_with(".parquet") || path.to_string_lossy().contains(".tmp-")
        {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch.column_by_name(column).unwrap();
            let col = arrow_cast::cast(col, &arrow_schema::DataType::Utf8).unwrap();
            let s = col.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..s.len() {
                out.push((!s.is_null(i)).then(|| s.value(i).to_string()));
            }
        }
    }
    out
}

fn folder_study(dir: &Path, extra: &str) -> std::path::PathBuf {
    let data = image_folder(dir);
    study(
        dir,
        &format!(
            "name: t\nseed: 3\ndataset:\n  format: folder\n  path: {}\nnoise:\n  - kind: gaussian\n    sigma: [0.1]\n  - kind: jpeg\n    quality: 30\nmodels:\n  - path: {}\n    name: xen\ntexts:\n  prompts:\n    templates: ['a photo of a {{}}.', 'a {{}} texture.']\nruntime:\n  part_size: 4\n  batch_size: 4\n{extra}",
            data.display(),
            fixture("models/xenova").display()
        ),
    )
}

#[test]
fn folder_study_writes_the_run_directory_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let s = folder_study(tmp.path(), "");
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    // 6 good images x 3 variants; 3 broken images are errors, not rows.
    let image_dir = out.join("embeddings/xen/image");
    let ids: Vec<_> = read_column(&image_dir, "id")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(ids.len(), 18);
    let variants: BTreeSet<_> = read_column(&image_dir, "variant")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        variants,
        ["clean", "gaussian-0.1", "jpeg-30"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // 2 classes x 2 templates of prompts.
    let texts: Vec<_> = read_column(&out.join("embeddings/xen/text"), "text")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(texts.len(), 4);
    assert!(texts.contains(&"a photo of a a.".to_string()));

    let errors = out.join("errors.parquet");
    let ids: BTreeSet<_> = read_column(&errors, "id").into_iter().flatten().collect();
    assert_eq!(
        ids,
        ["b/cut.jpg", "b/notes.jpg", "b/zero.png"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let reasons = read_column(&errors, "reason")
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        reasons.contains("truncated")
            && reasons.contains("0 bytes")
            && reasons.contains("not an image"),
        "{reasons}"
    );

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    for key in [
        "config",
        "config_hash",
        "models",
        "dataset",
        "clipflow_version",
        "stage_timings",
        "counts",
    ] {
        assert!(manifest.get(key).is_some(), "manifest lacks {key}");
    }
    assert_eq!(manifest["counts"]["errors"], 3);
    // The manifest says which preprocessing made the tensors (the report too: tests/demo.rs).
    assert_eq!(manifest["preprocess"]["mode"], "exact");
    // ...and the rules the reference libraries disagree on, with whose they are (the fixture's
    // clipflow.json records OpenAI's).
    let pre = &manifest["models"][0]["preprocess"];
    assert_eq!(
        (&pre["crop_rounding"], &pre["transparency"]),
        (&serde_json::json!("half_even"), &serde_json::json!("drop"))
    );
    assert!(
        pre["crop_rounding_from"]
            .as_str()
            .unwrap()
            .starts_with("clipflow.json: OpenAI"),
        "{pre}"
    );
    // Two graphs, the preprocessor config, the tokenizer and clipflow.json.
    assert_eq!(manifest["models"][0]["files"].as_array().unwrap().len(), 5);
    assert!(
        manifest["models"][0]["files"][0]["sha256"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    // No temporary file is left anywhere.
    assert!(files_under(&out).iter().all(|(n, _)| !n.contains(".tmp-")));
}

#[test]
fn rerun_resumes_and_same_seed_gives_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = folder_study(tmp.path(), "");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    assert!(clipflow_run(&s, &a, &[]).status.success());
    let first = files_under(&a.join("embeddings"));

    // A killed run: one part gone, a half-written temporary left behind.
    let victim = a.join("embeddings/xen/image/part-00001.parquet");
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(
        a.join("embeddings/xen/image/.part-00001.parquet.tmp-999"),
        b"half",
    )
    .unwrap();
    let o = clipflow_run(&s, &a, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("parts: 1 written"), "{}", stderr(&o));
    let again: Vec<_> = files_under(&a.join("embeddings"))
        .into_iter()
        .filter(|(n, _)| !n.contains(".tmp-"))
        .collect();
    assert_eq!(
        first, again,
        "resumed run must reproduce the lost part exactly"
    );

    // A fresh run with the same config and seed: same bytes.
    assert!(clipflow_run(&s, &b, &[]).status.success());
    assert_eq!(first, files_under(&b.join("embeddings")));
}

#[test]
fn shards_split_the_work_and_the_last_one_finalises() {
    let tmp = tempfile::tempdir().unwrap();
    let s = folder_study(tmp.path(), "");
    let out = tmp.path().join("run");
    let whole = tmp.path().join("whole");
    let o = clipflow_run(&s, &out, &["--shard", "0/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !out.join("manifest.json").exists(),
        "one shard of two must not finalise"
    );
    let o = clipflow_run(&s, &out, &["--shard", "1/2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("manifest.json").exists());
    assert!(clipflow_run(&s, &whole, &[]).status.success());
    assert_eq!(
        files_under(&out.join("embeddings")),
        files_under(&whole.join("embeddings"))
    );
    assert_eq!(read_column(&out.join("errors.parquet"), "id").len(), 3);
    // Bad shard syntax is a usage error.
    assert_eq!(
        clipflow(&["run", s.to_str().unwrap(), "--shard", "2/2"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn changed_study_in_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = folder_study(tmp.path(), "");
    let out = tmp.path().join("run");
    assert!(clipflow_run(&s, &out, &[]).status.success());
    let o = clipflow_run(&s, &out, &["--set", "seed=4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("different study"), "{}", stderr(&o));
    // Runtime settings change speed, not results: allowed.
    let o = clipflow_run(&s, &out, &["--set", "runtime.batch_size=2"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn hf_parquet_in_every_image_column_form() {
    for (kind, name) in [
        (ImageColumn::Struct, "struct"),
        (ImageColumn::Binary, "binary"),
        (ImageColumn::PathString, "path"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let pq = hf_parquet(tmp.path(), kind);
        let s = study(
            tmp.path(),
            &format!(
                "name: hf\ndataset:\n  format: parquet\n  path: {}/*.parquet\n  caption_column: text\n  label_column: label\nmodels:\n  - path: {}\n",
                pq.parent().unwrap().display(),
                fixture("models/optimum").display()
            ),
        );
        let out = tmp.path().join("run");
        let o = clipflow_run(&s, &out, &[]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let ids = read_column(&out.join("embeddings/optimum/image"), "id");
        assert_eq!(ids.len(), GOOD.len(), "{name}");
        assert!(
            ids.contains(&Some("train-00000-of-00001:0".into())),
            "{name}: stable ids"
        );
        let labels: BTreeSet<_> = read_column(&out.join("embeddings/optimum/image"), "label")
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(
            labels,
            ["cat", "dog"].iter().map(|s| s.to_string()).collect(),
            "{name}: class names from HF metadata"
        );
        // Captions are encoded for every row, including the one whose image is broken.
        assert_eq!(
            read_column(&out.join("embeddings/optimum/text"), "id").len(),
            GOOD.len() + 1,
            "{name}"
        );
        let errs = read_column(&out.join("errors.parquet"), "source");
        assert_eq!(errs.len(), 1, "{name}");
        assert!(
            errs[0].as_ref().unwrap().contains("#row=6"),
            "{name}: {errs:?}"
        );
    }
}

#[test]
fn dtd_split_and_sampling() {
    let tmp = tempfile::tempdir().unwrap();
    let root = dtd(tmp.path());
    let s = study(
        tmp.path(),
        &format!(
            "name: d\ndataset:\n  format: dtd\n  path: {}\n  split: train1\nmodels:\n  - path: {}\n",
            root.display(),
            fixture("models/fastembed").display()
        ),
    );
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = read_column(&out.join("embeddings/fastembed/image"), "id");
    assert_eq!(ids.len(), 2);
    let errs = read_column(&out.join("errors.parquet"), "id");
    assert_eq!(errs, vec![Some("dotted/missing.jpg".to_string())]);

    // Sampling is seeded: same seed, same items; the limit holds.
    let v = |seed: &str| {
        stdout(&clipflow(&[
            "validate",
            s.to_str().unwrap(),
            "--set",
            "dataset.split=all",
            "--set",
            "dataset.sample.limit=4",
            "--set",
            &format!("seed={seed}"),
        ]))
    };
    assert!(v("1").contains("4 items (6 before sampling)"), "{}", v("1"));
    let o = clipflow(&[
        "validate",
        s.to_str().unwrap(),
        "--set",
        "dataset.split=test9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("train1"), "{}", stderr(&o));
}

#[test]
fn config_errors_exit_2_and_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let s = folder_study(tmp.path(), "");
    let text = std::fs::read_to_string(&s).unwrap();

    std::fs::write(
        &s,
        text.replace("  format: folder", "  format: folder\n  lables: x"),
    )
    .unwrap();
    let o = clipflow(&["validate", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("study.yaml:5:") && e.contains("dataset") && e.contains("lables"),
        "{e}"
    );

    std::fs::write(&s, &text).unwrap();
    for (set, needle) in [
        ("models.0.path=/nonexistent/model", "models.0.path"),
        ("dataset.path=/nonexistent/data", "does not exist"),
        ("noise.1.quality=0", "noise.1.quality"),
        ("runtime.device=tpu", "runtime.device"),
        ("runtime.batch_sise=3", "did you mean `batch_size`"),
        // Analysis settings fail before any encoding, naming the key.
        (
            "analysis.projection.perplexities=[0]",
            "analysis.projection.perplexities",
        ),
        ("analysis.projection.variants=[gaussian-9]", "gaussian-0.1"),
        ("analysis.topology.max_dim=2", "analysis.topology.max_dim"),
        (
            "analysis.dimension_sweep.fit_fraction=1.5",
            "analysis.dimension_sweep.fit_fraction",
        ),
        ("analysis.subspaces.rank=0", "analysis.subspaces.rank"),
        ("analysis.projection.methods=[isomap]", "isomap"),
        (
            "dataset.attribute_columns=[Smiling]",
            "only applies to format: parquet",
        ),
        ("report.thumbnail_size=2", "report"),
    ] {
        let o = clipflow(&[
            "run",
            s.to_str().unwrap(),
            "--set",
            set,
            "--out",
            tmp.path().join("never").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{set}: {}", stderr(&o));
        assert!(
            !tmp.path().join("never").exists(),
            "{set}: a config error writes nothing"
        );
    }

    let pq_dir = tmp.path().join("pq");
    std::fs::create_dir_all(&pq_dir).unwrap();
    hf_parquet(&pq_dir, ImageColumn::Struct);
    let s2 = study(
        &pq_dir,
        &format!(
            "name: x\ndataset:\n  format: parquet\n  path: {}\n  caption_column: captoin\nmodels:\n  - path: {}\n",
            pq_dir.display(),
            fixture("models/xenova").display()
        ),
    );
    let o = clipflow(&["validate", s2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no column `captoin`") && stderr(&o).contains("text"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn inspect_commands_match_the_references() {
    let o = clipflow(&[
        "inspect",
        "tokens",
        "--model",
        fixture("models/xenova").to_str().unwrap(),
        "a photo of a cat",
        "",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Vec<i64>> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(&rows[0][..7], &[49406, 320, 1125, 539, 320, 2368, 49407]);
    assert_eq!(rows[0].len(), 77);
    assert_eq!(&rows[1][..3], &[49406, 49407, 0]);

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t.npy");
    let o = clipflow(&[
        "inspect",
        "preprocess",
        "--model",
        fixture("models/xenova").to_str().unwrap(),
        fixture("images/portrait.jpg").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ours = std::fs::read(&out).unwrap();
    let reference = std::fs::read(fixture("golden/preprocess/portrait_jpg.npy")).unwrap();
    assert_eq!(ours.len(), reference.len(), "same header size and shape");
    // Both are [1,3,224,224] float32 after a header padded to 128 bytes.
    let floats = |b: &[u8]| -> Vec<f32> {
        b[128..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let worst = floats(&ours)
        .iter()
        .zip(floats(&reference))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // One uint8 level is 1/255/std ≈ 0.0152 in normalised units.
    assert!(worst < 0.0152, "{worst}");
}

/// A BMP header claiming 65000×65000 pixels (12.7 GB of RGB) in a 316-byte file.
fn huge_bmp() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&316u32.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&65_000i32.to_le_bytes());
    b.extend_from_slice(&65_000i32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    b.resize(316, 0x7f);
    b
}

/// A GIF whose screen and only frame claim 65535×65535 pixels.
fn huge_gif() -> Vec<u8> {
    let mut b = b"GIF89a".to_vec();
    b.extend_from_slice(&65535u16.to_le_bytes());
    b.extend_from_slice(&65535u16.to_le_bytes());
    b.extend_from_slice(&[0x80, 0, 0]); // global colour table of 2 entries
    b.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    b.push(0x2C);
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&65535u16.to_le_bytes());
    b.extend_from_slice(&65535u16.to_le_bytes());
    b.push(0);
    b.extend_from_slice(&[2, 2, 0x4C, 0x01, 0, 0x3B]);
    b
}

/// Issue 12, item 4: `inspect preprocess` decoded with no pixel limit, so a header claiming a
/// huge size made it allocate (and abort, exit 134). The limit now applies before allocating.
#[test]
fn inspect_preprocess_refuses_huge_headers_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in [("huge.bmp", huge_bmp()), ("huge.gif", huge_gif())] {
        let image = tmp.path().join(name);
        std::fs::write(&image, bytes).unwrap();
        let out = tmp.path().join("t.npy");
        let o = clipflow(&[
            "inspect",
            "preprocess",
            "--model",
            fixture("models/xenova").to_str().unwrap(),
            image.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(name) && err.contains("max_pixels"),
            "{name}: {err}"
        );
        assert!(!out.exists());
    }
}
