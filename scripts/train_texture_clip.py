"""Train the embedded texture CLIP on `clipflow synth textures` data and export it for clipflow.

Why: no CLIP weights can be downloaded on these machines, and a demo on random weights shows chance
numbers. This trains a small CLIP-style dual encoder with the symmetric contrastive (InfoNCE) loss
on the generated DTD-like textures, then writes ONNX files in the Xenova/transformers.js layout, so
clipflow loads it through exactly the code a real CLIP export uses:

  models/texture-clip/onnx/vision_model.onnx   pixel_values f32 [batch,3,64,64] -> image_embeds f32 [batch,128]
  models/texture-clip/onnx/text_model.onnx     input_ids i64 [batch,77], attention_mask i64 [batch,77]
                                               -> text_embeds f32 [batch,128]
  models/texture-clip/tokenizer.json           copy of data/clip/tokenizer.json (real CLIP BPE)
  models/texture-clip/preprocessor_config.json size 64, crop 64, bicubic, OpenAI mean/std
  models/texture-clip/clipflow.json            the training pipeline's crop rounding (half to even,
                                               texture_clip_common.resize_crop) and transparency (dropped)
  models/texture-clip/training.json            arguments, seeds, vocabulary, loss curve, timing
and the same architecture with its random initialisation (no training) as models/texture-baseline/.

Architecture (graphs built by hand with onnx.helper, opset 17, embeddings not normalised):
  vision: 4 conv + ReLU (5x5 3->32 s2, 3x3 32->64 s2, 3x3 64->128 s2, 3x3 128->128 s1; 64 -> 8x8),
          then concat(global average pool, global max pool) [256] -> Gemm -> [128]
  text:   CLIP token ids -> lookup table (the few hundred ids the training texts use -> rows,
          every other id -> an UNK row) -> embedding [128] + learned positions, 2 pre-LN transformer
          blocks (4 heads, causal + attention_mask, QuickGELU MLP x4), final LayerNorm, the hidden
          state at argmax(input_ids) (the first EOS, as CLIP pools) -> MatMul -> [128]

Training: AdamW, cosine schedule with warm-up, batch 256, learnable logit scale (CLIP's init,
clamped at 100). Each image is paired with a caption drawn at random every epoch: the synth
templates with class, both colours and scale, or partial captions (class only, class + colours,
class + one colour, class + scale). The loss's targets are multi-positive: a caption is a positive
for every image of the batch that has all the attributes it names. Light augmentation: flips, and
Gaussian pixel noise (sigma up to 0.12, in [0,1] units after resize+crop) on half the images.

Rerun from the repo root (44 minutes measured on 2 cores shared with a Rust build; the training data is seed 1000, the
evaluation's held-out data is seed 2000):
  cargo run --release -- synth textures --out /tmp/texture-train --per-class 1000 --seed 1000 --layout parquet
  .venv/bin/pip install -r scripts/texture_clip_requirements.txt
  .venv/bin/python scripts/train_texture_clip.py --data /tmp/texture-train
  .venv/bin/python scripts/eval_texture_clip.py   # see that script for its data
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from texture_clip_common import (  # noqa: E402
    BOS,
    CONTEXT,
    EOS,
    IMAGE_SIZE,
    MEAN,
    STD,
    ClipTokenizer,
    DTD_TEMPLATES,
    load_dataset,
    normalize,
    synth_manifest,
)

REPO = Path(__file__).resolve().parent.parent
OPSET = 17
EMBED = 128
WIDTH = 128
HEADS = 4
LAYERS = 2
TRAIN_LEN = 18  # training sequence length; the causal mask makes EOS pooling independent of it
CONVS = [(3, 32, 5, 2), (32, 64, 3, 2), (64, 128, 3, 2), (128, 128, 3, 1)]  # (cin, cout, kernel, stride), pad kernel//2
LN_EPS = 1e-5

# Partial captions. `{c}` class, `{f}` foreground colour, `{b}` background colour, `{s}` scale.
CLASS_TEMPLATES = [
    "a {c} texture",
    "a {c} pattern",
    "{c}",
    "a photo of a {c} surface",
    "an image of the {c} pattern",
    "the {c} texture.",
    "a close-up photo of a {c} pattern.",
    "a {c} thing",
    "a {c} object",
    "a picture of a {c} texture.",
]
COLOURS_TEMPLATES = ["a {f} and {b} {c} pattern", "a {f} {c} texture on {b}", "{f} on {b} {c} pattern"]
FG_TEMPLATES = ["a {f} {c} pattern", "a {c} texture in {f}"]
SCALE_TEMPLATES = ["a {s} {c} pattern", "a {c} texture at {s} scale", "a photo of a {s} {c} texture"]


# ----------------------------------------------------------------------------------------------
# Captions


class CaptionSampler:
    """Draws one caption per image and records which attributes it names (-1 = not named)."""

    def __init__(self, data: dict, full_templates: list[str], rng: np.random.Generator):
        self.rng = rng
        self.full = full_templates
        self.classes = sorted(set(data["label"]))
        self.colours = sorted(set(data["fg_color"]) | set(data["bg_color"]))
        self.scales = ["small", "medium", "large"]
        self.attr = np.stack(
            [
                np.array([self.classes.index(v) for v in data["label"]]),
                np.array([self.colours.index(v) for v in data["fg_color"]]),
                np.array([self.colours.index(v) for v in data["bg_color"]]),
                np.array([self.scales.index(v) for v in data["scale"]]),
            ],
            axis=1,
        )
        self.data = data

    def all_texts(self) -> list[str]:
        """Every text the sampler can produce (the vocabulary is their ids)."""
        out = set()
        for c in self.classes:
            for t in CLASS_TEMPLATES:
                out.add(t.format(c=c))
            for s in self.scales:
                for t in SCALE_TEMPLATES:
                    out.add(t.format(c=c, s=s))
            for f in self.colours:
                for b in self.colours:
                    for t in COLOURS_TEMPLATES + FG_TEMPLATES:
                        out.add(t.format(c=c, f=f, b=b))
                    for s in self.scales:
                        for t in self.full:
                            out.add(t.replace("{s}", s).replace("{f}", f).replace("{b}", b).replace("{c}", c))
        return sorted(out)

    def sample(self, idx: np.ndarray) -> tuple[list[str], np.ndarray]:
        texts, named = [], np.full((len(idx), 4), -1, dtype=np.int64)
        d = self.data
        for k, i in enumerate(idx):
            a = self.attr[i]
            c, f, b, s = d["label"][i], d["fg_color"][i], d["bg_color"][i], d["scale"][i]
            r = self.rng.random()
            if r < 0.42:
                t = self.full[self.rng.integers(len(self.full))]
                text = t.replace("{s}", s).replace("{f}", f).replace("{b}", b).replace("{c}", c)
                named[k] = a
            elif r < 0.77:
                text = CLASS_TEMPLATES[self.rng.integers(len(CLASS_TEMPLATES))].format(c=c)
                named[k, 0] = a[0]
            elif r < 0.86:
                text = COLOURS_TEMPLATES[self.rng.integers(len(COLOURS_TEMPLATES))].format(c=c, f=f, b=b)
                named[k, :3] = a[:3]
            elif r < 0.93:
                text = FG_TEMPLATES[self.rng.integers(len(FG_TEMPLATES))].format(c=c, f=f)
                named[k, :2] = a[:2]
            else:
                text = SCALE_TEMPLATES[self.rng.integers(len(SCALE_TEMPLATES))].format(c=c, s=s)
                named[k, 0], named[k, 3] = a[0], a[3]
            texts.append(text)
        return texts, named


# ----------------------------------------------------------------------------------------------
# Model (JAX)


def init_params(seed: int, vocab_rows: int) -> dict:
    rng = np.random.default_rng(seed)

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    p: dict = {"convs": []}
    for cin, cout, k, _ in CONVS:
        p["convs"].append({"w": normal((k, k, cin, cout), math.sqrt(2.0 / (k * k * cin))), "b": np.zeros(cout, np.float32)})
    c = CONVS[-1][1]
    p["v_head_w"] = normal((2 * c, EMBED), 1.0 / math.sqrt(2 * c))
    p["v_head_b"] = np.zeros(EMBED, np.float32)
    p["tok"] = normal((vocab_rows, WIDTH), 0.02)
    p["pos"] = normal((CONTEXT, WIDTH), 0.01)
    p["layers"] = []
    for _ in range(LAYERS):
        layer = {
            "ln1_g": np.ones(WIDTH, np.float32),
            "ln1_b": np.zeros(WIDTH, np.float32),
            "ln2_g": np.ones(WIDTH, np.float32),
            "ln2_b": np.zeros(WIDTH, np.float32),
            "w1": normal((WIDTH, 4 * WIDTH), WIDTH**-0.5),
            "b1": np.zeros(4 * WIDTH, np.float32),
            "w2": normal((4 * WIDTH, WIDTH), (4 * WIDTH) ** -0.5 / math.sqrt(2 * LAYERS)),
            "b2": np.zeros(WIDTH, np.float32),
        }
        for n in "qkv":
            layer[f"w{n}"] = normal((WIDTH, WIDTH), WIDTH**-0.5)
            layer[f"b{n}"] = np.zeros(WIDTH, np.float32)
        layer["wo"] = normal((WIDTH, WIDTH), WIDTH**-0.5 / math.sqrt(2 * LAYERS))
        layer["bo"] = np.zeros(WIDTH, np.float32)
        p["layers"].append(layer)
    p["lnf_g"] = np.ones(WIDTH, np.float32)
    p["lnf_b"] = np.zeros(WIDTH, np.float32)
    p["t_proj"] = normal((WIDTH, EMBED), WIDTH**-0.5)
    p["logit_scale"] = np.array(math.log(1 / 0.07), np.float32)
    return p


def make_model():
    import jax
    import jax.numpy as jnp

    def vision(p, x):  # x: [B, H, W, 3] normalised
        for conv, (_, _, k, stride) in zip(p["convs"], CONVS):
            pad = (k // 2, k // 2)
            x = jax.lax.conv_general_dilated(x, conv["w"], (stride, stride), (pad, pad), dimension_numbers=("NHWC", "HWIO", "NHWC"))
            x = jax.nn.relu(x + conv["b"])
        f = jnp.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1)
        return f @ p["v_head_w"] + p["v_head_b"]

    def ln(x, g, b):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / jnp.sqrt(v + LN_EPS) * g + b

    def text(p, rows, mask, eos_pos):  # rows: remapped ids [B, L]; mask [B, L]; eos_pos [B]
        bsz, length = rows.shape
        x = p["tok"][rows] + p["pos"][:length]
        causal = jnp.triu(jnp.full((length, length), -1e9, jnp.float32), k=1)
        bias = causal[None, None] + ((1.0 - mask.astype(jnp.float32)) * -1e9)[:, None, None, :]
        dh = WIDTH // HEADS
        for layer in p["layers"]:
            h = ln(x, layer["ln1_g"], layer["ln1_b"])

            def heads(t):
                return t.reshape(bsz, length, HEADS, dh).transpose(0, 2, 1, 3)

            q = heads(h @ layer["wq"] + layer["bq"])
            k = heads(h @ layer["wk"] + layer["bk"])
            v = heads(h @ layer["wv"] + layer["bv"])
            att = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) * (1.0 / math.sqrt(dh)) + bias, axis=-1)
            o = (att @ v).transpose(0, 2, 1, 3).reshape(bsz, length, WIDTH)
            x = x + o @ layer["wo"] + layer["bo"]
            h = ln(x, layer["ln2_g"], layer["ln2_b"])
            h = h @ layer["w1"] + layer["b1"]
            h = h * jax.nn.sigmoid(1.702 * h)
            x = x + h @ layer["w2"] + layer["b2"]
        x = ln(x, p["lnf_g"], p["lnf_b"])
        pooled = x[jnp.arange(bsz), eos_pos]
        return pooled @ p["t_proj"]

    return vision, text


# ----------------------------------------------------------------------------------------------
# ONNX export


def export_onnx(p: dict, table: np.ndarray, out_dir: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    p = {k: v for k, v in p.items()}
    out_dir.mkdir(parents=True, exist_ok=True)

    # Vision.
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    x = "pixel_values"
    for i, (conv, (_, _, k, stride)) in enumerate(zip(p["convs"], CONVS)):
        w = const(f"conv{i}.weight", np.asarray(conv["w"]).transpose(3, 2, 0, 1).astype(np.float32))
        b = const(f"conv{i}.bias", np.asarray(conv["b"], np.float32))
        nodes.append(
            helper.make_node("Conv", [x, w, b], [f"conv{i}"], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x = f"relu{i}"
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"]),
        helper.make_node("GlobalMaxPool", [x], ["gmp"]),
        helper.make_node("Concat", ["gap", "gmp"], ["pooled4"], axis=1),
        helper.make_node("Flatten", ["pooled4"], ["pooled"], axis=1),
        helper.make_node(
            "Gemm",
            ["pooled", const("head.weight", np.asarray(p["v_head_w"], np.float32)), const("head.bias", np.asarray(p["v_head_b"], np.float32))],
            ["image_embeds"],
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "texture_clip_vision",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", EMBED])],
        inits,
    )
    save_model(graph, out_dir / "vision_model.onnx")

    # Text.
    nodes, inits = [], []
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731

    def node(op, ins, outs=None, **kw):
        outs = outs or [f"{op.lower()}_{len(nodes)}"]
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    rows = node("Gather", [const("token_table", table.astype(np.int32)), "input_ids"], ["rows"], axis=0)
    emb = node("Gather", [const("token_embedding", f32(p["tok"])), rows], ["tok_emb"], axis=0)
    x = node("Add", [emb, const("position_embedding", f32(p["pos"]))], ["x0"])
    causal = np.triu(np.full((CONTEXT, CONTEXT), -1e9, np.float32), k=1)[None, None]
    mask_f = node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT)
    inv = node("Sub", [const("one", np.array(1.0, np.float32)), mask_f], ["mask_inv"])
    keybias = node("Mul", [inv, const("neg_big", np.array(-1e9, np.float32))], ["key_bias2"])
    keybias = node("Unsqueeze", [keybias, const("axes_12", np.array([1, 2], np.int64))], ["key_bias"])
    bias = node("Add", [const("causal_bias", causal), keybias], ["attn_bias"])
    dh = WIDTH // HEADS
    shape_heads = const("shape_heads", np.array([0, 0, HEADS, dh], np.int64))
    shape_merge = const("shape_merge", np.array([0, 0, WIDTH], np.int64))
    scale = const("attn_scale", np.array(1.0 / math.sqrt(dh), np.float32))
    qg = const("quick_gelu", np.array(1.702, np.float32))

    def layernorm(inp, g, b, name):
        return node("LayerNormalization", [inp, const(f"{name}.g", f32(g)), const(f"{name}.b", f32(b))], [name], axis=-1, epsilon=LN_EPS)

    def linear(inp, w, b, name):
        m = node("MatMul", [inp, const(f"{name}.w", f32(w))], [f"{name}.mm"])
        return node("Add", [m, const(f"{name}.b", f32(b))], [name])

    for li, layer in enumerate(p["layers"]):
        n = f"l{li}"
        h = layernorm(x, layer["ln1_g"], layer["ln1_b"], f"{n}.ln1")
        q = node("Reshape", [linear(h, layer["wq"], layer["bq"], f"{n}.q"), shape_heads], [f"{n}.q4"])
        k = node("Reshape", [linear(h, layer["wk"], layer["bk"], f"{n}.k"), shape_heads], [f"{n}.k4"])
        v = node("Reshape", [linear(h, layer["wv"], layer["bv"], f"{n}.v"), shape_heads], [f"{n}.v4"])
        q = node("Transpose", [q], [f"{n}.qt"], perm=[0, 2, 1, 3])
        k = node("Transpose", [k], [f"{n}.kt"], perm=[0, 2, 3, 1])
        v = node("Transpose", [v], [f"{n}.vt"], perm=[0, 2, 1, 3])
        s = node("MatMul", [q, k], [f"{n}.scores"])
        s = node("Mul", [s, scale], [f"{n}.scaled"])
        s = node("Add", [s, bias], [f"{n}.biased"])
        a = node("Softmax", [s], [f"{n}.att"], axis=-1)
        o = node("MatMul", [a, v], [f"{n}.ctx"])
        o = node("Transpose", [o], [f"{n}.ctxt"], perm=[0, 2, 1, 3])
        o = node("Reshape", [o, shape_merge], [f"{n}.ctx3"])
        o = linear(o, layer["wo"], layer["bo"], f"{n}.o")
        x = node("Add", [x, o], [f"{n}.res1"])
        h = layernorm(x, layer["ln2_g"], layer["ln2_b"], f"{n}.ln2")
        h = linear(h, layer["w1"], layer["b1"], f"{n}.fc1")
        g = node("Sigmoid", [node("Mul", [h, qg], [f"{n}.fc1s"])], [f"{n}.sig"])
        h = node("Mul", [h, g], [f"{n}.act"])
        h = linear(h, layer["w2"], layer["b2"], f"{n}.fc2")
        x = node("Add", [x, h], [f"{n}.res2"])
    x = layernorm(x, p["lnf_g"], p["lnf_b"], "ln_final")
    # Pool at the first EOS: argmax(input_ids) (EOS 49407 is the largest id), as CLIP does.
    eos = node("ArgMax", ["input_ids"], ["eos_pos"], axis=1, keepdims=1)  # [B,1]
    hit = node("Equal", [const("positions", np.arange(CONTEXT, dtype=np.int64)[None, :]), eos], ["eos_hit"])
    onehot = node("Cast", [hit], ["eos_onehot"], to=TensorProto.FLOAT)
    onehot = node("Unsqueeze", [onehot, const("axes_1", np.array([1], np.int64))], ["eos_onehot3"])
    pooled = node("MatMul", [onehot, x], ["pooled3"])  # [B,1,W]
    pooled = node("Squeeze", [pooled, const("axes_1b", np.array([1], np.int64))], ["pooled"])
    node("MatMul", [pooled, const("text_projection", f32(p["t_proj"]))], ["text_embeds"])
    graph = helper.make_graph(
        nodes,
        "texture_clip_text",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", CONTEXT]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", CONTEXT]),
        ],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", EMBED])],
        inits,
    )
    save_model(graph, out_dir / "text_model.onnx")


def save_model(graph, path: Path) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clipflow-train_texture_clip")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.rename(path)


PREPROCESSOR = {
    "crop_size": IMAGE_SIZE,
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": IMAGE_SIZE,
}


# The rules the preprocessor config alone does not fix (clipflow would give a bare Hugging Face config
# transformers' floor crop): those of texture_clip_common.resize_crop, which the model was trained with.
CLIPFLOW_INFO = {
    "format": "clipflow-export/1",
    "preprocess": {
        "crop_rounding": "half_even",
        "transparency": "drop",
        "reference": "scripts/texture_clip_common.py resize_crop (convert('RGB'), round-half-even center crop)",
    },
}


def write_model_dir(p: dict, table: np.ndarray, out: Path, tokenizer: Path, extra: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(p, table, out / "onnx")
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    write_json(out / "preprocessor_config.json", PREPROCESSOR)
    write_json(out / "clipflow.json", CLIPFLOW_INFO)
    write_json(out / "training.json", extra)


def write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.rename(path)


def check_export(p: dict, table: np.ndarray, out: Path, tokenizer: ClipTokenizer, images: np.ndarray, texts: list[str]) -> float:
    """Max abs difference between the JAX model and the exported ONNX on a few inputs."""
    import jax.numpy as jnp
    import onnxruntime as ort

    vision, text = make_model()
    x = normalize(images)
    ids, mask = tokenizer(texts)
    want_v = np.asarray(vision(p, jnp.asarray(x.transpose(0, 2, 3, 1))))
    want_t = np.asarray(text(p, jnp.asarray(table[ids]), jnp.asarray(mask), jnp.asarray(ids.argmax(1))))
    sv = ort.InferenceSession(str(out / "onnx" / "vision_model.onnx"), providers=["CPUExecutionProvider"])
    st = ort.InferenceSession(str(out / "onnx" / "text_model.onnx"), providers=["CPUExecutionProvider"])
    got_v = sv.run(["image_embeds"], {"pixel_values": x})[0]
    got_t = st.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0]
    # EOS padding (as Hugging Face pads CLIP) must give the same text embeddings.
    ids_eos = np.where(mask == 1, ids, EOS)
    got_t2 = st.run(["text_embeds"], {"input_ids": ids_eos, "attention_mask": mask})[0]
    return float(max(np.abs(got_v - want_v).max(), np.abs(got_t - want_t).max(), np.abs(got_t2 - got_t).max()))


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="output folder of `clipflow synth textures` (Parquet layout)")
    ap.add_argument("--out", default=str(REPO / "models" / "texture-clip"))
    ap.add_argument("--baseline-out", default=str(REPO / "models" / "texture-baseline"))
    ap.add_argument("--tokenizer", default=str(REPO / "data" / "clip" / "tokenizer.json"))
    ap.add_argument("--cache", default="/tmp/texture-clip-cache", help="decoded-crop cache folder ('' for none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--max-steps", type=int, default=0, help="stop early (for timing)")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import optax

    t0 = time.time()
    data = load_dataset(args.data, IMAGE_SIZE, args.cache or None)
    manifest = synth_manifest(args.data)
    n = len(data["label"])
    print(f"loaded {n} images in {time.time() - t0:.0f} s", flush=True)
    rng = np.random.default_rng(args.seed)
    sampler = CaptionSampler(data, manifest["caption_templates"], rng)
    tokenizer = ClipTokenizer(args.tokenizer)

    # Vocabulary: every id of every text the sampler can produce, and the DTD prompts.
    vocab = sorted({i for t in sampler.all_texts() for i in tokenizer.ids(t)})
    table = np.zeros(EOS + 1, dtype=np.int32)  # 0 = UNK row
    table[np.array(vocab)] = np.arange(1, len(vocab) + 1, dtype=np.int32)
    dtd_unk = sorted({i for c in sampler.classes for t in DTD_TEMPLATES for i in tokenizer.ids(t.format(c=c)) if table[i] == 0})
    print(f"vocabulary: {len(vocab)} CLIP ids (+ UNK); DTD prompt ids outside it: {dtd_unk}", flush=True)

    params0 = init_params(args.seed, len(vocab) + 1)
    params = jax.tree_util.tree_map(jnp.asarray, params0)
    vision, text = make_model()

    steps_per_epoch = n // args.batch
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, args.warmup, max(total, args.warmup + 1), args.lr * 0.02)
    decay_mask = jax.tree_util.tree_map(lambda a: a.ndim >= 2, params)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, weight_decay=args.wd, mask=decay_mask))
    opt_state = opt.init(params)

    def loss_fn(p, x, rows, mask, eos_pos, match):
        zi = vision(p, x)
        zt = text(p, rows, mask, eos_pos)
        zi = zi / jnp.linalg.norm(zi, axis=-1, keepdims=True)
        zt = zt / jnp.linalg.norm(zt, axis=-1, keepdims=True)
        logits = jnp.exp(jnp.minimum(p["logit_scale"], math.log(100.0))) * zt @ zi.T  # [text, image]
        tgt_t = match / match.sum(1, keepdims=True)
        tgt_i = match.T / match.T.sum(1, keepdims=True)
        lt = -(tgt_t * jax.nn.log_softmax(logits, axis=1)).sum(1).mean()
        li = -(tgt_i * jax.nn.log_softmax(logits.T, axis=1)).sum(1).mean()
        return (lt + li) / 2

    @jax.jit
    def step(p, s, x, rows, mask, eos_pos, match):
        loss, g = jax.value_and_grad(loss_fn)(p, x, rows, mask, eos_pos, match)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    images = data["images"]
    log = []
    t_train = time.time()
    it = 0
    done = False
    for epoch in range(args.epochs):
        perm = rng.permutation(n)
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            img = images[idx].astype(np.float32) / 255.0
            flip = rng.random(len(idx))
            img[flip < 0.25] = img[flip < 0.25, :, ::-1]
            img[(flip >= 0.25) & (flip < 0.5)] = img[(flip >= 0.25) & (flip < 0.5), ::-1]
            noisy = rng.random(len(idx)) < 0.5
            sigma = (rng.random(len(idx)) * 0.12 * noisy).astype(np.float32)[:, None, None, None]
            img = np.clip(img + rng.standard_normal(img.shape, dtype=np.float32) * sigma, 0.0, 1.0)
            x = ((img - MEAN) / STD).astype(np.float32)
            texts, named = sampler.sample(idx)
            ids, mask = tokenizer(texts)
            ids, mask = ids[:, :TRAIN_LEN], mask[:, :TRAIN_LEN]
            assert (ids == EOS).any(1).all(), "a caption is longer than TRAIN_LEN"
            rows = table[ids]
            inner = (mask == 1) & (ids != BOS) & (ids != EOS)
            rows = np.where(inner & (rng.random(rows.shape) < 0.05), 0, rows)  # word dropout to UNK
            attr = sampler.attr[idx]
            match = np.ones((len(idx), len(idx)), dtype=bool)
            for a in range(4):
                col = named[:, a][:, None]
                match &= (col < 0) | (col == attr[:, a][None, :])
            params, opt_state, loss = step(
                params, opt_state, jnp.asarray(x), jnp.asarray(rows), jnp.asarray(mask), jnp.asarray(ids.argmax(1)), jnp.asarray(match, dtype=jnp.float32)
            )
            it += 1
            if it % 25 == 0 or it == 1:
                lv = float(loss)
                log.append({"step": it, "epoch": epoch, "loss": round(lv, 4), "seconds": round(time.time() - t_train, 1)})
                print(f"step {it}/{total} epoch {epoch} loss {lv:.4f} scale {float(jnp.exp(params['logit_scale'])):.1f} {time.time() - t_train:.0f}s", flush=True)
            if it >= total:
                done = True
                break
        if done:
            break
    train_seconds = time.time() - t_train
    print(f"trained {it} steps in {train_seconds:.0f} s", flush=True)

    params_np = jax.tree_util.tree_map(np.asarray, params)
    common = {
        "data": {"generator": manifest["generator"], "seed": manifest["seed"], "per_class": manifest["per_class"], "images": n, "size": manifest["size"]},
        "architecture": {"image_size": IMAGE_SIZE, "embed": EMBED, "width": WIDTH, "heads": HEADS, "layers": LAYERS, "convs": CONVS, "vocab_ids": vocab},
        "init_seed": args.seed,
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "numpy": np.__version__},
    }
    extra = dict(common, trained=True, steps=it, epochs=args.epochs, batch=args.batch, lr=args.lr, wd=args.wd, warmup=args.warmup,
                 train_seconds=round(train_seconds, 1), logit_scale=float(np.exp(params_np["logit_scale"])), loss_log=log,
                 command=" ".join(["scripts/train_texture_clip.py"] + sys.argv[1:]))
    out = Path(args.out)
    write_model_dir(params_np, table, out, Path(args.tokenizer), extra)
    base = Path(args.baseline_out)
    write_model_dir(params0, table, base, Path(args.tokenizer), dict(common, trained=False, note="random initialisation of the texture-clip architecture, never trained"))
    probe = data["images"][:8]
    texts = [data["caption"][i] for i in range(8)]
    for d, pp in ((out, params_np), (base, params0)):
        diff = check_export(jax.tree_util.tree_map(jnp.asarray, pp), table, d, tokenizer, probe, texts)
        print(f"{d}: ONNX vs JAX max abs diff {diff:.2e}", flush=True)
        assert diff < 1e-3, diff
    print(f"wrote {out} and {base} in {time.time() - t0:.0f} s total", flush=True)


if __name__ == "__main__":
    main()
