//! Real exporters' graphs, without torch: tiny random-weight transformers CLIP, SigLIP, DINOv2,
//! BERT (scripts/export_clip.py and optimum) and ResNet exports under tests/fixtures/models/real,
//! against what PyTorch computed for the same inputs (tests/fixtures/golden/real_exports.json,
//! both written by `scripts/check_exports.py --write-fixtures`).
//!
//! The graphs are fed the reference preprocessing's pixels (the golden tensors), so these tests
//! pin the graphs, pooling, projection, tokenizers and scoring on their own; clipflow's own
//! preprocessing of the same image files, with the rules each export's clipflow.json recorded
//! (transformers' floor crop, transformers 5's white compositing), must give those pixels too.

mod common;

use std::path::Path;

use clipflow::analysis::scoring::{self, Scoring as ScoreKind};
use clipflow::config::{ModelConfig, ScoringKind};
use clipflow::encode::{self, DeviceRequest, Encoder, SessionSettings};
use serde_json::Value;

fn golden() -> Value {
    let path = common::fixture("golden/real_exports.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn unit(v: &[f32]) -> Vec<f64> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    v.iter().map(|x| *x as f64 / n).collect()
}

fn one_minus_cos(a: &[f32], b: &[f32]) -> f64 {
    let (a, b) = (unit(a), unit(b));
    1.0 - a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>()
}

fn config_for(dir: &Path, keys: &Value) -> ModelConfig {
    let mut v = keys.clone();
    v["path"] = Value::String(dir.display().to_string());
    v["name"] = Value::String("fixture".into());
    serde_json::from_value(v).unwrap()
}

fn load(dir: &Path, keys: &Value) -> Encoder {
    let files = encode::locate(&config_for(dir, keys), 0).unwrap_or_else(|e| panic!("{e}"));
    let settings = SessionSettings {
        device: DeviceRequest::Cpu,
        intra_threads: 1,
    };
    Encoder::load(&files, settings, true, &|_| {})
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Embeds every golden image and text; returns (image embeddings, text embeddings).
fn check_model(name: &str, entry: &Value) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let dir = common::fixture(&format!("models/real/{name}"));
    let mut enc = load(&dir, &entry["model_keys"]);
    let mut images = Vec::new();
    for case in entry["images"].as_array().unwrap() {
        let pixels = floats(&case["pixels"]);
        let image = case["image"].as_str().unwrap();
        let bytes = std::fs::read(common::fixture(&format!("images/{image}"))).unwrap();
        let pre = enc.preprocess.as_ref().unwrap();
        let crop = pre
            .load(&bytes, u64::MAX, encode::preprocess::Mode::Exact)
            .unwrap();
        let mut ours = vec![0.0f32; pixels.len()];
        pre.normalize_rgbx_into(&crop, &mut ours);
        let worst = ours
            .iter()
            .zip(&pixels)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-5, "{name} {image}: pixels differ by {worst}");
        let got = enc.embed_pixels(&pixels, 1).unwrap();
        let d = one_minus_cos(&got, &floats(&case["embedding"]));
        assert!(d <= 1e-5, "{name} image {}: 1 - cos = {d:e}", case["image"]);
        images.push(got);
    }
    let mut texts = Vec::new();
    for case in entry["texts"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let (want_ids, want_mask) = (ints(&case["ids"]), ints(&case["mask"]));
        let tok = enc.tokenizer.as_ref().expect("a text tower");
        let (ids, mask) = tok.encode(text).unwrap();
        let real = want_mask.iter().filter(|m| **m == 1).count();
        assert_eq!(
            &ids[..real],
            &want_ids[..real],
            "{name}: token ids of {:?}",
            case["name"]
        );
        assert_eq!(mask.iter().filter(|m| **m == 1).count(), real, "{name}");
        // Padding: the reference's own pad id, wherever the reference pads.
        if let Some(&pad) = want_ids.get(real) {
            assert!(ids[real..].iter().all(|&i| i == pad), "{name}: pad id");
        }
        let got = enc.embed_tokens(&ids, &mask, 1).unwrap();
        let d = one_minus_cos(&got, &floats(&case["embedding"]));
        assert!(d <= 1e-5, "{name} text {}: 1 - cos = {d:e}", case["name"]);
        texts.push(got);
    }
    if let Some(s) = entry["scoring"].as_object() {
        let kind = match s["kind"].as_str().unwrap() {
            "sigmoid" => ScoringKind::Sigmoid,
            _ => ScoringKind::Softmax,
        };
        assert_eq!(enc.scoring.kind, kind, "{name}");
        let scale = s["logit_scale"].as_f64().unwrap();
        let bias = s["logit_bias"].as_f64().unwrap();
        assert!(
            (enc.scoring.logit_scale - scale).abs() <= 1e-6 * scale,
            "{name}"
        );
        assert!((enc.scoring.logit_bias - bias).abs() <= 1e-6, "{name}");
        assert_eq!(enc.scoring.source, "clipflow.json");
    }
    (images, texts)
}

