//! PCA, class-subspace angles and attribute correlations against scikit-learn, SciPy and numpy
//! (`scripts/gen_geometry_golden.py` writes `tests/fixtures/golden/geometry/`).
//!
//! Tolerances (absolute unless said):
//! - PCA: mean 1e-12; explained variance 1e-10·λ₁; ratio 1e-10; total variance 1e-10
//!   relative; components, scores and singular values 1e-9 (relative to the largest) where
//!   the component is defined (eigenvalue separated from the others and from 0 by 1e-6·λ₁;
//!   others are not unique in either solver); row-normalised scores 1e-6 (`f32`);
//!   reconstruction error 1e-9 relative + 1e-12·total variance.
//! - Principal angles 1e-9 rad, except where SciPy itself took `arccos` of a cosine within
//!   1e-12 of 1 (its precision there is ~1e-8): 1e-7. Class bases as projectors, 1e-9.
//! - Point-biserial r and η 1e-12; undefined cases and their reason exactly.

mod common;

use common::golden::{f32s, f64s, usizes};

use clipflow::analysis::attributes::{self, AttributeValues};
use clipflow::analysis::pca::pca;
use clipflow::analysis::subspace::{self, ClassBasis};
use clipflow::analysis::Embeddings;
use serde_json::Value;

fn golden(name: &str) -> Value {
    common::golden::read("geometry", name, "scripts/gen_geometry_golden.py")
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_bool().unwrap())
        .collect()
}

fn uint(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

fn cases<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap()
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap()
}

/// Largest deviation relative to its tolerance, per kind of check (printed with
/// `--nocapture`), to show how much margin the tolerances leave.
static WORST: std::sync::Mutex<Vec<(String, f64, f64)>> = std::sync::Mutex::new(Vec::new());

fn close(what: &str, got: f64, want: f64, tol: f64) {
    let kind: String = what
        .split(['[', '('])
        .next()
        .unwrap_or(what)
        .split_whitespace()
        .rfind(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or(what)
        .to_string();
    let diff = (got - want).abs();
    {
        let mut w = WORST.lock().unwrap();
        match w.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(e) if diff / tol > e.1 / e.2 => *e = (kind, diff, tol),
            Some(_) => {}
            None => w.push((kind, diff, tol)),
        }
    }
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:.17e}, want {want:.17e} (diff {:e}, tol {tol:e})",
        (got - want).abs()
    );
}

/// The rows of the `formula` case, rebuilt bit for bit (see `formula_rows` in the generator).
fn formula_rows(spec: &Value) -> (Vec<f32>, usize) {
    let (n, dim) = (uint(&spec["n"]), uint(&spec["dim"]));
    let scales = f32s(&spec["scales"]);
    let mut x = Vec::with_capacity(n * dim);
    for i in 0..n as i64 {
        for j in 0..dim as i64 {
            let h = (i * i * 40503 + i * 2654435 + j * 97 + i * j * 7919 + j * j * 131) % 65536;
            let u = (h as f64 / 65536.0 - 0.5) as f32;
            x.push(u * scales[j as usize]);
        }
    }
    (x, dim)
}

