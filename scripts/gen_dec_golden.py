#!/usr/bin/env python3
"""Golden values for clipflow's autoencoder and DEC (src/analysis/cluster/{mlp,autoencoder,dec}.rs),
checked by the unit tests there and by tests/dec_golden.rs.

Writes tests/fixtures/golden/dec/:

  soft_assignment.json  DEC's Student's t soft assignment q, target distribution p and
                        KL(P || Q) (summed), for alpha = 1 and 2.5, by direct numpy from the
                        paper's equations 1-3 (and, for alpha = 1, the reference code's TMM and
                        target expressions as a cross-check).
  steps.json            training steps of the numpy reference in scripts/compare_dec.py, in
                        float64, from given weights on a given minibatch:
                          - dec_sgd: the DEC minibatch loss and two SGD steps (learning rate 0.01,
                            momentum 0.9) of a 6-8-5-3 ReLU encoder and 4 centroids;
                          - ae_adam: the reconstruction loss and three Adam steps (learning rate
                            0.01) of a 6-5-4-2-4-5-6 autoencoder;
                          - ae_sgd: the same with SGD (learning rate 0.05, momentum 0.9 ramped up
                            over 2 steps, biases at twice the rate).

Usage: .venv/bin/python scripts/gen_dec_golden.py (numpy only). Deterministic: rerunning rewrites
identical files.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_dec as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "dec")


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def soft_assignment_cases():
    rng = np.random.default_rng(16)
    cases = []
    for alpha in [1.0, 2.5]:
        z = rng.standard_normal((12, 3)).astype(np.float32)
        mu = (1.5 * rng.standard_normal((4, 3))).astype(np.float32)
        zd, md = z.astype(np.float64), mu.astype(np.float64)
        # Equation 1: q_ij ∝ (1 + |z_i - mu_j|^2 / alpha)^(-(alpha + 1) / 2).
        d2 = ((zd[:, None, :] - md[None, :, :]) ** 2).sum(-1)
        kern = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
        q = kern / kern.sum(1, keepdims=True)
        # Equation 3: p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij.
        f = q.sum(0)
        p = (q**2 / f) / (q**2 / f).sum(1, keepdims=True)
        if alpha == 1.0:
            # The reference code (dec/dec.py): TMM.transform and the train_weight expression.
            r = 1.0 / (1.0 + np.sqrt(d2) ** 2 / alpha) ** ((alpha + 1.0) / 2.0)
            r = (r.T / r.sum(axis=1)).T
            bias = 1.0 / r.sum(axis=0)
            wgt = (r**2) * bias
            wgt = (wgt.T / wgt.sum(axis=1)).T
            assert np.allclose(r, q, atol=1e-15) and np.allclose(wgt, p, atol=1e-15)
        kl = float(np.sum(p * np.log(p / q)))
        cases.append(
            {"alpha": alpha, "c": 3, "z": flat(z), "centroids": flat(mu), "q": flat(q),
             "p": flat(p), "kl": kl}
        )
    return {"cases": cases}


def layer_json(layer):
    return {"inputs": layer.w.shape[1], "outputs": layer.w.shape[0], "weights": flat(layer.w),
            "bias": flat(layer.b), "relu": bool(layer.relu)}


def net(rng, widths, relus):
    layers = []
    for i, relu in enumerate(relus):
        layer = ref.Dense(rng, widths[i], widths[i + 1], relu, 0.6)
        layer.w = layer.w.astype(np.float64)
        layer.b = 0.2 * rng.standard_normal(widths[i + 1])
        layers.append(layer)
    return layers


def dec_sgd():
    rng = np.random.default_rng(17)
    enc = net(rng, [6, 8, 5, 3], [True, True, False])
    mu = 1.5 * rng.standard_normal((4, 3))
    xb = rng.standard_normal((10, 6))
    pb = 0.05 + rng.random((10, 4))
    pb /= pb.sum(1, keepdims=True)
    case = {"alpha": 1.0, "learning_rate": 0.01, "momentum": 0.9,
            "layers": [layer_json(l) for l in enc], "centroids": flat(mu), "x": flat(xb),
            "p": flat(pb)}
    params = [t for l in enc for t in (l.w, l.b)] + [mu]
    opt = ref.Optimizer(params, "sgd", 0.01, 0.9)
    opt.bias_lr[-1] = 1.0  # the centroids are not a bias
    losses = []
    for _ in range(2):
        loss, grads, dmu = ref.dec_gradients(enc, mu, xb, pb, 1.0)
        losses.append(float(loss))
        opt.step(grads + [dmu])
    case["losses"] = losses
    case["after"] = {"layers": [layer_json(l) for l in enc], "centroids": flat(mu)}
    return case


def ae(kind, lr, momentum):
    rng = np.random.default_rng(18)
    relus = [True, True, False, True, True, False]
    deep = net(rng, [6, 5, 4, 2, 4, 5, 6], relus)
    xb = rng.standard_normal((9, 6))
    case = {"optimizer": kind, "learning_rate": lr, "momentum": momentum, "momentum_burnin": 2,
            "layers": [layer_json(l) for l in deep], "x": flat(xb)}
    params = [t for l in deep for t in (l.w, l.b)]
    opt = ref.Optimizer(params, kind, lr, momentum, burnin=2)
    losses = []
    for _ in range(3):
        ins, outs = ref.forward(deep, xb)
        diff = outs[-1] - xb
        losses.append(float(0.5 * np.sum(diff**2) / diff.size))
        grads = ref.backward(deep, ins, outs, None, diff / diff.size)
        opt.step([t for pair in grads for t in pair])
    case["losses"] = losses
    case["after"] = {"layers": [layer_json(l) for l in deep]}
    return case


def main():
    os.makedirs(OUT, exist_ok=True)
    files = {
        "soft_assignment.json": soft_assignment_cases(),
        "steps.json": {"dec_sgd": dec_sgd(), "ae_adam": ae("adam", 0.01, 0.0),
                       "ae_sgd": ae("sgd", 0.05, 0.9)},
    }
    for name, value in files.items():
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(value, f, indent=1)
            f.write("\n")
        print(f"wrote {os.path.join(OUT, name)}")


if __name__ == "__main__":
    main()