#[test]
fn real_exports_match_pytorch() {
    let g = golden();
    let models = g["models"].as_object().unwrap();
    assert!(models.len() >= 6, "fixtures missing: {:?}", models.keys());
    for (name, entry) in models {
        let (images, texts) = check_model(name, entry);
        assert!(
            !images.is_empty() || !texts.is_empty(),
            "{name}: nothing checked"
        );
    }
}

#[test]
fn siglip_sigmoid_scores_equal_pytorch_logits() {
    let g = golden();
    let entry = &g["models"]["siglip-tiny"];
    let (images, texts) = check_model("siglip-tiny", entry);
    let want = entry["sigmoid_probabilities"].as_array().unwrap();
    let enc = load(
        &common::fixture("models/real/siglip-tiny"),
        &entry["model_keys"],
    );
    let s = ScoreKind::Sigmoid {
        logit_scale: enc.scoring.logit_scale,
        logit_bias: enc.scoring.logit_bias,
    };
    let mut cos = Vec::new();
    for i in &images {
        for t in &texts {
            cos.push(i.iter().zip(t).map(|(a, b)| a * b).sum::<f32>());
        }
    }
    let p = scoring::probabilities(&cos, texts.len(), s).unwrap();
    for (r, row) in want.iter().enumerate() {
        for (c, w) in floats(row).iter().enumerate() {
            let got = p[r * texts.len() + c];
            assert!((got - w).abs() <= 1e-5, "p[{r},{c}] = {got}, PyTorch {w}");
        }
    }
    // The model's probabilities are far from CLIP's softmax at 100: scoring matters.
    let softmax =
        scoring::probabilities(&cos, texts.len(), ScoreKind::Softmax { logit_scale: 100.0 })
            .unwrap();
    assert!(p.iter().zip(&softmax).any(|(a, b)| (a - b).abs() > 0.1));
}

#[test]
fn scoring_falls_back_to_onnx_metadata_and_config_overrides_it() {
    let g = golden();
    let entry = &g["models"]["siglip-tiny"];
    let dir = tempfile::tempdir().unwrap();
    let src = common::fixture("models/real/siglip-tiny");
    copy_dir(&src, dir.path());
    std::fs::remove_file(dir.path().join("clipflow.json")).unwrap();
    let enc = load(dir.path(), &entry["model_keys"]);
    assert_eq!(enc.scoring.source, "onnx metadata");
    assert_eq!(enc.scoring.kind, ScoringKind::Sigmoid);
    let bias = entry["scoring"]["logit_bias"].as_f64().unwrap();
    assert!((enc.scoring.logit_bias - bias).abs() < 1e-6);

    let mut keys = entry["model_keys"].clone();
    keys["scoring"] = serde_json::json!({"logit_scale": 10.0});
    let enc = load(dir.path(), &keys);
    assert_eq!(enc.scoring.logit_scale, 10.0);
    assert_eq!(enc.scoring.source, "onnx metadata+config");
}

fn copy_dir(src: &Path, dst: &Path) {
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            copy_dir(&p, &to);
        } else {
            std::fs::copy(&p, &to).unwrap();
        }
    }
}

#[test]
fn one_tower_models_encode_only_their_tower() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let parquet = common::hf_parquet(&data, common::ImageColumn::Struct);
    let yaml = format!(
        "name: towers\ndataset: {{format: parquet, path: {}, image_column: image, caption_column: text}}\n\
         models:\n  - name: dino\n    path: {}\n    image: {{pooling: cls}}\n  - name: bert\n    path: {}\n    text: {{pooling: mean}}\n\
         runtime: {{device: cpu, threads: 1}}\n",
        parquet.display(),
        common::fixture("models/real/dinov2-tiny").display(),
        common::fixture("models/real/bert-tiny-optimum").display(),
    );
    let study = common::study(dir.path(), &yaml);
    let out = dir.path().join("run");
    let o = common::clipflow_run(&study, &out, &[]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(out.join("embeddings/dino/image").is_dir());
    assert!(!out.join("embeddings/dino/text").exists());
    assert!(out.join("embeddings/bert/text").is_dir());
    assert!(!out.join("embeddings/bert/image").exists());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let towers = &manifest["models"][1]["towers"];
    assert_eq!(towers["text"]["pooling"], "mean");
    assert!(towers.get("image").is_none());
    let scoring = clipflow::store::read_scoring(&out, "bert")
        .unwrap()
        .unwrap();
    assert_eq!(scoring.source, "default");
}

