#!/usr/bin/env python3
"""Golden values for multi-caption retrieval end to end (tests/multicaption.rs).

Writes tests/fixtures/golden/multicaption/store.json: a small image-text embedding set where
images have one to five captions (COCO/Flickr style; some images have none), and the recall@K
of CLIP_benchmark's `zeroshot_retrieval.evaluate` on it, both directions:

- scores = texts @ images.T over L2-normalised vectors;
- positive_pairs[t, i] = caption t describes image i;
- recall_at_k per query = (#positives in its top K) / (#positives), and CLIP_benchmark's
  recall@K is the mean over queries of (that > 0): a text is a hit when its image is in its top
  K; an image is a hit when ANY of its captions is in its top K.

The computation is a numpy transcription of that definition (torch.topk replaced by a descending
argsort; the data are drawn so no score ties, where topk's order is unspecified). Images without
a caption are queries without positive in image->text: CLIP_benchmark counts them as misses
(0/0 is NaN, NaN > 0 is False); clipflow leaves them out and counts them, so the golden file
gives both the CLIP_benchmark value over all images and over the images that have a caption.

Usage: python3 scripts/gen_multicaption_golden.py  (numpy only). Deterministic.
"""
import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/golden/multicaption/store.json"
KS = [1, 5, 10]


def normalise(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clip_benchmark_recall(scores, positive_pairs, k):
    """Per-query recall_at_k as CLIP_benchmark computes it, then (>0).mean()."""
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    nb_positive = positive_pairs.sum(axis=1)
    hits = np.take_along_axis(positive_pairs, topk, axis=1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / nb_positive
    return recall > 0, nb_positive > 0


def main():
    rng = np.random.default_rng(20261201)
    n_images, dim = 40, 12
    while True:
        centres = rng.normal(size=(n_images, dim))
        images = normalise(centres + 0.9 * rng.normal(size=(n_images, dim)))
        counts = rng.integers(0, 6, size=n_images)
        counts[:3] = [5, 1, 0]
        text_item = np.repeat(np.arange(n_images), counts)
        texts = normalise(centres[text_item] + 0.9 * rng.normal(size=(len(text_item), dim)))
        scores = texts.astype(np.float64) @ images.astype(np.float64).T
        s32 = texts @ images.T
        # No two scores of a row within float32 rounding of each other: orders are exact.
        gaps_t = np.diff(np.sort(s32, axis=1), axis=1).min()
        gaps_i = np.diff(np.sort(s32.T, axis=1), axis=1).min()
        if min(gaps_t, gaps_i) > 1e-5:
            break
    positive = np.zeros((len(text_item), n_images), dtype=bool)
    positive[np.arange(len(text_item)), text_item] = True
    out = {
        "dim": dim,
        "images": [[float(v) for v in row] for row in images],
        "texts": [[float(v) for v in row] for row in texts],
        "text_item": [int(i) for i in text_item],
        "ks": KS,
        "text_to_image": {},
        "image_to_text_all_images": {},
        "image_to_text_with_captions": {},
    }
    for k in KS:
        hit, _ = clip_benchmark_recall(s32, positive, k)
        out["text_to_image"][str(k)] = float(hit.mean())
        hit, has = clip_benchmark_recall(s32.T, positive.T, k)
        out["image_to_text_all_images"][str(k)] = float(hit.mean())
        out["image_to_text_with_captions"][str(k)] = float(hit[has].mean())
    out["images_without_caption"] = int((counts == 0).sum())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}: {len(text_item)} captions for {n_images} images")


if __name__ == "__main__":
    main()
