//! Several captions per image: a `list<string>` caption column and `group_by` over rows that
//! repeat the image give the same store: each image encoded once, every caption a text row
//! (`<item id>#<k>` when an item has several), `item_id` naming its image.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

/// (id, text, item_id, label) → embedding bits, for every row of a modality.
type Rows = BTreeMap<String, (Option<String>, Option<String>, Option<String>, Vec<u32>)>;

fn rows(dir: &Path, variant: &str) -> Rows {
    let mut out = BTreeMap::new();
    for (name, _) in files_under(dir) {
        if !name.ends_with(".parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(dir.join(&name)).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let s = |c: &str| batch.column_by_name(c).unwrap().as_string::<i32>().clone();
            let (id, text, item, label, var) =
                (s("id"), s("text"), s("item_id"), s("label"), s("variant"));
            let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            let emb = batch
                .column_by_name("embedding")
                .unwrap()
                .as_fixed_size_list();
            for i in 0..batch.num_rows() {
                if var.value(i) != variant {
                    continue;
                }
                let v = emb.value(i);
                let bits = v
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                let prev = out.insert(
                    id.value(i).to_string(),
                    (opt(&text, i), opt(&item, i), opt(&label, i), bits),
                );
                assert!(prev.is_none(), "duplicate row {}", id.value(i));
            }
        }
    }
    out
}

/// The captions of each image: GOOD[i] gets `i % 3 + 1` captions (the third none: null).
fn captions_of(i: usize) -> Option<Vec<String>> {
    (i != 2).then(|| {
        (0..i % 3 + 1)
            .map(|k| format!("image {i} caption {k}"))
            .collect()
    })
}

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// One row per image with a `list<string>` caption column.
fn list_parquet(dir: &Path) -> PathBuf {
    let mut captions = ListBuilder::new(StringBuilder::new());
    for i in 0..GOOD.len() {
        match captions_of(i) {
            Some(c) => {
                for t in c {
                    captions.values().append_value(t);
                }
                captions.append(true);
            }
            None => captions.append(false),
        }
    }
    let images: Vec<Vec<u8>> = GOOD
        .iter()
        .map(|n| std::fs::read(fixture(&format!("images/{n}"))).unwrap())
        .collect();
    let path = dir.join("list.parquet");
    write(
        &path,
        vec![
            (
                "image",
                Arc::new(BinaryArray::from_iter_values(images.iter())) as ArrayRef,
            ),
            (
                "image_id",
                Arc::new(StringArray::from_iter_values(
                    (0..GOOD.len()).map(|i| format!("img{i}")),
                )),
            ),
            (
                "label",
                Arc::new(StringArray::from_iter_values(
                    (0..GOOD.len()).map(|i| format!("c{}", i % 2)),
                )),
            ),
            ("sentences", Arc::new(captions.finish())),
        ],
    );
    path
}

/// One row per caption, the image repeated, rows of an image not adjacent.
fn repeated_parquet(dir: &Path) -> PathBuf {
    let mut rows: Vec<(usize, Option<String>)> = Vec::new();
    let max = 3;
    for k in 0..max {
        for i in 0..GOOD.len() {
            match captions_of(i) {
                Some(c) if k < c.len() => rows.push((i, Some(c[k].clone()))),
                None if k == 0 => rows.push((i, None)),
                _ => {}
            }
        }
    }
    let images: Vec<Vec<u8>> = rows
        .iter()
        .map(|(i, _)| std::fs::read(fixture(&format!("images/{}", GOOD[*i]))).unwrap())
        .collect();
    let path = dir.join("repeated.parquet");
    write(
        &path,
        vec![
            (
                "image",
                Arc::new(BinaryArray::from_iter_values(images.iter())) as ArrayRef,
            ),
            (
                "image_id",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(i, _)| format!("img{i}")),
                )),
            ),
            (
                "label",
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(i, _)| format!("c{}", i % 2)),
                )),
            ),
            (
                "caption",
                Arc::new(StringArray::from_iter(rows.iter().map(|(_, c)| c.clone()))),
            ),
        ],
    );
    path
}