#[test]
fn pokemon_baseline_study_runs_on_fixtures_of_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let parquet = common::hf_parquet(&data, common::ImageColumn::Struct);
    let real = common::fixture("models/real");
    let root = common::root();
    let sets = [
        format!("dataset.path={}", parquet.display()),
        format!("models.0.path={}", real.join("clip-tiny").display()),
        format!("models.1.path={}", real.display()),
        format!(
            "models.1.image.path={}",
            real.join("resnet-tiny/onnx/vision_model.onnx").display()
        ),
        format!(
            "models.1.text.path={}",
            real.join("bert-tiny/onnx/text_model.onnx").display()
        ),
        format!(
            "models.1.text.projection={}",
            real.join("pokemon-baseline-projection.npy").display()
        ),
        "runtime.device=cpu".to_string(),
        "report.enabled=false".to_string(),
    ];
    let out = dir.path().join("run");
    let mut args: Vec<String> = vec![
        "run".into(),
        root.join("pipelines/pokemon-baseline.yaml")
            .display()
            .to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for s in &sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = common::clipflow(&refs);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let baseline = &manifest["models"][1];
    assert_eq!(baseline["embedding_dim"], 1000);
    assert_eq!(baseline["towers"]["image"]["output"], "logits");
    assert!(baseline["towers"]["text"]["projection"]
        .as_str()
        .unwrap()
        .ends_with("pokemon-baseline-projection.npy"));
    assert!(out.join("tables/retrieval.parquet").is_file());
}

#[test]
fn a_siglip_study_reports_sigmoid_probabilities_and_one_tower_models_say_what_they_skip() {
    let g = golden();
    let scoring = &g["models"]["siglip-tiny"]["scoring"];
    let (scale, bias) = (
        scoring["logit_scale"].as_f64().unwrap(),
        scoring["logit_bias"].as_f64().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let parquet = common::hf_parquet(&data, common::ImageColumn::Struct);
    let yaml = format!(
        "name: scoring\ndataset: {{format: parquet, path: {}, image_column: image, caption_column: text, label_column: label}}\n\
         models:\n  - name: siglip\n    path: {}\n  - name: dino\n    path: {}\n    image: {{pooling: cls}}\n\
         analysis:\n  similarity:\n  retrieval:\n  cluster: {{methods: [kmeans]}}\n\
         report: {{enabled: false}}\nruntime: {{device: cpu, threads: 1}}\n",
        parquet.display(),
        common::fixture("models/real/siglip-tiny").display(),
        common::fixture("models/real/dinov2-tiny").display(),
    );
    let study = common::study(dir.path(), &yaml);
    let out = dir.path().join("run");
    let o = common::clipflow_run(&study, &out, &[]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let t = clipflow::store::read_table(&out.join("tables/similarity.parquet")).unwrap();
    let (model, kind) = (t.texts("model").unwrap(), t.texts("scoring").unwrap());
    let (cos, logit, p) = (
        t.floats("cosine").unwrap(),
        t.floats("logit").unwrap(),
        t.floats("probability").unwrap(),
    );
    let mut checked = 0;
    for i in 0..t.rows() {
        assert_eq!(
            model[i].as_deref(),
            Some("siglip"),
            "only the two-tower model pairs texts"
        );
        assert_eq!(kind[i].as_deref(), Some("sigmoid"));
        // SigLIP's own probability: σ(scale · cos + bias), with the PyTorch model's values.
        let z = scale * cos[i].unwrap() + bias;
        let want = 1.0 / (1.0 + (-z).exp());
        assert!((logit[i].unwrap() - z).abs() <= 1e-3, "logit {i}");
        assert!(
            (p[i].unwrap() - want).abs() <= 1e-6,
            "p {i}: {:?} vs {want}",
            p[i]
        );
        checked += 1;
    }
    assert!(checked > 0);
    // The image-only model is clustered, and what it cannot do is said.
    let cluster = clipflow::store::read_table(&out.join("tables/cluster.parquet")).unwrap();
    assert!(cluster
        .texts("model")
        .unwrap()
        .iter()
        .any(|m| m.as_deref() == Some("dino")));
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(
        manifest.contains("dino: retrieval skipped")
            && manifest.contains("dino: similarity skipped"),
        "{manifest}"
    );
}
