#!/usr/bin/env python3
"""Golden values for clipflow's analysis core (src/analysis), checked by tests/analysis_golden.rs.

Writes tests/fixtures/golden/analysis/*.json:

  metrics.json     ARI, NMI, AMI, FMI, homogeneity, completeness, V-measure, MI, entropy
                   (scikit-learn) for label pairs: identical, permuted, random of several sizes,
                   singleton clusters, a single class, a label missing from the predictions,
                   imbalanced classes, sparse label values, string labels, one sample.
  silhouette.json  silhouette_score / silhouette_samples, euclidean and cosine (scikit-learn on
                   float64 copies of float32 data): blobs in 16-64 D, a singleton cluster,
                   exact duplicates, imbalanced clusters.
  retrieval.json   ranks, recall@K hit counts, mean/median rank, MRR and top-K lists from a
                   direct numpy reference (np.argsort(-scores, kind="stable")): ties, paired
                   captions, 5 captions per image both ways, class-level with a query that has
                   no positive.
  zero_shot.json   class embeddings, predictions, true-class ranks, top-1/top-5 counts, confusion,
                   per-class counts, mean per-class recall, by direct numpy (balanced accuracy
                   cross-checked with scikit-learn); exact ties, one class, fewer than 5 classes.
  clustering.json  k-means from a given start (scikit-learn KMeans(init=array), cross-checked with
                   a numpy transcription of the algorithm), k-means++ inertia to beat, Ward trees
                   (scipy linkage) and cuts (scikit-learn AgglomerativeClustering), DBSCAN labels
                   (scikit-learn), euclidean and cosine.
  probe.json       kNN predictions (scikit-learn KNeighborsClassifier, cosine, brute, cross-checked
                   with a numpy reference of the documented tie rule) and linear-probe accuracy
                   and objective (scikit-learn LogisticRegression, lbfgs) on a fixed split.

Exactness: retrieval fixtures are quantised to multiples of 1/64 (norms within 1e-2 of 1), so
every score is an exact float32 whatever the summation order, and ties are exact and common.
Where float32 products are not exact (zero-shot, kNN, k-means, DBSCAN), the generator redraws
data until every decision has a margin far above float32 rounding, so "exact" comparisons test
the definitions and not the rounding.

Usage: .venv/bin/python scripts/gen_analysis_golden.py  (needs scikit-learn and scipy from
scripts/requirements-dev.txt). Deterministic: rerunning rewrites identical files.
"""

import json
import os
import sys
import warnings

import numpy as np
import scipy
import scipy.stats
import sklearn
from scipy.cluster.hierarchy import linkage
from sklearn import metrics as skm
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans, kmeans_plusplus
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "analysis")