#[test]
fn pca_equals_scikit_learn() {
    let g = golden("pca.json");
    for case in cases(&g, "cases") {
        let name = name(case);
        let (x, dim) = match case.get("x") {
            Some(x) => (f32s(x), uint(&case["dim"])),
            None => formula_rows(&case["formula"]),
        };
        let e = Embeddings::new(&x, dim).unwrap();
        let n_components = case["n_components"].as_u64().map(|v| v as usize);
        let p = pca(e, n_components).unwrap();
        let ev = f64s(&case["explained_variance"]);
        let nc = ev.len();
        assert_eq!(p.n_components(), nc, "{name}");
        assert_eq!((p.n_samples, p.dim), (uint(&case["n"]), dim), "{name}");
        let defined = usizes(&case["defined_components"]);
        let lambda1 = ev[0];

        for (j, (&g, &w)) in p.mean.iter().zip(&f64s(&case["mean"])).enumerate() {
            close(&format!("{name} mean[{j}]"), g, w, 1e-12 * w.abs().max(1.0));
        }
        let tv = case["total_variance"].as_f64().unwrap();
        close(&format!("{name} total"), p.total_variance, tv, 1e-10 * tv);
        let sv = f64s(&case["singular_values"]);
        let ratio = f64s(&case["explained_variance_ratio"]);
        for j in 0..nc {
            close(
                &format!("{name} ev[{j}]"),
                p.explained_variance[j],
                ev[j],
                1e-10 * lambda1,
            );
            close(
                &format!("{name} ratio[{j}]"),
                p.explained_variance_ratio[j],
                ratio[j],
                1e-10,
            );
            // sqrt amplifies the absolute error of a near-zero eigenvalue.
            let tol = if defined.contains(&j) { 1e-9 } else { 1e-6 };
            close(
                &format!("{name} singular[{j}]"),
                p.singular_values[j],
                sv[j],
                tol * sv[0],
            );
        }
        let comps = f64s(&case["components"]);
        for &j in defined.iter().filter(|&&j| j < comps.len() / dim) {
            for d in 0..dim {
                close(
                    &format!("{name} component[{j}][{d}]"),
                    p.components[j * dim + d],
                    comps[j * dim + d],
                    1e-9,
                );
            }
        }

        let k = uint(&case["transform_k"]);
        let score_tol = 1e-9 * lambda1.sqrt().max(1.0);
        let check_scores = |what: &str, got: &[f64], want: &[f64]| {
            let rows = want.len() / k;
            for r in 0..rows {
                for &j in defined.iter().filter(|&&j| j < k) {
                    close(
                        &format!("{name} {what}[{r}][{j}]"),
                        got[r * k + j],
                        want[r * k + j],
                        score_tol,
                    );
                }
            }
        };
        let t = p.transform(e, k).unwrap();
        check_scores("transform", &t, &f64s(&case["transform"]));
        if let Some(new) = case.get("new") {
            let new = f32s(new);
            let ne = Embeddings::new(&new, dim).unwrap();
            let t = p.transform(ne, k).unwrap();
            check_scores("transform_new", &t, &f64s(&case["transform_new"]));
            if (0..k).all(|j| defined.contains(&j)) {
                let z = p.project_normalized(ne, k).unwrap();
                for (i, (&g, &w)) in z
                    .iter()
                    .zip(&f32s(&case["project_normalized_new"]))
                    .enumerate()
                {
                    close(
                        &format!("{name} project_normalized[{i}]"),
                        g as f64,
                        w as f64,
                        1e-6,
                    );
                }
            }
        }

        let ks = usizes(&case["reconstruction_ks"]);
        let errs = p.reconstruction_error(&ks).unwrap();
        for ((k, g), w) in ks.iter().zip(errs).zip(f64s(&case["reconstruction_error"])) {
            close(
                &format!("{name} reconstruction_error(k={k})"),
                g,
                w,
                1e-9 * w + 1e-12 * tv,
            );
        }
        // The fit is bit-for-bit reproducible.
        assert_eq!(
            pca(e, n_components).unwrap(),
            p,
            "{name}: not deterministic"
        );
    }
    report("pca_equals_scikit_learn");
}

fn report(test: &str) {
    for (kind, diff, tol) in WORST.lock().unwrap().drain(..) {
        println!("{test}: worst {kind}: {diff:.1e} (tolerance {tol:.1e})");
    }
}

fn basis(case: &Value, key: &str, rank_key: &str) -> ClassBasis {
    ClassBasis {
        class: 0,
        rank: uint(&case[rank_key]),
        basis: f64s(&case[key]),
    }
}

fn check_angles(what: &str, got: &[f64], want: &[f64], near_one: &[bool]) {
    assert_eq!(got.len(), want.len(), "{what}: number of angles");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if near_one[i] {
            close(&format!("{what} arccos_near_one_angle[{i}]"), g, w, 1e-7);
        } else {
            close(&format!("{what} angle[{i}]"), g, w, 1e-9);
        }
    }
}

#[test]
fn principal_angles_equal_scipy() {
    let g = golden("subspace.json");
    for case in cases(&g, "cases") {
        let name = name(case);
        let dim = uint(&case["dim"]);
        let a = basis(case, "a", "rank_a");
        let b = basis(case, "b", "rank_b");
        let got = subspace::principal_angles(&a, &b, dim).unwrap();
        check_angles(
            name,
            &got,
            &f64s(&case["angles"]),
            &bools(&case["arccos_near_one"]),
        );
    }
    report("principal_angles_equal_scipy");
}

