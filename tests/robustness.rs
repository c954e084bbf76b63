//! The robustness suite as a user drives it: the `imagenet-c` preset and corruption kinds in a
//! study (validation, errors naming the key), image and text variants in the store, and
//! `clipflow inspect preprocess --noise`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, Float64Array, StringArray};
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Rows of every part under `dir` as maps of the named string / float columns.
fn rows(dir: &Path, columns: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut files: Vec<_> = files_under(dir)
        .into_iter()
        .map(|(n, _)| dir.join(n))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for path in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                let mut row = BTreeMap::new();
                for &c in columns {
                    let col = batch.column_by_name(c).unwrap();
                    let v = if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                        if s.is_null(i) {
                            "<null>".to_string()
                        } else {
                            s.value(i).to_string()
                        }
                    } else {
                        let f = col.as_any().downcast_ref::<Float64Array>().unwrap();
                        f.value(i).to_string()
                    };
                    row.insert(c.to_string(), v);
                }
                out.push(row);
            }
        }
    }
    out
}

fn parquet_study(dir: &Path, noise: &str, texts_noise: &str) -> std::path::PathBuf {
    let data = hf_parquet(dir, ImageColumn::Binary);
    study(
        dir,
        &format!(
            "name: r\nseed: 5\ndataset:\n  format: parquet\n  path: {}\n  caption_column: text\n  label_column: label\nnoise:\n{noise}\nmodels:\n  - path: {}\n    name: xen\ntexts:\n  prompts:\n    templates: ['a photo of a {{}}.']\n  noise:\n{texts_noise}\nruntime:\n  part_size: 4\n  batch_size: 8\n",
            data.display(),
            fixture("models/xenova").display()
        ),
    )
}

