#!/usr/bin/env python3
"""Recomputes a run's corruption errors and effective robustness from its per-severity error
table, independently of clipflow, and compares them with the tables the robustness stage wrote.

Reads <run>/tables/robustness_errors.parquet (one row per model, task and variant: the clean
row and every image or text variant with its error) and recomputes with numpy:

  CE_c          = sum_s E_sc / sum_s E^ref_sc                      (Hendrycks & Dietterich 2019)
  relative CE_c = sum_s (E_sc - E_clean) / sum_s (E^ref_sc - E^ref_clean)
  mCE, relative mCE: means over the corruptions, the 15 benchmark corruptions and the 4
                held-out ones apart; undefined (null) when a reference sum is zero (<= 1e-9)
  effective robustness (Taori et al. 2020): per task and side (image / text variants), each
                model's shifted accuracy is its mean accuracy over the variants every model
                has; a least-squares line (numpy.polyfit) of logit(shifted) on logit(clean)
                over the models, accuracies clamped to [eps, 1 - eps] with eps = 0.5 / n
                (n: the fewest items a model's clean accuracy is over); per model the shifted
                accuracy minus the line's (mapped back through the logistic function), the
                logit residual, and the same against the line through the other models.

Compares every value with robustness_ce, robustness_mce and robustness_effective (1e-9).

With --store, also checks that text variants were measured against the clean images: from the
store's embeddings, each text variant's zero-shot top-1 (class embeddings: the renormalised
mean of the perturbed prompts of each label, clean images by argmax) and text-to-image
recall@1 (each perturbed caption against the clean images, its positive the image of its
item_id, else of its id) must equal the zero_shot and retrieval tables' rows of that
text_variant.

Prints "robustness ok: N values" or fails. Usage:

  python scripts/check_robustness.py RUN_DIR --reference MODEL [--expect-models N] [--store]

numpy and pyarrow only (scripts/requirements-test.txt).
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

BENCHMARK = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
]
HELD_OUT = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
TOL = 1e-9


def rows(run, name):
    path = run / "tables" / f"{name}.parquet"
    if not path.exists():
        sys.exit(f"missing {path}")
    return pq.read_table(path).to_pylist()


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def imagenet_c(row):
    """(corruption, severity) of an image row that is an ImageNet-C corruption at 1-5."""
    if row["side"] != "image":
        return None
    name, _, level = row["variant"].rpartition("-")
    if name not in BENCHMARK + HELD_OUT or not level.isdigit() or not 1 <= int(level) <= 5:
        return None
    return name, int(level)


def ratio(num, den):
    return float(num / den) if den > TOL else None


def corruption_errors(errors, reference):
    """{(model, task, group, corruption): (ce, rel)}, {(model, task, group): (mce, rmce, n)}."""
    ce, mce = {}, {}
    for task in sorted({r["task"] for r in errors}):
        by_model = {}
        for r in errors:
            if r["task"] != task:
                continue
            m = by_model.setdefault(r["model"], {"clean": None, "grid": {}})
            if r["side"] == "clean":
                m["clean"] = r["error"]
            elif imagenet_c(r):
                m["grid"][imagenet_c(r)] = r["error"]
        if reference not in by_model or not by_model[reference]["grid"]:
            continue
        ref = by_model[reference]
        for model, m in by_model.items():
            if not m["grid"]:
                continue
            for group, names in (("benchmark", BENCHMARK), ("held_out", HELD_OUT)):
                present = [c for c in names if any(k[0] == c for k in m["grid"])]
                if not present:
                    continue
                ces, rels = [], []
                for c in present:
                    sev = sorted(s for (name, s) in m["grid"] if name == c)
                    e = np.array([m["grid"][(c, s)] for s in sev])
                    r = np.array([ref["grid"][(c, s)] for s in sev])
                    v = ratio(e.sum(), r.sum())
                    w = ratio((e - m["clean"]).sum(), (r - ref["clean"]).sum())
                    ce[(model, task, group, c)] = (v, w)
                    ces.append(v)
                    rels.append(w)
                mean = lambda xs: float(np.mean(xs)) if all(x is not None for x in xs) else None
                mce[(model, task, group)] = (mean(ces), mean(rels), len(present))
    return ce, mce


def logit(p):
    return np.log(p / (1 - p))


def no_line(x):
    """Whether the clean accuracies are all equal (up to rounding): no line fits them."""
    sxx = ((x - x.mean()) ** 2).sum()
    return sxx <= np.finfo(float).eps * len(x) * (1 + x.mean() ** 2)


def effective(errors):
    """{(model, task, side): dict of the stage's columns}."""
    out = {}
    for task in sorted({r["task"] for r in errors}):
        for side in ("image", "text"):
            models = {}
            for r in errors:
                if r["task"] != task:
                    continue
                m = models.setdefault(r["model"], {"clean": None, "n": None, "acc": {}})
                if r["side"] == "clean":
                    m["clean"], m["n"] = r["accuracy"], r["n"]
                elif r["side"] == side:
                    m["acc"][r["variant"]] = r["accuracy"]
            models = {k: v for k, v in models.items() if v["acc"] and v["clean"] is not None}
            if len(models) < 3:
                continue
            names = list(models)
            common = set.intersection(*(set(models[k]["acc"]) for k in names))
            if not common:
                continue
            clean = np.array([models[k]["clean"] for k in names])
            shifted = np.array([np.mean([models[k]["acc"][v] for v in sorted(common)]) for k in names])
            n = min(models[k]["n"] for k in names)
            eps = 0.5 / max(n, 2)
            x = logit(np.clip(clean, eps, 1 - eps))
            y = logit(np.clip(shifted, eps, 1 - eps))
            if no_line(x):
                continue
            slope, intercept = np.polyfit(x, y, 1)
            fitted = slope * x + intercept
            ss_tot = ((y - y.mean()) ** 2).sum()
            r2 = 1 - ((y - fitted) ** 2).sum() / ss_tot if ss_tot > 0 else None
            for i, k in enumerate(names):
                others = [j for j in range(len(names)) if j != i]
                loo = None
                if not no_line(x[others]):
                    a, b = np.polyfit(x[others], y[others], 1)
                    loo = shifted[i] - 1 / (1 + math.exp(-(a * x[i] + b)))
                out[(k, task, side)] = {
                    "variants": len(common),
                    "clean_accuracy": clean[i],
                    "shifted_accuracy": shifted[i],
                    "predicted": 1 / (1 + math.exp(-fitted[i])),
                    "effective_robustness": shifted[i] - 1 / (1 + math.exp(-fitted[i])),
                    "logit_residual": y[i] - fitted[i],
                    "effective_robustness_loo": loo,
                    "slope": slope,
                    "intercept": intercept,
                    "r_squared": r2,
                    "epsilon": eps,
                }
    return out


def check_text_variants(run):
    """Text-variant rows of zero_shot and retrieval against numpy on the store's vectors."""
    store = [r for f in sorted((run / "embeddings").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    zero_shot = rows(run, "zero_shot")
    retrieval = rows(run, "retrieval")
    checked = 0
    for model in sorted({r["model"] for r in store}):
        images = [r for r in store if r["model"] == model and r["modality"] == "image" and r["variant"] == "clean"]
        I = np.array([r["embedding"] for r in images], dtype=np.float64)
        I /= np.linalg.norm(I, axis=1, keepdims=True)
        text_variants = sorted({r["variant"] for r in store if r["model"] == model and r["modality"] == "text"} - {"clean"})
        for tv in text_variants:
            texts = [r for r in store if r["model"] == model and r["modality"] == "text" and r["variant"] == tv]
            prompts = [r for r in texts if r["id"].startswith("prompt:")]
            captions = [r for r in texts if not r["id"].startswith("prompt:")]
            if prompts:
                classes = sorted({r["label"] for r in prompts})
                P = np.array([r["embedding"] for r in prompts], dtype=np.float64)
                P /= np.linalg.norm(P, axis=1, keepdims=True)
                labels = np.array([r["label"] for r in prompts])
                W = np.stack([P[labels == c].mean(0) for c in classes])
                W /= np.linalg.norm(W, axis=1, keepdims=True)
                keep = [i for i, r in enumerate(images) if r["label"] in classes]
                pred = np.argmax(I[keep] @ W.T, axis=1)
                truth = np.array([classes.index(images[i]["label"]) for i in keep])
                want = float((pred == truth).mean())
                got = [r["value"] for r in zero_shot if r["model"] == model and r["variant"] == "clean"
                       and r["text_variant"] == tv and r["metric"] == "top1"]
                assert len(got) == 1 and close(got[0], want), (model, tv, got, want)
                checked += 1
            if captions:
                image_ids = [r["id"] for r in images]
                answerable = [r for r in captions if (r["item_id"] or r["id"]) in image_ids]
                C = np.array([r["embedding"] for r in answerable], dtype=np.float64)
                C /= np.linalg.norm(C, axis=1, keepdims=True)
                top = np.argmax(C @ I.T, axis=1)
                hits = [image_ids[t] == (r["item_id"] or r["id"]) for t, r in zip(top, answerable)]
                want = float(np.mean(hits))
                got = [r["value"] for r in retrieval if r["model"] == model and r["variant"] == "clean"
                       and r["text_variant"] == tv and r["direction"] == "text_to_image:caption"
                       and r["metric"] == "recall" and r["k"] == 1]
                assert len(got) == 1 and close(got[0], want), (model, tv, got, want)
                checked += 1
    assert checked > 0, "no text variant in the store"
    return checked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--expect-models", type=int, default=3)
    ap.add_argument("--store", action="store_true", help="also check text variants against the store")
    args = ap.parse_args()
    errors = rows(args.run, "robustness_errors")
    for r in errors:
        assert close(r["error"], 1 - r["accuracy"]), r
    checked = 0
    ce, mce = corruption_errors(errors, args.reference)
    got_ce = {(r["model"], r["task"], r["group"], r["corruption"]): r for r in rows(args.run, "robustness_ce")}
    assert set(got_ce) == set(ce), (sorted(set(got_ce) ^ set(ce)))
    for k, (v, w) in ce.items():
        g = got_ce[k]
        assert g["reference"] == args.reference, g
        assert close(g["ce"], v) and close(g["relative_ce"], w), (k, g, v, w)
        checked += 2
    got_mce = {(r["model"], r["task"], r["group"]): r for r in rows(args.run, "robustness_mce")}
    assert set(got_mce) == set(mce), (sorted(set(got_mce) ^ set(mce)))
    for k, (v, w, n) in mce.items():
        g = got_mce[k]
        assert close(g["mce"], v) and close(g["relative_mce"], w) and g["corruptions"] == n, (k, g, v, w, n)
        checked += 2
    er = effective(errors)
    got_er = {(r["model"], r["task"], r["side"]): r for r in rows(args.run, "robustness_effective")}
    assert set(got_er) == set(er), (sorted(set(got_er) ^ set(er)))
    models = {k[0] for k in er}
    assert len(models) >= args.expect_models, models
    for k, want in er.items():
        g = got_er[k]
        for col, v in want.items():
            assert close(g[col], v), (k, col, g[col], v)
            checked += 1
    assert checked > 0, "nothing compared"
    if args.store:
        checked += check_text_variants(args.run)
    print(f"robustness ok: {checked} values ({len(ce)} CE, {len(mce)} mCE, {len(er)} effective robustness rows)")


if __name__ == "__main__":
    main()
