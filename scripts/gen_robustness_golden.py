#!/usr/bin/env python3
"""Golden values for the robustness summaries (src/analysis/robustness.rs), checked by
tests/robustness_golden.rs.

Writes tests/fixtures/golden/robustness/robustness.json:

  ce      Per-severity error tables (model x corruption x severity, plus each model's clean
          error) and, recomputed from them with numpy array sums, Hendrycks & Dietterich's
          CE_c = sum_s E_sc / sum_s E^ref_sc, relative CE_c = sum_s (E_sc - E_clean) /
          sum_s (E^ref_sc - E^ref_clean), mCE and relative mCE (means over the corruptions),
          for every model against a reference model. Cases: three models on the 15 benchmark
          corruptions at 5 severities (the reference against itself gives 1); the 4 held-out
          corruptions apart; unequal severity sets per corruption (1-3 for some, 5 for
          others); and a degenerate reference (no error at all under one corruption, no rise
          above its clean error under another), where the ratios are undefined (null).
  er      Effective robustness (Taori et al. 2020): scipy.stats.linregress of logit(shifted
          accuracy) on logit(clean accuracy) over the models: slope, intercept, r^2, and per
          model the predicted accuracy (the line mapped back through the logistic function),
          shifted - predicted, the logit residual, and shifted - prediction of the line fitted
          on the other models only. Cases: six spread-out models; three models; accuracies of
          exactly 0 and 1 clamped to [eps, 1 - eps] with eps = 0.5 / 200.

Usage: python scripts/gen_robustness_golden.py  (numpy, scipy from
scripts/requirements-dev.txt). Deterministic: rerunning rewrites identical files.
"""

import json
import os

import numpy as np
import scipy
import scipy.special
import scipy.stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "robustness")

BENCHMARK = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
]
HELD_OUT = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]


def error_table(rng, corruptions, severities, clean, robustness):
    """Errors rising with severity from `clean`, noisier for less robust models."""
    table = {}
    for c in corruptions:
        sev = severities[c] if isinstance(severities, dict) else severities
        hardness = rng.uniform(0.2, 1.0)
        table[c] = {
            int(s): float(np.clip(clean + (1 - clean) * (1 - np.exp(-hardness * s / robustness))
                                  + rng.normal(0, 0.02), 0, 1))
            for s in sev
        }
    return table


def ce_case(name, models, reference, corruptions):
    """CE of every model against `reference`, by numpy sums over a (corruption, severity) grid."""
    ref = models[reference]
    out = {"name": name, "reference": reference, "models": {}, "corruptions": corruptions}
    for m, data in models.items():
        ce, rel = [], []
        for c in corruptions:
            sev = sorted(data["errors"][c])
            e = np.array([data["errors"][c][s] for s in sev])
            r = np.array([ref["errors"][c][s] for s in sev])
            num, den = e.sum(), r.sum()
            ce.append(float(num / den) if den > 0 else None)
            dnum, dden = (e - data["clean"]).sum(), (r - ref["clean"]).sum()
            rel.append(float(dnum / dden) if dden > 0 else None)
        mce = float(np.mean(ce)) if all(v is not None for v in ce) else None
        rmce = float(np.mean(rel)) if all(v is not None for v in rel) else None
        out["models"][m] = {
            "clean": data["clean"],
            "errors": {c: {str(s): v for s, v in data["errors"][c].items()} for c in corruptions},
            "ce": ce,
            "relative_ce": rel,
            "mce": mce,
            "relative_mce": rmce,
        }
    return out


def logit(p):
    return np.log(p / (1 - p))


def er_case(name, clean, shifted, eps):
    clean = np.asarray(clean, dtype=np.float64)
    shifted = np.asarray(shifted, dtype=np.float64)
    x = logit(np.clip(clean, eps, 1 - eps))
    y = logit(np.clip(shifted, eps, 1 - eps))
    fit = scipy.stats.linregress(x, y)
    fitted = fit.slope * x + fit.intercept
    predicted = scipy.special.expit(fitted)
    loo = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        f = scipy.stats.linregress(x[keep], y[keep])
        loo.append(float(shifted[i] - scipy.special.expit(f.slope * x[i] + f.intercept)))
    return {
        "name": name,
        "epsilon": eps,
        "models": [f"m{i}" for i in range(len(x))],
        "clean": clean.tolist(),
        "shifted": shifted.tolist(),
        "slope": float(fit.slope),
        "intercept": float(fit.intercept),
        "r_squared": float(fit.rvalue**2),
        "predicted": predicted.tolist(),
        "effective_robustness": (shifted - predicted).tolist(),
        "logit_residual": (y - fitted).tolist(),
        "effective_robustness_loo": loo,
        "clamped": int(np.sum(np.clip(clean, eps, 1 - eps) != clean)
                       + np.sum(np.clip(shifted, eps, 1 - eps) != shifted)),
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.RandomState(2019)
    sev5 = [1, 2, 3, 4, 5]
    models = {}
    for m, clean, robustness in [("alexnet", 0.43, 1.5), ("clip", 0.24, 6.0), ("baseline", 0.9, 2.0)]:
        models[m] = {
            "clean": clean,
            "errors": error_table(rng, BENCHMARK + HELD_OUT, sev5, clean, robustness),
        }
    ce = [
        ce_case("benchmark", models, "alexnet", BENCHMARK),
        ce_case("held_out", models, "alexnet", HELD_OUT),
    ]
    # Unequal severity sets per corruption (the same for model and reference).
    sev = {"fog": [1, 2, 3], "contrast": [2, 4], "snow": sev5}
    uneven = {}
    for m, clean, robustness in [("ref", 0.3, 1.0), ("a", 0.2, 3.0)]:
        uneven[m] = {"clean": clean, "errors": error_table(rng, list(sev), sev, clean, robustness)}
    ce.append(ce_case("uneven", uneven, "ref", list(sev)))
    # Degenerate reference: never wrong under fog; not worse than clean under snow.
    degenerate = {
        "ref": {
            "clean": 0.2,
            "errors": {"fog": {1: 0.0, 2: 0.0}, "snow": {1: 0.2, 2: 0.15}, "contrast": {1: 0.3, 2: 0.5}},
        },
        "a": {
            "clean": 0.1,
            "errors": {"fog": {1: 0.2, 2: 0.3}, "snow": {1: 0.1, 2: 0.4}, "contrast": {1: 0.2, 2: 0.6}},
        },
    }
    ce.append(ce_case("degenerate", degenerate, "ref", ["fog", "snow", "contrast"]))

    er = [
        er_case(
            "six",
            [0.55, 0.62, 0.71, 0.78, 0.84, 0.9],
            [0.21, 0.3, 0.33, 0.45, 0.47, 0.61],
            0.5 / 200,
        ),
        er_case("three", [0.4, 0.65, 0.8], [0.1, 0.35, 0.3], 0.5 / 200),
        er_case("clamped", [1.0, 0.7, 0.3, 0.5], [0.8, 0.2, 0.0, 0.1], 0.5 / 200),
    ]
    payload = {
        "generator": "scripts/gen_robustness_golden.py",
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "ce": ce,
        "er": er,
    }
    with open(os.path.join(OUT, "robustness.json"), "w") as f:
        json.dump(payload, f, indent=1, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