#[test]
fn the_preset_expands_to_every_corruption_and_says_what_it_leaves_out() {
    let tmp = tempfile::tempdir().unwrap();
    let s = parquet_study(
        tmp.path(),
        "  - preset: imagenet-c\n    severity: [1, 2, 3, 4, 5]",
        "  - preset: all\n    rate: 0.1",
    );
    let o = clipflow(&["validate", s.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = out.lines().find(|l| l.contains("  variants:")).unwrap();
    let names: Vec<&str> = line.split(": ").nth(1).unwrap().split(", ").collect();
    assert_eq!(names.len(), 1 + 18 * 5, "{line}");
    for n in [
        "clean",
        "gaussian_noise-1",
        "glass_blur-3",
        "jpeg_compression-5",
        "saturate-5",
    ] {
        assert!(names.contains(&n), "{n} in {line}");
    }
    assert!(!line.contains("frost"), "{line}");
    assert!(
        out.contains("note: noise.0: the imagenet-c preset runs without frost"),
        "{out}"
    );
    let text_line = out.lines().find(|l| l.contains("text variants:")).unwrap();
    assert_eq!(text_line.split(", ").count(), 9, "{text_line}");
}

#[test]
fn bad_noise_settings_name_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (noise, texts, want) in [
        (
            "  - kind: contrast\n    severity: 6",
            "    []",
            "noise.0.severity: 6 is not an ImageNet-C severity",
        ),
        (
            "  - kind: frost\n    severity: 1",
            "    []",
            "noise.0.frost_textures: is required for frost",
        ),
        (
            "  - kind: frost\n    severity: 1\n    frost_textures: nowhere",
            "    []",
            "frost1.png",
        ),
        (
            "  - preset: imagenet-c\n    severity: 1\n    corruptions: [gaussian]",
            "    []",
            "noise.0.corruptions: gaussian is not an ImageNet-C corruption",
        ),
        (
            "  - preset: imagenet-c\n    severity: 1\n    corruptions: [contrst]",
            "    []",
            "did you mean `contrast`",
        ),
        (
            "  - kind: contrast\n    sigma: 1",
            "    []",
            "noise.0.sigma: does not apply to kind contrast; it takes severity",
        ),
        (
            "  - kind: contrast\n    severity: 1\n    preset: imagenet-c",
            "    []",
            "noise.0.preset: give kind or preset, not both",
        ),
        (
            "  []",
            "  - kind: char_swap\n    rate: 0",
            "texts.noise.0.rate: 0 is not a rate in (0, 1]",
        ),
        (
            "  []",
            "  - kind: char_swop\n    rate: 0.1",
            "did you mean `char_swap`",
        ),
    ] {
        let s = parquet_study(tmp.path(), noise, texts);
        let o = clipflow(&["validate", s.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{noise} / {texts}");
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
    }
}

#[test]
fn image_and_text_variants_land_in_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let s = parquet_study(
        tmp.path(),
        "  - preset: imagenet-c\n    severity: [1, 5]\n    corruptions: [contrast, gaussian_noise]",
        "  - kind: char_swap\n    rate: 0.2\n  - kind: word_drop\n    rate: 0.5",
    );
    let run = |name: &str| {
        let out = tmp.path().join(name);
        let o = clipflow_run(&s, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        out
    };
    let out = run("run");

    // Images: 6 decodable items × (clean + 2 corruptions × 2 severities).
    let images = rows(
        &out.join("embeddings/xen/image"),
        &["id", "variant", "noise", "noise_level"],
    );
    assert_eq!(images.len(), 6 * 5);
    let kinds: BTreeSet<(String, String, String)> = images
        .iter()
        .map(|r| {
            (
                r["variant"].clone(),
                r["noise"].clone(),
                r["noise_level"].clone(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("clean", "none", "0"),
        ("contrast-1", "contrast", "1"),
        ("contrast-5", "contrast", "5"),
        ("gaussian_noise-1", "gaussian_noise", "1"),
        ("gaussian_noise-5", "gaussian_noise", "5"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(kinds, want);

    // Texts: every caption and prompt in 3 text variants, under its own id, clean first.
    let texts = rows(
        &out.join("embeddings/xen/text"),
        &["id", "variant", "noise", "noise_level", "text", "label"],
    );
    let mut by_id: BTreeMap<String, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in &texts {
        by_id.entry(r["id"].clone()).or_default().push(r);
    }
    // 6 captioned items with a decodable image, 1 whose image is empty (its caption is still
    // encoded), and 2 class prompts.
    assert_eq!(by_id.len(), 7 + 2, "{:?}", by_id.keys().collect::<Vec<_>>());
    for (id, variants) in &by_id {
        let names: Vec<&str> = variants.iter().map(|r| r["variant"].as_str()).collect();
        assert_eq!(names, ["clean", "char_swap-0.2", "word_drop-0.5"], "{id}");
        let clean = &variants[0]["text"];
        assert_eq!(variants[0]["noise"], "none");
        assert_eq!(variants[1]["noise"], "char_swap");
        assert_eq!(variants[2]["noise_level"], "0.5");
        assert!(variants.iter().all(|r| r["label"] == variants[0]["label"]));
        let dropped = &variants[2]["text"];
        assert!(
            dropped.split(' ').count() < clean.split(' ').count(),
            "{clean} -> {dropped}"
        );
        if !id.starts_with("prompt:") {
            assert_ne!(&variants[1]["text"], clean, "{id}");
        }
    }

    // Same study, same seed: the same texts and the same bytes, wherever it runs.
    let again = run("again");
    for modality in ["image", "text"] {
        let a = files_under(&out.join("embeddings/xen").join(modality));
        let b = files_under(&again.join("embeddings/xen").join(modality));
        assert_eq!(a, b, "{modality} parts differ between runs");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["text_variants"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["text_variants"][1]["noise"], "char_swap");
}

/// The float32 data of a C-order .npy file and its shape.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    let shape: Vec<usize> = header[header.find("'shape': (").unwrap() + 10..]
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let data = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, data)
}

#[test]
fn inspect_preprocess_writes_the_corrupted_tensor() {
    use clipflow::augment::{self, PixelImage};
    use clipflow::encode::{self, Preprocess};

    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("models/xenova");
    let image = fixture("images/landscape.jpg");
    // The model's own rules (its clipflow.json), as `inspect preprocess --model` reads them.
    let cfg = clipflow::config::ModelConfig {
        path: model.display().to_string(),
        ..Default::default()
    };
    let pre: Preprocess = encode::locate(&cfg, 0)
        .unwrap()
        .preprocess()
        .unwrap()
        .unwrap();
    let base: PixelImage = pre
        .to_pixels(&encode::preprocess::decode(&std::fs::read(&image).unwrap(), u64::MAX).unwrap())
        .unwrap();
    for (spec, seed, id) in [
        ("contrast:3", "0", "x"),
        ("jpeg_compression:5", "0", "x"),
        ("gaussian_noise:1", "7", "a/landscape.jpg"),
        ("gaussian:0.1", "7", "a/landscape.jpg"),
    ] {
        let out = tmp.path().join("t.npy");
        let o = clipflow(&[
            "inspect",
            "preprocess",
            "--model",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
            "--noise",
            spec,
            "--seed",
            seed,
            "--id",
            id,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{spec}: {}", stderr(&o));
        let (shape, got) = read_npy(&out);
        assert_eq!(shape, [1, 3, 224, 224]);
        // The study's steps: the variant's own stream, pixel noise, normalisation.
        let v = augment::variant_from_spec(spec, None).unwrap();
        let mut pixels = base.clone();
        let mut rng = augment::rng_for(seed.parse().unwrap(), id, &v);
        let noise = v.noise.as_ref().unwrap();
        noise.apply_pixels(&mut pixels, &mut rng).unwrap();
        let mut want = vec![0.0f32; pixels.data.len()];
        pre.normalize_into(&pixels, &mut want);
        assert_eq!(got, want, "{spec}");
        let mut clean = vec![0.0f32; base.data.len()];
        pre.normalize_into(&base, &mut clean);
        assert_ne!(got, clean, "{spec} changed nothing");
    }
    for (spec, want) in [
        ("contrast:9", "not an ImageNet-C severity"),
        ("nope:1", "unknown variant `nope`"),
        ("contrast", "expected KIND:LEVEL"),
        ("frost:1", "frost_textures"),
    ] {
        let o = clipflow(&[
            "inspect",
            "preprocess",
            "--model",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
            "--noise",
            spec,
            "--out",
            tmp.path().join("x.npy").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{spec}");
        assert!(stderr(&o).contains(want), "{spec}: {}", stderr(&o));
    }
}

/// The `robustness` stage on a study of three models (the trained texture model twice, under
/// two names, and its untrained twin): image corruptions and text perturbations, CE/mCE
/// against a reference, effective robustness; `scripts/check_robustness.py` recomputes them
/// with numpy from the per-severity error table, and text variants against the clean images
/// from the store's vectors.
#[test]
fn robustness_stage_agrees_with_an_independent_recomputation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_textures(&tmp.path().join("textures"), 2, 11);
    let models = [
        ("texture-clip", "models/texture-clip"),
        ("clip-copy", "models/texture-clip"),
        ("baseline", "models/texture-baseline"),
    ];
    let yaml = |analysis: &str| {
        format!(
            "name: rb\nseed: 3\ndataset:\n  format: parquet\n  path: {}\n  image_column: image\n  caption_column: caption\n  label_column: label\n  id_column: id\nnoise:\n  - preset: imagenet-c\n    severity: [1, 3]\n    corruptions: [gaussian_noise, contrast, fog, saturate]\n  - kind: gaussian\n    sigma: 0.1\nmodels:\n{}texts:\n  captions: true\n  prompts:\n    templates: ['a photo of a {{}} texture.', 'a photo of a {{}} pattern.']\n  noise:\n    - kind: char_swap\n      rate: 0.2\n    - kind: word_drop\n      rate: 0.5\nanalysis:\n{analysis}",
            data.display(),
            models
                .iter()
                .map(|(n, p)| format!("  - name: {n}\n    path: {}\n", root().join(p).display()))
                .collect::<String>()
        )
    };
    // A reference that is not a model of the study is refused, naming the key and its line.
    let s = study(
        tmp.path(),
        &yaml("  zero_shot:\n  robustness:\n    reference: basline\n"),
    );
    let o = clipflow(&["validate", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("analysis.robustness.reference") && e.contains("did you mean `baseline`"),
        "{e}"
    );
    assert!(
        e.contains(&format!("study.yaml:{}:5:", yaml("").lines().count() + 3)),
        "{e}"
    );

    let s = study(
        tmp.path(),
        &yaml(
            "  zero_shot:\n  retrieval:\n    k: [1, 5]\n  robustness:\n    reference: baseline\n",
        ),
    );
    let out = tmp.path().join("run");
    let o = clipflow_run(&s, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for t in [
        "robustness",
        "robustness_errors",
        "robustness_ce",
        "robustness_mce",
        "robustness_effective",
    ] {
        assert!(out.join(format!("tables/{t}.parquet")).exists(), "{t}");
    }
    for p in [
        "robustness_heatmap_image_texture-clip.png",
        "robustness_heatmap_image_baseline.svg",
        "robustness_heatmap_text_clip-copy.png",
        "robustness_family_image_noise.png",
        "robustness_family_image_digital.svg",
        "robustness_family_text_characters.png",
        "robustness_family_text_words.png",
    ] {
        assert!(out.join("plots").join(p).exists(), "{p}");
    }
    let err = stderr(&o);
    assert!(
        err.contains(
            "(gaussian-0.1) have their errors in robustness_errors but are left out of CE"
        ),
        "{err}"
    );
    assert!(
        err.contains("mCE is the mean over the 3 benchmark corruptions"),
        "{err}"
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("robustness mce") && report.contains("robustness effective"),
        "report has no mCE or effective robustness table"
    );

    let check = std::process::Command::new(python())
        .arg(root().join("scripts/check_robustness.py"))
        .arg(&out)
        .args(["--reference", "baseline", "--store"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); run scripts/setup first", python()));
    assert!(
        check.status.success(),
        "{}\n{}",
        stdout(&check),
        stderr(&check)
    );
    let said = stdout(&check);
    assert!(said.contains("robustness ok"), "{said}");

    // Without a reference CE and mCE are not computed, and a note says why; a reference the
    // store does not have is refused, naming the key and its line.
    let config = tmp.path().join("analysis.yaml");
    std::fs::write(&config, "analysis:\n  zero_shot:\n  robustness:\n").unwrap();
    let an = tmp.path().join("an");
    let o = clipflow(&[
        "analyze",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        an.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("CE and mCE are not computed: they are relative to a reference model"),
        "{}",
        stderr(&o)
    );
    assert!(!an.join("tables/robustness_ce.parquet").exists());
    assert!(an.join("tables/robustness_effective.parquet").exists());
    std::fs::write(
        &config,
        "analysis:\n  zero_shot:\n  robustness:\n    reference: nobody\n",
    )
    .unwrap();
    let o = clipflow(&[
        "analyze",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        an.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("analysis.yaml:4:")
            && stderr(&o).contains("analysis.robustness.reference: no model is named"),
        "{}",
        stderr(&o)
    );
}

fn python() -> String {
    std::env::var("CLIPFLOW_PYTHON")
        .unwrap_or_else(|_| root().join(".venv/bin/python").display().to_string())
}
