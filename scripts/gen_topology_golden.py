#!/usr/bin/env python3
"""Golden values for clipflow's persistence module (src/analysis/persistence), checked by
tests/topology_golden.rs.

Writes tests/fixtures/golden/topology/:

  rips.json       Vietoris-Rips persistence diagrams in dimensions 0 and 1 from ripser 0.6.15
                  (`ripser.ripser(X, maxdim=1, thresh=..., metric=...)["dgms"]`, Z/2) for point
                  clouds given as float32 rows: a noisy circle in 2-D and the same kind of
                  circle embedded in 64-D, two circles, a uniform cube, a torus (400 points),
                  clustered blobs with exact duplicate points, an integer grid (many exactly
                  equal distances), threshold cuts that leave infinite H0 and H1 bars, and the
                  cosine metric; plus precomputed distance matrices (`distance_matrix=True`):
                  shortest paths on a cycle graph (integer distances, ties everywhere) and
                  Euclidean distances of random points.
  distances.json  persim 0.4.1 `bottleneck` and `wasserstein` between pairs of those diagrams
                  and hand-made small ones: empty diagrams, points on the diagonal, infinite
                  bars (which persim ignores), identical diagrams, exact ties.

Point clouds: ripser gets the distances ripser.py itself computes (scikit-learn's
`pairwise_distances` of float64 copies of the float32 rows, i.e. from exactly the values
clipflow reads; ripser rounds them to float32 as clipflow does), passed with
`distance_matrix=True` after one change: distances between identical rows are set to exactly 0.
scikit-learn's `|x|^2 + |y|^2 - 2 x.y` leaves rounding noise there (about 1e-7 after the square
root), which ripser would report as tiny H0 bars; clipflow zeroes them. For clouds without
duplicates this is exactly `ripser.ripser(X, metric=...)`. Infinite values are written as null.

Usage: .venv/bin/python scripts/gen_topology_golden.py  (needs ripser, persim, scikit-learn from
scripts/requirements-dev.txt). Deterministic: rerunning rewrites identical files.
"""

import json
import os
import warnings

import numpy as np
import persim
import ripser
from sklearn.metrics import pairwise_distances
from persim._version import __version__ as persim_version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "topology")


