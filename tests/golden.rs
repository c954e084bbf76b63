//! Fidelity against the Python references, through golden files that `scripts/` regenerates:
//! preprocessing against Pillow (gen_preprocess_golden.py), tokens against OpenAI's reference
//! tokenizer (gen_token_golden.py), and whole-model embeddings against onnxruntime's Python
//! API on the same fixture models (gen_model_golden.py).

use std::path::{Path, PathBuf};

use clipflow::encode::preprocess::{CropRounding, ModelPreprocessConfig, Transparency};
use clipflow::encode::{self, preprocess, Encoder, Preprocess, SessionSettings, TextTokenizer};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Reads a little-endian float32 .npy file.
fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'<f4'"), "{header}");
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn model_files(layout: &str, rules: Option<ModelPreprocessConfig>) -> encode::ModelFiles {
    let cfg = clipflow::config::ModelConfig {
        path: fixtures().join("models").join(layout).display().to_string(),
        preprocess: rules,
        ..Default::default()
    };
    encode::locate(&cfg, 0).unwrap()
}

/// The xenova fixture's preprocessing: its clipflow.json records OpenAI's rules, the
/// reference of the preprocess goldens.
fn xenova_preprocess() -> Preprocess {
    model_files("xenova", None).preprocess().unwrap().unwrap()
}

fn tensor_of(pre: &Preprocess, image: &Path) -> Vec<f32> {
    let bytes = std::fs::read(image).unwrap();
    let rgb = preprocess::decode(&bytes, u64::MAX).unwrap();
    let pixels = pre.to_pixels(&rgb).unwrap();
    let mut t = vec![0.0; pixels.data.len()];
    pre.normalize_into(&pixels, &mut t);
    t
}

/// 16-bit grayscale PNGs: Pillow opens them as `I;16` and `convert("RGB")` clamps the values to
/// 255 instead of scaling (nearly all white; see index.json); clipflow scales them to 8 bits.
/// (16-bit RGB follows Pillow: the high byte.)
const PILLOW_QUIRKS: &[&str] = &["gray16.png"];

/// Fine periodic patterns (checkerboards of 2–3 px cells, 1-px lines, text) downscaled 2–8× in
/// both orientations, with every filter and SigLIP-style square resizes: the uint8 result equals
/// Pillow's exactly (scripts/gen_preprocess_golden.py, `patterns/`). Half the cases run Pillow's
/// vertical pass first, half the horizontal; index.json records what the other order would cost.
#[test]
fn fine_patterns_match_pillow_bit_for_bit() {
    let dir = fixtures().join("golden/preprocess/patterns");
    let index = json(&dir.join("index.json"));
    let mut failures = Vec::new();
    let (mut checked, mut vertical_first) = (0, 0);
    for case in index["cases"].as_array().unwrap() {
        let name = case["golden"].as_str().unwrap();
        let config = &index["configs"][case["config"].as_str().unwrap()];
        let pre = Preprocess::from_json(config).unwrap();
        let bytes = std::fs::read(
            fixtures()
                .join("images/patterns")
                .join(case["image"].as_str().unwrap()),
        )
        .unwrap();
        let ours = pre.load(&bytes, u64::MAX, preprocess::Mode::Exact).unwrap();
        let want = image::open(dir.join(name)).unwrap().to_rgb8();
        assert_eq!(
            (ours.width as u32, ours.height as u32),
            want.dimensions(),
            "{name}"
        );
        let ours = ours.to_rgb();
        let differing = ours
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        let worst = ours
            .iter()
            .zip(want.as_raw())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max()
            .unwrap_or(0);
        if differing > 0 {
            failures.push(format!(
                "{name}: {differing} values differ, up to {worst} levels"
            ));
        }
        checked += 1;
        vertical_first += case["vertical_first"].as_bool().unwrap() as usize;
    }
    assert!(checked >= 40, "only {checked} pattern goldens");
    assert!(vertical_first >= 15 && checked - vertical_first >= 15);
    assert!(failures.is_empty(), "differ from Pillow: {failures:#?}");
}

