#!/usr/bin/env python3
"""Golden values for clipflow's t-SNE and trustworthiness (src/analysis/tsne.rs,
src/analysis/trustworthiness.rs), checked by tests/tsne_golden.rs.

Writes tests/fixtures/golden/tsne/*.json:

  data.json            the input samples (float32 values): Gaussian blobs in 24-D (Euclidean),
                       blobs in 16-D off the origin (cosine), and blobs with exact duplicate rows.
  joint_p.json         per case: scikit-learn's exact nearest neighbours (NearestNeighbors, the
                       3·perplexity+1 of TSNE) and the joint P of
                       sklearn.manifold._t_sne._joint_probabilities_nn on those distances (CSR).
  gradient.json        per case and embedding: KL divergence and gradient from
                       _kl_divergence_bh (the Barnes–Hut gradient, float32 inside scikit-learn)
                       at theta 0.5 and 0, for the PCA start (scale 1e-4, where duplicates sit
                       within the quadtree's 1e-6) and two spread-out embeddings.
  runs.json            per case: the PCA start (scikit-learn's rescaling), the PCA projection it
                       came from, and TSNE(init=start) results: final KL, n_iter_,
                       trustworthiness (k = 5, 10) of its embedding, for the start itself and
                       four starts perturbed by 1e-6 (all five in "starts"): t-SNE is chaotic,
                       so tests compare the median over the same five starts.
  trustworthiness.json sklearn.manifold.trustworthiness for PCA / noisy / 3-D embeddings of the
                       data cases, several k, both metrics; plus one large case (4,500 samples,
                       several distance blocks in clipflow) whose data both sides generate from
                       a xorshift seed instead of storing it.

The data are float32 values; scikit-learn receives float64 copies, so its neighbour distances are
the float64 distances of the same numbers clipflow computes. Cases are redrawn until no distance
ties could make two correct implementations disagree (neighbour sets and trustworthiness ranks).

Usage: .venv/bin/python scripts/gen_tsne_golden.py  (scikit-learn 1.9.1 from
scripts/requirements-dev.txt). Deterministic: rerunning rewrites identical files.
"""

import json
import os

import numpy as np
import sklearn
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.manifold._t_sne import _joint_probabilities_nn, _kl_divergence_bh
from sklearn.neighbors import NearestNeighbors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "tsne")
MASK = (1 << 64) - 1


def floats(a):
    """Flat list of float64 values (JSON round-trips them exactly)."""
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


class F32(list):
    """float32 values, written in their shortest decimal form (exact after f64 -> f32)."""


def f32(a):
    return F32(np.asarray(a, dtype=np.float32).ravel().tolist())


