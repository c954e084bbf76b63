//! Several captions per image, end to end: a store whose caption rows name their image in an
//! `item_id` column is analysed by `clipflow analyze`, and its recall equals CLIP_benchmark's
//! on the same embeddings (scripts/gen_multicaption_golden.py): a text is a hit when its image
//! is in its top K, an image when ANY of its captions is, and each image is one query however
//! many captions it has.

mod common;

use std::path::Path;

use common::{clipflow, fixture, stderr, write_foreign_store, StoreRow};
use serde_json::Value;

fn write_store(path: &Path, golden: &Value) {
    let rows = |key: &str| -> Vec<Vec<f32>> {
        golden[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect()
            })
            .collect()
    };
    let images = rows("images");
    let texts = rows("texts");
    let item: Vec<usize> = golden["text_item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mut rows: Vec<StoreRow> = images
        .iter()
        .enumerate()
        .map(|(i, v)| StoreRow {
            modality: "image",
            id: format!("img{i}"),
            extra: None,
            embedding: v.clone(),
        })
        .collect();
    // Caption k of image i is `img<i>#<k>`, as clipflow names the captions of a multi-caption
    // dataset; texts are written in a shuffled order so nothing relies on row alignment.
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.reverse();
    let mut seen = std::collections::HashMap::new();
    let mut caption_ids = vec![String::new(); texts.len()];
    for (t, &i) in item.iter().enumerate() {
        let k = seen.entry(i).or_insert(0usize);
        caption_ids[t] = format!("img{i}#{k}");
        *k += 1;
    }
    for t in order {
        rows.push(StoreRow {
            modality: "text",
            id: caption_ids[t].clone(),
            extra: Some(format!("img{}", item[t])),
            embedding: texts[t].clone(),
        });
    }
    write_foreign_store(path, "item_id", &rows);
}

#[test]
fn multi_caption_recall_equals_clip_benchmark() {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("golden/multicaption/store.json")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store.parquet");
    write_store(&store, &golden);
    let config = tmp.path().join("a.yaml");
    std::fs::write(&config, "analysis:\n  retrieval: {k: [1, 5, 10]}\n").unwrap();
    let out = tmp.path().join("out");
    let o = clipflow(&[
        "analyze",
        store.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = clipflow::store::read_table(&out.join("tables/retrieval.parquet")).unwrap();
    let (dir, metric, k, value) = (
        t.texts("direction").unwrap(),
        t.texts("metric").unwrap(),
        t.ints("k").unwrap(),
        t.floats("value").unwrap(),
    );
    let get = |d: &str, m: &str, kk: Option<i64>| -> f64 {
        (0..t.rows())
            .find(|&i| {
                dir[i].as_deref() == Some(d) && metric[i].as_deref() == Some(m) && k[i] == kk
            })
            .and_then(|i| value[i])
            .unwrap_or_else(|| panic!("no {d} {m} {kk:?} in the retrieval table"))
    };
    for k in [1i64, 5, 10] {
        let want_t2i = golden["text_to_image"][k.to_string()].as_f64().unwrap();
        let want_i2t = golden["image_to_text_with_captions"][k.to_string()]
            .as_f64()
            .unwrap();
        let got_t2i = get("text_to_image:caption", "recall", Some(k));
        let got_i2t = get("image_to_text:caption", "recall", Some(k));
        assert!(
            (got_t2i - want_t2i).abs() < 1e-12,
            "t2i@{k}: {got_t2i} vs {want_t2i}"
        );
        assert!(
            (got_i2t - want_i2t).abs() < 1e-12,
            "i2t@{k}: {got_i2t} vs {want_i2t}"
        );
    }
    // Every caption is a query; every image with a caption is one; the others are counted.
    let captions = golden["text_item"].as_array().unwrap().len() as f64;
    let without = golden["images_without_caption"].as_f64().unwrap();
    assert_eq!(get("text_to_image:caption", "queries", None), captions);
    assert_eq!(
        get("image_to_text:caption", "queries", None),
        40.0 - without
    );
    assert_eq!(
        get("image_to_text:caption", "queries_without_positive", None),
        without
    );
}
