#!/usr/bin/env python3
"""Golden values for clipflow's UMAP (src/analysis/umap.rs), checked by tests/umap_golden.rs.

Writes tests/fixtures/golden/umap/*.json, every value from umap-learn 0.5.12 itself or from
numpy/scikit-learn:

  ab.json       find_ab_params(spread, min_dist) for several pairs (umap-learn, scipy curve_fit).
  graph.json    smooth_knn_dist sigmas/rhos and the fuzzy_simplicial_set graph (sparse
                triplets) from umap-learn, given exact neighbours (the point itself first, as
                umap-learn lays them out) computed here in float64 from float32 data and
                stored as float32: gaussian blobs (euclidean), a swiss roll (euclidean,
                n_neighbors 10), unit vectors (cosine), and a small set where n_neighbors is
                lowered to rows - 1.
  spectral.json the pruned graph umap-learn lays out (edges below max/500 dropped) of two
                point sets whose Laplacian has well separated eigenvalues (250 points for
                LOBPCG, 40 for the dense path), and eigenvectors 1..=dim of I - D^-1/2 W D^-1/2 from
                numpy.linalg.eigh in float64 (umap-learn's own eigsh, at tol 1e-4, is printed
                for comparison, not stored).
  quality.json  data sets (blobs, swiss roll, noisy circle in 8-D) with umap-learn's
                trustworthiness (scikit-learn, k=10) averaged over random_state 0, 1, 2, and one
                umap-learn embedding with its trustworthiness to check the test's helper.

Usage: .venv/bin/python scripts/gen_umap_golden.py  (umap-learn, scikit-learn, scipy from
scripts/requirements-dev.txt). Deterministic: rerunning rewrites identical files.
"""

import json
import os
import warnings

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import sklearn
import umap
from sklearn.datasets import make_blobs, make_swiss_roll
from sklearn.manifold import trustworthiness
from umap.umap_ import find_ab_params, fuzzy_simplicial_set, smooth_knn_dist
from umap.spectral import spectral_layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "umap")

assert umap.__version__ == "0.5.12", umap.__version__


def f32(a):
    """Flat list of float32 values as JSON numbers that round-trip exactly."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def f64(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def ints(a):
    return [int(v) for v in np.asarray(a).ravel()]


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def exact_knn(x, k, metric):
    """Neighbours with the point itself first, then the k-1 nearest others (ties: lower
    index), distances in float64 from the float32 data, returned as float32."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = np.clip(1.0 - xn @ xn.T, 0.0, 2.0)
    else:
        d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    n = x.shape[0]
    np.fill_diagonal(d, np.inf)
    others = np.argsort(d, axis=1, kind="stable")[:, : k - 1]
    idx = np.hstack([np.arange(n)[:, None], others])
    dist = np.hstack([np.zeros((n, 1)), np.take_along_axis(d, others, axis=1)])
    # Ties would make the order depend on the summation order of the distances.
    gaps = np.diff(np.take_along_axis(d, np.argsort(d, axis=1, kind="stable"), axis=1)[:, :k], axis=1)
    assert gaps.min() > 1e-9, "near-tie among neighbours; pick another seed"
    return idx, dist.astype(np.float32)


def triplets(g):
    g = scipy.sparse.coo_matrix(g)
    g.sum_duplicates()
    order = np.lexsort((g.col, g.row))
    return g.row[order], g.col[order], g.data[order]


def graph_case(name, x, k, metric):
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    k_eff = n - 1 if n <= k else k
    idx, dist = exact_knn(x, k_eff, metric)
    sigmas, rhos = smooth_knn_dist(dist, float(k_eff))
    g, s2, r2 = fuzzy_simplicial_set(
        x, k_eff, np.random.RandomState(0), metric, knn_indices=idx, knn_dists=dist
    )
    assert np.array_equal(sigmas, s2) and np.array_equal(rhos, r2)
    rows, cols, vals = triplets(g)
    assert vals.dtype == np.float32
    return {
        "name": name,
        "rows": n,
        "dim": x.shape[1],
        "metric": metric,
        "n_neighbors": k,
        "k": k_eff,
        "data": f32(x),
        "knn_indices": ints(idx),
        "knn_dists": f32(dist),
        "sigmas": f32(sigmas),
        "rhos": f32(rhos),
        "graph_rows": ints(rows),
        "graph_cols": ints(cols),
        "graph_vals": f32(vals),
    }


def pruned(g, n_epochs=500):
    """umap-learn's pruning in simplicial_set_embedding."""
    g = scipy.sparse.coo_matrix(g).copy()
    g.sum_duplicates()
    g.data[g.data < (g.data.max() / float(n_epochs))] = 0.0
    g.eliminate_zeros()
    return g


