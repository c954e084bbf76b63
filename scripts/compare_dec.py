#!/usr/bin/env python3
"""A reference DEC in numpy beside clipflow's, on the same embeddings (issue 16).

  compare_dec.py synthetic OUT [N D C]     writes OUT/x.npy (N × D float32, L2-normalised,
                                           CLIP-like: C classes around a common direction, plus
                                           shared nuisance directions; default 10,000 × 512, 20)
                                           and OUT/labels.npy (int64).
  compare_dec.py from-store STORE OUT [--model M] [--variant V]
                                           the labelled image embeddings of a clipflow store
                                           (runs/<study>/embeddings) as OUT/x.npy, labels.npy.
  compare_dec.py compare OUT [KEY=VALUE ...]
                                           runs the numpy reference below on OUT/x.npy, reads
                                           clipflow's run (OUT/clipflow.json, written by
                                           `examples/bench_dec OUT` with the same KEY=VALUE
                                           options) and prints AMI, ARI, FMI and NMI of
                                           k-means, autoencoder + k-means and DEC for both,
                                           with wall times.

The reference is this script's own implementation of Xie, Girshick & Farhadi (ICML 2016), written
from the paper and its reference code's settings, not from clipflow's source: the data scaled
so that mean ||x||^2 / d = 1; a d-500-500-2000-10 MLP (ReLU except the code layer and the
reconstruction) with N(0, 0.01^2) weights; greedy layer-wise denoising pretraining (20% dropout
on the input of every layer but the first and on every hidden layer but the code), then
end-to-end fine-tuning, both by SGD (batch 256, learning rate 1.0 with biases at twice it,
momentum 0.9, divided by 10 every 40% of a pretraining stage and every 20% of fine-tuning) on
1/2 ||x_hat - x||^2 averaged over every element of the batch; k-means (scikit-learn, 20
restarts) on the codes; then DEC: Student's t soft assignment q (alpha = 1), target
p = q^2 / f renormalised, recomputed from all samples after every pass, KL(P || Q) (mean over
the batch) minimised over encoder and centroids by SGD (learning rate 0.01, momentum 0.9),
stopping when fewer than tol = 0.1% of the samples change cluster between target updates. Its
random streams are numpy's, so it runs the same algorithm as clipflow, not the same numbers: the metrics should agree to within seed-to-seed spread.
The metrics are scikit-learn's, for both sides.
"""

import json
import sys
import time

import numpy as np

F = np.float32