fn run(dir: &Path, name: &str, dataset: &str) -> PathBuf {
    let s = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &s,
        format!(
            "name: {name}\nseed: 1\ndataset:\n{dataset}\nmodels:\n  - path: {}\n    name: xen\nruntime:\n  part_size: 2\n  batch_size: 4\n",
            fixture("models/xenova").display()
        ),
    )
    .unwrap();
    let out = dir.join(name);
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn list_column_and_group_by_give_one_image_and_every_caption() {
    let tmp = tempfile::tempdir().unwrap();
    let list = list_parquet(tmp.path());
    let repeated = repeated_parquet(tmp.path());
    let a = run(
        tmp.path(),
        "list",
        &format!(
            "  format: parquet\n  path: {}\n  id_column: image_id\n  label_column: label\n  caption_column: sentences",
            list.display()
        ),
    );
    let b = run(
        tmp.path(),
        "grouped",
        &format!(
            "  format: parquet\n  path: {}\n  group_by: image_id\n  label_column: label\n  caption_column: caption",
            repeated.display()
        ),
    );
    for out in [&a, &b] {
        let images = rows(&out.join("embeddings/xen/image"), "clean");
        assert_eq!(images.len(), GOOD.len(), "each image once");
        let texts = rows(&out.join("embeddings/xen/text"), "clean");
        let mut expected = BTreeMap::new();
        for i in 0..GOOD.len() {
            let Some(c) = captions_of(i) else { continue };
            for (k, t) in c.iter().enumerate() {
                let id = if c.len() == 1 {
                    format!("img{i}")
                } else {
                    format!("img{i}#{k}")
                };
                expected.insert(id, t.clone());
            }
        }
        let got: BTreeMap<String, String> = texts
            .iter()
            .map(|(id, (text, _, _, _))| (id.clone(), text.clone().unwrap()))
            .collect();
        assert_eq!(got, expected);
        for (id, (_, item, label, _)) in &texts {
            let item = item.as_deref().unwrap();
            assert!(
                id == item || id.starts_with(&format!("{item}#")),
                "{id} {item}"
            );
            assert_eq!(label.as_deref(), images[item].2.as_deref());
        }
        // Image rows name themselves; their text is the first caption.
        assert_eq!(images["img1"].1.as_deref(), Some("img1"));
        assert_eq!(images["img1"].0.as_deref(), Some("image 1 caption 0"));
        assert_eq!(images["img2"].0, None);
    }
    // Same images and texts, same vectors.
    for m in ["image", "text"] {
        let (x, y) = (
            rows(&a.join(format!("embeddings/xen/{m}")), "clean"),
            rows(&b.join(format!("embeddings/xen/{m}")), "clean"),
        );
        assert_eq!(x, y, "{m}");
    }
}

