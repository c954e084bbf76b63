//! The README's demo study, end to end on a small generated dataset: synth → Parquet →
//! both shipped models → every analysis. The trained model must beat its untrained twin, or
//! the embedded default teaches a user nothing. The deep clustering methods (issue 16) sit
//! beside k-means in its cluster table, and give the same bytes whatever the thread count.

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
    assert!(
        report.contains("crop rounding") && report.contains("half_even (clipflow.json"),
        "the report names each model's preprocessing rules"
    );

    // The demo's cluster table: autoencoder and DEC beside k-means on the clean images, scored
    // by the same metrics; their labels in cluster_assignments; their training in
    // cluster_training.
    let table = |name: &str| {
        clipflow::store::read_table(&out.join(format!("tables/{name}.parquet"))).unwrap()
    };
    let text = |t: &clipflow::store::Table, col: &str, i: usize| -> String {
        t.texts(col).unwrap()[i].clone().unwrap_or_default()
    };
    let cluster = table("cluster");
    let rows = cluster.texts("model").unwrap().len();
    for model in ["texture-clip", "baseline"] {
        for method in ["kmeans", "autoencoder", "dec"] {
            for metric in ["ami", "ari", "fmi", "nmi", "silhouette_cosine"] {
                let v: Vec<f64> = (0..rows)
                    .filter(|&i| {
                        text(&cluster, "model", i) == model
                            && text(&cluster, "variant", i) == "clean"
                            && text(&cluster, "method", i) == method
                            && text(&cluster, "metric", i) == metric
                    })
                    .filter_map(|i| cluster.floats("value").unwrap()[i])
                    .collect();
                assert!(
                    v.len() == 1 && v[0].is_finite() && v[0] <= 1.0,
                    "{model} {method} {metric}: {v:?}"
                );
            }
        }
    }
    let md = std::fs::read_to_string(out.join("tables/cluster.md")).unwrap();
    assert!(
        md.contains("| texture-clip | clean | clean | dec | ami |"),
        "{md}"
    );
    let assigned = table("cluster_assignments");
    let count = |method: &str, variant: &str| {
        (0..assigned.texts("id").unwrap().len())
            .filter(|&i| {
                text(&assigned, "method", i) == method && text(&assigned, "variant", i) == variant
            })
            .count()
    };
    // 20 classes × 6 images, both models; the demo keeps the deep methods to the clean set.
    for method in ["kmeans", "autoencoder", "dec"] {
        assert_eq!(count(method, "clean"), 240, "{method}");
    }
    assert_eq!(count("kmeans", "blur-1.5"), 240);
    assert_eq!(count("dec", "blur-1.5"), 0);
    let training = table("cluster_training");
    assert_eq!(training.texts("method").unwrap().len(), 4);
    assert!(training.floats("reconstruction_error").unwrap()[0].is_some_and(|e| e < 1.0));

    // The same study's clustering, analysed again with one thread and with three: the same
    // bytes (a smaller network, and the seed read from the config).
    let config = tmp.path().join("deep.yaml");
    std::fs::write(
        &config,
        "seed: 5\nanalysis:\n  cluster:\n    methods: [kmeans, autoencoder, dec]\n    \
         autoencoder: {layers: [32, 8], pretrain_epochs: 4, finetune_epochs: 8, batch_size: 16, \
         variants: [clean]}\n    dec: {batch_size: 16, max_epochs: 20}\n",
    )
    .unwrap();
    let analyse = |threads: &str| {
        let dir = tmp.path().join(format!("threads-{threads}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_clipflow"))
            .args(["analyze", out.to_str().unwrap(), "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&dir)
            .env("RAYON_NUM_THREADS", threads)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        ["cluster", "cluster_assignments", "cluster_training"].map(|t| {
            std::fs::read(dir.join(format!("tables/{t}.parquet")))
                .unwrap_or_else(|e| panic!("{t}: {e}"))
        })
    };
    let (one, three) = (analyse("1"), analyse("3"));
    assert!(
        one == three,
        "the deep clustering depends on the thread count"
    );

    // A network too large to train is a note naming the methods; k-means still has its rows.
    std::fs::write(
        &config,
        "analysis:\n  cluster:\n    methods: [autoencoder, dec, kmeans]\n    \
         autoencoder: {layers: [100000, 2000], variants: [clean]}\n",
    )
    .unwrap();
    let dir = tmp.path().join("too-large");
    let o = clipflow(&[
        "analyze",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    for method in ["autoencoder", "dec"] {
        assert!(
            e.contains(&format!(
                "texture-clip / clean: cluster method {method} failed: autoencoder"
            )) && e.contains("200 million parameters"),
            "{e}"
        );
    }
    let md = std::fs::read_to_string(dir.join("tables/cluster.md")).unwrap();
    assert!(
        md.contains("| texture-clip | clean | clean | kmeans | ami |"),
        "{md}"
    );
    assert!(!md.contains("| autoencoder |"), "{md}");
}