/// A bare Hugging Face folder gets transformers' rules, a clipflow.json's record wins over them,
/// and the study's `models[].preprocess` over both, rule by rule.
#[test]
fn preprocessing_rules_follow_the_folder_the_export_and_the_study() {
    let rules = |layout: &str, study: Option<ModelPreprocessConfig>| {
        let r = model_files(layout, study)
            .preprocess()
            .unwrap()
            .unwrap()
            .rules;
        (r.crop_rounding, r.transparency, r.crop_rounding_from)
    };
    let (crop, transparency, from) = rules("optimum", None);
    assert_eq!(
        (crop, transparency),
        (CropRounding::Floor, Transparency::Drop)
    );
    assert!(from.contains("transformers"), "{from}");
    let (crop, _, from) = rules("xenova", None);
    assert_eq!(crop, CropRounding::HalfEven);
    assert!(from.starts_with("clipflow.json"), "{from}");
    let study = ModelPreprocessConfig {
        crop_rounding: Some(CropRounding::Floor),
        transparency: None,
    };
    let (crop, transparency, from) = rules("xenova", Some(study));
    assert_eq!(
        (crop, transparency),
        (CropRounding::Floor, Transparency::Drop)
    );
    assert!(from.contains("models[].preprocess"), "{from}");
    // The odd margin of odd_offset_wide.png (resized to 231 wide) moves the crop by a pixel.
    let image = fixtures().join("images/odd_offset_wide.png");
    let study = ModelPreprocessConfig {
        crop_rounding: Some(CropRounding::Floor),
        transparency: None,
    };
    let floor = model_files("xenova", Some(study))
        .preprocess()
        .unwrap()
        .unwrap();
    let half_even = tensor_of(&xenova_preprocess(), &image);
    let floor = tensor_of(&floor, &image);
    // Row 0: floor's column c is half-even's column c - 1.
    assert_eq!(&floor[1..224], &half_even[..223]);
    assert_ne!(floor[0], half_even[0]);
}

#[test]
fn preprocessing_matches_pillow_exactly() {
    let index = json(&fixtures().join("golden/preprocess/index.json"));
    let pre = xenova_preprocess();
    let std = pre.std;
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in index["images"].as_array().unwrap() {
        let image = entry["image"].as_str().unwrap();
        if PILLOW_QUIRKS.contains(&image) {
            continue;
        }
        let path = fixtures().join("images").join(image);
        let ours = tensor_of(&pre, &path);
        // The encoder's path (a JPEG decoded only where the resize reads, the placed resize,
        // the table normalisation) gives the same floats as the whole-image path above.
        let crop = pre
            .load(
                &std::fs::read(&path).unwrap(),
                u64::MAX,
                preprocess::Mode::Exact,
            )
            .unwrap();
        let mut direct = vec![0.0; ours.len()];
        pre.normalize_rgbx_into(&crop, &mut direct);
        assert!(
            direct
                .iter()
                .zip(&ours)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{image}: the encoder's path differs from decode + to_pixels"
        );
        let reference = read_npy(
            &fixtures()
                .join("golden/preprocess")
                .join(entry["npy"].as_str().unwrap()),
        );
        assert_eq!(ours.len(), reference.len(), "{image}");
        let plane = ours.len() / 3;
        // Largest difference in uint8 levels (normalised difference × std × 255).
        let worst = ours
            .iter()
            .zip(&reference)
            .enumerate()
            .map(|(i, (a, b))| ((a - b).abs() * std[i / plane] * 255.0) as f64)
            .fold(0.0, f64::max);
        if worst > 0.01 {
            failures.push(format!("{image}: {worst:.3} levels"));
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} golden images");
    assert!(
        failures.is_empty(),
        "differ from Pillow (beyond float rounding): {failures:?}"
    );
}

/// Every golden image decodes to the very RGB bytes Pillow's `convert("RGB")` gives (their
/// SHA-256 in index.json): the JPEGs among them exercise clipflow's Huffman decoder on
/// Pillow-written files (restart intervals, optimised tables, every subsampling) and libjpeg's
/// on the progressive one.
#[test]
fn decoded_pixels_match_pillow_bit_for_bit() {
    use sha2::{Digest, Sha256};
    let index = json(&fixtures().join("golden/preprocess/index.json"));
    let mut checked = Vec::new();
    for entry in index["images"].as_array().unwrap() {
        let image = entry["image"].as_str().unwrap();
        if PILLOW_QUIRKS.contains(&image) {
            continue;
        }
        let bytes = std::fs::read(fixtures().join("images").join(image)).unwrap();
        let rgb = preprocess::decode(&bytes, u64::MAX).unwrap();
        let digest: String = Sha256::digest(rgb.as_raw())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            digest,
            entry["decoded_rgb_sha256"].as_str().unwrap(),
            "{image}: decoded pixels differ from Pillow's"
        );
        checked.push(image);
    }
    for must in [
        "restart_blocks.jpg",
        "restart_rows.jpg",
        "optimized_444.jpg",
        "portrait.jpg",
    ] {
        assert!(checked.contains(&must), "{must} not in the goldens");
    }
}

