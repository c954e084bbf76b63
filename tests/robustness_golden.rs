//! CE, mCE (plain and relative) and effective robustness against values that
//! scripts/gen_robustness_golden.py recomputes from the same per-severity errors with numpy
//! sums and scipy.stats.linregress.

mod common;

use clipflow::analysis::robustness::{
    corruption_errors, effective_robustness, AccuracyPair, ModelErrors, SeverityError,
};
use serde_json::Value;

use common::golden;

const SCRIPT: &str = "scripts/gen_robustness_golden.py";

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

fn close_opt(a: Option<f64>, b: &Value, what: &str) {
    match (a, b.as_f64()) {
        (Some(a), Some(b)) => close(a, b, what),
        (None, None) => {}
        _ => panic!("{what}: {a:?} vs {b}"),
    }
}

fn model_errors(v: &Value, corruptions: &[String]) -> ModelErrors {
    let mut corrupted = Vec::new();
    for c in corruptions {
        for (s, e) in v["errors"][c].as_object().unwrap() {
            corrupted.push(SeverityError {
                corruption: c.clone(),
                severity: s.parse().unwrap(),
                error: e.as_f64().unwrap(),
            });
        }
    }
    ModelErrors {
        clean: v["clean"].as_f64().unwrap(),
        corrupted,
    }
}

#[test]
fn ce_and_mce_equal_the_reference_sums() {
    let g = golden::read("robustness", "robustness.json", SCRIPT);
    for case in g["ce"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let corruptions: Vec<String> = case["corruptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let models = case["models"].as_object().unwrap();
        let reference = model_errors(&models[case["reference"].as_str().unwrap()], &corruptions);
        for (m, v) in models {
            let s = corruption_errors(&model_errors(v, &corruptions), &reference).unwrap();
            let got: Vec<&str> = s
                .per_corruption
                .iter()
                .map(|c| c.corruption.as_str())
                .collect();
            assert_eq!(got, corruptions, "{name}/{m}");
            for (i, c) in s.per_corruption.iter().enumerate() {
                close_opt(
                    c.ce,
                    &v["ce"][i],
                    &format!("{name}/{m}/{} CE", c.corruption),
                );
                close_opt(
                    c.relative_ce,
                    &v["relative_ce"][i],
                    &format!("{name}/{m}/{} relative CE", c.corruption),
                );
            }
            close_opt(s.mce, &v["mce"], &format!("{name}/{m} mCE"));
            close_opt(
                s.relative_mce,
                &v["relative_mce"],
                &format!("{name}/{m} relative mCE"),
            );
            // Every undefined number says why.
            let undefined = s.per_corruption.iter().filter(|c| c.ce.is_none()).count()
                + s.per_corruption
                    .iter()
                    .filter(|c| c.relative_ce.is_none())
                    .count()
                + usize::from(s.mce.is_none())
                + usize::from(s.relative_mce.is_none());
            assert_eq!(s.notes.len(), undefined, "{name}/{m}: {:?}", s.notes);
        }
    }
}

#[test]
fn effective_robustness_equals_linregress_in_logit_space() {
    let g = golden::read("robustness", "robustness.json", SCRIPT);
    for case in g["er"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let f = |k: &str| golden::f64s(&case[k]);
        let (clean, shifted) = (f("clean"), f("shifted"));
        let pairs: Vec<AccuracyPair> = clean
            .iter()
            .zip(&shifted)
            .enumerate()
            .map(|(i, (&c, &s))| AccuracyPair {
                model: format!("m{i}"),
                clean: c,
                shifted: s,
            })
            .collect();
        let er = effective_robustness(&pairs, case["epsilon"].as_f64().unwrap()).unwrap();
        close(
            er.slope,
            case["slope"].as_f64().unwrap(),
            &format!("{name} slope"),
        );
        close(
            er.intercept,
            case["intercept"].as_f64().unwrap(),
            &format!("{name} intercept"),
        );
        close(
            er.r_squared.unwrap(),
            case["r_squared"].as_f64().unwrap(),
            &format!("{name} r²"),
        );
        assert_eq!(
            er.clamped as u64,
            case["clamped"].as_u64().unwrap(),
            "{name}"
        );
        for (i, m) in er.models.iter().enumerate() {
            let at = |k: &str| f(k)[i];
            close(
                m.predicted,
                at("predicted"),
                &format!("{name}/{i} predicted"),
            );
            close(
                m.effective_robustness,
                at("effective_robustness"),
                &format!("{name}/{i} ER"),
            );
            close(
                m.logit_residual,
                at("logit_residual"),
                &format!("{name}/{i} residual"),
            );
            close(
                m.effective_robustness_loo.unwrap(),
                at("effective_robustness_loo"),
                &format!("{name}/{i} leave-one-out ER"),
            );
        }
    }
}
