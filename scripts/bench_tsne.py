#!/usr/bin/env python3
"""Reference side of scripts/bench_tsne: the data, scikit-learn's and openTSNE's t-SNE, and one
set of quality measures applied to every embedding.

  bench_tsne.py prepare OUT N D C   writes OUT/x.npy (an N × D float32 Gaussian mixture of C
                                    classes), OUT/labels.npy and OUT/init.npy (scikit-learn's
                                    init="pca": PCA to 2-D, rescaled so column 0 has std 1e-4).
  bench_tsne.py compare OUT         runs scikit-learn TSNE and openTSNE TSNE (defaults, n_jobs=2)
                                    from OUT/init.npy, reads clipflow's run (OUT/clipflow.json,
                                    OUT/clipflow_embedding.npy) and prints the table.

Quality is measured the same way for all three embeddings:
  - trustworthiness(k=10): sklearn.manifold.trustworthiness (Euclidean);
  - KL: KL(P || Q) with scikit-learn's sparse P (perplexity 30, _joint_probabilities_nn) and
    the exact Student-t Q (Z summed over all pairs): each method's own KL is computed on its own
    P and approximations (openTSNE: FFT-interpolated Z), so those are printed but not compared.
"""

import json
import sys
import time

import numpy as np


def prepare(out, n, d, c):
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    # Centres 0.25 · sqrt(2 D) ≈ 8 apart, points 0.2 · sqrt(2 D) ≈ 6.4 apart within a class
    # (D = 512): nearest neighbours are mostly of the same class, yet the classes overlap along
    # every single direction, so a 2-D map has to work for its trustworthiness.
    centres = rng.standard_normal((c, d), dtype=np.float32) * np.float32(0.25)
    labels = rng.integers(0, c, n)
    x = centres[labels] + rng.standard_normal((n, d), dtype=np.float32) * np.float32(0.2)
    x = x.astype(np.float32)
    # scikit-learn's init="pca", as TSNE._fit does it.
    proj = PCA(n_components=2, random_state=0).fit_transform(x).astype(np.float32, copy=False)
    init = (proj / np.std(proj[:, 0]) * 1e-4).astype(np.float32)
    np.save(f"{out}/x.npy", x)
    np.save(f"{out}/labels.npy", labels)
    np.save(f"{out}/init.npy", init)


def exact_kl(p, y):
    """KL(P || Q) over P's stored entries, Q the Student-t kernel normalised over all pairs."""
    y = y.astype(np.float64)
    n = len(y)
    sq = (y * y).sum(1)
    z = 0.0
    for s in range(0, n, 1000):
        d2 = np.maximum(sq[s : s + 1000, None] + sq[None, :] - 2.0 * y[s : s + 1000] @ y.T, 0.0)
        w = 1.0 / (1.0 + d2)
        z += w.sum() - len(w)  # minus the diagonal (d = 0, w = 1)
    rows = np.repeat(np.arange(n), np.diff(p.indptr))
    d2 = ((y[rows] - y[p.indices]) ** 2).sum(1)
    q = 1.0 / (1.0 + d2) / z
    return float(np.sum(p.data * np.log(p.data / q)))


def compare(out):
    import openTSNE
    import sklearn
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.manifold._t_sne import _joint_probabilities_nn
    from sklearn.neighbors import NearestNeighbors

    x = np.load(f"{out}/x.npy")
    init = np.load(f"{out}/init.npy")
    n, d = x.shape
    rows = {}

    t = time.perf_counter()
    sk = TSNE(init=init, n_jobs=2, random_state=0)
    emb = sk.fit_transform(x)
    secs = time.perf_counter() - t
    rows["scikit-learn"] = (secs, emb, float(sk.kl_divergence_), int(sk.n_iter_) + 1)
    print(f"scikit-learn {sklearn.__version__} TSNE (n_jobs=2): {secs:.2f} s", flush=True)

    t = time.perf_counter()
    ot = openTSNE.TSNE(n_jobs=2, initialization=init.astype(np.float64), random_state=0)
    emb = ot.fit(x)
    secs = time.perf_counter() - t
    rows["openTSNE"] = (secs, np.asarray(emb), float(emb.kl_divergence), 250 + 500)
    print(f"openTSNE {openTSNE.__version__} TSNE (n_jobs=2, defaults): {secs:.2f} s", flush=True)

    rust = json.load(open(f"{out}/clipflow.json"))
    emb = np.load(f"{out}/clipflow_embedding.npy")
    rows["clipflow"] = (rust["seconds"], emb, rust["kl_divergence"], rust["n_iter"])

    # One P for the common KL: scikit-learn's, from its exact neighbours (perplexity 30).
    knn = NearestNeighbors(n_neighbors=min(n - 1, 91)).fit(x)
    graph = knn.kneighbors_graph(mode="distance")
    graph.data **= 2
    p = _joint_probabilities_nn(graph, 30.0, 0)

    print()
    print(
        f"t-SNE of {n} x {d} float32 (Gaussian mixture), same PCA start; "
        f"KL(P||Q) with scikit-learn's P and exact Q, trustworthiness by scikit-learn"
    )
    print(
        f"{'':14s}{'wall s':>9s}{'iters':>7s}{'KL (own)':>10s}{'KL (common)':>13s}"
        f"{'T(k=10)':>10s}"
    )
    summary = {}
    for name in ["clipflow", "scikit-learn", "openTSNE"]:
        secs, emb, own_kl, iters = rows[name]
        kl = exact_kl(p, emb)
        tw = float(trustworthiness(x, emb, n_neighbors=10))
        summary[name] = {"seconds": secs, "kl_common": kl, "trustworthiness_10": tw}
        print(f"{name:14s}{secs:9.2f}{iters:7d}{own_kl:10.4f}{kl:13.4f}{tw:10.4f}", flush=True)
    print()
    print(
        f"clipflow: neighbours {rust['neighbour_seconds']:.2f} s, P "
        f"{rust['affinity_seconds'] - rust['neighbour_seconds']:.2f} s, {rust['threads']} threads; "
        f"its own trustworthiness(k=10) {rust['trustworthiness_10']:.6f} in "
        f"{rust['trustworthiness_seconds']:.2f} s (scikit-learn's: "
        f"{summary['clipflow']['trustworthiness_10']:.6f})"
    )
    for name in ["scikit-learn", "openTSNE"]:
        print(
            f"speed-up of clipflow over {name}: "
            f"{summary[name]['seconds'] / summary['clipflow']['seconds']:.2f}x"
        )
    json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "compare":
        compare(sys.argv[2])
    else:
        raise SystemExit(__doc__)