def synthetic(out, n, d, c):
    """CLIP-like embeddings: unit vectors around one common direction, C equally likely classes,
    and 8 shared "style" directions (colour, background, ...). At the default size k-means on
    the raw vectors recovers the classes exactly (AMI 1.000, clipflow and scikit-learn alike):
    this set measures speed, and how much class structure the 10-d codes keep, not whether the
    deep methods beat k-means (the `from-store` mode measures that on real embeddings)."""
    rng = np.random.default_rng(0)
    common = rng.standard_normal(d)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((c, d)) / np.sqrt(d)
    style = np.linalg.qr(rng.standard_normal((d, 8)))[0].T
    labels = rng.integers(0, c, n)
    x = (
        common
        + 0.9 * centres[labels]
        + 0.4 * rng.standard_normal((n, 8)) @ style
        + rng.standard_normal((n, d)) / np.sqrt(d)
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(f"{out}/x.npy", x.astype(F))
    np.save(f"{out}/labels.npy", labels.astype(np.int64))


def from_store(store, out, model=None, variant="clean"):
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    t = ds.dataset(store, format="parquet", partitioning=None).to_table(
        columns=["model", "modality", "variant", "label", "embedding"]
    )
    t = t.filter(pc.and_(pc.equal(t["modality"], "image"), pc.equal(t["variant"], variant)))
    models = sorted(set(t["model"].to_pylist()))
    model = model or models[0]
    t = t.filter(pc.equal(t["model"], model))
    labels = t["label"].to_pylist()
    assert all(v is not None for v in labels), "every image needs a label"
    names = sorted(set(labels))
    x = np.asarray(t["embedding"].to_pylist(), dtype=F)
    y = np.asarray([names.index(v) for v in labels], dtype=np.int64)
    np.save(f"{out}/x.npy", x)
    np.save(f"{out}/labels.npy", y)
    print(f"{model} {variant}: {x.shape[0]} x {x.shape[1]}, {len(names)} classes (from {models})")


# ---------------------------------------------------------------- the reference implementation


class Dense:
    def __init__(self, rng, n_in, n_out, relu, std):
        self.w = (rng.standard_normal((n_out, n_in)) * std).astype(F)
        self.b = np.zeros(n_out, F)
        self.relu = relu


def forward(layers, x, masks=None):
    """Returns the inputs (after masks) and outputs of every layer."""
    ins, outs = [], []
    h = x
    for i, layer in enumerate(layers):
        if masks is not None and masks[i] is not None:
            h = h * masks[i]
        ins.append(h)
        z = h @ layer.w.T + layer.b
        h = np.maximum(z, 0) if layer.relu else z
        outs.append(h)
    return ins, outs


def backward(layers, ins, outs, masks, dy):
    """Gradients (dW, db) of every layer given dL/d(output); dy is consumed."""
    grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if layer.relu:
            dy = dy * (outs[i] > 0)
        grads[i] = (dy.T @ ins[i], dy.sum(0))
        if i > 0:
            dy = dy @ layer.w
            if masks is not None and masks[i] is not None:
                dy = dy * masks[i]
    return grads


class Optimizer:
    """SGD with momentum in Caffe's form (v = m v + lr g; w -= v), the momentum ramped up from 0
    over the first `burnin` steps and biases at twice the learning rate (the reference code's
    solver and nets), or Adam (beta1 0.9, beta2 0.999, eps 1e-8, bias corrections folded into the
    step size). `params` alternate weights and biases when `biases` is true."""

    def __init__(self, params, kind, lr, momentum=0.0, burnin=0, biases=True):
        self.params, self.kind, self.lr, self.momentum = params, kind, lr, momentum
        self.burnin = burnin
        self.bias_lr = [2.0 if (biases and kind == "sgd" and i % 2 == 1) else 1.0
                        for i in range(len(params))]
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads, factor=1.0):
        it = self.t  # Caffe's iteration counter, from 0
        self.t += 1
        for p, g, m, v, mult in zip(self.params, grads, self.m, self.v, self.bias_lr):
            lr = self.lr * factor * mult
            if self.kind == "sgd":
                mom = self.momentum * (it / self.burnin if it < self.burnin else 1.0)
                m *= mom
                m += lr * g
                p -= m
            else:
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                a = lr * np.sqrt(1 - 0.999**self.t) / (1 - 0.9**self.t)
                p -= a * m / (np.sqrt(v) + 1e-8)


def apply(layers, x, block=4096):
    return np.concatenate([forward(layers, x[s : s + block])[1][-1] for s in range(0, len(x), block)])


