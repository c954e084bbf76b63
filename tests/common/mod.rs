//! Helpers shared by the integration tests: datasets in every layout, built from the committed
//! fixture images, and a way to run the `clipflow` binary.

#![allow(dead_code)]

pub mod golden;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Runs the clipflow binary from the repository root (where `.venv` holds ONNX Runtime).
pub fn clipflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_clipflow"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("clipflow runs")
}

/// `clipflow run STUDY --out OUT` and any further arguments.
pub fn clipflow_run(study: &Path, out: &Path, more: &[&str]) -> Output {
    let mut args = vec![
        "run",
        study.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    clipflow(&args)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Good images used by the dataset builders.
pub const GOOD: &[&str] = &[
    "landscape.jpg",
    "portrait.jpg",
    "square.png",
    "tiny.jpg",
    "gray.png",
    "rgba.png",
];

/// An ImageFolder with two classes of good images plus broken files in class `b`:
/// a zero-byte file, a text file named .jpg, and a truncated JPEG.
pub fn image_folder(dir: &Path) -> PathBuf {
    let root = dir.join("folder");
    for (i, name) in GOOD.iter().enumerate() {
        let class = if i % 2 == 0 { "a" } else { "b" };
        std::fs::create_dir_all(root.join(class)).unwrap();
        std::fs::copy(
            fixture(&format!("images/{name}")),
            root.join(class).join(name),
        )
        .unwrap();
    }
    std::fs::write(root.join("b/zero.png"), b"").unwrap();
    std::fs::write(root.join("b/notes.jpg"), b"these are notes, not a picture").unwrap();
    let jpg = std::fs::read(fixture("images/landscape.jpg")).unwrap();
    std::fs::write(root.join("b/cut.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    root
}

/// The DTD release layout with a split file naming a missing image.
pub fn dtd(dir: &Path) -> PathBuf {
    let root = dir.join("dtd");
    for (class, names) in [("banded", &GOOD[..3]), ("dotted", &GOOD[3..])] {
        std::fs::create_dir_all(root.join("images").join(class)).unwrap();
        for n in names {
            std::fs::copy(
                fixture(&format!("images/{n}")),
                root.join("images").join(class).join(n),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(root.join("labels")).unwrap();
    std::fs::write(
        root.join("labels/train1.txt"),
        "banded/landscape.jpg\ndotted/tiny.jpg\ndotted/missing.jpg\n",
    )
    .unwrap();
    std::fs::write(root.join("labels/test1.txt"), "banded/square.png\n").unwrap();
    root
}

/// How the image column of a generated Parquet stores images.
#[derive(Clone, Copy)]
pub enum ImageColumn {
    /// `{bytes, path}` with bytes filled (one row has null bytes and a relative path instead).
    Struct,
    Binary,
    PathString,
}

/// A Hugging Face-style Parquet of the good images plus one zero-byte image, with `text`
/// captions and integer `label`s whose names are in the `huggingface` metadata.
pub fn hf_parquet(dir: &Path, kind: ImageColumn) -> PathBuf {
    let images_dir = dir.join("imgs");
    std::fs::create_dir_all(&images_dir).unwrap();
    let mut bytes: Vec<Option<Vec<u8>>> = Vec::new();
    let mut paths: Vec<Option<String>> = Vec::new();
    for (i, n) in GOOD.iter().enumerate() {
        let b = std::fs::read(fixture(&format!("images/{n}"))).unwrap();
        std::fs::write(images_dir.join(n), &b).unwrap();
        let rel = format!("imgs/{n}");
        match kind {
            ImageColumn::Struct if i == 1 => {
                bytes.push(None);
                paths.push(Some(rel));
            }
            _ => {
                bytes.push(Some(b));
                paths.push(Some(rel));
            }
        }
    }
    bytes.push(Some(Vec::new()));
    paths.push(None);
    let n = bytes.len();
    let captions: Vec<String> = (0..n).map(|i| format!("a picture number {i}")).collect();
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 2).collect();
    let image: ArrayRef = match kind {
        ImageColumn::Struct => {
            let fields = Fields::from(vec![
                Field::new("bytes", DataType::Binary, true),
                Field::new("path", DataType::Utf8, true),
            ]);
            Arc::new(StructArray::new(
                fields,
                vec![
                    Arc::new(BinaryArray::from_iter(bytes.iter().map(|b| b.as_deref())))
                        as ArrayRef,
                    Arc::new(StringArray::from(paths.clone())) as ArrayRef,
                ],
                None,
            ))
        }
        ImageColumn::Binary => Arc::new(BinaryArray::from_iter(bytes.iter().map(|b| b.as_deref()))),
        ImageColumn::PathString => {
            let mut p = paths.clone();
            p[n - 1] = Some("imgs/does-not-exist.png".into());
            Arc::new(StringArray::from(p))
        }
    };
    let hf =
        r#"{"info": {"features": {"label": {"names": ["cat", "dog"], "_type": "ClassLabel"}}}}"#;
    let schema = Arc::new(
        Schema::new(vec![
            Field::new("image", image.data_type().clone(), true),
            Field::new("text", DataType::Utf8, true),
            Field::new("label", DataType::Int64, true),
        ])
        .with_metadata(
            [("huggingface".to_string(), hf.to_string())]
                .into_iter()
                .collect(),
        ),
    );
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            image,
            Arc::new(StringArray::from(captions)),
            Arc::new(Int64Array::from(labels)),
        ],
    )
    .unwrap();
    let path = dir.join("train-00000-of-00001.parquet");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_size(3)
        .build();
    let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

/// Writes a study YAML and returns its path.
pub fn study(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("study.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Every file under `dir` with its bytes, sorted (for determinism comparisons).
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((
                    p.strip_prefix(base).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// `clipflow synth textures` into `dir` (both layouts), `per_class` images of each of the 20
/// classes; returns the Parquet folder.
pub fn synth_textures(dir: &Path, per_class: usize, seed: u64) -> PathBuf {
    let o = clipflow(&[
        "synth",
        "textures",
        "--out",
        dir.to_str().unwrap(),
        "--per-class",
        &per_class.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir.join("parquet")
}

/// One row of a foreign embedding store (see [`write_foreign_store`]).
pub struct StoreRow {
    pub modality: &'static str,
    pub id: String,
    /// The value of the store's one optional string column (a label, an item id).
    pub extra: Option<String>,
    pub embedding: Vec<f32>,
}

/// An embedding store as another tool would write it: one Parquet file with clipflow's
/// columns (`model` = "m", `modality`, `id`, `embedding`) and one optional string column named
/// `extra` (`label`, `item_id`).
pub fn write_foreign_store(path: &Path, extra: &str, rows: &[StoreRow]) {
    use arrow_array::builder::{Float32Builder, ListBuilder};
    let mut emb = ListBuilder::new(Float32Builder::new());
    for r in rows {
        emb.values().append_slice(&r.embedding);
        emb.append(true);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("modality", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new(extra, DataType::Utf8, true),
        Field::new(
            "embedding",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            false,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["m"; rows.len()])),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.modality),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.id.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.extra.as_deref()),
        )),
        Arc::new(emb.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}
