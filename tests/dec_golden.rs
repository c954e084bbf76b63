//! DEC's soft assignment, target distribution and KL divergence against the paper's equations
//! in numpy (`scripts/gen_dec_golden.py` writes `tests/fixtures/golden/dec/`). The training steps
//! of the same file set are checked by the unit tests of `src/analysis/cluster/{autoencoder,dec}.rs`.

mod common;

use clipflow::analysis::cluster::{kl_divergence, soft_assignment, target_distribution};
use clipflow::analysis::Embeddings;
use common::golden::{f32s, f64s};

#[test]
fn soft_assignment_target_and_kl_equal_numpy() {
    let g = common::golden::read("dec", "soft_assignment.json", "scripts/gen_dec_golden.py");
    for case in g["cases"].as_array().unwrap() {
        let alpha = case["alpha"].as_f64().unwrap();
        let c = case["c"].as_u64().unwrap() as usize;
        let z = f32s(&case["z"]);
        let mu = f32s(&case["centroids"]);
        let k = mu.len() / c;
        let q = soft_assignment(Embeddings::new(&z, c).unwrap(), &mu, alpha).unwrap();
        let p = target_distribution(&q, k).unwrap();
        for (what, got, want) in [("q", &q, f64s(&case["q"])), ("p", &p, f64s(&case["p"]))] {
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 1e-14,
                    "alpha {alpha} {what}[{i}]: {a} vs {b}"
                );
            }
        }
        let kl = kl_divergence(&p, &q);
        let want = case["kl"].as_f64().unwrap();
        assert!(
            (kl - want).abs() < 1e-13 * want.abs().max(1.0),
            "{kl} vs {want}"
        );
    }
}
