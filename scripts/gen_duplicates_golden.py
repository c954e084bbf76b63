#!/usr/bin/env python3
"""Golden values for near-duplicates, cross-split pairs and FiftyOne's uniqueness
(src/analysis/duplicates.rs), checked by tests/duplicates_golden.rs.

Writes tests/fixtures/golden/duplicates/duplicates.json with, per case, the float32 input rows
(or a formula to regenerate them), the groups, and:

  pairs       every (a, b, cosine), a < b, with cosine >= threshold: numpy, float64 rows
              normalised in float64, the full n x n product (the Rust side never forms it);
  cross       the pairs whose groups are both known and differ;
  partners    per item, its near-duplicates; cross_partners, those in another group;
  nearest     per item, the most similar other item and the cosine;
  uniqueness  FiftyOne Brain's compute_uniqueness on these embeddings, as its scikit-learn
              similarity backend computes it (fiftyone-brain internal/core/uniqueness.py and
              sklearn.py): centre on the mean, sklearn.metrics.pairwise_distances(metric=
              "cosine"), diagonal NaN, the 4 smallest per row (np.argsort, NaN last), drop the
              first, np.mean(d * [0.6, 0.3, 0.1], axis=1), divide by the max.

Cases: 300 x 32 Gaussian clusters with planted near-copies (small noise), exact copies and
copies across a train/test split (some items with no split); 1,500 x 48 (several row blocks,
and a threshold low enough for thousands of pairs); a 2-D set where opposite directions give
cosine -1. Cosines within 1e-9 of the threshold are avoided, so float rounding cannot flip a pair.

Usage: python scripts/gen_duplicates_golden.py (numpy and scikit-learn from
scripts/requirements-dev.txt). Deterministic: rerunning rewrites identical files.
"""

import json
import os

import numpy as np
import sklearn
from sklearn.metrics import pairwise_distances

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "duplicates")


def cosines(x):
    v = x.astype(np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    return np.clip(v @ v.T, -1.0, 1.0)


def fiftyone_uniqueness(x):
    """FiftyOne Brain's uniqueness (scikit-learn backend, up to 15,000 embeddings)."""
    emb = np.asarray(x, dtype=np.float64).copy()
    emb -= emb.mean(axis=0, keepdims=True)
    dists = pairwise_distances(emb, metric="cosine")
    np.fill_diagonal(dists, np.nan)
    inds = np.argsort(dists, axis=1)[:, :4]
    knn = np.take_along_axis(dists, inds, axis=1)
    weights = [0.6, 0.3, 0.1]
    scores = np.mean(knn[:, 1:] * weights, axis=1)
    return scores / scores.max()


def case(name, x, groups, threshold, top=None, formula=None):
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    c = cosines(x)
    iu = np.triu_indices(n, 1)
    vals = c[iu]
    if threshold > -1.0:
        close = np.abs(vals - threshold) < 1e-9
        assert not close.any(), f"{name}: a cosine is within 1e-9 of the threshold"
    keep = vals >= threshold
    pairs = [(int(a), int(b), float(v)) for a, b, v in zip(iu[0][keep], iu[1][keep], vals[keep])]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    if top is not None and len(pairs) > top:
        assert pairs[top - 1][2] - pairs[top][2] > 1e-12, f"{name}: a near-tie at the cut"
    cross = [p for p in pairs if groups[p[0]] is not None and groups[p[1]] is not None
             and groups[p[0]] != groups[p[1]]]
    if top is not None and len(cross) > top:
        assert cross[top - 1][2] - cross[top][2] > 1e-12, f"{name}: a near-tie at the cut"
    partners = [0] * n
    cross_partners = [0] * n
    for a, b, _ in pairs:
        partners[a] += 1
        partners[b] += 1
    for a, b, _ in cross:
        cross_partners[a] += 1
        cross_partners[b] += 1
    masked = c.copy()
    np.fill_diagonal(masked, -np.inf)
    nearest = []
    for i in range(n):
        best = masked[i].max()
        ties = np.flatnonzero(masked[i] == best)
        # Ties go to the lower index; no near-tie (within 1e-12, not exact) may make that
        # depend on rounding.
        near = np.flatnonzero(np.abs(masked[i] - best) <= 1e-12)
        assert len(near) == len(ties), f"{name}: item {i} has a near-tie for its nearest"
        nearest.append([int(ties[0]), float(best)])
    out = {
        "name": name,
        "n": n,
        "dim": int(x.shape[1]),
        "groups": groups,
        "threshold": threshold,
        "top": top,
        "pair_count": len(pairs),
        "cross_count": len(cross),
        "pairs": pairs[:top] if top is not None else pairs,
        "cross": cross[:top] if top is not None else cross,
        "partners": partners,
        "cross_partners": cross_partners,
        "nearest": nearest,
        "uniqueness": [float(v) for v in fiftyone_uniqueness(x)],
    }
    if formula is None:
        out["x"] = [float(v) for v in x.ravel()]
    else:
        out["formula"] = formula
    return out


def formula_rows(n, dim):
    """Rows made of exact small-integer ratios, so Rust rebuilds the same float32 values
    (tests/duplicates_golden.rs, `formula_rows`): five correlated clusters, and item 10k+1 a
    near-copy of item 10k."""
    x = np.empty((n, dim), dtype=np.float64)
    for i in range(n):
        for d in range(dim):
            base = ((i * 7919 + d * 104729 + (i * d) % 13 * 31) % 1009) / 1009.0 - 0.5
            centre = (((i % 5) * 37 + d * 11) % 17) / 17.0 * 1.5
            x[i, d] = base + centre
    for k in range(n // 10):
        for d in range(dim):
            x[10 * k + 1, d] = x[10 * k, d] + 0.02 * (((d * 3 + k) % 5) - 2)
    return x.astype(np.float32)


def planted(rng, n, dim, clusters):
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, size=n)] + 0.9 * rng.normal(size=(n, dim))
    # Near-copies: item 10k+1 is item 10k plus a little noise; exact copies: 10k+2 = 10k+3.
    for k in range(n // 10):
        x[10 * k + 1] = x[10 * k] + 0.04 * rng.normal(size=dim)
        x[10 * k + 3] = x[10 * k + 2]
    return x


def main():
    rng = np.random.default_rng(20240517)
    os.makedirs(OUT, exist_ok=True)
    cases = []

    x = planted(rng, 300, 32, 6)
    split = ["train" if i % 3 else "test" for i in range(300)]
    for i in range(0, 300, 17):
        split[i] = None
    names = sorted({s for s in split if s is not None})
    groups = [None if s is None else names.index(s) for s in split]
    cases.append(case("planted_300x32", x, groups, 0.95))

    x = formula_rows(1500, 48)
    groups = [i % 4 for i in range(1500)]
    cases.append(case("blocked_1500x48", x, groups, 0.97, top=100, formula="formula_rows"))

    # Opposite directions (cosine -1), a zero row (cosine 0 with everything) and a threshold
    # of -1 (every pair qualifies).
    x = np.array([[1, 0], [-1, 0], [0.6, 0.8], [-0.6, -0.8], [0, 0], [2, 0.1]], dtype=np.float32)
    cases.append(case("signs_6x2", x, [0, 1, 0, 1, None, 1], -1.0))

    payload = {
        "generator": "scripts/gen_duplicates_golden.py",
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "cases": cases,
    }
    path = os.path.join(OUT, "duplicates.json")
    with open(path, "w") as f:
        json.dump(payload, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: " + ", ".join(
        f"{c['name']} ({len(c['pairs'])} pairs, {len(c['cross'])} cross)" for c in cases))


if __name__ == "__main__":
    main()
