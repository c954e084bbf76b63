//! Numbers that mean less than they seem say so. On a store built to be awkward:
//!
//! - two classes whose prompts embed identically (words the tokenizer does not know): zero-shot
//!   and image→text recall come down to tie-breaking; the notes say which classes, and the
//!   tables give the tie count and the optimistic and pessimistic values beside the
//!   index-order one;
//! - three classes: top-5 is not reported, and a note says why;
//! - `retrieval.positives: label`: the dimension sweep measures label recall too, as the
//!   retrieval stage does;
//! - `clipflow analyze` never read an image: its report does not claim every item went through
//!   every stage, and shows no robustness section for a store with only clean images;
//! - a clip-retrieval store's label column is read with `--label-column`.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::{clipflow, stderr, write_foreign_store, StoreRow};
use parquet::arrow::ArrowWriter;

const DIM: usize = 8;

/// Deterministic small noise without a dependency.
fn noise(i: usize, j: usize) -> f32 {
    let x = ((i * 7919 + j * 104_729) % 1000) as f32 / 1000.0;
    (x - 0.5) * 0.2
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// 30 images of classes a, b, c (10 each) and one prompt per class, where the prompts of a and
/// b are the same vector.
fn awkward_store(path: &Path) {
    let mut rows = Vec::new();
    for i in 0..30 {
        let class = ["a", "b", "c"][i / 10];
        let mut v = vec![0.0f32; DIM];
        v[if class == "c" { 1 } else { 0 }] = 1.0;
        for (j, x) in v.iter_mut().enumerate().skip(2) {
            *x = noise(i, j);
        }
        rows.push(StoreRow {
            modality: "image",
            id: format!("img{i:02}"),
            extra: Some(class.into()),
            embedding: unit(v),
        });
    }
    for class in ["a", "b", "c"] {
        let mut v = vec![0.0f32; DIM];
        v[if class == "c" { 1 } else { 0 }] = 1.0;
        rows.push(StoreRow {
            modality: "text",
            id: format!("prompt:{class}:0"),
            extra: Some(class.into()),
            embedding: v,
        });
    }
    write_foreign_store(path, "label", &rows);
}

fn value(t: &clipflow::store::Table, filters: &[(&str, &str)], metric: &str) -> Option<f64> {
    let m = t.texts("metric").unwrap();
    let v = t.floats("value").unwrap();
    (0..t.rows())
        .find(|&i| {
            m[i].as_deref() == Some(metric)
                && filters
                    .iter()
                    .all(|(c, want)| t.texts(c).unwrap()[i].as_deref() == Some(want))
        })
        .and_then(|i| v[i])
}

#[test]
fn ties_and_skipped_metrics_are_said() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store.parquet");
    awkward_store(&store);
    let config = tmp.path().join("a.yaml");
    std::fs::write(
        &config,
        "analysis:\n  retrieval: {positives: label, k: [1]}\n  zero_shot:\n  \
         dimension_sweep: {dims: [2, 4], k: [1]}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = clipflow(&[
        "analyze",
        store.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("near-identical prompt embeddings") && e.contains("a ~ b"),
        "{e}"
    );
    assert!(e.contains("top-5 is not reported: 3 classes"), "{e}");
    assert!(
        e.contains("ties in the scores decide the rank of 20 of 30 queries"),
        "{e}"
    );

    let zs = clipflow::store::read_table(&out.join("tables/zero_shot.parquet")).unwrap();
    let z = |m| value(&zs, &[], m).unwrap();
    assert_eq!(z("tied_top1"), 20.0);
    assert!((z("top1") - 20.0 / 30.0).abs() < 1e-12);
    assert!((z("top1_optimistic") - 1.0).abs() < 1e-12);
    assert!((z("top1_pessimistic") - 10.0 / 30.0).abs() < 1e-12);
    assert_eq!(value(&zs, &[], "top5"), None);

    let r = clipflow::store::read_table(&out.join("tables/retrieval.parquet")).unwrap();
    let i2t = [("direction", "image_to_text:label")];
    assert_eq!(value(&r, &i2t, "tied_queries"), Some(20.0));
    assert_eq!(value(&r, &i2t, "recall_optimistic"), Some(1.0));
    assert!((value(&r, &i2t, "recall_pessimistic").unwrap() - 10.0 / 30.0).abs() < 1e-12);

    // The sweep follows `positives: label`.
    let sweep = clipflow::store::read_table(&out.join("tables/dimension_sweep.parquet")).unwrap();
    let metrics = sweep.texts("metric").unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m.as_deref() == Some("text_to_image_label_recall")),
        "{metrics:?}"
    );

    // Nothing was decoded here, and there is no noisy variant to be robust to.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("Every item went through every stage"));
    assert!(html.contains("No image was read here"));
    assert!(!html.contains("id=\"robustness\""));
    assert!(!out.join("tables/robustness.parquet").exists());
}

fn npy(path: &Path, rows: &[Vec<f32>]) {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        rows[0].len()
    );
    let pad = 64 - (10 + header.len() + 1) % 64;
    let h = format!("{header}{}\n", " ".repeat(pad));
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    for r in rows {
        for v in r {
            bytes.extend(v.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn clip_retrieval_labels_come_from_the_named_column() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cr");
    for sub in ["img_emb", "text_emb", "metadata"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let rows: Vec<Vec<f32>> = (0..20)
        .map(|i| {
            let mut v = vec![0.0f32; DIM];
            v[i % 2] = 1.0;
            for (j, x) in v.iter_mut().enumerate().skip(2) {
                *x = noise(i, j);
            }
            unit(v)
        })
        .collect();
    npy(&dir.join("img_emb/img_emb_0.npy"), &rows);
    npy(&dir.join("text_emb/text_emb_0.npy"), &rows);
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, true),
        Field::new("cls", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(
                (0..20).map(|i| format!("k{i}")).collect::<Vec<_>>(),
            )) as ArrayRef,
            Arc::new(StringArray::from(
                (0..20).map(|i| format!("caption {i}")).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                (0..20)
                    .map(|i| if i % 2 == 0 { "even" } else { "odd" })
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(dir.join("metadata/metadata_0.parquet")).unwrap(),
        schema,
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let config = tmp.path().join("a.yaml");
    std::fs::write(&config, "analysis:\n  cluster: {methods: [kmeans]}\n").unwrap();

    let run = |extra: &[&str], out: &str| {
        let out = tmp.path().join(out);
        let mut args = vec![
            "analyze",
            dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out_s = out.to_str().unwrap().to_string();
        args.extend_from_slice(&["--out", &out_s]);
        let o = clipflow(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        (out, stderr(&o))
    };
    let (out, e) = run(&[], "plain");
    assert!(
        e.contains("clustering skipped: not every image has a label"),
        "{e}"
    );
    assert!(!out.join("tables/cluster.parquet").exists());
    let (out, _) = run(&["--label-column", "cls"], "labelled");
    let t = clipflow::store::read_table(&out.join("tables/cluster.parquet")).unwrap();
    assert_eq!(value(&t, &[("method", "kmeans")], "ari"), Some(1.0));
    // A column that is not there is an error naming it.
    let o = clipflow(&[
        "analyze",
        dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--label-column",
        "nope",
        "--out",
        tmp.path().join("bad").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--label-column: no column `nope`"),
        "{}",
        stderr(&o)
    );
}
