#!/usr/bin/env python3
"""Golden values for the ImageNet-C corruptions (src/augment/corruptions/), checked by
tests/corruption_golden.rs, from the reference package `imagecorruptions` (bethgelab, the
generalisation of Hendrycks & Dietterich's ImageNet-C code to any image size).

Writes tests/fixtures/golden/corruptions/:

  input.png                 a 224x224 RGB test image (generated here, seeded): smooth colour
                            fields, saturated and grey shapes, a fine texture, black and white
                            patches, so blurs, HSV edits, JPEG and pixelation all have work.
  <name>-<severity>.png     corrupt(input, severity, name) for the 8 deterministic corruptions
                            (defocus, zoom and gaussian blur; brightness, contrast, saturate;
                            pixelate; jpeg_compression) at severities 1-5: the package's uint8
                            output, which clipflow must match within one level.
  corruptions.json          for the 11 random corruptions (frost included: the package ships
                            its photographs) at severities 1-5: the mean absolute change
                            |corrupt(input) - input| in 8-bit levels, averaged over pixels and
                            over enough seeds of numpy's global generator (which the package
                            draws from) for a 1 % standard error, with the per-seed standard
                            deviation and the number of seeds the Rust side needs for 2 %; and the
                            deterministic core of motion blur (`_motion_blur` at fixed angles)
                            on a 48x40 crop of the input, for exact comparison.

The package needs two compatibility shims on the pinned scientific stack, both pure renames:
scikit-image 0.26 spells `gaussian(..., multichannel=True)` as `channel_axis=-1`, and NumPy 2
calls `np.float_` `np.float64`. Nothing else of the package is changed.

Usage: python scripts/gen_corruption_golden.py  (imagecorruptions, scikit-image and
opencv-python from scripts/requirements-dev.txt). Deterministic: rerunning rewrites
identical files. Takes a few minutes (glass blur is a Python loop over every pixel).
"""

import json
import math
import os

import numpy as np
import skimage.filters
from PIL import Image

# --- shims (see the docstring) -------------------------------------------------------------
if not hasattr(np, "float_"):
    np.float_ = np.float64
_skimage_gaussian = skimage.filters.gaussian


def _gaussian(image, *args, multichannel=None, **kwargs):
    if multichannel:
        kwargs["channel_axis"] = -1
    return _skimage_gaussian(image, *args, **kwargs)


import imagecorruptions  # noqa: E402
import imagecorruptions.corruptions as ic  # noqa: E402

ic.gaussian = _gaussian
# ---------------------------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "golden", "corruptions")
SIZE = 224
# Seeds: a pilot of PILOT seeds measures how much the change varies from seed to seed; the
# reference then runs enough seeds for a 1 % standard error of its mean (at most MAX_REF), and
# the golden tells the Rust test how many it needs for 2 % (at most MAX_OURS), so that the
# 10 % tolerance is over four standard errors of the difference (three for spatter at
# severity 1, whose change is a fraction of a level and varies by 35 % from seed to seed).
PILOT = 24
MAX_REF = 1000
MAX_OURS = 200

DETERMINISTIC = [
    "defocus_blur",
    "zoom_blur",
    "gaussian_blur",
    "brightness",
    "contrast",
    "saturate",
    "pixelate",
    "jpeg_compression",
]
RANDOM = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "spatter",
    "elastic_transform",
]
# (radius, sigma, angle) on a 48x40 crop of the input; the last reaches past the crop's
# height, where the reference stops adding taps.
MOTION_CORE = [(10, 3.0, 30.0), (15, 8.0, -45.0), (20, 15.0, -80.0)]
CROP = (slice(90, 130), slice(40, 88))