#[test]
fn class_subspaces_equal_numpy_and_scipy() {
    let g = golden("subspace.json");
    for case in cases(&g, "summaries") {
        let name = name(case);
        let dim = uint(&case["dim"]);
        let r = uint(&case["r"]);
        let x = f32s(&case["x"]);
        let e = Embeddings::new(&x, dim).unwrap();
        let labels = usizes(&case["labels"]);
        let classes = usizes(&case["classes"]);
        let ranks = usizes(&case["ranks"]);

        let bases = subspace::class_bases(e, &labels, r).unwrap();
        assert_eq!(bases.iter().map(|b| b.class).collect::<Vec<_>>(), classes);
        assert_eq!(bases.iter().map(|b| b.rank).collect::<Vec<_>>(), ranks);
        for (b, want) in bases.iter().zip(cases(case, "projectors")) {
            let want = f64s(want);
            for i in 0..dim {
                for j in 0..dim {
                    let got: f64 = (0..b.rank)
                        .map(|c| b.basis[c * dim + i] * b.basis[c * dim + j])
                        .sum();
                    close(
                        &format!("{name} class {} projector[{i}][{j}]", b.class),
                        got,
                        want[i * dim + j],
                        1e-9,
                    );
                }
            }
        }

        let s = subspace::subspace_angles(e, &labels, r).unwrap();
        assert_eq!(s.classes, classes, "{name}");
        assert_eq!(s.ranks, ranks, "{name}");
        assert_eq!(
            s.trivially_zero,
            case["trivially_zero"].as_bool().unwrap(),
            "{name}"
        );
        let near = cases(case, "arccos_near_one");
        for (p, (got, want)) in s.angles.iter().zip(cases(case, "angles")).enumerate() {
            check_angles(
                &format!("{name} pair {p}"),
                got,
                &f64s(want),
                &bools(&near[p]),
            );
        }
        let loose = near.iter().any(|v| bools(v).contains(&true));
        let deg_tol = if loose { 1e-5 } else { 1e-7 };
        for (what, got, want) in [
            ("mean", &s.mean_degrees, f64s(&case["mean_degrees"])),
            ("min", &s.min_degrees, f64s(&case["min_degrees"])),
        ] {
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                close(&format!("{name} {what}_degrees[{i}]"), g, w, deg_tol);
            }
        }
        assert_eq!(
            subspace::subspace_angles(e, &labels, r).unwrap(),
            s,
            "{name}: not deterministic"
        );
    }
    report("class_subspaces_equal_numpy_and_scipy");
}

#[test]
fn attribute_correlations_equal_scipy() {
    let g = golden("attributes.json");
    for case in cases(&g, "cases") {
        let name = name(case);
        let k = uint(&case["k"]);
        let scores = f64s(&case["scores"]);
        let values = case["values"].as_array().unwrap();
        let boolean: Vec<Option<bool>>;
        let categorical: Vec<Option<usize>>;
        let attribute = if case["kind"] == "boolean" {
            boolean = values.iter().map(|v| v.as_bool()).collect();
            AttributeValues::Boolean(&boolean)
        } else {
            categorical = values
                .iter()
                .map(|v| v.as_u64().map(|u| u as usize))
                .collect();
            AttributeValues::Categorical(&categorical)
        };
        let got = attributes::component_correlations(&scores, k, attribute).unwrap();
        assert_eq!(got.len(), k, "{name}");
        for (c, (g, want)) in got.iter().zip(cases(case, "expected")).enumerate() {
            assert_eq!(g.component, c);
            assert_eq!(g.n, uint(&want["n"]), "{name} component {c}: n");
            let reason = g.undefined.map(|u| format!("{u:?}"));
            assert_eq!(
                reason.as_deref(),
                want["undefined"].as_str(),
                "{name} component {c}: undefined"
            );
            match (g.value, want["value"].as_f64()) {
                (Some(v), Some(w)) => close(&format!("{name} correlation {c}"), v, w, 1e-12),
                (None, None) => {}
                (v, w) => panic!("{name} component {c}: got {v:?}, want {w:?}"),
            }
        }
    }
    report("attribute_correlations_equal_scipy");
}
