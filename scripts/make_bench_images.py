"""Writes N photo-sized JPEGs (640x480 and 480x640 unless --size says otherwise, half of them
turned; smooth colour fields with edges and noise; quality 90 unless --quality says otherwise)
for scripts/bench_encode and scripts/bench_preprocess. Deterministic for a seed.

    .venv/bin/python scripts/make_bench_images.py --out target/bench/images-1k --count 1000
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--size", default="640x480", help="WxH of the landscape images")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    cls = a.out / "photos"
    cls.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in a.size.split("x"))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(a.count):
        path = cls / f"{i:06d}.jpg"
        if path.exists():
            continue
        c = rng.uniform(0, 255, size=(4, 3))
        fx, fy = rng.uniform(0.002, 0.03, size=2)
        base = (np.sin(xx * fx)[..., None] * c[0] + np.cos(yy * fy)[..., None] * c[1]) / 2 + 64
        base += ((xx + yy * rng.uniform(-1, 1)) > rng.uniform(0, 900))[..., None] * (c[2] - 128) * 0.5
        base += rng.normal(0, 12, size=base.shape)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        if i % 2:
            img = img.transpose(Image.Transpose.ROTATE_90)
        img.save(path, quality=a.quality)


if __name__ == "__main__":
    main()