#[test]
fn tokens_match_openai_reference() {
    let golden = json(&fixtures().join("golden/tokens.json"));
    let files = encode::locate(
        &clipflow::config::ModelConfig {
            path: fixtures().join("models/xenova").display().to_string(),
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let tok = TextTokenizer::from_files(files.tokenizer.as_ref().unwrap(), None, 77).unwrap();
    let mut mismatches = Vec::new();
    for case in golden.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        // ftfy's mojibake repair guesses at mis-decoded bytes; clipflow does not (text.rs).
        if name == "mojibake" {
            continue;
        }
        let want: Vec<i64> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let (ids, mask) = tok.encode(case["text"].as_str().unwrap()).unwrap();
        if ids != want {
            mismatches.push(name.to_string());
        }
        let real = case["attention_len"].as_u64().unwrap() as usize;
        assert_eq!(mask.iter().filter(|m| **m == 1).count(), real, "{name}");
    }
    assert!(golden.as_array().unwrap().len() >= 30);
    assert!(mismatches.is_empty(), "token ids differ for {mismatches:?}");
}

/// Largest |got − want| against a JSON list of numbers.
fn max_abs_diff(got: &[f32], want: &serde_json::Value) -> f32 {
    let want: Vec<f32> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn embeddings_match_onnxruntime_python_on_every_layout() {
    let golden = json(&fixtures().join("golden/model_outputs.json"));
    let tokens = json(&fixtures().join("golden/tokens.json"));
    for (layout, expected) in golden["layouts"].as_object().unwrap() {
        let cfg = clipflow::config::ModelConfig {
            path: fixtures().join("models").join(layout).display().to_string(),
            ..Default::default()
        };
        let files = encode::locate(&cfg, 0).unwrap();
        let settings = SessionSettings {
            device: encode::DeviceRequest::Cpu,
            intra_threads: 1,
        };
        let mut enc = Encoder::load(&files, settings, true, &|_| {}).unwrap();
        // Each folder's rule (clipflow.json's, else transformers' for the bare optimum folder)
        // is the one its golden was made with.
        let rounding = &enc.preprocess.as_ref().unwrap().rules.crop_rounding;
        assert_eq!(
            serde_json::to_value(rounding).unwrap(),
            expected["crop_rounding"],
            "{layout}"
        );
        for case in expected["image"].as_array().unwrap() {
            let image = case["image"].as_str().unwrap();
            let t = tensor_of(
                enc.preprocess.as_ref().unwrap(),
                &fixtures().join("images").join(image),
            );
            let got = enc.embed_pixels(&t, 1).unwrap();
            let diff = max_abs_diff(&got, &case["embedding"]);
            // Preprocessing may differ from Pillow by one uint8 level; the embedding barely.
            assert!(diff < 2e-3, "{layout} {image}: max diff {diff}");
        }
        for case in expected["text"].as_array().unwrap() {
            if case["source"] != "ids" {
                continue;
            }
            let name = case["name"].as_str().unwrap();
            let text = tokens
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap()["text"]
                .as_str()
                .unwrap();
            let (ids, mask) = enc.tokenizer.as_ref().unwrap().encode(text).unwrap();
            let got = enc.embed_tokens(&ids, &mask, 1).unwrap();
            let diff = max_abs_diff(&got, &case["embedding"]);
            assert!(diff < 1e-5, "{layout} text {name}: max diff {diff}");
        }
    }
}

/// Transparent images of every kind (alpha band, palette and colour `tRNS`, 16-bit RGBA, GIF,
/// WebP; every (value, alpha) pair in `rgba_all.png`) decode to the RGB pixels Pillow gives:
/// composited over white as transformers 5's `convert_to_rgb` does, or dropped as
/// `convert("RGB")` does (scripts/gen_transparency_golden.py).
#[test]
fn transparency_matches_pillow_composited_or_dropped() {
    let dir = fixtures().join("golden/transparency");
    let index = json(&dir.join("index.json"));
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in index["images"].as_array().unwrap() {
        let image = case["image"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(image)).unwrap();
        for (rule, golden) in [
            (Transparency::White, &case["white"]),
            (Transparency::Drop, &case["drop"]),
        ] {
            let want = preprocess::decode(
                &std::fs::read(dir.join(golden.as_str().unwrap())).unwrap(),
                u64::MAX,
            )
            .unwrap();
            let got = preprocess::decode_rgbx(&bytes, u64::MAX, rule, preprocess::JpegRead::WHOLE)
                .unwrap();
            let got = got.image.to_rgb();
            let differ = got
                .iter()
                .zip(want.as_raw())
                .filter(|(a, b)| a != b)
                .count();
            if got.len() != want.as_raw().len() || differ > 0 {
                failures.push(format!("{image} {rule:?}: {differ} values differ"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} transparency goldens");
    assert!(failures.is_empty(), "differ from Pillow: {failures:#?}");
}