def to_json(obj):
    if isinstance(obj, F32):
        return "[" + ",".join(str(np.float32(v)) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + to_json(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(to_json(v) for v in obj) + "]"
    return json.dumps(obj)


def ints(a):
    return [int(v) for v in np.asarray(a).ravel()]


def xorshift_data(seed, n, dim):
    """The generator of tests/tsne_golden.rs: xorshift64, 24-bit uniforms in [0, 1)."""
    s = (seed * 0x9E3779B97F4A7C15 | 1) & MASK
    out = np.empty(n * dim, dtype=np.float32)
    for t in range(n * dim):
        s ^= (s << 13) & MASK
        s ^= s >> 7
        s ^= (s << 17) & MASK
        out[t] = (s >> 40) / float(1 << 24)
    return out.reshape(n, dim)


def min_relative_gap(d):
    """Smallest relative gap between sorted distances of each row (ties => 0)."""
    s = np.sort(d, axis=1)[:, :-1]  # the last column is the diagonal's inf
    gaps = np.diff(s, axis=1) / np.maximum(s[:, 1:], 1e-300)
    return gaps.min()


def distance_matrix(x, metric):
    from sklearn.metrics import pairwise_distances

    d = pairwise_distances(x.astype(np.float64), metric=metric)
    np.fill_diagonal(d, np.inf)
    return d


def make_case(name, metric, n, dim, centers, std, box, seed, duplicates=0):
    for attempt in range(100):
        x, _ = make_blobs(
            n_samples=n - duplicates,
            n_features=dim,
            centers=centers,
            cluster_std=std,
            center_box=box,
            random_state=seed + attempt,
        )
        x = x.astype(np.float32)
        if duplicates:
            rng = np.random.default_rng(seed + attempt)
            src = rng.choice(n - duplicates, size=duplicates, replace=False)
            x = np.concatenate([x, x[src]])
            return name, metric, x
        d = distance_matrix(x, metric)
        if min_relative_gap(d[:, :]) > 1e-9:
            return name, metric, x
    raise SystemExit(f"{name}: could not draw a tie-free case")


def knn(x, k, metric):
    nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(x.astype(np.float64))
    dist, ind = nn.kneighbors()
    return dist, ind


def joint_p(x, perplexity, metric):
    n = x.shape[0]
    k = min(n - 1, int(3.0 * perplexity + 1))
    nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(x.astype(np.float64))
    graph = nn.kneighbors_graph(mode="distance")
    dist, ind = nn.kneighbors()
    graph.data **= 2
    p = _joint_probabilities_nn(graph, perplexity, 0)
    return k, dist, ind, p


def pca_start(x):
    """scikit-learn's init="pca", step for step (TSNE._fit)."""
    pca = PCA(n_components=2, random_state=0)
    proj = pca.fit_transform(x.astype(np.float64)).astype(np.float32, copy=False)
    start = proj / np.std(proj[:, 0]) * 1e-4
    return proj, start.astype(np.float32)


def main():
    assert sklearn.__version__ == "1.9.1", sklearn.__version__
    os.makedirs(OUT, exist_ok=True)
    cases = [
        make_case("blobs24_euclidean", "euclidean", 200, 24, 4, 2.0, (-8, 8), 11) + (6.0,),
        make_case("blobs16_cosine", "cosine", 120, 16, 3, 1.5, (1, 6), 21) + (5.0,),
        make_case("duplicates16", "euclidean", 120, 16, 3, 1.0, (-5, 5), 31, 20) + (5.0,),
    ]

    data, jp, grads, runs = [], [], [], []
    for name, metric, x, perplexity in cases:
        n, dim = x.shape
        data.append({"name": name, "metric": metric, "dim": dim, "x": f32(x)})

        k, dist, ind, p = joint_p(x, perplexity, metric)
        jp.append(
            {
                "name": name,
                "perplexity": perplexity,
                "k": k,
                "knn_indices": ints(ind),
                "knn_distances": floats(dist),
                "indptr": ints(p.indptr),
                "indices": ints(p.indices),
                "values": floats(p.data),
            }
        )

        proj, start = pca_start(x)
        # t-SNE is chaotic: a 1e-6 relative change of the start moves scikit-learn's own
        # trustworthiness by ~0.005 and its KL by ~3%. The reference is the median over the
        # exact start and four starts perturbed by 1e-6 (relative); the spread is recorded.
        kls, t5s, t10s, n_iters, starts = [], [], [], [], []
        for s in range(5):
            init = start
            if s:
                noise = np.random.default_rng(s).normal(size=start.shape).astype(np.float32)
                init = (start * (1 + np.float32(1e-6) * noise)).astype(np.float32)
            starts.append(f32(init))
            sk = TSNE(
                perplexity=perplexity,
                init=init,
                metric=metric,
                method="barnes_hut",
                random_state=0,
                n_jobs=1,
            )
            emb = sk.fit_transform(x.astype(np.float64))
            kls.append(float(sk.kl_divergence_))
            n_iters.append(int(sk.n_iter_))
            for k, out in [(5, t5s), (10, t10s)]:
                out.append(
                    float(trustworthiness(x.astype(np.float64), emb, n_neighbors=k, metric=metric))
                )
        runs.append(
            {
                "name": name,
                "perplexity": perplexity,
                "pca": f32(proj),
                "start": f32(start),
                "starts": starts,
                "kl_divergence": kls,
                "n_iter": n_iters,
                "trustworthiness_5": t5s,
                "trustworthiness_10": t10s,
            }
        )

        # Spread-out embeddings with large gradients: the PCA shape at scale 5 (duplicates
        # coincide) and a random one at scale 3. Not the converged embedding: there the
        # gradient is a near-total cancellation of attraction and repulsion, and
        # scikit-learn's own float32 result moves by 1e-3 of its size when the positions move
        # by one float32 ulp, so it cannot serve as a reference.
        pca5 = (proj / np.std(proj[:, 0]) * 5).astype(np.float32)
        randn3 = (np.random.default_rng(3).normal(size=(n, 2)) * 3).astype(np.float32)
        for label, y in [("start", start), ("pca5", pca5), ("randn3", randn3)]:
            for theta in [0.5, 0.0]:
                kl, g = _kl_divergence_bh(
                    y.ravel().copy(), p.copy(), 1, n, 2, angle=theta, num_threads=1
                )
                grads.append(
                    {
                        "name": name,
                        "embedding_name": label,
                        "theta": theta,
                        "embedding": f32(y),
                        "kl_divergence": float(kl),
                        "gradient": f32(g),
                    }
                )

    tw = []
    for name, metric, x, _ in cases:
        if name == "duplicates16":
            continue  # exact ties in the original space: ranks are order-dependent
        n = x.shape[0]
        x64 = x.astype(np.float64)
        rng = np.random.default_rng(5)
        pca2 = PCA(n_components=2, random_state=0).fit_transform(x64)
        noisy = pca2 + rng.normal(scale=pca2.std() * 0.3, size=pca2.shape)
        pca3 = PCA(n_components=3, random_state=0).fit_transform(x64)
        for low_name, low in [("pca2", pca2), ("noisy2", noisy), ("pca3", pca3)]:
            low_d = distance_matrix(low, "euclidean")
            # The embedding's neighbour sets must be unambiguous for every k used.
            assert min_relative_gap(low_d) > 1e-9, (name, low_name)
            for k in [1, 5, 10, n // 2 - 1]:
                tw.append(
                    {
                        "name": name,
                        "embedding_name": low_name,
                        "metric": metric,
                        "low_dim": low.shape[1],
                        "low": floats(low),
                        "n_neighbors": k,
                        "trustworthiness": float(
                            trustworthiness(x64, low, n_neighbors=k, metric=metric)
                        ),
                    }
                )
    # Drop repeated embeddings from the JSON: tests look them up by (name, embedding_name).
    seen = set()
    for case in tw:
        key = (case["name"], case["embedding_name"])
        if key in seen:
            case["low"] = None
        seen.add(key)

    big_n, big_dim, big_seed = 4500, 8, 7
    xb = xorshift_data(big_seed, big_n, big_dim).astype(np.float64)
    lowb = xorshift_data(big_seed + 1, big_n, 2).astype(np.float64)
    for metric in ["euclidean", "cosine"]:
        assert min_relative_gap(distance_matrix(xb, metric)) > 1e-12, metric
    assert min_relative_gap(distance_matrix(lowb, "euclidean")) > 1e-12
    big = {
        "seed": big_seed,
        "n": big_n,
        "dim": big_dim,
        "low_seed": big_seed + 1,
        "checksum": float(xb.sum() + lowb.sum()),
        "results": [
            {
                "n_neighbors": k,
                "metric": metric,
                "trustworthiness": float(trustworthiness(xb, lowb, n_neighbors=k, metric=metric)),
            }
            for k, metric in [(10, "euclidean"), (7, "cosine")]
        ],
    }

    def write(fname, obj):
        with open(os.path.join(OUT, fname), "w") as f:
            f.write(to_json(obj))
            f.write("\n")

    write("data.json", data)
    write("joint_p.json", jp)
    write("gradient.json", grads)
    write("runs.json", runs)
    write("trustworthiness.json", {"cases": tw, "large": big})
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
