//! The geometry stages and the report, end to end as a user runs them: a generated texture
//! dataset with metadata columns, the shipped model, every geometry analysis on, twice into
//! two directories (same seed, same bytes), and the report loaded in headless Chromium.

mod common;

use std::path::Path;

use common::*;

fn read_table(path: &Path) -> clipflow::store::Table {
    clipflow::store::read_table(path).unwrap_or_else(|e| panic!("{e}"))
}

fn floats(t: &clipflow::store::Table, col: &str) -> Vec<f64> {
    t.floats(col)
        .unwrap_or_else(|| panic!("{}: no float column {col}", t.name))
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}

fn texts(t: &clipflow::store::Table, col: &str) -> Vec<String> {
    t.texts(col)
        .unwrap_or_else(|| panic!("{}: no text column {col}", t.name))
        .iter()
        .map(|v| v.clone().unwrap_or_default())
        .collect()
}

const STUDY: &str = "name: geometry
seed: 5
dataset:
  format: parquet
  path: DATA
  image_column: image
  caption_column: caption
  label_column: label
  id_column: id
  attribute_columns: [scale, dark_background]
noise:
  - kind: gaussian
    sigma: [0.2]
models:
  - name: texture-clip
    path: models/texture-clip
texts:
  captions: true
  prompts:
    file: configs/prompts/dtd.yaml
analysis:
  retrieval:
    k: [1, 5]
  zero_shot:
  probe:
    knn_k: 5
  projection:
    perplexities: [5, 15]
    max_points: 120
  dimension_sweep:
    dims: [2, 8, 32]
  subspaces:
    rank: 3
  topology:
    max_points: 60
  attributes:
    components: 4
";

