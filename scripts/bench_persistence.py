#!/usr/bin/env python3
"""Reference side of scripts/bench_persistence.

  bench_persistence.py write DIR N        writes DIR/torus.npy and DIR/clip.npy (float32) if missing
  bench_persistence.py compare DIR NAME...  times ripser.ripser(X, maxdim=1) on DIR/NAME.npy (best
                                          of 3), reads clipflow's DIR/NAME.rust.json, prints both
                                          times and the persim bottleneck distance between the
                                          diagrams in each dimension; then times persim's
                                          bottleneck and wasserstein between clipflow's diagrams
                                          of the first two clouds (H0, H1), beside clipflow's
                                          DIR/distances.rust.json.
"""

import json
import os
import sys
import time
import warnings

import numpy as np


def write(out, n):
    rng = np.random.default_rng(0)
    if not os.path.exists(f"{out}/torus.npy"):
        u, v = rng.uniform(0, 2 * np.pi, (2, n))
        x = np.c_[(2 + 0.8 * np.cos(v)) * np.cos(u), (2 + 0.8 * np.cos(v)) * np.sin(u), 0.8 * np.sin(v)]
        x += 0.05 * rng.standard_normal(x.shape)
        np.save(f"{out}/torus.npy", x.astype(np.float32))
    if not os.path.exists(f"{out}/clip.npy"):
        centres = rng.standard_normal((10, 512))
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x = centres[rng.integers(0, 10, n)] + 0.045 * rng.standard_normal((n, 512))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(f"{out}/clip.npy", x.astype(np.float32))


def as_dgm(bars):
    return np.array([[b, np.inf if d is None else d] for b, d in bars], dtype=np.float64).reshape(-1, 2)


def compare(out, names):
    import persim
    import ripser
    from persim._version import __version__ as persim_version

    print(f"ripser {ripser.__version__}, persim {persim_version}, numpy {np.__version__}")
    rows = []
    for name in names:
        x = np.load(f"{out}/{name}.npy")
        # ripser.py computes its distances with scikit-learn from the array it is given; a
        # float64 copy keeps the whole matrix in float64 before ripser rounds it to float32.
        x64 = x.astype(np.float64)
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            dgms = ripser.ripser(x64, maxdim=1)["dgms"]
            best = min(best, time.perf_counter() - t)
        rust = json.load(open(f"{out}/{name}.rust.json"))
        print(f"ripser {name} n={len(x)} D={x.shape[1]}: {best:.3f} s (best of 3); "
              f"{len(dgms[0])} H0 bars, {len(dgms[1])} H1 bars")
        agree = []
        for k in (0, 1):
            mine = as_dgm(rust[f"h{k}"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bn = persim.bottleneck(mine, dgms[k])
            inf_same = int(np.isinf(mine[:, 1]).sum()) == int(np.isinf(dgms[k][:, 1]).sum())
            agree.append(f"H{k}: {len(mine)} vs {len(dgms[k])} bars, bottleneck {bn:.3g}"
                         f"{'' if inf_same else ', INFINITE BARS DIFFER'}")
        rows.append((name, rust["seconds"], best, "; ".join(agree)))
    print()
    print(f"{'':10s}{'clipflow':>10s}{'ripser':>10s}{'speed-up':>10s}   agreement")
    for name, r, p, agree in rows:
        print(f"{name:10s}{r:9.3f}s{p:9.3f}s{p / r:9.2f}x   {agree}")

    if len(names) < 2 or not os.path.exists(f"{out}/distances.rust.json"):
        return
    rust = json.load(open(f"{out}/distances.rust.json"))
    a_all = json.load(open(f"{out}/{names[0]}.rust.json"))
    b_all = json.load(open(f"{out}/{names[1]}.rust.json"))
    print()
    print(f"diagram distances between {names[0]} and {names[1]} (clipflow's diagrams, both sides):")
    print(f"{'':32s}{'clipflow':>10s}{'persim':>10s}{'speed-up':>10s}   |clipflow - persim|")
    for k in (0, 1):
        a, b = as_dgm(a_all[f"h{k}"]), as_dgm(b_all[f"h{k}"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            bn = persim.bottleneck(a, b)
            tb = time.perf_counter() - t
            t = time.perf_counter()
            ws = persim.wasserstein(a, b)
            tw = time.perf_counter() - t
        r = rust[f"h{k}"]
        label = f"H{k} ({len(a)} vs {len(b)})"
        print(f"{label + ' bottleneck':32s}{r['bottleneck_seconds']:9.3f}s{tb:9.3f}s"
              f"{tb / r['bottleneck_seconds']:9.2f}x   {abs(r['bottleneck'] - bn):.3g} (value {bn:.9g})")
        print(f"{label + ' wasserstein':32s}{r['wasserstein_seconds']:9.3f}s{tw:9.3f}s"
              f"{tw / r['wasserstein_seconds']:9.2f}x   {abs(r['wasserstein'] - ws):.3g} (value {ws:.9g})")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]))
    else:
        compare(sys.argv[2], sys.argv[3:])