def spectral_case(name, x, k, dim):
    x = np.asarray(x, dtype=np.float32)
    idx, dist = exact_knn(x, k, "euclidean")
    g, _, _ = fuzzy_simplicial_set(
        x, k, np.random.RandomState(0), "euclidean", knn_indices=idx, knn_dists=dist
    )
    g = pruned(g)
    n_comp, _ = scipy.sparse.csgraph.connected_components(g)
    assert n_comp == 1
    w = g.toarray().astype(np.float64)
    deg = w.sum(axis=0)
    dinv = 1.0 / np.sqrt(deg)
    lap = np.eye(len(deg)) - dinv[:, None] * w * dinv[None, :]
    vals, vecs = np.linalg.eigh(lap)
    lam = vals[: dim + 2]
    rel_gaps = np.diff(lam[1:]) / lam[1:-1]
    print(f"  {name}: eigenvalues {lam}, relative gaps {rel_gaps}")
    assert rel_gaps.min() > 0.1, "eigenvalues too close for a stable golden"
    want = vecs[:, 1 : dim + 1]
    # umap-learn's own solver, for the record.
    ul = spectral_layout(x, g.tocsr(), dim, np.random.RandomState(0))
    dev = max(min(np.abs(ul[:, c] - want[:, c]).max(), np.abs(ul[:, c] + want[:, c]).max()) for c in range(dim))
    print(f"  {name}: umap-learn spectral_layout vs eigh, max abs deviation up to sign {dev:.2e}")
    rows, cols, vals_ = triplets(g)
    return {
        "name": name,
        "rows": len(deg),
        "dim": dim,
        "graph_rows": ints(rows),
        "graph_cols": ints(cols),
        "graph_vals": f32(vals_),
        "eigenvalues": f64(lam[1 : dim + 1]),
        "eigenvectors": f64(want),
    }


def blobs(n, dim, centers, std, seed):
    x, _ = make_blobs(n_samples=n, n_features=dim, centers=centers, cluster_std=std, random_state=seed)
    return x.astype(np.float32)


def swiss_roll(n, seed):
    x, _ = make_swiss_roll(n_samples=n, noise=0.05, random_state=seed)
    return x.astype(np.float32)


def noisy_circle(n, dim, seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    base = np.zeros((n, dim))
    base[:, 0] = np.cos(t) * 5
    base[:, 1] = np.sin(t) * 5
    base += rng.normal(scale=0.3, size=base.shape)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (base @ q).astype(np.float32)


def anisotropic(n, stds, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, len(stds))) * np.asarray(stds)).astype(np.float32)


def main():
    warnings.filterwarnings("ignore")
    print(f"umap-learn {umap.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}")

    ab = []
    for spread, min_dist in [(1.0, 0.1), (1.0, 0.0), (1.0, 0.5), (2.0, 0.3), (0.5, 0.05), (1.5, 1.0), (1.0, 0.001), (3.0, 0.25)]:
        a, b = find_ab_params(spread, min_dist)
        ab.append({"spread": spread, "min_dist": min_dist, "a": float(a), "b": float(b)})
    write("ab.json", {"cases": ab})

    rng = np.random.default_rng(5)
    unit = rng.normal(size=(150, 16))
    unit[:50] += 2.0
    unit = unit / np.linalg.norm(unit, axis=1, keepdims=True)
    graphs = [
        graph_case("blobs_150x8", blobs(150, 8, 4, 2.0, 1), 15, "euclidean"),
        graph_case("swiss_roll_200", swiss_roll(200, 2), 10, "euclidean"),
        graph_case("unit_150x16_cosine", unit, 15, "cosine"),
        graph_case("tiny_12x4", blobs(12, 4, 2, 1.0, 3), 15, "euclidean"),
    ]
    write("graph.json", {"cases": graphs})

    spectral = [
        spectral_case("anisotropic_250x3", anisotropic(250, [3.0, 1.4, 0.3], 7), 15, 2),
        spectral_case("anisotropic_40x3", anisotropic(40, [3.0, 1.2, 0.2], 8), 8, 2),
    ]
    write("spectral.json", {"cases": spectral})

    quality = []
    for name, x in [
        ("blobs_300x10", blobs(300, 10, 5, 2.5, 11)),
        ("swiss_roll_400", swiss_roll(400, 12)),
        ("noisy_circle_300x8", noisy_circle(300, 8, 13)),
    ]:
        scores = []
        fitted = umap.UMAP(n_neighbors=15, random_state=0, n_epochs=1).fit(x)
        components, _ = scipy.sparse.csgraph.connected_components(pruned(fitted.graph_))
        for seed in (0, 1, 2):
            emb = umap.UMAP(n_neighbors=15, random_state=seed).fit_transform(x)
            scores.append(trustworthiness(x, emb, n_neighbors=10))
            if seed == 0:
                emb0 = emb
        print(f"  {name}: {components} component(s), umap-learn trustworthiness {scores}")
        quality.append(
            {
                "name": name,
                "rows": x.shape[0],
                "dim": x.shape[1],
                "data": f32(x),
                "components": int(components),
                "trustworthiness": float(np.mean(scores)),
                "trustworthiness_runs": [float(s) for s in scores],
                "reference_embedding": f32(emb0),
                "reference_embedding_trustworthiness": float(trustworthiness(x, emb0.astype(np.float32), n_neighbors=10)),
            }
        )
    write("quality.json", {"k": 10, "cases": quality})


if __name__ == "__main__":
    main()