def f32(a):
    """Flat list of the float32 values of `a`, as JSON numbers that round-trip exactly."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def ints(a):
    return [int(v) for v in np.asarray(a).ravel()]


def write(name, payload):
    payload = {
        "generator": "scripts/gen_analysis_golden.py",
        "versions": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
        },
        **payload,
    }
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(payload, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def blobs(rng, n_per, dim, spread, scale=4.0):
    """Gaussian blobs: centres uniform in [-scale, scale]^dim, unit-variance noise * spread."""
    centres = rng.uniform(-scale, scale, size=(len(n_per), dim))
    x = np.concatenate([c + spread * rng.standard_normal((m, dim)) for c, m in zip(centres, n_per)])
    y = np.concatenate([np.full(m, i) for i, m in enumerate(n_per)])
    return x.astype(np.float32), y


def normalise(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Clustering metrics


def metric_case(name, t, p, strings=False):
    case = {
        "name": name,
        "ari": skm.adjusted_rand_score(t, p),
        "nmi": skm.normalized_mutual_info_score(t, p, average_method="arithmetic"),
        "ami": skm.adjusted_mutual_info_score(t, p, average_method="arithmetic"),
        "fmi": skm.fowlkes_mallows_score(t, p),
        "mi": skm.mutual_info_score(t, p),
        "entropy_true": float(scipy.stats.entropy(np.unique(np.asarray(t), return_counts=True)[1])),
    }
    h, c, v = skm.homogeneity_completeness_v_measure(t, p)
    case.update(homogeneity=h, completeness=c, v_measure=v)
    if strings:
        case.update(labels_true_str=list(t), labels_pred_str=list(p))
    else:
        case.update(labels_true=ints(t), labels_pred=ints(p))
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in case.items()}


def gen_metrics():
    rng = np.random.default_rng(101)
    cases = []
    t = rng.integers(0, 4, 40)
    cases.append(metric_case("identical", t, t))
    perm = np.array([3, 0, 2, 1])
    cases.append(metric_case("permuted_names", t, perm[t]))
    cases.append(metric_case("random_small", rng.integers(0, 3, 30), rng.integers(0, 4, 30)))
    cases.append(metric_case("random_medium", rng.integers(0, 10, 500), rng.integers(0, 12, 500)))
    # Correlated labellings with many clusters: a heavier expected-MI sum.
    t = rng.integers(0, 40, 3000)
    p = np.where(rng.random(3000) < 0.6, t * 3 // 2, rng.integers(0, 60, 3000))
    cases.append(metric_case("correlated_many_clusters", t, p))
    t = rng.integers(0, 5, 50)
    cases.append(metric_case("singleton_clusters", t, np.arange(50)))
    cases.append(metric_case("singleton_classes", np.arange(50), t))
    cases.append(metric_case("single_class", np.zeros(30, int), rng.integers(0, 3, 30)))
    cases.append(metric_case("single_cluster", rng.integers(0, 3, 30), np.zeros(30, int)))
    cases.append(metric_case("both_single", np.zeros(12, int), np.full(12, 7)))
    # Truth has classes 0..4; predictions never use 3 (a label missing from the predictions).
    t = rng.integers(0, 5, 80)
    p = np.where(t == 3, rng.choice([0, 1, 2, 4], 80), t)
    p = np.where(rng.random(80) < 0.2, rng.choice([0, 1, 2, 4], 80), p)
    cases.append(metric_case("label_missing_from_predictions", t, p))
    t = np.where(rng.random(400) < 0.95, 0, rng.integers(1, 4, 400))
    p = np.where(rng.random(400) < 0.9, t, rng.integers(0, 4, 400))
    cases.append(metric_case("imbalanced", t, p))
    t = rng.choice([5, 42, 1_000_000, 7], 60)
    p = rng.choice([999, 3, 12], 60)
    cases.append(metric_case("sparse_label_values", t, p))
    cases.append(metric_case("anti_correlated", [0, 0, 1, 1], [0, 1, 0, 1]))
    cases.append(metric_case("one_sample", [3], [9]))
    cases.append(metric_case("two_samples_split", [0, 0], [0, 1]))
    names = np.array(["cat", "dog", "Émile", "ant", "zebra"])
    t = names[rng.integers(0, 5, 70)]
    p = names[rng.integers(0, 4, 70)]
    cases.append(metric_case("string_labels", t, p, strings=True))
    write("metrics.json", {"cases": cases})


# ---------------------------------------------------------------------------------------------
# Silhouette


def silhouette_case(name, x, labels, with_samples=False):
    x64 = np.asarray(x, dtype=np.float32).astype(np.float64)
    case = {
        "name": name,
        "dim": int(x.shape[1]),
        "x": f32(x),
        "labels": ints(labels),
        "euclidean": float(skm.silhouette_score(x64, labels, metric="euclidean")),
        "cosine": float(skm.silhouette_score(x64, labels, metric="cosine")),
    }
    if with_samples:
        case["samples_euclidean"] = [float(v) for v in skm.silhouette_samples(x64, labels)]
        case["samples_cosine"] = [
            float(v) for v in skm.silhouette_samples(x64, labels, metric="cosine")
        ]
    return case


def gen_silhouette():
    rng = np.random.default_rng(202)
    cases = []
    for dim, sizes, spread in [(16, [40, 30, 50], 1.5), (32, [25] * 6, 3.0), (64, [60, 20, 45, 35], 4.0)]:
        x, y = blobs(rng, sizes, dim, spread)
        cases.append(silhouette_case(f"blobs_{dim}d", x, y, with_samples=dim == 16))
    x, y = blobs(rng, [30, 30, 1], 24, 1.0)
    cases.append(silhouette_case("singleton_cluster", x, y, with_samples=True))
    # Exact duplicates on a small integer grid (every distance is exact in float64).
    base = rng.integers(-3, 4, size=(10, 16)).astype(np.float32)
    x = np.concatenate([base, base[:6]])
    y = np.concatenate([rng.integers(0, 3, 10), rng.integers(0, 3, 6)])
    y[:3] = [0, 1, 2]
    cases.append(silhouette_case("exact_duplicates", x, y, with_samples=True))
    x, y = blobs(rng, [150, 8, 4], 32, 2.0)
    cases.append(silhouette_case("imbalanced", x, y))
    # A labelling unrelated to the data (negative coefficients).
    x, _ = blobs(rng, [40, 40], 20, 1.0)
    cases.append(silhouette_case("unrelated_labels", x, rng.integers(0, 3, 80)))
    write("silhouette.json", {"cases": cases})


# ---------------------------------------------------------------------------------------------
# Retrieval


def quantised_unit(rng, x):
    """Rows of x normalised and rounded to multiples of 1/64, redrawn (with a small jitter)
    until their norm is within 1e-2 of 1. Products of such vectors are exact in float32."""
    x = normalise(x)
    out = np.empty_like(x)
    for i, v in enumerate(x):
        while True:
            q = np.round(v * 64) / 64
            if abs(np.linalg.norm(q) - 1) <= 9e-3:
                out[i] = q
                break
            v = normalise((v + 0.01 * rng.standard_normal(v.shape))[None])[0]
    return out.astype(np.float32)


def retrieval_reference(q, g, positive):
    """Direct definition: stable sort of the negated scores, rank of the best-placed positive."""
    s = q.astype(np.float64) @ g.astype(np.float64).T
    ranks = []
    orders = []
    for i in range(len(q)):
        order = np.argsort(-s[i], kind="stable")
        orders.append(order)
        pos = np.flatnonzero(positive[i][order])
        ranks.append(int(pos[0]) + 1 if len(pos) else None)
    return s, ranks, orders


def retrieval_case(name, q, g, kind, ks, top_queries, top_k, qkeys=None, gkeys=None):
    if kind == "paired":
        positive = np.eye(len(q), len(g), dtype=bool)
    else:
        positive = np.asarray(qkeys)[:, None] == np.asarray(gkeys)[None, :]
    s, ranks, orders = retrieval_reference(q, g, positive)
    # The scores are exact in float32 too: the Rust side sees the same numbers.
    s32 = q @ g.T
    assert np.array_equal(s32.astype(np.float64), s), name
    have = np.array([r for r in ranks if r is not None], dtype=np.float64)
    n = len(ranks)
    case = {
        "name": name,
        "dim": int(q.shape[1]),
        "queries": f32(q),
        "gallery": f32(g),
        "positives": kind,
        "ks": ks,
        "ranks": ranks,
        "hits": [int(sum(1 for r in ranks if r is not None and r <= k)) for k in ks],
        "n_without_positive": int(sum(r is None for r in ranks)),
        "mean_rank": float(have.mean()) if len(have) else None,
        "median_rank": float(np.median(have)) if len(have) else None,
        "mrr": float(sum(1.0 / r for r in ranks if r is not None) / n),
        "top_queries": top_queries,
        "top_k": top_k,
        "top": [ints(orders[i][:top_k]) for i in top_queries],
        "top_scores": [[float(s[i, j]) for j in orders[i][:top_k]] for i in top_queries],
        "tied_scores": int(sum(len(row) - len(np.unique(row)) for row in s)),
    }
    if kind == "shared":
        case.update(query_keys=ints(qkeys), gallery_keys=ints(gkeys))
    return case


def gen_retrieval():
    rng = np.random.default_rng(303)
    cases = []

    # Hand-made ties with one-hot vectors: every score is 0 or 1.
    e = np.eye(4, dtype=np.float32)
    g = np.stack([e[0], e[1], e[0], e[2], e[0], e[3]])
    q = np.stack([e[0], e[0], e[0], e[1], e[2], e[3]])
    # Query 2's positive (gallery 2) ties with gallery 0 (before) and 4 (after): rank 2.
    cases.append(retrieval_case("one_hot_ties", q, g, "paired", [1, 2, 3], [0, 2], 4))

    # Paired, with duplicated gallery rows and queries equal to other items: many exact ties.
    base = quantised_unit(rng, rng.standard_normal((60, 16)))
    g = base.copy()
    g[10] = g[3]
    g[40] = g[20]
    g[41] = g[20]
    q = quantised_unit(rng, base + 0.6 * rng.standard_normal(base.shape))
    q[5] = g[3]
    q[20] = g[20]
    q[41] = g[40]
    cases.append(retrieval_case("paired_ties_16d", q, g, "paired", [1, 5, 10], [3, 20, 41], 8))

    # Paired captions, 64-D, noisy queries.
    centres = rng.standard_normal((300, 64))
    g = quantised_unit(rng, centres)
    q = quantised_unit(rng, centres + 3.5 * rng.standard_normal(centres.shape))
    cases.append(retrieval_case("paired_64d", q, g, "paired", [1, 5, 10, 50], [0, 7], 10))

    # Five captions per image (COCO-style), 32-D: text→image and image→text.
    n_img = 80
    img = rng.standard_normal((n_img, 32))
    caption_image = np.repeat(np.arange(n_img), 5)
    rng.shuffle(caption_image)
    images = quantised_unit(rng, img)
    captions = quantised_unit(rng, img[caption_image] + 2.5 * rng.standard_normal((5 * n_img, 32)))
    cases.append(
        retrieval_case(
            "captions_text_to_image", captions, images, "shared", [1, 5, 10], [0, 1], 5,
            qkeys=caption_image, gkeys=np.arange(n_img),
        )
    )
    cases.append(
        retrieval_case(
            "captions_image_to_text", images, captions, "shared", [1, 5, 10], [0, 3], 10,
            qkeys=np.arange(n_img), gkeys=caption_image,
        )
    )

    # Class-level: imbalanced labels; label 7 only among the queries (no positive).
    sizes = [50, 20, 10, 5, 3, 1, 30]
    x, y = blobs(rng, sizes, 24, 3.0, scale=2.0)
    gallery = quantised_unit(rng, x)
    qx, qy = blobs(rng, [4] * 8, 24, 3.0, scale=2.0)
    queries = quantised_unit(rng, qx)
    cases.append(
        retrieval_case(
            "class_level_imbalanced", queries, gallery, "shared", [1, 5, 10, 100], [0, 31], 6,
            qkeys=qy, gkeys=y,
        )
    )
    write("retrieval.json", {"cases": cases})


# ---------------------------------------------------------------------------------------------
# Zero-shot


def class_embeddings_ref(prompts, prompt_class, n_classes):
    p = normalise(prompts.astype(np.float64))
    out = np.zeros((n_classes, p.shape[1]))
    for c in range(n_classes):
        m = p[prompt_class == c].mean(axis=0)
        out[c] = m / np.linalg.norm(m)
    return out


def zero_shot_reference(images, classes32, labels, n_classes):
    cos = images.astype(np.float64) @ classes32.astype(np.float64).T
    order = np.argsort(-cos, axis=1, kind="stable")
    true_rank = [int(np.flatnonzero(order[i] == labels[i])[0]) + 1 for i in range(len(labels))]
    pred = np.argmax(cos, axis=1)
    return cos, pred, true_rank


def has_margin(cos, labels, margin=1e-5):
    """Every cosine differs from the true class's and from the best one by more than `margin`,
    or equals it exactly (a constructed tie)."""
    for i, row in enumerate(cos):
        for ref in (row[labels[i]], row.max()):
            d = np.abs(row - ref)
            if np.any((d > 0) & (d <= margin)):
                return False
    return True


def zero_shot_case(name, prompts, prompt_class, n_classes, images, labels):
    classes = class_embeddings_ref(prompts, prompt_class, n_classes)
    classes32 = classes.astype(np.float32)
    cos, pred, true_rank = zero_shot_reference(images, classes32, labels, n_classes)
    assert has_margin(cos, labels), name
    conf = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(labels, pred):
        conf[t, p] += 1
    support = conf.sum(axis=1)
    correct = np.diag(conf)
    present = support > 0
    mpcr = float(np.mean(correct[present] / support[present]))
    if n_classes > 1:
        assert abs(mpcr - skm.balanced_accuracy_score(labels, pred)) < 1e-12, name
    return {
        "name": name,
        "dim": int(images.shape[1]),
        "n_classes": n_classes,
        "prompts": f32(prompts),
        "prompt_class": ints(prompt_class),
        "images": f32(images),
        "labels": ints(labels),
        "class_embeddings": [float(v) for v in classes.ravel()],
        "predictions": ints(pred),
        "true_rank": true_rank,
        "top1_correct": int(correct.sum()),
        "top5_correct": int(sum(r <= 5 for r in true_rank)) if n_classes >= 5 else None,
        "support": ints(support),
        "correct": ints(correct),
        "confusion": ints(conf),
        "mean_per_class_recall": mpcr,
    }


def draw_zero_shot(rng, n_classes, templates, dim, n_images, spread, weights, absent=()):
    """Prompts around class directions (unnormalised, varied scale) and images around the
    same directions, redrawn until every decision has a float32-safe margin."""
    while True:
        dirs = rng.standard_normal((n_classes, dim))
        prompt_class = np.concatenate([np.full(t, c) for c, t in enumerate(templates)])
        prompts = dirs[prompt_class] + 0.5 * rng.standard_normal((len(prompt_class), dim))
        prompts *= rng.uniform(0.5, 20.0, size=(len(prompt_class), 1))
        p = np.array(weights, dtype=float)
        p[list(absent)] = 0
        labels = rng.choice(n_classes, size=n_images, p=p / p.sum())
        images = normalise(dirs[labels] + spread * rng.standard_normal((n_images, dim)))
        images = images.astype(np.float32)
        prompts = prompts.astype(np.float32)
        classes32 = class_embeddings_ref(prompts, prompt_class, n_classes).astype(np.float32)
        cos = images.astype(np.float64) @ classes32.astype(np.float64).T
        if has_margin(cos, labels):
            return prompts, prompt_class, images, labels


def gen_zero_shot():
    rng = np.random.default_rng(404)
    cases = []
    for name, n_classes, templates, dim, n_images, spread, weights, absent in [
        ("ten_classes_32d", 10, [4, 4, 1, 3, 4, 2, 4, 4, 4, 1], 32, 200, 3.0,
         [30, 20, 10, 5, 5, 3, 10, 10, 1, 6], (8,)),
        ("three_classes_16d", 3, [2, 3, 1], 16, 60, 2.0, [1, 1, 1], ()),
        ("seven_classes_64d", 7, [3] * 7, 64, 150, 4.5, [1] * 7, ()),
    ]:
        prompts, prompt_class, images, labels = draw_zero_shot(
            rng, n_classes, templates, dim, n_images, spread, weights, absent
        )
        cases.append(zero_shot_case(name, prompts, prompt_class, n_classes, images, labels))
    # Exact ties: one-hot class prompts; images at equal cosine to two or three classes.
    dim = 8
    e = np.eye(dim, dtype=np.float32)
    prompts = np.stack([e[c] * s for c in range(6) for s in (1.0, 3.0)])
    prompt_class = np.repeat(np.arange(6), 2)
    imgs, labels = [], []
    for a, b, t in [(0, 1, 1), (0, 1, 0), (2, 5, 5), (3, 4, 3), (1, 4, 4)]:
        v = np.zeros(dim)
        v[a] = v[b] = 1
        imgs.append(v)
        labels.append(t)
    v = np.zeros(dim)
    v[[0, 2, 4]] = 1  # a three-way tie, true class 4 ranks third
    imgs.append(v)
    labels.append(4)
    v = np.zeros(dim)
    v[[6, 7]] = 1  # orthogonal to every class: all six tie at 0, true class 5 ranks sixth
    imgs.append(v)
    labels.append(5)
    images = normalise(np.array(imgs)).astype(np.float32)
    cases.append(zero_shot_case("exact_ties", prompts, prompt_class, 6, images, np.array(labels)))
    # One class: everything is correct, no top-5.
    prompts = rng.standard_normal((3, 16)).astype(np.float32)
    images = normalise(rng.standard_normal((10, 16))).astype(np.float32)
    cases.append(zero_shot_case("single_class", prompts, np.zeros(3, int), 1, images, np.zeros(10, int)))
    write("zero_shot.json", {"cases": cases})


# ---------------------------------------------------------------------------------------------
# Clustering: k-means, Ward, DBSCAN


def lloyd_numpy(x, centres, max_iter, tol):
    """scikit-learn's Lloyd loop transcribed in float64, returning the smallest relative gap
    between the best and second-best centre seen in any assignment."""
    x = x.astype(np.float64)
    tol = np.mean(np.var(x, axis=0)) * tol
    c = centres.astype(np.float64).copy()
    labels_old = np.full(len(x), -1)
    min_gap = np.inf

    def assign(c):
        nonlocal min_gap
        d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        part = np.sort(d, axis=1)
        min_gap = min(min_gap, float(np.min((part[:, 1] - part[:, 0]) / (part[:, 1] + 1e-300))))
        return np.argmin(d, axis=1)

    strict = False
    for it in range(max_iter):
        labels = assign(c)
        new = np.stack([x[labels == j].mean(axis=0) if np.any(labels == j) else c[j] for j in range(len(c))])
        assert all(np.any(labels == j) for j in range(len(c))), "empty cluster in fixture"
        shift = ((new - c) ** 2).sum()
        c = new
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        labels = assign(c)
    inertia = float(((x - c[labels]) ** 2).sum())
    return labels, inertia, it + 1, min_gap


def kmeans_from_init_case(rng, name, sizes, dim, spread, k, max_iter=300, tol=1e-4):
    while True:
        x, y = blobs(rng, sizes, dim, spread)
        init, _ = kmeans_plusplus(x.astype(np.float64), k, random_state=int(rng.integers(1 << 31)))
        init = init.astype(np.float32)
        labels, inertia, n_iter, gap = lloyd_numpy(x, init, max_iter, tol)
        if gap > 1e-4:
            break
    km = KMeans(k, init=init.astype(np.float64), n_init=1, max_iter=max_iter, tol=tol, algorithm="lloyd")
    km.fit(x.astype(np.float64))
    assert np.array_equal(km.labels_, labels), name
    assert km.n_iter_ == n_iter, (name, km.n_iter_, n_iter)
    assert abs(km.inertia_ - inertia) <= 1e-9 * inertia, name
    return {
        "name": name,
        "dim": dim,
        "x": f32(x),
        "truth": ints(y),
        "init": f32(init),
        "max_iter": max_iter,
        "tol": tol,
        "labels": ints(km.labels_),
        "n_iter": int(km.n_iter_),
        "inertia": float(km.inertia_),
    }


def kmeans_pp_case(rng, name, sizes, dim, spread, k, n_init=10):
    x, y = blobs(rng, sizes, dim, spread)
    km = KMeans(k, n_init=n_init, random_state=0, algorithm="lloyd").fit(x.astype(np.float64))
    return {
        "name": name,
        "dim": dim,
        "x": f32(x),
        "truth": ints(y),
        "k": k,
        "n_init": n_init,
        "sklearn_inertia": float(km.inertia_),
        "sklearn_ari": float(skm.adjusted_rand_score(y, km.labels_)),
    }


def first_appearance(labels):
    seen = {}
    return [seen.setdefault(int(v), len(seen)) for v in labels]


def ward_case(rng, name, sizes, dim, spread, ks):
    x, y = blobs(rng, sizes, dim, spread)
    x64 = x.astype(np.float64)
    z = linkage(x64, method="ward")
    heights = z[:, 2]
    # Distinct merge heights: the tree is unique (no tie to break differently).
    assert np.all(np.diff(np.sort(heights)) > 1e-9 * heights.max()), name
    cuts = {}
    for k in ks:
        ac = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(x64)
        cuts[str(k)] = first_appearance(ac.labels_)
    return {
        "name": name,
        "dim": dim,
        "x": f32(x),
        "merges": [[int(a), int(b)] for a, b in z[:, :2]],
        "heights": [float(h) for h in heights],
        "sizes": ints(z[:, 3]),
        "cuts": cuts,
    }


def dbscan_case(rng, name, x, eps, min_samples, metric):
    x64 = x.astype(np.float32).astype(np.float64)
    if metric == "cosine":
        xn = normalise(x64)
        d = np.clip(1 - xn @ xn.T, 0, 2)
    else:
        d = np.sqrt(((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
    # No distance near eps: the neighbourhoods do not depend on rounding.
    assert np.min(np.abs(d - eps)) > 1e-6, name
    db = DBSCAN(eps=eps, min_samples=min_samples, metric=metric, algorithm="brute").fit(x64)
    labels = [None if v < 0 else int(v) for v in db.labels_]
    core = np.zeros(len(x), dtype=bool)
    core[db.core_sample_indices_] = True
    return {
        "name": name,
        "dim": int(x.shape[1]),
        "x": f32(x),
        "eps": eps,
        "min_samples": min_samples,
        "metric": metric,
        "labels": labels,
        "core": [bool(v) for v in core],
        "n_clusters": int(max([v for v in labels if v is not None], default=-1) + 1),
    }


def dbscan_draw(rng, name, sizes, dim, spread, scale, n_noise, quantile, min_samples, metric,
                need_contested=False):
    """Blobs plus uniform noise, with eps at a quantile of the pairwise distances (nudged off
    every actual distance)."""
    while True:
        x, _ = blobs(rng, sizes, dim, spread, scale=scale)
        if n_noise:
            noise = rng.uniform(-2 * scale, 2 * scale, size=(n_noise, dim)).astype(np.float32)
            x = np.concatenate([x, noise])
        x64 = x.astype(np.float64)
        if metric == "cosine":
            xn = normalise(x64)
            d = np.clip(1 - xn @ xn.T, 0, 2)
        else:
            d = np.sqrt(((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
        eps = float(np.round(np.quantile(d[np.triu_indices(len(x), 1)], quantile), 3) + 0.0005)
        try:
            case = dbscan_case(rng, name, x, eps, min_samples, metric)
        except AssertionError:
            continue
        # Border samples within eps of core samples of two different clusters: their label
        # depends on the discovery order.
        labels, core = case["labels"], np.array(case["core"])
        contested = 0
        for i in np.flatnonzero(~core):
            near = {labels[j] for j in np.flatnonzero((d[i] <= eps) & core)}
            contested += len(near) > 1
        case["contested_border_samples"] = int(contested)
        if need_contested and (contested == 0 or case["n_clusters"] < 3):
            continue
        return case


def gen_clustering():
    rng = np.random.default_rng(505)
    kmeans_init = [
        kmeans_from_init_case(rng, "separated_16d", [40, 50, 30, 60], 16, 1.0, 4),
        kmeans_from_init_case(rng, "overlapping_32d", [50, 40, 60, 30, 45], 32, 5.0, 5),
        kmeans_from_init_case(rng, "more_centres_than_blobs_24d", [60, 60, 60], 24, 2.0, 6),
    ]
    kmeans_pp = [
        kmeans_pp_case(rng, "blobs_32d", [50, 40, 60, 30, 45], 32, 1.0, 5),
        kmeans_pp_case(rng, "blobs_64d_imbalanced", [200, 15, 40, 8], 64, 1.5, 4),
    ]
    ward = [
        ward_case(rng, "ward_blobs_16d", [30, 25, 35], 16, 2.0, [1, 2, 3, 4, 7]),
        ward_case(rng, "ward_blobs_48d", [20, 50, 10, 30, 15], 48, 3.0, [2, 5, 6]),
        ward_case(rng, "ward_single_point_cluster_24d", [30, 30, 1], 24, 1.0, [2, 3]),
    ]
    db = [
        # Tight blobs and scattered noise.
        dbscan_draw(rng, "euclidean_blobs_noise", [30, 25, 20], 16, 0.5, 4.0, 10, 0.15, 5, "euclidean"),
        # Directions: cosine distance.
        dbscan_draw(rng, "cosine_blobs_noise", [40, 30], 32, 0.3, 1.0, 8, 0.3, 4, "cosine"),
        # Overlapping blobs with a small eps: many small clusters meeting through border
        # samples, which go to the cluster discovered first.
        dbscan_draw(
            rng, "euclidean_touching", [15, 15, 15, 15], 16, 0.9, 1.5, 0, 0.05, 5, "euclidean",
            need_contested=True,
        ),
    ]
    write("clustering.json", {"kmeans_from_init": kmeans_init, "kmeans_pp": kmeans_pp, "ward": ward, "dbscan": db})


# ---------------------------------------------------------------------------------------------
# Probes


def knn_reference(train, ytr, test, k):
    s = test.astype(np.float64) @ train.astype(np.float64).T
    preds = []
    for row in s:
        order = np.argsort(-row, kind="stable")[:k]
        votes = np.bincount(ytr[order])
        preds.append(int(np.argmax(votes)))  # smallest label among the most voted
    return np.array(preds), s


def knn_margin_ok(s, k, margin=1e-5):
    for row in s:
        srt = np.sort(row)[::-1]
        if k < len(srt) and srt[k - 1] - srt[k] <= margin:
            return False
    return True


def gen_probe():
    rng = np.random.default_rng(606)
    cases = []
    for name, sizes, dim, spread, c_param in [
        ("blobs_32d_six_classes", [60, 50, 40, 30, 20, 10], 32, 2.2, 1.0),
        ("blobs_64d_imbalanced", [150, 40, 10, 25], 64, 3.0, 10.0),
        ("blobs_16d_overlapping", [50, 50, 50], 16, 4.0, 0.5),
    ]:
        ks = [1, 5, 10]
        while True:
            x, y = blobs(rng, sizes, dim, spread, scale=2.0)
            x = normalise(x).astype(np.float32)
            test = np.sort(np.concatenate([
                rng.choice(np.flatnonzero(y == c), size=max(1, round(0.3 * np.sum(y == c))), replace=False)
                for c in range(len(sizes))
            ]))
            train = np.setdiff1d(np.arange(len(y)), test)
            s = x[test].astype(np.float64) @ x[train].astype(np.float64).T
            if all(knn_margin_ok(s, k) for k in ks):
                break
        knn = {}
        for k in ks:
            ref, _ = knn_reference(x[train], y[train], x[test], k)
            clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
            sk = clf.fit(x[train].astype(np.float64), y[train]).predict(x[test].astype(np.float64))
            assert np.array_equal(ref, sk), (name, k)
            knn[str(k)] = {"predictions": ints(sk), "correct": int(np.sum(sk == y[test]))}
        lr = LogisticRegression(C=c_param, max_iter=10000, tol=1e-10)
        lr.fit(x[train].astype(np.float64), y[train])
        acc = float(lr.score(x[test].astype(np.float64), y[test]))
        n_train = len(train)
        l2 = 1.0 / (c_param * n_train)
        z = x[train].astype(np.float64) @ lr.coef_.T + lr.intercept_
        zmax = z.max(axis=1, keepdims=True)
        lse = (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))).ravel()
        ce = np.mean(lse - z[np.arange(n_train), y[train]])
        objective = float(ce + 0.5 * l2 * np.sum(lr.coef_ ** 2))
        cases.append({
            "name": name,
            "dim": dim,
            "x": f32(x),
            "labels": ints(y),
            "train": ints(train),
            "test": ints(test),
            "knn": knn,
            "l2": l2,
            "sklearn_C": c_param,
            "logistic_accuracy": acc,
            "logistic_objective": objective,
        })
    write("probe.json", {"cases": cases})


def main():
    # balanced_accuracy_score warns about predicted classes absent from the truth: expected.
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
    os.makedirs(OUT, exist_ok=True)
    gen_metrics()
    gen_silhouette()
    gen_retrieval()
    gen_zero_shot()
    gen_clustering()
    gen_probe()


if __name__ == "__main__":
    sys.exit(main())
