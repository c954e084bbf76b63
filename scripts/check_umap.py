#!/usr/bin/env python3
"""Speed and quality of clipflow's UMAP beside umap-learn 0.5.12 on CLIP-like data.

Makes `--rows` unit vectors in `--dim` dimensions along the segments between 20 random
directions (a connected manifold, like the neighbourhood structure of CLIP embeddings), runs
clipflow's UMAP through the ignored timing test of tests/umap_golden.rs (release build,
cosine, umap-learn's defaults otherwise), runs umap.UMAP(metric="cosine", random_state=0) on
the same data, and prints wall times and the trustworthiness (scikit-learn, k=10) of both
layouts on a seeded sub-sample of `--trust-rows` points (the exact measure needs an n x n
rank matrix).

umap-learn with a random_state runs its SGD single-threaded, as clipflow does; above 4096
rows it finds neighbours with NN-descent (approximate), clipflow exactly. umap-learn's time
includes numba compilation on the first call, so it is run twice and the second is reported.

Usage: .venv/bin/python scripts/check_umap.py [--rows 10000] [--dim 512]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.manifold import trustworthiness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clip_like(rows, dim, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    a = np.arange(rows) % 20
    t = rng.uniform(size=(rows, 1))
    x = (1 - t) * centres[a] + t * centres[(a + 1) % 20] + 0.3 * rng.normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--trust-rows", type=int, default=2000)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    x = clip_like(args.rows, args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "x.f32"), os.path.join(tmp, "emb.f32")
        x.astype("<f4").tofile(src)
        env = dict(os.environ, UMAP_BENCH_IN=src, UMAP_BENCH_DIM=str(args.dim), UMAP_BENCH_OUT=dst)
        cmd = ["cargo", "test", "--release", "--test", "umap_golden", "time_10k_by_512", "--", "--ignored", "--nocapture"]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        line = next(l for l in out.stdout.splitlines() if "umap total" in l)
        ours = np.fromfile(dst, dtype="<f4").reshape(args.rows, 2)
    total = float(re.search(r"umap total ([0-9.]+) s", line).group(1))

    import umap

    umap.UMAP(metric="cosine", random_state=0, n_epochs=2).fit_transform(x[:500])  # compile
    t0 = time.perf_counter()
    theirs = umap.UMAP(metric="cosine", random_state=0).fit_transform(x)
    t_theirs = time.perf_counter() - t0

    idx = np.sort(np.random.default_rng(1).choice(args.rows, size=min(args.trust_rows, args.rows), replace=False))
    t_ours = trustworthiness(x[idx], ours[idx], n_neighbors=10)
    t_ref = trustworthiness(x[idx], theirs[idx], n_neighbors=10)
    print(f"data: {args.rows} x {args.dim} CLIP-like unit vectors, cosine, n_neighbors 15, 500/200 epochs")
    print(f"clipflow   : {total:7.2f} s   trustworthiness@10 {t_ours:.4f}   ({line.strip()})")
    print(f"umap-learn : {t_theirs:7.2f} s   trustworthiness@10 {t_ref:.4f}   (umap-learn {umap.__version__}, after numba compilation)")


if __name__ == "__main__":
    main()