def f32(a):
    """Flat list of the float32 values of `a`, as JSON numbers that round-trip exactly."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def dgm_json(d):
    """A diagram as a list of [birth, death], infinity as null."""
    return [[float(b), None if np.isinf(e) else float(e)] for b, e in np.asarray(d, dtype=np.float64)]


def circle(rng, n, radius=1.0, noise=0.1, centre=(0.0, 0.0)):
    t = rng.uniform(0, 2 * np.pi, n)
    x = np.c_[radius * np.cos(t) + centre[0], radius * np.sin(t) + centre[1]]
    return x + noise * rng.standard_normal((n, 2))


def point_clouds():
    rng = np.random.default_rng(20261122)
    cases = []

    def add(name, x, thresh=None, metric="euclidean"):
        cases.append((name, np.asarray(x, dtype=np.float32), thresh, metric))

    add("circle_2d", circle(rng, 100))
    # A circle in a random 2-plane of R^64, with isotropic noise in all 64 dimensions.
    frame, _ = np.linalg.qr(rng.standard_normal((64, 2)))
    c = circle(rng, 120, noise=0.0)
    add("circle_64d", c @ frame.T + 0.05 * rng.standard_normal((120, 64)))
    add("two_circles", np.r_[circle(rng, 80, 1.0, 0.08), circle(rng, 70, 0.6, 0.05, (2.5, 0.3))])
    add("uniform_cube", rng.uniform(0, 1, (150, 3)))
    # A torus in R^3 (major radius 2, minor 0.7): two independent loops.
    u, v = rng.uniform(0, 2 * np.pi, (2, 400))
    add("torus_400", np.c_[(2 + 0.7 * np.cos(v)) * np.cos(u), (2 + 0.7 * np.cos(v)) * np.sin(u), 0.7 * np.sin(v)])
    # Blobs in 10-D with 15 exact duplicates: zero-length edges and zero-persistence pairs.
    centres = 3.0 * rng.standard_normal((3, 10))
    b = centres[rng.integers(0, 3, 105)] + rng.standard_normal((105, 10))
    b = np.r_[b, b[rng.choice(105, 15, replace=False)]]
    add("blobs_with_duplicates", b[rng.permutation(len(b))])
    # An 8 x 8 integer grid: every distance is one of a few exact values, shared by many edges.
    g = np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2)
    add("grid_8x8", g)
    add("grid_3d_4x4x4", np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(4)), -1).reshape(-1, 3))
    # Threshold cuts: the circle's loop still alive at the cut (an infinite H1 bar), and two
    # far-apart circles cut below their gap (two infinite H0 bars).
    add("circle_threshold", circle(rng, 90), thresh=0.6)
    far = np.r_[circle(rng, 60, 1.0, 0.05), circle(rng, 60, 1.0, 0.05, (5.0, 0.0))]
    add("two_circles_threshold", far, thresh=1.2)
    add("cube_threshold_above_max", rng.uniform(0, 1, (60, 3)), thresh=10.0)
    # Cosine metric: unnormalised directions clustered around a few axes in 16-D, plus a loop
    # of directions in a 2-plane.
    axes = rng.standard_normal((4, 16))
    cos_x = axes[rng.integers(0, 4, 120)] + 0.35 * rng.standard_normal((120, 16))
    cos_x *= rng.uniform(0.5, 3.0, (120, 1))
    add("cosine_clusters", cos_x, metric="cosine")
    t = rng.uniform(0, 2 * np.pi, 80)
    loop = np.zeros((80, 16))
    loop[:, 0], loop[:, 1] = np.cos(t), np.sin(t)
    loop += 0.05 * rng.standard_normal((80, 16))
    add("cosine_loop", loop, metric="cosine")
    return cases


def distance_matrices():
    rng = np.random.default_rng(7)
    cases = []
    n = 40
    i = np.arange(n)
    diff = np.abs(i[:, None] - i[None, :])
    cases.append(("cycle_graph_40", np.minimum(diff, n - diff).astype(np.float64), None))
    p = rng.standard_normal((70, 5))
    d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
    cases.append(("random_euclidean_70", d, None))
    cases.append(("random_euclidean_70_threshold", d, 1.5))
    return cases


def reference_distances(x, metric):
    """ripser.py's distance matrix, with exact zeros between identical rows."""
    dm = pairwise_distances(x, metric=metric)
    _, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    dm[inverse[:, None] == inverse[None, :]] = 0.0
    return dm


def run_ripser(x, thresh, metric="euclidean", distance_matrix=False):
    kw = {} if thresh is None else {"thresh": thresh}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ripser.ripser(x, maxdim=1, metric=metric, distance_matrix=distance_matrix, **kw)["dgms"]


