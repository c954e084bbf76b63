"""A minimal text tower for the benchmark model folder: input_ids/attention_mask [batch, 77]
-> text_embeds [batch, D], so the ViT-B/32-sized vision model loads like a real CLIP (clipflow
checks both towers agree on D). Only the vision tower is timed.

    .venv/bin/python scripts/make_bench_text_model.py --out target/bench/vitb32 --dim 512
"""
import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dim", type=int, default=512)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.normal(size=(1024, a.dim)).astype(np.float32), "table")
    buckets = numpy_helper.from_array(np.array(1024, dtype=np.int64), "buckets")
    nodes = [
        helper.make_node("Mod", ["input_ids", "buckets"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["text_embeds"], keepdims=0),
    ]
    axis1 = numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")
    axis2 = numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2")
    graph = helper.make_graph(
        nodes,
        "bench_text",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", 77]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", 77]),
        ],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", a.dim])],
        [table, buckets, axis1, axis2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnx 1.23 writes IR 14 by default; ONNX Runtime 1.31 reads up to 13
    onnx.checker.check_model(model)
    (a.out / "onnx").mkdir(parents=True, exist_ok=True)
    onnx.save(model, a.out / "onnx" / "text_model.onnx")


if __name__ == "__main__":
    main()
