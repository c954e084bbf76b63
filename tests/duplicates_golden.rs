//! Near-duplicates, cross-split pairs and FiftyOne's uniqueness against numpy / scikit-learn
//! (tests/fixtures/golden/duplicates/, written by scripts/gen_duplicates_golden.py).

mod common;

use clipflow::analysis::duplicates::{near_duplicates, uniqueness, DuplicateOptions};
use clipflow::analysis::Embeddings;
use serde_json::Value;

use common::golden::{f32s, f64s, read, usizes};

const SCRIPT: &str = "scripts/gen_duplicates_golden.py";

/// The same rows as `formula_rows` in the script: small-integer ratios, exact in f64.
fn formula_rows(n: usize, dim: usize) -> Vec<f32> {
    let mut x = vec![0.0f64; n * dim];
    for i in 0..n {
        for d in 0..dim {
            let base = ((i * 7919 + d * 104729 + (i * d) % 13 * 31) % 1009) as f64 / 1009.0 - 0.5;
            let centre = (((i % 5) * 37 + d * 11) % 17) as f64 / 17.0 * 1.5;
            x[i * dim + d] = base + centre;
        }
    }
    for k in 0..n / 10 {
        for d in 0..dim {
            x[(10 * k + 1) * dim + d] =
                x[10 * k * dim + d] + 0.02 * (((d * 3 + k) % 5) as f64 - 2.0);
        }
    }
    x.into_iter().map(|v| v as f32).collect()
}

fn pairs(v: &Value) -> Vec<(usize, usize, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
                p[2].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Same pairs (cosines to 1e-12), the found ones in non-increasing cosine order. Exact copies
/// tie at cosine 1 up to rounding, so order among near-equal cosines is not compared.
fn same_pairs(
    what: &str,
    got: &[clipflow::analysis::duplicates::DuplicatePair],
    want: &[(usize, usize, f64)],
) {
    assert_eq!(got.len(), want.len(), "{what}: number of pairs kept");
    for w in got.windows(2) {
        assert!(w[0].cosine >= w[1].cosine, "{what}: pairs out of order");
    }
    let mut g: Vec<(usize, usize, f64)> = got.iter().map(|p| (p.a, p.b, p.cosine)).collect();
    let mut w = want.to_vec();
    g.sort_by_key(|p| (p.0, p.1));
    w.sort_by_key(|p| (p.0, p.1));
    for (g, w) in g.iter().zip(&w) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{what}");
        assert!(
            (g.2 - w.2).abs() < 1e-12,
            "{what}: ({}, {}) {} vs {}",
            g.0,
            g.1,
            g.2,
            w.2
        );
    }
}

#[test]
fn duplicates_and_uniqueness_match_numpy_and_scikit_learn() {
    let golden = read("duplicates", "duplicates.json", SCRIPT);
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let (n, dim) = (
            c["n"].as_u64().unwrap() as usize,
            c["dim"].as_u64().unwrap() as usize,
        );
        let x = match c["formula"].as_str() {
            Some("formula_rows") => formula_rows(n, dim),
            Some(other) => panic!("unknown formula {other}"),
            None => f32s(&c["x"]),
        };
        let e = Embeddings::new(&x, dim).unwrap();
        let groups: Vec<Option<usize>> = c["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_u64().map(|g| g as usize))
            .collect();
        let top = c["top"].as_u64().map(|t| t as usize);
        let opts = DuplicateOptions {
            threshold: c["threshold"].as_f64().unwrap(),
            max_pairs: top.unwrap_or(usize::MAX),
        };
        let d = near_duplicates(e, Some(&groups), &opts).unwrap();
        assert_eq!(
            d.pair_count,
            c["pair_count"].as_u64().unwrap(),
            "{name}: pairs"
        );
        assert_eq!(
            d.cross_pair_count,
            c["cross_count"].as_u64().unwrap(),
            "{name}: cross"
        );
        same_pairs(name, &d.pairs, &pairs(&c["pairs"]));
        same_pairs(
            &format!("{name} cross"),
            &d.cross_pairs,
            &pairs(&c["cross"]),
        );
        assert_eq!(d.partners, usizes(&c["partners"]), "{name}: partners");
        assert_eq!(
            d.cross_partners,
            usizes(&c["cross_partners"]),
            "{name}: cross partners"
        );
        for (i, w) in c["nearest"].as_array().unwrap().iter().enumerate() {
            let (j, cos) = d.nearest[i].unwrap();
            assert_eq!(j, w[0].as_u64().unwrap() as usize, "{name}: nearest of {i}");
            assert!(
                (cos - w[1].as_f64().unwrap()).abs() < 1e-12,
                "{name}: nearest cosine of {i}"
            );
        }
        let leaking = d.leaking_items();
        assert_eq!(
            leaking.len(),
            d.cross_partners.iter().filter(|&&c| c > 0).count(),
            "{name}"
        );
        let u = uniqueness(e).unwrap();
        let want = f64s(&c["uniqueness"]);
        for (i, (g, w)) in u.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-12,
                "{name}: uniqueness of {i}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn planted_leaks_are_the_cross_split_copies() {
    // The planted case: item 10k+1 is a near-copy of 10k, 10k+3 an exact copy of 10k+2; the
    // split is "test" for multiples of 3 and unknown for multiples of 17.
    let golden = read("duplicates", "duplicates.json", SCRIPT);
    let c = &golden["cases"][0];
    let x = f32s(&c["x"]);
    let e = Embeddings::new(&x, 32).unwrap();
    let split: Vec<Option<usize>> = (0..300)
        .map(|i| (i % 17 != 0).then_some(usize::from(i % 3 == 0)))
        .collect();
    let d = near_duplicates(e, Some(&split), &DuplicateOptions::default()).unwrap();
    for k in 0..30 {
        for (a, b) in [(10 * k, 10 * k + 1), (10 * k + 2, 10 * k + 3)] {
            assert!(
                d.pairs.iter().any(|p| (p.a, p.b) == (a, b)),
                "planted copy ({a}, {b}) not found"
            );
            let crosses = split[a].is_some() && split[b].is_some() && split[a] != split[b];
            assert_eq!(
                d.cross_pairs.iter().any(|p| (p.a, p.b) == (a, b)),
                crosses,
                "({a}, {b}) across splits"
            );
            if crosses {
                assert!(d.leaking_items().contains(&a) && d.leaking_items().contains(&b));
            }
        }
    }
    // Scores are normalised by their maximum: all in [0, 1], the most unique item at 1.
    let u = uniqueness(e).unwrap();
    assert!(u.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(u.contains(&1.0));
}
