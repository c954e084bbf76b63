//! The analysis core against golden values from scikit-learn, SciPy and direct numpy
//! references (`scripts/gen_analysis_golden.py` writes `tests/fixtures/golden/analysis/`).
//!
//! Clustering metrics and silhouettes must match to 1e-9; recall and accuracy counts, ranks,
//! predictions, k-means labels and iteration counts, Ward trees and DBSCAN labels exactly.

mod common;

use common::golden::{f32s, f64s, usizes};

use clipflow::analysis::cluster::{self, Distance, KMeansOptions};
use clipflow::analysis::probe::{self, LinearProbeOptions, Split};
use clipflow::analysis::retrieval::{self, Positives, RankOptions};
use clipflow::analysis::{zero_shot, Embeddings, Labels};
use serde_json::Value;

fn golden(name: &str) -> Value {
    common::golden::read("analysis", name, "scripts/gen_analysis_golden.py")
}

fn opt_usizes(v: &Value) -> Vec<Option<usize>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().map(|u| u as usize))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap()
}

fn dim(case: &Value) -> usize {
    case["dim"].as_u64().unwrap() as usize
}

/// Largest deviation seen by `close` in this test binary (printed with `--nocapture`).
static MAX_DEVIATION: std::sync::Mutex<f64> = std::sync::Mutex::new(0.0);

fn close(what: &str, got: f64, want: f64, tol: f64) {
    let mut m = MAX_DEVIATION.lock().unwrap();
    *m = m.max((got - want).abs());
    drop(m);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.17}, want {want:.17} (diff {:e})",
        (got - want).abs()
    );
}

fn cases(v: &Value) -> &Vec<Value> {
    v["cases"].as_array().unwrap()
}

#[test]
fn clustering_metrics_equal_scikit_learn() {
    let g = golden("metrics.json");
    for case in cases(&g) {
        let n = name(case);
        let (t, p) = if case.get("labels_true_str").is_some() {
            (
                Labels::from_strings(&strings(&case["labels_true_str"])).ids,
                Labels::from_strings(&strings(&case["labels_pred_str"])).ids,
            )
        } else {
            (usizes(&case["labels_true"]), usizes(&case["labels_pred"]))
        };
        let s = cluster::cluster_scores(&t, &p).unwrap();
        let want = |k: &str| case[k].as_f64().unwrap();
        close(&format!("{n} ari"), s.adjusted_rand, want("ari"), 1e-9);
        close(
            &format!("{n} nmi"),
            s.normalized_mutual_info,
            want("nmi"),
            1e-9,
        );
        close(
            &format!("{n} ami"),
            s.adjusted_mutual_info,
            want("ami"),
            1e-9,
        );
        close(&format!("{n} fmi"), s.fowlkes_mallows, want("fmi"), 1e-9);
        close(
            &format!("{n} homogeneity"),
            s.homogeneity,
            want("homogeneity"),
            1e-9,
        );
        close(
            &format!("{n} completeness"),
            s.completeness,
            want("completeness"),
            1e-9,
        );
        close(
            &format!("{n} v_measure"),
            s.v_measure,
            want("v_measure"),
            1e-9,
        );
        close(
            &format!("{n} mi"),
            cluster::mutual_info_score(&t, &p).unwrap(),
            want("mi"),
            1e-9,
        );
        close(
            &format!("{n} entropy"),
            cluster::entropy(&t).unwrap(),
            want("entropy_true"),
            1e-9,
        );
    }
    eprintln!(
        "largest deviation so far: {:e}",
        *MAX_DEVIATION.lock().unwrap()
    );
}

