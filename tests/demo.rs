//! The README's demo study, end to end on a small generated dataset: synth → Parquet →
//! both shipped models → every analysis. The trained model must beat its untrained twin, or
//! the embedded default teaches a user nothing.

mod common;

use common::*;

#[test]
fn demo_study_runs_and_the_trained_model_beats_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_textures(&tmp.path().join("textures"), 6, 11);
    let out = tmp.path().join("run");
    let o = clipflow(&[
        "run",
        "pipelines/demo.yaml",
        "--out",
        out.to_str().unwrap(),
        "--set",
        &format!("dataset.path={}", data.display()),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let zs = std::fs::read_to_string(out.join("tables/zero_shot.md")).unwrap();
    let top1 = |model: &str| -> f64 {
        zs.lines()
            .find(|l| l.starts_with(&format!("| {model} | clean |")) && l.contains("| top1 |"))
            .and_then(|l| l.trim_end_matches(" |").rsplit("| ").next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no clean top1 for {model} in\n{zs}"))
    };
    let (trained, baseline) = (top1("texture-clip"), top1("baseline"));
    assert!(trained > 0.5, "trained model zero-shot top-1 {trained}");
    assert!(
        trained > baseline + 0.3,
        "trained {trained} vs baseline {baseline}"
    );
    for plot in [
        "robustness_texture-clip_gaussian.png",
        "zero_shot_confusion_texture-clip.svg",
        "projection_texture-clip_tsne_p30_clean.png",
        "persistence_baseline_gaussian-0.2.svg",
    ] {
        assert!(out.join("plots").join(plot).exists(), "{plot}");
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("clipflow study: demo"));
    assert!(
        report.contains("exact (bit for bit Pillow)"),
        "the report names the preprocessing"
    );
}
