//! The embedding-atlas export, end to end: a small study is run by the CLI, its maps are
//! exported, and pyarrow/numpy/Pillow (scripts/check_atlas_export.py) check the files
//! independently: embedding-atlas's column types, neighbours equal to a brute-force cosine
//! kNN of the stored embeddings, coordinates equal to `projection_coordinates`, and images
//! byte-identical to the dataset's.

mod common;

use common::*;

const STUDY: &str = "name: atlas
seed: 3
dataset:
  format: parquet
  path: DATA
  image_column: image
  caption_column: caption
  label_column: label
  id_column: id
noise:
  - kind: gaussian
    sigma: [0.2]
models:
  - name: texture-clip
    path: models/texture-clip
texts:
  captions: true
analysis:
  projection:
    perplexities: [5]
    max_points: 60
";

fn python() -> String {
    std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string())
}

#[test]
fn export_opens_as_embedding_atlas_expects() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_textures(&tmp.path().join("textures"), 4, 9);
    let study_path = tmp.path().join("study.yaml");
    std::fs::write(
        &study_path,
        STUDY.replace("DATA", &data.display().to_string()),
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = clipflow_run(&study_path, &out, &["--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let loaded = clipflow::config::load(&study_path, &[]).unwrap();
    let plan = clipflow::run::plan(loaded, Some(&out)).unwrap();
    let export =
        clipflow::run::export_atlas(&out, &out.join("tables"), Some(&plan.dataset), 7).unwrap();
    let names: Vec<String> = export
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "texture-clip_pca.parquet",
            "texture-clip_tsne_p5.parquet",
            "texture-clip_umap.parquet"
        ],
        "one file per clean map"
    );
    assert!(export.notes.is_empty(), "{:?}", export.notes);
    // Deterministic: a second export writes the same bytes.
    let first: Vec<Vec<u8>> = export
        .files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    let again =
        clipflow::run::export_atlas(&out, &out.join("tables"), Some(&plan.dataset), 7).unwrap();
    for (f, bytes) in again.files.iter().zip(&first) {
        assert_eq!(&std::fs::read(f).unwrap(), bytes, "{}", f.display());
    }
    let check = std::process::Command::new(python())
        .arg(root().join("scripts/check_atlas_export.py"))
        .arg(&out)
        .args(&export.files)
        .arg("--dataset")
        .arg(&data)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): run scripts/setup", python()));
    let stdout = String::from_utf8_lossy(&check.stdout);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success(),
        "scripts/check_atlas_export.py failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("\"ok\": true"), "{stdout}");

    // Without the plan: no image column, captions from the store.
    let no_images = clipflow::run::export_atlas(&out, &out.join("tables"), None, 7).unwrap();
    let schema = {
        let f = std::fs::File::open(&no_images.files[0]).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        r.schema().clone()
    };
    assert!(
        schema.field_with_name("image").is_err(),
        "no images without the dataset"
    );
    assert!(schema.field_with_name("caption").is_ok());
}
