"""Shared pieces of scripts/train_texture_clip.py and scripts/eval_texture_clip.py.

- OpenAI CLIP's image preprocessing, re-implemented with PIL + numpy (RGB, bicubic resize of the
  shorter side to `size` with the longer side int(size * long / short), centre crop with
  top = int(round((h - c) / 2)), /255, mean/std), split in two halves so noise can be added in
  [0, 1] pixel units between them: `resize_crop` (-> uint8 HWC) and `normalize` (-> float32 NCHW).
- CLIP tokenisation with the Hugging Face `tokenizers` library on the shipped tokenizer.json,
  truncated to 77 (the last kept token is EOS, as OpenAI's `clip.tokenize(truncate=True)`) and
  padded with 0 like OpenAI (the model pools at argmax(input_ids) = the first EOS and masks with
  attention_mask, so EOS padding as Hugging Face does gives the same embeddings).
- Reading the Parquet shards written by `clipflow synth textures` with pyarrow.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
CONTEXT = 77
BOS, EOS = 49406, 49407
IMAGE_SIZE = 64

# The CLIP paper's prompt templates for DTD.
DTD_TEMPLATES = [
    "a photo of a {c} texture.",
    "a photo of a {c} pattern.",
    "a photo of a {c} thing.",
    "a photo of a {c} object.",
    "a photo of the {c} texture.",
    "a photo of the {c} pattern.",
    "a photo of the {c} thing.",
    "a photo of the {c} object.",
]


def resize_crop(img: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """RGB, bicubic resize of the shorter side to `size`, centre crop: uint8 [size, size, 3]."""
    img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    img = img.resize((nw, nh), Image.BICUBIC)
    top = int(round((nh - size) / 2.0))
    left = int(round((nw - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def normalize(x01: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] floats in [0, 1] (or uint8) -> float32 [N, 3, H, W] normalised by mean/std."""
    if x01.dtype == np.uint8:
        x01 = x01.astype(np.float32) / np.float32(255.0)
    x = (x01.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class ClipTokenizer:
    """tokenizer.json -> (input_ids, attention_mask), int64 [N, 77]."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path))
        self.tok.no_padding()
        self.tok.no_truncation()

    def ids(self, text: str) -> list[int]:
        ids = self.tok.encode(text).ids
        if len(ids) > CONTEXT:
            ids = ids[: CONTEXT - 1] + [EOS]
        assert ids[0] == BOS and ids[-1] == EOS, (text, ids)
        return ids

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.zeros((len(texts), CONTEXT), dtype=np.int64)
        mask = np.zeros((len(texts), CONTEXT), dtype=np.int64)
        for i, enc in enumerate(self.tok.encode_batch(list(texts))):
            t = enc.ids
            if len(t) > CONTEXT:
                t = t[: CONTEXT - 1] + [EOS]
            ids[i, : len(t)] = t
            mask[i, : len(t)] = 1
        return ids, mask


def parquet_files(path: str | Path) -> list[Path]:
    """A synth output folder, its parquet/ folder, or one .parquet file."""
    p = Path(path)
    if p.is_file():
        return [p]
    if (p / "parquet").is_dir():
        p = p / "parquet"
    files = sorted(p.glob("*.parquet"))
    if not files:
        raise SystemExit(f"no .parquet files under {path}")
    return files


def load_dataset(path: str | Path, size: int = IMAGE_SIZE, cache_dir: str | Path | None = None) -> dict:
    """Reads synth Parquet shards; images resized+cropped to uint8 [N, size, size, 3].

    With `cache_dir`, the decoded crops are cached in an .npz keyed by the shards' SHA-256.
    """
    files = parquet_files(path)
    key = hashlib.sha256()
    for f in files:
        key.update(hashlib.sha256(f.read_bytes()).digest())
    key.update(str(size).encode())
    cache = Path(cache_dir) / f"texture-crops-{key.hexdigest()[:16]}.npz" if cache_dir else None
    cols = ["id", "caption", "label", "fg_color", "bg_color", "scale"]
    table = [pq.read_table(f, columns=cols + ["image"]) for f in files]
    meta = {c: [v for t in table for v in t.column(c).to_pylist()] for c in cols}
    if cache is not None and cache.exists():
        images = np.load(cache)["images"]
    else:
        images = np.stack(
            [
                resize_crop(Image.open(io.BytesIO(cell["bytes"])), size)
                for t in table
                for cell in t.column("image").to_pylist()
            ]
        )
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, images=images)
            tmp.rename(cache)
    meta["images"] = images
    return meta


def synth_manifest(path: str | Path) -> dict:
    p = Path(path)
    for cand in (p / "synth.json", p.parent / "synth.json", p.parent.parent / "synth.json"):
        if cand.is_file():
            return json.loads(cand.read_text())
    raise SystemExit(f"no synth.json next to {path}")


def l2n(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)
