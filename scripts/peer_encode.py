"""The Python peer clipflow's encode speed is measured against: PIL + onnxruntime, done well.

Embeds every JPEG/PNG under a folder with a CLIP-style model folder (Xenova layout: onnx/vision_model.onnx
and preprocessor_config.json) and writes the L2-normalised embeddings to a Parquet file, the way a careful
Python user would:
- decoding and preprocessing (PIL: open, convert("RGB"), resize shorter side with the config's filter,
  torchvision center crop, rescale, normalise) in a thread pool of --threads workers (Pillow releases the
  GIL while it decodes and resizes);
- the next batch is prepared while the model runs the current one (one batch of prefetch);
- onnxruntime with intra_op_num_threads = --threads, batches of --batch.

Same threads, same batch, same model and same output kind as `clipflow run` in scripts/bench_preprocess,
which times both as whole processes.

    .venv/bin/python scripts/peer_encode.py --model models/texture-clip --images DIR --out emb.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def load_config(model: Path) -> dict:
    cfg = json.loads((model / "preprocessor_config.json").read_text())
    size = cfg.get("size", 224)
    size = size["shortest_edge"] if isinstance(size, dict) else size
    crop = cfg.get("crop_size", size)
    crop = crop["height"] if isinstance(crop, dict) else crop
    return {
        "size": int(size),
        "crop": int(crop),
        "resample": int(cfg.get("resample", 3)),
        "scale": np.float32(cfg.get("rescale_factor", 1 / 255)),
        "mean": np.array(cfg.get("image_mean", [0.48145466, 0.4578275, 0.40821073]), np.float32),
        "std": np.array(cfg.get("image_std", [0.26862954, 0.26130258, 0.27577711]), np.float32),
    }


def preprocess(path: Path, c: dict) -> np.ndarray:
    with Image.open(path) as im:
        img = im.convert("RGB")
    w, h = img.size
    s = c["size"]
    tw, th = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    img = img.resize((tw, th), c["resample"])
    left, top = int(round((tw - c["crop"]) / 2.0)), int(round((th - c["crop"]) / 2.0))
    img = img.crop((left, top, left + c["crop"], top + c["crop"]))
    x = np.asarray(img, dtype=np.float32) * c["scale"]
    x = (x - c["mean"]) / c["std"]
    return x.transpose(2, 0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    t0 = time.perf_counter()
    c = load_config(a.model)
    paths = sorted(p for p in a.images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(str(a.model / "onnx" / "vision_model.onnx"), opts, providers=["CPUExecutionProvider"])
    out_name = "image_embeds" if "image_embeds" in [o.name for o in sess.get_outputs()] else sess.get_outputs()[0].name
    batches = [paths[i : i + a.batch] for i in range(0, len(paths), a.batch)]
    rows = []
    with ThreadPoolExecutor(a.threads) as pool:

        def submit(batch):
            return [pool.submit(preprocess, p, c) for p in batch]

        pending = submit(batches[0]) if batches else []
        for i, batch in enumerate(batches):
            pixels = np.stack([f.result() for f in pending])
            pending = submit(batches[i + 1]) if i + 1 < len(batches) else []
            emb = sess.run([out_name], {"pixel_values": pixels})[0]
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            rows.append(emb.astype(np.float32))
    emb = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    table = pa.table(
        {
            "id": [str(p.relative_to(a.images)) for p in paths],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), emb.shape[1] if emb.size else 1),
        }
    )
    tmp = a.out.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(a.out)
    print(f"peer: {len(paths)} images in {time.perf_counter() - t0:.2f} s (threads {a.threads}, batch {a.batch})")


if __name__ == "__main__":
    main()