#[test]
fn geometry_stages_and_report_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_textures(&tmp.path().join("textures"), 6, 3);
    let study_path = tmp.path().join("study.yaml");
    std::fs::write(
        &study_path,
        STUDY.replace("DATA", &data.display().to_string()),
    )
    .unwrap();
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let o = clipflow_run(&study_path, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let a = run("a");
    let tables = a.join("tables");

    // PCA spectrum: ratios in (0, 1], descending, cumulative ending at 1.
    let spectrum = read_table(&tables.join("pca_spectrum.parquet"));
    let ratio = floats(&spectrum, "explained_variance_ratio");
    let cumulative = floats(&spectrum, "cumulative_ratio");
    let variant = texts(&spectrum, "variant");
    let clean: Vec<usize> = (0..ratio.len())
        .filter(|&i| variant[i] == "clean")
        .collect();
    assert!(clean.windows(2).all(|w| ratio[w[0]] >= ratio[w[1]] - 1e-12));
    assert!((cumulative[*clean.last().unwrap()] - 1.0).abs() < 1e-6);

    // Every map scored; the trained model keeps neighbourhoods better than chance.
    let quality = read_table(&tables.join("projection_quality.parquet"));
    let methods = texts(&quality, "method");
    for m in ["pca", "tsne", "umap"] {
        assert!(methods.iter().any(|x| x == m), "{m} missing: {methods:?}");
    }
    let trust = floats(&quality, "trustworthiness");
    assert_eq!(
        trust.len(),
        2 * (1 + 2 + 1),
        "2 variants × (PCA, 2 t-SNE, UMAP)"
    );
    assert!(trust.iter().all(|&t| (0.5..=1.0).contains(&t)), "{trust:?}");
    let tsne_best = (0..trust.len())
        .filter(|&i| methods[i] == "tsne")
        .map(|i| trust[i])
        .fold(0.0, f64::max);
    let pca_best = (0..trust.len())
        .filter(|&i| methods[i] == "pca")
        .map(|i| trust[i])
        .fold(0.0, f64::max);
    assert!(
        tsne_best > pca_best,
        "t-SNE keeps neighbours better than a linear map: {tsne_best} vs {pca_best}"
    );
    let coords = read_table(&tables.join("projection_coordinates.parquet"));
    assert_eq!(coords.rows(), 120 * 2 * 4);

    // Dimension sweep: a smallest dimension per metric, and quality grows with the dimension.
    let summary = read_table(&tables.join("dimension_sweep_summary.parquet"));
    let metrics = texts(&summary, "metric");
    assert!(
        metrics.contains(&"zero_shot_top1".to_string()),
        "{metrics:?}"
    );
    assert!(metrics.contains(&"text_to_image_recall".to_string()));
    let sweep = read_table(&tables.join("dimension_sweep.parquet"));
    let (dims, values, names) = (
        sweep.ints("dim").unwrap(),
        floats(&sweep, "value"),
        texts(&sweep, "metric"),
    );
    let zs_at = |d: i64| {
        (0..values.len())
            .find(|&i| dims[i] == Some(d) && names[i] == "zero_shot_top1")
            .map(|i| values[i])
            .unwrap()
    };
    assert!(zs_at(32) > zs_at(2), "{} vs {}", zs_at(32), zs_at(2));

    // Subspace angles between every pair of the 20 classes, in [0°, 90°].
    let angles = read_table(&tables.join("subspace_angles.parquet"));
    assert_eq!(angles.rows(), 20 * 19 / 2);
    assert!(floats(&angles, "mean_angle_degrees")
        .iter()
        .all(|a| (0.0..=90.0).contains(a)));

    // Topology: H0 has one infinite bar per variant; distances to clean for the noisy one.
    let diagrams = read_table(&tables.join("persistence_diagrams.parquet"));
    let death = floats(&diagrams, "death");
    let dim = diagrams.ints("dim").unwrap();
    let infinite_h0 = (0..death.len())
        .filter(|&i| dim[i] == Some(0) && death[i].is_infinite())
        .count();
    assert_eq!(infinite_h0, 2);
    assert_eq!(
        (0..death.len()).filter(|&i| dim[i] == Some(0)).count(),
        2 * 60
    );
    let distances = read_table(&tables.join("persistence_distances.parquet"));
    assert_eq!(
        texts(&distances, "variant"),
        ["gaussian-0.2", "gaussian-0.2"]
    );
    assert!(floats(&distances, "bottleneck_to_clean")
        .iter()
        .all(|d| d.is_finite() && *d >= 0.0));

    // Attributes: both probed; the background's darkness is visible to a linear probe.
    let probe = read_table(&tables.join("attribute_probe.parquet"));
    let attrs = texts(&probe, "attribute");
    assert_eq!(attrs, ["scale", "dark_background"]);
    assert_eq!(texts(&probe, "kind"), ["categorical", "boolean"]);
    let (acc, base) = (
        floats(&probe, "accuracy"),
        floats(&probe, "majority_baseline"),
    );
    assert!(
        acc[1] > base[1],
        "dark_background: {} vs {}",
        acc[1],
        base[1]
    );
    assert!(a.join("attributes.parquet").exists());

    // Every table has its Markdown copy; every plot its PNG and SVG.
    for entry in std::fs::read_dir(&tables).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "parquet") {
            assert!(p.with_extension("md").exists(), "{}", p.display());
        }
    }
    for plot in [
        "pca_spectrum_texture-clip",
        "projection_texture-clip_tsne_p15_clean",
        "projection_texture-clip_umap_gaussian-0.2",
        "dimension_sweep_texture-clip",
        "subspace_angles_texture-clip",
        "persistence_texture-clip_clean",
        "attribute_components_texture-clip",
    ] {
        for ext in ["png", "svg"] {
            let p = a.join("plots").join(format!("{plot}.{ext}"));
            assert!(p.exists(), "{}", p.display());
        }
    }

    // Same config and seed: the same tables and plots, byte for byte.
    let b = run("b");
    let outputs = std::fs::read_dir(&tables)
        .unwrap()
        .chain(std::fs::read_dir(a.join("plots")).unwrap());
    for entry in outputs {
        let p = entry.unwrap().path();
        let dir = p.parent().unwrap().file_name().unwrap();
        let other = b.join(dir).join(p.file_name().unwrap());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(&other).unwrap(),
            "{} differs between two runs",
            p.display()
        );
    }

    // The report: one self-contained page that loads in Chromium without console errors.
    let report = a.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    for id in [
        "retrieval",
        "projections",
        "dimension-sweep",
        "subspaces",
        "topology",
        "attributes",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let python = std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string());
    // Provenance: the seeded samples are tables, so scikit-learn recomputes the numbers from
    // the run directory alone.
    let o = std::process::Command::new(&python)
        .arg(root().join("scripts/check_provenance.py"))
        .arg(&a)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (run scripts/setup)"));
    assert!(
        o.status.success(),
        "check_provenance.py: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let shot = tmp.path().join("report.png");
    let o = std::process::Command::new(&python)
        .arg(root().join("scripts/check_report.py"))
        .arg(&report)
        .arg(&shot)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (run scripts/setup)"));
    assert!(
        o.status.success(),
        "check_report.py: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(shot.exists());
}