#[test]
fn silhouette_equals_scikit_learn() {
    let g = golden("silhouette.json");
    for case in cases(&g) {
        let n = name(case);
        let x = f32s(&case["x"]);
        let e = Embeddings::new(&x, dim(case)).unwrap();
        let labels = usizes(&case["labels"]);
        for (metric, key) in [
            (Distance::Euclidean, "euclidean"),
            (Distance::Cosine, "cosine"),
        ] {
            let got = cluster::silhouette_score(e, &labels, metric).unwrap();
            close(
                &format!("{n} {key}"),
                got,
                case[key].as_f64().unwrap(),
                1e-9,
            );
            let sk = format!("samples_{key}");
            if case.get(&sk).is_some() {
                let got = cluster::silhouette_samples(e, &labels, metric).unwrap();
                for (i, (g, w)) in got.iter().zip(f64s(&case[&sk])).enumerate() {
                    close(&format!("{n} {key} sample {i}"), *g, w, 1e-9);
                }
            }
        }
    }
    eprintln!(
        "largest deviation so far: {:e}",
        *MAX_DEVIATION.lock().unwrap()
    );
}

#[test]
fn retrieval_equals_the_numpy_definition() {
    let g = golden("retrieval.json");
    for case in cases(&g) {
        let n = name(case);
        let d = dim(case);
        let q = f32s(&case["queries"]);
        let gal = f32s(&case["gallery"]);
        let (qk, gk);
        let positives = if case["positives"] == "paired" {
            Positives::Paired
        } else {
            qk = usizes(&case["query_keys"]);
            gk = usizes(&case["gallery_keys"]);
            Positives::SharedKey {
                query: &qk,
                gallery: &gk,
            }
        };
        let ks = usizes(&case["ks"]);
        let top_queries = usizes(&case["top_queries"]);
        let top_k = case["top_k"].as_u64().unwrap() as usize;
        let qe = Embeddings::new(&q, d).unwrap();
        let ge = Embeddings::new(&gal, d).unwrap();
        let opts = RankOptions {
            top_k_queries: &top_queries,
            top_k,
            ..RankOptions::default()
        };
        let r = retrieval::retrieve(qe, ge, &positives, &ks, &opts).unwrap();
        assert_eq!(r.ranking.ranks, opt_usizes(&case["ranks"]), "{n} ranks");
        let hits: Vec<usize> = r.metrics.recall.iter().map(|x| x.hits).collect();
        assert_eq!(hits, usizes(&case["hits"]), "{n} hits");
        assert_eq!(
            r.metrics.n_without_positive as u64,
            case["n_without_positive"].as_u64().unwrap(),
            "{n}"
        );
        for (got, key) in [
            (r.metrics.mean_rank, "mean_rank"),
            (r.metrics.median_rank, "median_rank"),
        ] {
            close(
                &format!("{n} {key}"),
                got.unwrap(),
                case[key].as_f64().unwrap(),
                1e-12,
            );
        }
        close(
            &format!("{n} mrr"),
            r.metrics.mrr,
            case["mrr"].as_f64().unwrap(),
            1e-12,
        );
        let want_top = case["top"].as_array().unwrap();
        let want_scores = case["top_scores"].as_array().unwrap();
        assert_eq!(r.ranking.top.len(), top_queries.len());
        for ((t, wi), ws) in r.ranking.top.iter().zip(want_top).zip(want_scores) {
            let idx: Vec<usize> = t.hits.iter().map(|h| h.gallery).collect();
            assert_eq!(idx, usizes(wi), "{n} top-k of query {}", t.query);
            let sc: Vec<f64> = t.hits.iter().map(|h| h.score as f64).collect();
            assert_eq!(sc, f64s(ws), "{n} top-k scores of query {}", t.query);
        }
        // Blocking does not change anything: one query per block.
        let tiny = RankOptions {
            memory_budget: 1,
            ..opts.clone()
        };
        let again = retrieval::rank(qe, ge, &positives, &tiny).unwrap();
        assert_eq!(again, r.ranking, "{n} with one-row blocks");
    }
}