def test_image():
    rng = np.random.RandomState(20190415)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / SIZE
    img = np.zeros((SIZE, SIZE, 3))
    # Smooth colour fields: a few random low-frequency waves per channel.
    for c in range(3):
        field = 0.5 + 0.15 * (c - 1) * (x - y)
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 3.0, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            field += 0.12 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        img[..., c] = field
    # Saturated and grey shapes.
    disk = (x - 0.3) ** 2 + (y - 0.35) ** 2 < 0.15**2
    img[disk] = [0.95, 0.1, 0.05]
    square = (np.abs(x - 0.72) < 0.12) & (np.abs(y - 0.3) < 0.1)
    img[square] = [0.1, 0.2, 0.85]
    grey = (np.abs(x - 0.7) < 0.15) & (np.abs(y - 0.72) < 0.06)
    img[grey] = [0.5, 0.5, 0.5]
    # A fine texture (stripes plus noise) and black / white patches.
    texture = (np.abs(x - 0.25) < 0.12) & (np.abs(y - 0.78) < 0.12)
    stripes = 0.5 + 0.4 * np.sign(np.sin(2 * np.pi * 40 * (x + 0.5 * y)))
    img[texture] = (stripes[texture, None] * [0.9, 0.8, 0.3]) + rng.normal(0, 0.05, (texture.sum(), 3))
    img[(x > 0.9) & (y < 0.1)] = 0.0
    img[(x > 0.9) & (y > 0.9)] = 1.0
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    img = test_image()
    Image.fromarray(img).save(os.path.join(OUT, "input.png"), optimize=True)
    det = []
    for name in DETERMINISTIC:
        for s in range(1, 6):
            np.random.seed(0)  # unused by these, set anyway
            out = imagecorruptions.corrupt(img, severity=s, corruption_name=name)
            file = f"{name}-{s}.png"
            Image.fromarray(out).save(os.path.join(OUT, file), optimize=True)
            det.append({"corruption": name, "severity": s, "file": file})
            print(f"{file}: mean |change| {np.abs(out.astype(float) - img).mean():.3f}")
    rand = []
    clean = img.astype(np.float64)
    for name in RANDOM:
        for s in range(1, 6):
            changes = []

            def run(seed):
                np.random.seed(seed)
                out = imagecorruptions.corrupt(img, severity=s, corruption_name=name)
                changes.append(float(np.abs(out.astype(np.float64) - clean).mean()))

            for seed in range(PILOT):
                run(seed)
            rel_sd = np.std(changes, ddof=1) / np.mean(changes)
            n_ref = int(min(MAX_REF, max(PILOT, np.ceil((rel_sd / 0.01) ** 2))))
            for seed in range(PILOT, n_ref):
                run(seed)
            mean, sd = float(np.mean(changes)), float(np.std(changes, ddof=1))
            n_ours = int(min(MAX_OURS, max(4, math.ceil((sd / mean / 0.02) ** 2))))
            rand.append(
                {
                    "corruption": name,
                    "severity": s,
                    "mean_abs_change": mean,
                    "per_seed_sd": sd,
                    "seeds": n_ref,
                    "seeds_clipflow": n_ours,
                }
            )
            print(f"{name}-{s}: mean |change| {mean:.3f} (sd {sd:.3f}, {n_ref} seeds; clipflow {n_ours})")
    motion = []
    for radius, sigma, angle in MOTION_CORE:
        out = ic._motion_blur(img[CROP], radius=radius, sigma=sigma, angle=angle)
        motion.append(
            {
                "radius": radius,
                "sigma": sigma,
                "angle": angle,
                "crop": [CROP[0].start, CROP[1].start, 48, 40],
                # float64 values in 0..255, row-major (y, x, channel).
                "values": [round(float(v), 9) for v in np.asarray(out, dtype=np.float64).ravel()],
            }
        )
    payload = {
        "generator": "scripts/gen_corruption_golden.py",
        "versions": {
            "imagecorruptions": "1.1.2",
            "numpy": np.__version__,
            "scikit-image": skimage.__version__,
        },
        "size": SIZE,
        "deterministic": det,
        "random": rand,
        "motion_blur_core": motion,
    }
    with open(os.path.join(OUT, "corruptions.json"), "w") as f:
        json.dump(payload, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