def train_reconstruction(layers, data, epochs, step, rates, o, rng):
    params = [p for layer in layers for p in (layer.w, layer.b)]
    opt = Optimizer(params, o["optimizer"], o["learning_rate"], o["momentum"], o["burnin"])
    n = len(data)
    losses = []
    for epoch in range(epochs):
        factor = 0.1 ** (epoch // step) if o["step_decay"] else 1.0
        perm = rng.permutation(n)
        total = 0.0
        for s in range(0, n, o["batch_size"]):
            xb = data[perm[s : s + o["batch_size"]]]
            b = len(xb)
            masks = []
            for layer, rate in zip(layers, rates):
                if rate > 0:
                    m = (rng.random((b, layer.w.shape[1])) >= rate).astype(F) / F(1 - rate)
                    masks.append(m)
                else:
                    masks.append(None)
            ins, outs = forward(layers, xb, masks)
            diff = outs[-1] - xb
            # Mean over every element (the reference code's Euclidean loss layer).
            total += 0.5 * float(np.sum(diff.astype(np.float64) ** 2)) / diff.shape[1]
            grads = backward(layers, ins, outs, masks, diff / F(diff.size))
            opt.step([g for pair in grads for g in pair], factor)
        losses.append(total / n)
    return losses


def reference_autoencoder(x, k, o, rng):
    from sklearn.cluster import KMeans

    scale = 1.0 / np.sqrt(np.mean(x.astype(np.float64) ** 2))
    xs = (x * scale).astype(F)
    widths = [x.shape[1]] + o["layers"]
    depth = len(o["layers"])
    enc = [Dense(rng, widths[i], widths[i + 1], i + 1 < depth, o["init_std"]) for i in range(depth)]
    dec = [Dense(rng, widths[i + 1], widths[i], i > 0, o["init_std"]) for i in range(depth)]
    h = xs
    for i in range(depth):
        if i > 0:
            h = apply([enc[i - 1]], h)
        rates = [o["dropout"] if i > 0 else 0.0, o["dropout"] if i + 1 < depth else 0.0]
        step = max(1, int(np.ceil(0.4 * o["pretrain_epochs"])))
        train_reconstruction([enc[i], dec[i]], h, o["pretrain_epochs"], step, rates, o, rng)
    deep = enc + dec[::-1]
    step = max(1, int(np.ceil(0.2 * o["finetune_epochs"])))
    ft = train_reconstruction(deep, xs, o["finetune_epochs"], step, [0.0] * len(deep), o, rng)
    codes = apply(enc, xs)
    rec = apply(dec[::-1], codes)
    err = float(np.sum((rec - xs).astype(np.float64) ** 2) / np.sum(xs.astype(np.float64) ** 2))
    km = KMeans(k, n_init=o["kmeans_restarts"], random_state=int(rng.integers(1 << 31))).fit(codes)
    return xs, enc, km.labels_, km.cluster_centers_.astype(F), ft, err


def soft_assign(z, mu, alpha):
    d2 = ((z[:, None, :].astype(np.float64) - mu[None, :, :]) ** 2).sum(-1)
    w = 1.0 / (1.0 + d2 / alpha)
    q = w ** ((alpha + 1) / 2)
    return q / q.sum(1, keepdims=True), w


def target(q):
    p = q**2 / q.sum(0)
    return p / p.sum(1, keepdims=True)


def dec_gradients(enc, mu, xb, pb, alpha):
    """The minibatch loss mean_i KL(p_i || q_i) and its gradients (the paper's eq. 4-5,
    backpropagated through the encoder): (loss, [dW0, db0, dW1, ...], d mu)."""
    ins, outs = forward(enc, xb)
    z = outs[-1]
    qb, w = soft_assign(z, mu, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(pb > 0, pb * np.log(pb / qb), 0.0).sum() / len(xb)
    g = (alpha + 1) / alpha * w * (pb - qb) / len(xb)  # b × k
    diff = z[:, None, :].astype(np.float64) - mu[None, :, :]  # b × k × c
    dz = (g[:, :, None] * diff).sum(1).astype(z.dtype)
    dmu = -(g[:, :, None] * diff).sum(0).astype(mu.dtype)
    grads = backward(enc, ins, outs, None, dz)
    return kl, [t for pair in grads for t in pair], dmu


def reference_dec(xs, enc, mu, labels0, o, rng):
    alpha, n = 1.0, len(xs)
    params = [p for layer in enc for p in (layer.w, layer.b)]
    mu = mu.copy()
    opt = Optimizer(params + [mu], "sgd", o["dec_learning_rate"], o["dec_momentum"])
    opt.bias_lr[-1] = 1.0  # the centroids are not a bias
    bs = min(o["batch_size"], n)
    per_epoch = -(-n // bs)
    interval = o.get("update_interval") or per_epoch
    max_iter = o["max_epochs"] * per_epoch
    last = labels0
    it, converged, changed_hist = 0, False, []
    while True:
        if it % interval == 0 or it == max_iter:
            q, _ = soft_assign(apply(enc, xs), mu, alpha)
            lab = q.argmax(1)
            changed = int((lab != last).sum())
            changed_hist.append(changed / n)
            last = lab
            p = target(q)
            if it > 0 and changed < o["tol"] * n:
                converged = True
                break
            if it == max_iter:
                break
        if it % per_epoch == 0:
            perm = rng.permutation(n)
        idx = perm[(it % per_epoch) * bs : (it % per_epoch + 1) * bs]
        _, grads, dmu = dec_gradients(enc, mu, xs[idx], p[idx], alpha)
        opt.step(grads + [dmu])
        it += 1
    return last, it, converged, changed_hist


def options(argv):
    """The defaults of clipflow's AutoencoderOptions and DecOptions, overridden by the KEY=VALUE
    arguments examples/bench_dec takes."""
    o = {
        "layers": [500, 500, 2000, 10],
        "pretrain_epochs": 20,
        "finetune_epochs": 40,
        "batch_size": 256,
        "optimizer": "sgd",
        "learning_rate": 1.0,
        "momentum": 0.9,
        "burnin": 0,
        "step_decay": True,
        "dropout": 0.2,
        "init_std": 0.01,
        "kmeans_restarts": 20,
        "dec_learning_rate": 0.01,
        "dec_momentum": 0.9,
        "tol": 0.001,
        "max_epochs": 200,
        "update_interval": None,
        "limit": None,
        "seed": 0,
    }
    for kv in argv:
        key, value = kv.split("=", 1)
        if key == "layers":
            o[key] = [int(v) for v in value.split(",")]
        elif key == "sgd":
            v = [float(t) for t in value.split(",")]
            o.update(optimizer="sgd", learning_rate=v[0], momentum=v[1],
                     burnin=int(v[2]) if len(v) > 2 else 0)
        elif key == "adam":
            o.update(optimizer="adam", learning_rate=float(value), momentum=0.0)
        elif key == "dec_sgd":
            lr, m = value.split(",")
            o.update(dec_learning_rate=float(lr), dec_momentum=float(m))
        elif key == "step_decay":
            o[key] = value not in ("0", "false")
        elif key in ("tol", "dropout", "init_std"):
            o[key] = float(value)
        elif key in o:
            o[key] = int(value)
        else:
            sys.exit(f"unknown option {key}")
    return o


def scores(y, labels):
    from sklearn import metrics

    return {
        "ami": metrics.adjusted_mutual_info_score(y, labels),
        "ari": metrics.adjusted_rand_score(y, labels),
        "fmi": metrics.fowlkes_mallows_score(y, labels),
        "nmi": metrics.normalized_mutual_info_score(y, labels),
    }


def compare(out, argv):
    from sklearn.cluster import KMeans

    o = options(argv)
    x = np.load(f"{out}/x.npy").astype(F)[: o["limit"]]
    y = np.load(f"{out}/labels.npy")[: o["limit"]]
    k = len(np.unique(y))
    rng = np.random.default_rng(o["seed"])
    rows = {}
    t = time.perf_counter()
    km = KMeans(k, n_init=10, random_state=o["seed"]).fit(x)
    rows["k-means"] = (km.labels_, time.perf_counter() - t)
    t = time.perf_counter()
    xs, enc, ae_labels, mu, ft, err = reference_autoencoder(x, k, o, rng)
    rows["autoencoder"] = (ae_labels, time.perf_counter() - t)
    t = time.perf_counter()
    dec_labels, iters, converged, changed = reference_dec(xs, enc, mu, ae_labels, o, rng)
    rows["DEC"] = (dec_labels, time.perf_counter() - t)
    ref = {name: (scores(y, lab), secs) for name, (lab, secs) in rows.items()}
    print(
        f"numpy reference: fine-tuning loss {ft[0]:.4f} -> {ft[-1]:.4f}, reconstruction error "
        f"{err:.4f}; DEC {iters} iterations, converged {converged}, changed "
        f"{[round(c, 4) for c in changed]}"
    )

    mine = {}
    try:
        with open(f"{out}/clipflow.json") as f:
            c = json.load(f)
        for name, key in [("k-means", "kmeans"), ("autoencoder", "autoencoder"), ("DEC", "dec")]:
            mine[name] = (scores(y, c[key]["labels"]), c[key]["seconds"])
    except FileNotFoundError:
        print(f"(no {out}/clipflow.json: run examples/bench_dec {out} first)")

    print(f"\n{x.shape[0]} x {x.shape[1]}, k = {k}")
    print("| method | implementation | AMI | ARI | FMI | NMI | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in ["k-means", "autoencoder", "DEC"]:
        for impl, table in [("clipflow", mine), ("numpy reference", ref)]:
            if name in table:
                s, secs = table[name]
                print(
                    f"| {name} | {impl} | {s['ami']:.3f} | {s['ari']:.3f} | {s['fmi']:.3f} "
                    f"| {s['nmi']:.3f} | {secs:.1f} |"
                )


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "synthetic":
        n, d, c = (int(v) for v in (sys.argv[3:6] + ["10000", "512", "20"][len(sys.argv[3:6]) :]))
        synthetic(sys.argv[2], n, d, c)
    elif len(sys.argv) >= 4 and sys.argv[1] == "from-store":
        args = sys.argv[4:]
        kw = {}
        while args:
            flag, value, args = args[0], args[1], args[2:]
            kw[flag.lstrip("-")] = value
        from_store(sys.argv[2], sys.argv[3], **kw)
    elif len(sys.argv) >= 3 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