#[test]
fn zero_shot_equals_the_numpy_definition() {
    let g = golden("zero_shot.json");
    for case in cases(&g) {
        let n = name(case);
        let d = dim(case);
        let nc = case["n_classes"].as_u64().unwrap() as usize;
        let prompts = f32s(&case["prompts"]);
        let classes = zero_shot::class_embeddings(
            Embeddings::new(&prompts, d).unwrap(),
            &usizes(&case["prompt_class"]),
            nc,
        )
        .unwrap();
        for (i, (g, w)) in classes
            .iter()
            .zip(f64s(&case["class_embeddings"]))
            .enumerate()
        {
            close(
                &format!("{n} class embedding value {i}"),
                *g as f64,
                w,
                1e-7,
            );
        }
        let images = f32s(&case["images"]);
        let labels = usizes(&case["labels"]);
        let z = zero_shot::zero_shot(
            Embeddings::new(&images, d).unwrap(),
            Embeddings::new(&classes, d).unwrap(),
            &labels,
        )
        .unwrap();
        assert_eq!(
            z.predictions,
            usizes(&case["predictions"]),
            "{n} predictions"
        );
        assert_eq!(
            z.true_rank,
            usizes(&case["true_rank"]),
            "{n} true-class ranks"
        );
        assert_eq!(
            z.top1_correct as u64,
            case["top1_correct"].as_u64().unwrap(),
            "{n}"
        );
        assert_eq!(
            z.top5_correct.map(|c| c as u64),
            case["top5_correct"].as_u64(),
            "{n} top-5"
        );
        assert_eq!(z.confusion, usizes(&case["confusion"]), "{n} confusion");
        let support: Vec<usize> = z.per_class.iter().map(|c| c.support).collect();
        let correct: Vec<usize> = z.per_class.iter().map(|c| c.correct).collect();
        assert_eq!(support, usizes(&case["support"]), "{n} support");
        assert_eq!(correct, usizes(&case["correct"]), "{n} per-class correct");
        close(
            &format!("{n} mean per-class recall"),
            z.mean_per_class_recall,
            case["mean_per_class_recall"].as_f64().unwrap(),
            1e-12,
        );
    }
}

#[test]
fn kmeans_from_a_common_start_equals_scikit_learn() {
    let g = golden("clustering.json");
    for case in g["kmeans_from_init"].as_array().unwrap() {
        let n = name(case);
        let x = f32s(&case["x"]);
        let init = f32s(&case["init"]);
        let r = cluster::lloyd(
            Embeddings::new(&x, dim(case)).unwrap(),
            &init,
            case["max_iter"].as_u64().unwrap() as usize,
            case["tol"].as_f64().unwrap(),
        )
        .unwrap();
        assert_eq!(r.labels, usizes(&case["labels"]), "{n} labels");
        assert_eq!(
            r.n_iter as u64,
            case["n_iter"].as_u64().unwrap(),
            "{n} iterations"
        );
        let want = case["inertia"].as_f64().unwrap();
        close(&format!("{n} inertia"), r.inertia, want, 1e-6 * want);
    }
}

#[test]
fn kmeans_plus_plus_restarts_reach_scikit_learn_inertia() {
    let g = golden("clustering.json");
    for case in g["kmeans_pp"].as_array().unwrap() {
        let n = name(case);
        let x = f32s(&case["x"]);
        let k = case["k"].as_u64().unwrap() as usize;
        let opts = KMeansOptions {
            n_init: case["n_init"].as_u64().unwrap() as usize,
            ..KMeansOptions::new(k, 7)
        };
        let r = cluster::kmeans(Embeddings::new(&x, dim(case)).unwrap(), &opts).unwrap();
        let want = case["sklearn_inertia"].as_f64().unwrap();
        assert!(
            r.inertia <= want * (1.0 + 1e-6),
            "{n}: inertia {} vs scikit-learn {want}",
            r.inertia
        );
        let ari = cluster::adjusted_rand_score(&usizes(&case["truth"]), &r.labels).unwrap();
        close(
            &format!("{n} ARI"),
            ari,
            case["sklearn_ari"].as_f64().unwrap(),
            1e-9,
        );
        assert_eq!(r.restart_inertia.len(), opts.n_init);
    }
}

