//! Persistence diagrams and diagram distances against ripser 0.6.15 and persim 0.4.1
//! (`scripts/gen_topology_golden.py` writes `tests/fixtures/golden/topology/`).
//!
//! Diagrams are compared as sorted multisets of bars: the same number of bars, infinite
//! deaths in the same places, finite values within a relative 1e-6 (ripser works in `f32`;
//! clipflow's distances can differ from scikit-learn's by an `f32` ulp). Bottleneck and
//! Wasserstein distances must match persim's to 1e-9 (relative, absolute near zero).

mod common;

use clipflow::analysis::persistence::{
    bottleneck, rips_persistence, rips_persistence_from_distances, wasserstein, Bar, Diagram,
    PersistenceOptions,
};
use clipflow::analysis::{Distance, Embeddings};
use serde_json::Value;

fn golden(name: &str) -> Value {
    common::golden::read("topology", name, "scripts/gen_topology_golden.py")
}

fn bars(v: &Value) -> Vec<Bar> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| Bar {
            birth: p[0].as_f64().unwrap(),
            death: p[1].as_f64().unwrap_or(f64::INFINITY),
        })
        .collect()
}

fn sorted(mut b: Vec<Bar>) -> Vec<Bar> {
    b.sort_by(|p, q| {
        p.birth
            .total_cmp(&q.birth)
            .then(p.death.total_cmp(&q.death))
    });
    b
}

fn assert_same_bars(what: &str, got: &[Bar], want: &[Bar]) {
    let (got, want) = (sorted(got.to_vec()), sorted(want.to_vec()));
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} bars, ripser has {}\n got {got:?}\nwant {want:?}",
        got.len(),
        want.len()
    );
    let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            close(g.birth, w.birth) && close(g.death, w.death),
            "{what}: bar {g:?} vs ripser's {w:?}\n got {got:?}\nwant {want:?}"
        );
    }
}

fn check_diagrams(name: &str, got: &[Diagram], case: &Value) {
    assert_eq!(got.len(), 2, "{name}: two dimensions");
    assert_eq!((got[0].dim, got[1].dim), (0, 1));
    assert_same_bars(&format!("{name} H0"), &got[0].bars, &bars(&case["h0"]));
    assert_same_bars(&format!("{name} H1"), &got[1].bars, &bars(&case["h1"]));
}

#[test]
fn rips_diagrams_match_ripser() {
    let g = golden("rips.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let n = case["n"].as_u64().unwrap() as usize;
        let opts = PersistenceOptions {
            max_dim: 1,
            threshold: case["threshold"].as_f64(),
            metric: match case["metric"].as_str() {
                Some("cosine") => Distance::Cosine,
                _ => Distance::Euclidean,
            },
        };
        let got = match case["kind"].as_str().unwrap() {
            "points" => {
                let dim = case["dim"].as_u64().unwrap() as usize;
                let x: Vec<f32> = case["x"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                assert_eq!(x.len(), n * dim);
                rips_persistence(Embeddings::new(&x, dim).unwrap(), &opts).unwrap()
            }
            _ => {
                let d: Vec<f64> = case["distances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                rips_persistence_from_distances(&d, n, &opts).unwrap()
            }
        };
        check_diagrams(name, &got, case);
        // H0 alone is the same H0.
        let h0 = PersistenceOptions { max_dim: 0, ..opts };
        if case["kind"] == "points" {
            let dim = case["dim"].as_u64().unwrap() as usize;
            let x: Vec<f32> = case["x"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let only = rips_persistence(Embeddings::new(&x, dim).unwrap(), &h0).unwrap();
            assert_eq!(only.len(), 1);
            assert_eq!(only[0], got[0], "{name}: H0 with max_dim 0");
        }
    }
}

#[test]
fn rips_from_points_equals_rips_from_their_distances() {
    // The same cloud through both entry points: identical diagrams, bit for bit, when the
    // distance matrix holds the f32 distances.
    let g = golden("rips.json");
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "uniform_cube")
        .unwrap();
    let x: Vec<f32> = case["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let n = x.len() / 3;
    let mut d = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            let s: f64 = (0..3)
                .map(|k| {
                    let t = x[i * 3 + k] as f64 - x[j * 3 + k] as f64;
                    t * t
                })
                .sum();
            d[i * n + j] = s.sqrt() as f32 as f64;
        }
    }
    let opts = PersistenceOptions::default();
    let from_d = rips_persistence_from_distances(&d, n, &opts).unwrap();
    check_diagrams("uniform_cube from distances", &from_d, case);
}

fn close_1e9(what: &str, got: f64, want: f64) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, persim {want:e} (|diff| {:e})",
        (got - want).abs()
    );
}

#[test]
fn diagram_distances_match_persim() {
    let g = golden("distances.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (a, b) = (bars(&case["a"]), bars(&case["b"]));
        let want_b = case["bottleneck"].as_f64().unwrap();
        let want_w = case["wasserstein"].as_f64().unwrap();
        close_1e9(
            &format!("{name}: bottleneck"),
            bottleneck(&a, &b).unwrap(),
            want_b,
        );
        close_1e9(
            &format!("{name}: wasserstein"),
            wasserstein(&a, &b).unwrap(),
            want_w,
        );
        // Both are symmetric.
        close_1e9(
            &format!("{name}: bottleneck(b, a)"),
            bottleneck(&b, &a).unwrap(),
            want_b,
        );
        close_1e9(
            &format!("{name}: wasserstein(b, a)"),
            wasserstein(&b, &a).unwrap(),
            want_w,
        );
    }
}
