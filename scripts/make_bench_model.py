"""Build a CLIP ViT-B/32-sized vision model with random weights, for benchmarks (never for tests).

Why: the encode-stage benchmark needs a model with the real cost of CLIP ViT-B/32's image tower
(~4.4 GMAC per image) but no download. This writes the same architecture as OpenAI's VisionTransformer,
with seeded random weights, in the Xenova layout:
  <out>/onnx/vision_model.onnx   pixel_values float32 [batch,3,224,224] -> image_embeds float32 [batch,512]
                                 (not normalised, like Xenova's exports)
  <out>/preprocessor_config.json (legacy form, CLIP mean/std)
  <out>/tokenizer.json           (copy of data/clip/tokenizer.json, so layout detection sees a full folder)

Architecture: Conv 3->768 (32x32, stride 32, no bias) -> 49 patch tokens + class token = 50,
+ positional embedding, ln_pre, 12 pre-LN residual blocks (width 768, 12 heads, MLP 3072 with
QuickGELU x*sigmoid(1.702x)), ln_post on the class token, projection 768 -> 512. Opset 17
(LayerNormalization), dynamic batch axis, ~88 M parameters = ~350 MB, one file (no external data).

Rerun from the repo root (a few seconds, ~1.5 GB RAM peak):
  .venv/bin/python scripts/make_bench_model.py [--out target/bench/vitb32] [--layers 12] [--seed 0]
It checks the model in onnxruntime on a batch of 2 and prints the FLOP estimate and the timing.
Random weights make the embeddings of different images nearly parallel (cosine ~0.99): use the model
for timing and memory only, never for quality numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
OPSET = 17
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


class Graph:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n_params = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        self.n_params += value.size if value.dtype == np.float32 else 0
        return name

    def rand(self, name: str, shape: tuple[int, ...], std: float) -> str:
        return self.const(name, self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std))

    def op(self, op_type: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def layer_norm(self, x: str, name: str, width: int) -> str:
        g = self.const(name + ".weight", np.ones(width, np.float32))
        b = self.const(name + ".bias", np.zeros(width, np.float32))
        return self.op("LayerNormalization", [x, g, b], name, axis=-1, epsilon=1e-5)

    def linear(self, x: str, name: str, n_in: int, n_out: int, std: float) -> str:
        w = self.rand(name + ".weight", (n_in, n_out), std)
        b = self.const(name + ".bias", np.zeros(n_out, np.float32))
        return self.op("Add", [self.op("MatMul", [x, w], name + ".mm"), b], name)


def build(layers: int, seed: int, width: int = 768, heads: int = 12, patch: int = 32, res: int = 224, out_dim: int = 512):
    g = Graph(seed)
    grid = res // patch
    tokens = grid * grid + 1
    head_dim = width // heads
    scale = width**-0.5
    attn_std, proj_std, fc_std = scale * (2 * layers) ** -0.5, width**-0.5, (2 * width) ** -0.5

    conv_w = g.rand("conv1.weight", (width, 3, patch, patch), 0.02)
    x = g.op("Conv", ["pixel_values", conv_w], "conv1", kernel_shape=[patch, patch], strides=[patch, patch])
    x = g.op("Reshape", [x, g.const("shape_bwp", np.array([0, width, grid * grid], np.int64))], "patches")
    x = g.op("Transpose", [x], "patches_t", perm=[0, 2, 1])  # [B, 49, 768]
    # class token broadcast to the batch
    batch = g.op("Shape", ["pixel_values"], "batch_dim", start=0, end=1)
    cls_shape = g.op("Concat", [batch, g.const("one_width", np.array([1, width], np.int64))], "cls_shape", axis=0)
    cls = g.op("Expand", [g.rand("class_embedding", (1, 1, width), scale), cls_shape], "cls")
    x = g.op("Concat", [cls, x], "tokens", axis=1)  # [B, 50, 768]
    x = g.op("Add", [x, g.rand("positional_embedding", (tokens, width), scale)], "pos_added")
    x = g.layer_norm(x, "ln_pre", width)

    split_heads = g.const("shape_heads", np.array([0, 0, heads, head_dim], np.int64))
    merge_heads = g.const("shape_merge", np.array([0, 0, width], np.int64))
    inv_sqrt_d = g.const("inv_sqrt_d", np.array(head_dim**-0.5, np.float32))
    gelu_k = g.const("quick_gelu_k", np.array(1.702, np.float32))
    for i in range(layers):
        p = f"blocks.{i}."
        h = g.layer_norm(x, p + "ln_1", width)
        q, k, v = (
            g.op("Reshape", [g.linear(h, p + f"attn.{n}", width, width, attn_std), split_heads], p + f"{n}_heads")
            for n in "qkv"
        )
        q = g.op("Transpose", [q], p + "q_t", perm=[0, 2, 1, 3])  # [B, H, T, D]
        k = g.op("Transpose", [k], p + "k_t", perm=[0, 2, 3, 1])  # [B, H, D, T]
        v = g.op("Transpose", [v], p + "v_t", perm=[0, 2, 1, 3])
        s = g.op("Mul", [g.op("MatMul", [q, k], p + "qk"), inv_sqrt_d], p + "scores")
        a = g.op("Softmax", [s], p + "attn_w", axis=-1)
        o = g.op("Transpose", [g.op("MatMul", [a, v], p + "attn_o")], p + "attn_o_t", perm=[0, 2, 1, 3])
        o = g.op("Reshape", [o, merge_heads], p + "attn_merged")
        o = g.linear(o, p + "attn.out_proj", width, width, proj_std)
        x = g.op("Add", [x, o], p + "res1")
        h = g.layer_norm(x, p + "ln_2", width)
        h = g.linear(h, p + "mlp.c_fc", width, 4 * width, fc_std)
        h = g.op("Mul", [h, g.op("Sigmoid", [g.op("Mul", [h, gelu_k], p + "gelu_in")], p + "gelu_sig")], p + "gelu")
        h = g.linear(h, p + "mlp.c_proj", 4 * width, width, proj_std)
        x = g.op("Add", [x, h], p + "res2")

    cls_out = g.op("Gather", [x, g.const("idx0", np.array(0, np.int64))], "cls_out", axis=1)  # [B, 768]
    cls_out = g.layer_norm(cls_out, "ln_post", width)
    g.op("MatMul", [cls_out, g.rand("proj", (width, out_dim), scale)], "image_embeds")

    graph = helper.make_graph(
        g.nodes,
        "clip_vit_b32_vision_random",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch_size", 3, res, res])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch_size", out_dim])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clipflow-bench")
    model.ir_version = 8
    model.doc_string = "Random-weight CLIP ViT-B/32 vision tower for benchmarks (scripts/make_bench_model.py)"

    # multiply-accumulates per image, by layer
    macs = width * 3 * patch * patch * grid * grid
    per_block = 4 * tokens * width * width + 2 * heads * tokens * tokens * head_dim + 2 * tokens * width * 4 * width
    macs += layers * per_block + width * out_dim
    return model, g.n_params, macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "target" / "bench" / "vitb32"))
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-check", action="store_true", help="skip the onnxruntime run")
    args = ap.parse_args()

    out = Path(args.out)
    t0 = time.perf_counter()
    model, n_params, macs = build(args.layers, args.seed)
    onnx.checker.check_model(model)  # in-memory check (< 2 GB)
    path = out / "onnx" / "vision_model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    del model
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_size": 224,
                "do_center_crop": True,
                "do_convert_rgb": True,
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "CLIPFeatureExtractor",
                "image_mean": MEAN,
                "image_std": STD,
                "resample": 3,
                "size": 224,
            },
            indent=2,
        )
        + "\n"
    )
    tok = REPO / "data" / "clip" / "tokenizer.json"
    if tok.exists():
        shutil.copyfile(tok, out / "tokenizer.json")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {n_params / 1e6:.2f} M parameters) in {time.perf_counter() - t0:.1f} s")
    print(f"estimate per image: {macs / 1e9:.3f} GMAC = {2 * macs / 1e9:.2f} GFLOP (multiply + add)")

    if not args.no_check:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
        (y,) = sess.run(["image_embeds"], {"pixel_values": x})
        assert y.shape == (2, 512) and np.all(np.isfinite(y)), y.shape
        assert not np.allclose(y[0], y[1])
        t1 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            sess.run(["image_embeds"], {"pixel_values": x})
        dt = (time.perf_counter() - t1) / reps
        print(
            f"onnxruntime {ort.__version__} CPU, batch 2: output {list(y.shape)}, norms {np.round(np.linalg.norm(y, axis=1), 3).tolist()}, "
            f"{dt * 1000:.0f} ms per batch = {2 * 2 * macs / dt / 1e9:.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