#[test]
fn ward_equals_scipy_and_scikit_learn() {
    let g = golden("clustering.json");
    for case in g["ward"].as_array().unwrap() {
        let n = name(case);
        let x = f32s(&case["x"]);
        let tree = cluster::ward_tree(Embeddings::new(&x, dim(case)).unwrap()).unwrap();
        let merges = case["merges"].as_array().unwrap();
        let heights = f64s(&case["heights"]);
        let sizes = usizes(&case["sizes"]);
        assert_eq!(tree.merges.len(), merges.len(), "{n}");
        for (i, m) in tree.merges.iter().enumerate() {
            assert_eq!(vec![m.a, m.b], usizes(&merges[i]), "{n} merge {i}");
            close(
                &format!("{n} height {i}"),
                m.height,
                heights[i],
                1e-9 * heights[i],
            );
            assert_eq!(m.size, sizes[i], "{n} size {i}");
        }
        for (k, want) in case["cuts"].as_object().unwrap() {
            let k: usize = k.parse().unwrap();
            assert_eq!(tree.cut(k).unwrap(), usizes(want), "{n} cut into {k}");
        }
    }
}

#[test]
fn dbscan_equals_scikit_learn() {
    let g = golden("clustering.json");
    for case in g["dbscan"].as_array().unwrap() {
        let n = name(case);
        let x = f32s(&case["x"]);
        let metric = match case["metric"].as_str().unwrap() {
            "cosine" => Distance::Cosine,
            _ => Distance::Euclidean,
        };
        let r = cluster::dbscan(
            Embeddings::new(&x, dim(case)).unwrap(),
            &cluster::DbscanOptions {
                eps: case["eps"].as_f64().unwrap(),
                min_samples: case["min_samples"].as_u64().unwrap() as usize,
                metric,
            },
        )
        .unwrap();
        assert_eq!(r.labels, opt_usizes(&case["labels"]), "{n} labels");
        let core: Vec<bool> = case["core"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_bool().unwrap())
            .collect();
        assert_eq!(r.core, core, "{n} core samples");
        assert_eq!(r.n_clusters as u64, case["n_clusters"].as_u64().unwrap());
    }
}

#[test]
fn probes_match_scikit_learn() {
    let g = golden("probe.json");
    for case in cases(&g) {
        let n = name(case);
        let x = f32s(&case["x"]);
        let e = Embeddings::new(&x, dim(case)).unwrap();
        let labels = usizes(&case["labels"]);
        let split = Split {
            train: usizes(&case["train"]),
            test: usizes(&case["test"]),
        };
        for (k, want) in case["knn"].as_object().unwrap() {
            let k: usize = k.parse().unwrap();
            let s = probe::knn_accuracy(e, &labels, &split, k).unwrap();
            assert_eq!(s.predictions, usizes(&want["predictions"]), "{n} kNN k={k}");
            assert_eq!(
                s.correct as u64,
                want["correct"].as_u64().unwrap(),
                "{n} k={k}"
            );
        }
        let opts = LinearProbeOptions {
            l2: case["l2"].as_f64().unwrap(),
            ..LinearProbeOptions::default()
        };
        let (s, model) = probe::linear_probe(e, &labels, &split, &opts).unwrap();
        let want_acc = case["logistic_accuracy"].as_f64().unwrap();
        assert!(
            (s.accuracy - want_acc).abs() <= 0.02 + 1e-12,
            "{n}: linear probe accuracy {} vs scikit-learn {want_acc}",
            s.accuracy
        );
        // Same convex objective: L-BFGS must get at least as low as scikit-learn's optimum.
        let obj = case["logistic_objective"].as_f64().unwrap();
        assert!(
            model.loss <= obj + 1e-6 * obj.max(1.0),
            "{n}: objective {} vs scikit-learn {obj} ({model:?})",
            model.loss
        );
        assert!(model.converged, "{n}: L-BFGS did not converge");
    }
}