#[test]
fn group_by_checks_and_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let repeated = repeated_parquet(tmp.path());
    let check = |dataset: &str| {
        let s = tmp.path().join("v.yaml");
        std::fs::write(
            &s,
            format!(
                "name: v\ndataset:\n{dataset}\nmodels:\n  - path: {}\n",
                fixture("models/xenova").display()
            ),
        )
        .unwrap();
        clipflow(&["validate", s.to_str().unwrap()])
    };
    let o = check(&format!(
        "  format: parquet\n  path: {}\n  group_by: image_id\n  caption_column: caption",
        repeated.display()
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("6 items"), "{}", stdout(&o));
    // Grouping by the label column with the image id as label: the rows of one group
    // disagree on their label, which is noted.
    let o = check(&format!(
        "  format: parquet\n  path: {}\n  group_by: label\n  caption_column: caption\n  label_column: image_id",
        repeated.display()
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("different labels"), "{}", stdout(&o));
    let o = check(&format!(
        "  format: parquet\n  path: {}\n  group_by: image_id\n  id_column: label",
        repeated.display()
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("dataset.id_column"), "{}", stderr(&o));
    let o = check(&format!(
        "  format: folder\n  path: {}\n  group_by: image_id",
        tmp.path().display()
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("dataset.group_by: only applies to format: parquet"),
        "{}",
        stderr(&o)
    );
    let o = check(&format!(
        "  format: parquet\n  path: {}\n  group_by: nope",
        repeated.display()
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("dataset.group_by: no column `nope`"),
        "{}",
        stderr(&o)
    );
}

/// Through the whole pipeline: the store a multi-caption run writes is analysed with
/// CLIP_benchmark's definitions (a caption hits when its image is in its top K; an image when
/// any of its captions is), recomputed here from the stored vectors.
#[test]
fn a_multi_caption_run_measures_recall_per_caption_and_per_image() {
    let tmp = tempfile::tempdir().unwrap();
    let list = list_parquet(tmp.path());
    let s = tmp.path().join("r.yaml");
    std::fs::write(
        &s,
        format!(
            "name: r\ndataset:\n  format: parquet\n  path: {}\n  id_column: image_id\n  caption_column: sentences\nmodels:\n  - path: {}\n    name: xen\nanalysis:\n  retrieval: {{k: [1, 2]}}\nreport:\n  enabled: false\n",
            list.display(),
            fixture("models/xenova").display()
        ),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let images = rows(&out.join("embeddings/xen/image"), "clean");
    let texts = rows(&out.join("embeddings/xen/text"), "clean");
    let vec =
        |bits: &[u32]| -> Vec<f64> { bits.iter().map(|b| f32::from_bits(*b) as f64).collect() };
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    let image_ids: Vec<&String> = images.keys().collect();
    let image_vecs: Vec<Vec<f64>> = images.values().map(|r| vec(&r.3)).collect();
    let text_items: Vec<String> = texts.values().map(|r| r.1.clone().unwrap()).collect();
    let text_vecs: Vec<Vec<f64>> = texts.values().map(|r| vec(&r.3)).collect();
    // A hit at K: fewer than K candidates score strictly higher than the positive.
    let t2i = |k: usize| -> f64 {
        let hits = text_vecs
            .iter()
            .zip(&text_items)
            .filter(|(t, item)| {
                let pos = image_ids.iter().position(|i| i == item).unwrap();
                let s = dot(t, &image_vecs[pos]);
                image_vecs.iter().filter(|v| dot(t, v) > s).count() < k
            })
            .count();
        hits as f64 / text_vecs.len() as f64
    };
    let with_captions: Vec<usize> = (0..image_ids.len())
        .filter(|&i| text_items.iter().any(|t| t == image_ids[i]))
        .collect();
    let i2t = |k: usize| -> f64 {
        let hits = with_captions
            .iter()
            .filter(|&&i| {
                let img = &image_vecs[i];
                text_vecs.iter().zip(&text_items).any(|(t, item)| {
                    item == image_ids[i] && {
                        let s = dot(img, t);
                        text_vecs.iter().filter(|u| dot(img, u) > s).count() < k
                    }
                })
            })
            .count();
        hits as f64 / with_captions.len() as f64
    };

    let t = clipflow::store::read_table(&out.join("tables/retrieval.parquet")).unwrap();
    let (dir, metric, kk, value) = (
        t.texts("direction").unwrap(),
        t.texts("metric").unwrap(),
        t.ints("k").unwrap(),
        t.floats("value").unwrap(),
    );
    let get = |d: &str, m: &str, k: Option<i64>| -> f64 {
        (0..t.rows())
            .find(|&i| {
                dir[i].as_deref() == Some(d) && metric[i].as_deref() == Some(m) && kk[i] == k
            })
            .and_then(|i| value[i])
            .unwrap_or_else(|| panic!("no {d} {m} {k:?}"))
    };
    assert_eq!(
        get("text_to_image:caption", "queries", None),
        texts.len() as f64
    );
    let written: usize = (0..GOOD.len())
        .filter_map(captions_of)
        .map(|c| c.len())
        .sum();
    assert_eq!(texts.len(), written);
    assert_eq!(
        get("image_to_text:caption", "queries", None),
        with_captions.len() as f64
    );
    for k in [1usize, 2] {
        assert!((get("text_to_image:caption", "recall", Some(k as i64)) - t2i(k)).abs() < 1e-12);
        assert!((get("image_to_text:caption", "recall", Some(k as i64)) - i2t(k)).abs() < 1e-12);
    }
}