def main():
    os.makedirs(OUT, exist_ok=True)
    rips_cases = []
    dgms = {}
    for name, x, thresh, metric in point_clouds():
        x64 = x.astype(np.float64)
        d = run_ripser(reference_distances(x64, metric), thresh, distance_matrix=True)
        if len(np.unique(x64, axis=0)) == len(x64):
            plain = run_ripser(x64, thresh, metric)
            assert all(np.array_equal(p, q) for p, q in zip(d, plain)), name
        dgms[name] = d
        rips_cases.append(
            {
                "name": name,
                "kind": "points",
                "n": int(x.shape[0]),
                "dim": int(x.shape[1]),
                "x": f32(x),
                "metric": metric,
                "threshold": thresh,
                "h0": dgm_json(d[0]),
                "h1": dgm_json(d[1]),
            }
        )
    for name, dm, thresh in distance_matrices():
        d = run_ripser(dm, thresh, distance_matrix=True)
        dgms[name] = d
        rips_cases.append(
            {
                "name": name,
                "kind": "distance_matrix",
                "n": int(dm.shape[0]),
                "distances": [float(v) for v in dm.ravel()],
                "threshold": thresh,
                "h0": dgm_json(d[0]),
                "h1": dgm_json(d[1]),
            }
        )
    with open(os.path.join(OUT, "rips.json"), "w") as f:
        json.dump({"ripser": ripser.__version__, "cases": rips_cases}, f, separators=(",", ":"))
        f.write("\n")

    inf = np.inf
    pairs = [
        ("circle_2d H1 vs circle_64d H1", dgms["circle_2d"][1], dgms["circle_64d"][1]),
        ("circle_2d H0 vs two_circles H0", dgms["circle_2d"][0], dgms["two_circles"][0]),
        ("uniform_cube H1 vs torus_400 H1", dgms["uniform_cube"][1], dgms["torus_400"][1]),
        ("torus_400 H0 vs blobs H0", dgms["torus_400"][0], dgms["blobs_with_duplicates"][0]),
        ("cosine_clusters H1 vs cosine_loop H1", dgms["cosine_clusters"][1], dgms["cosine_loop"][1]),
        ("grid_8x8 H1 vs grid_3d H1", dgms["grid_8x8"][1], dgms["grid_3d_4x4x4"][1]),
        ("circle_threshold H1 (infinite bar) vs circle_2d H1", dgms["circle_threshold"][1], dgms["circle_2d"][1]),
        ("torus_400 H1 vs itself", dgms["torus_400"][1], dgms["torus_400"][1]),
        ("empty vs empty", np.zeros((0, 2)), np.zeros((0, 2))),
        ("empty vs one point", np.zeros((0, 2)), np.array([[0.0, 1.0]])),
        ("one point vs empty", np.array([[0.2, 0.9]]), np.zeros((0, 2))),
        ("empty vs circle_2d H1", np.zeros((0, 2)), dgms["circle_2d"][1]),
        ("diagonal points vs one point", np.array([[0.5, 0.5], [1.0, 1.0]]), np.array([[0.0, 1.0]])),
        ("diagonal points vs empty", np.array([[0.5, 0.5], [1.0, 1.0]]), np.zeros((0, 2))),
        ("infinite bars ignored", np.array([[0.0, inf], [0.0, 1.0]]), np.array([[0.0, 2.0], [0.3, inf]])),
        ("only infinite vs one point", np.array([[0.0, inf]]), np.array([[1.0, 1.5]])),
        ("identical small", np.array([[0.0, 1.0], [0.5, 2.0]]), np.array([[0.0, 1.0], [0.5, 2.0]])),
        ("ties", np.array([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0]]), np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 5.0]])),
        ("near diagonal vs far", np.array([[1.0, 1.1], [1.0, 1.2], [3.0, 3.05]]), np.array([[0.0, 4.0]])),
        ("large coordinates", np.array([[1000.0, 1000.5], [2000.0, 2003.0]]), np.array([[1000.25, 1000.75], [2001.0, 2002.0]])),
    ]
    rng = np.random.default_rng(11)
    for m, k in [(5, 7), (30, 20), (60, 60)]:
        a = np.sort(rng.uniform(0, 1, (m, 2)), axis=1)
        b = np.sort(rng.uniform(0, 1, (k, 2)), axis=1)
        pairs.append((f"random {m} vs {k}", a, b))
    dist_cases = []
    for name, a, b in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bn = persim.bottleneck(a, b)
            ws = persim.wasserstein(a, b)
        dist_cases.append(
            {
                "name": name,
                "a": dgm_json(a),
                "b": dgm_json(b),
                "bottleneck": float(bn),
                "wasserstein": float(ws),
            }
        )
    with open(os.path.join(OUT, "distances.json"), "w") as f:
        json.dump({"persim": persim_version, "cases": dist_cases}, f, separators=(",", ":"))
        f.write("\n")
    for fn in ("rips.json", "distances.json"):
        print(fn, os.path.getsize(os.path.join(OUT, fn)), "bytes")


if __name__ == "__main__":
    main()
