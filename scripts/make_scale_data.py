"""Inputs of scripts/bench_scale (the encode-side half): a tiny CLIP-shaped model and datasets
of a million rows and more, generated, never downloaded.

  make_scale_data.py model  --out DIR [--dim 512]
      Xenova layout: onnx/vision_model.onnx (pixel_values [B,3,32,32] -> Flatten -> Gemm ->
      image_embeds [B,D]), onnx/text_model.onnx (scripts/make_bench_text_model.py),
      preprocessor_config.json (size 32, crop 32, CLIP mean/std), tokenizer.json (data/clip).
      The towers cost almost nothing, so the run measures clipflow (tar reading, decoding,
      preprocessing, tokenising, Parquet writing, memory), not the model.
  make_scale_data.py wds    --out DIR --samples N [--per-shard 10000]
      WebDataset shards DIR/{00000..}.tar of N samples: a 32x32 JPEG (one of 4,096 distinct
      ones), a caption (`txt`) and a class (`cls`, 100 classes) each; keys are the sample
      numbers, so they are unique across shards.
  make_scale_data.py parquet --out FILE --rows N
      A Parquet file of N rows with an `id` column (18 characters), a caption (about 45), an
      integer label and an image path (the listing never reads images), for timing the listing
      and measuring its memory.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
SIZE = 32
CLASSES = 100


def model(out: Path, dim: int) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(
        (rng.standard_normal((3 * SIZE * SIZE, dim)) / np.sqrt(3 * SIZE * SIZE)).astype(np.float32), "w"
    )
    b = numpy_helper.from_array(np.zeros(dim, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Flatten", ["pixel_values"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "scale_vision",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", dim])],
        [w, b],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8  # ONNX Runtime 1.31 reads IR up to 13
    onnx.checker.check_model(m)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    onnx.save(m, out / "onnx" / "vision_model.onnx")
    subprocess.run(
        [sys.executable, str(REPO / "scripts/make_bench_text_model.py"), "--out", str(out), "--dim", str(dim)],
        check=True,
    )
    config = {
        "crop_size": SIZE,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": MEAN,
        "image_std": STD,
        "resample": 3,
        "size": SIZE,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(REPO / "data/clip/tokenizer.json", out / "tokenizer.json")


def jpegs(count: int) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(1)
    out = []
    for _ in range(count):
        base = rng.integers(0, 256, size=(1, 1, 3))
        noise = rng.integers(-40, 40, size=(SIZE, SIZE, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


WORDS = ["red", "blue", "striped", "dotted", "woven", "cracked", "bumpy", "smooth", "leafy", "grid"]


def caption(i: int) -> str:
    return f"a {WORDS[i % 10]} and {WORDS[(i // 10) % 10]} texture, photo {i}"


def wds(out: Path, samples: int, per_shard: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    pool = jpegs(4096)
    shards = (samples + per_shard - 1) // per_shard
    for s in range(shards):
        path = out / f"{s:05d}.tar"
        tmp = path.with_suffix(".tar.tmp")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s * per_shard, min(samples, (s + 1) * per_shard)):
                key = f"{i:09d}"
                members = [
                    (f"{key}.jpg", pool[i % len(pool)]),
                    (f"{key}.txt", caption(i).encode()),
                    (f"{key}.cls", str(i % CLASSES).encode()),
                ]
                for name, data in members:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        tmp.rename(path)
    print(f"{samples} samples in {shards} shards under {out}")


def parquet(out: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [("id", pa.string()), ("caption", pa.string()), ("label", pa.int64()), ("image", pa.string())]
    )
    chunk = 1_000_000
    with pq.ParquetWriter(out, schema) as w:
        for start in range(0, rows, chunk):
            idx = range(start, min(rows, start + chunk))
            table = pa.table(
                {
                    "id": [f"laion-{i:012d}" for i in idx],
                    "caption": [caption(i) for i in idx],
                    "label": [i % CLASSES for i in idx],
                    "image": [f"img/{i % 4096}.jpg" for i in idx],
                },
                schema=schema,
            )
            w.write_table(table, row_group_size=100_000)
    print(f"{rows} rows in {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["model", "wds", "parquet"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--per-shard", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=10_000_000)
    a = ap.parse_args()
    if a.what == "model":
        model(a.out, a.dim)
    elif a.what == "wds":
        wds(a.out, a.samples, a.per_shard)
    else:
        parquet(a.out, a.rows)


if __name__ == "__main__":
    main()
