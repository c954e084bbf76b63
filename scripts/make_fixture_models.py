"""Build tiny random-weight CLIP-shaped ONNX models in the three folder layouts clipflow accepts.

Why: the Rust tests need real ONNX files with the real input/output names (DESIGN.md, "Model
directories") without downloading 600 MB models. These are small (< 300 kB each), deterministic
(seeded numpy weights), opset 17, with a dynamic batch axis, and compute something non-trivial so that
a wrong input (layout, preprocessing, token ids, attention mask) changes the output:

  vision  pixel_values [B,3,224,224] -> AveragePool 32x32/32 -> [B,3,7,7] -> Flatten(147)
          -> Gemm 64 -> Tanh -> Gemm 32 = image_embeds [B,32]
  text    input_ids [B,77] -> Mod 4096 (hashed rows) -> Gather table[4096,16] + positional[77,16]
          -> causal running mean (CumSum / position) -> Tanh = hidden [B,77,16]
          pooled = concat(hidden at argmax(input_ids) (the EOS, as CLIP does),
                          mean of hidden over attention_mask)            [B,32]
          -> Gemm 64 -> Tanh -> Gemm 32 = text_embeds [B,32]

Layouts written under tests/fixtures/models/ (each seed distinct, so the layouts disagree):
  xenova/     onnx/vision_model.onnx (image_embeds, last_hidden_state), onnx/text_model.onnx
              (text_embeds, last_hidden_state); embeds NOT normalised; legacy preprocessor_config
              (size: 224, crop_size: 224).
  optimum/    model.onnx: input_ids, attention_mask, pixel_values -> logits_per_image,
              logits_per_text, text_embeds, image_embeds (embeds L2-normalised,
              logits_per_text = 100 * text . image, logits_per_image its transpose);
              text and image batch sizes are independent axes; new-form preprocessor_config.
  fastembed/  vision/model.onnx (+ preprocessor_config.json), text/model.onnx (+ tokenizer.json).
Every folder that has a text model gets a copy of data/clip/tokenizer.json.

Preprocessing rules: the goldens of these models' images (tests/fixtures/golden/preprocess/*.npy, and
model_outputs.json for xenova and fastembed) follow OpenAI CLIP's preprocessing, whose center crop
rounds half to even and whose convert("RGB") drops transparency, so xenova/ and fastembed/ record that
provenance in a clipflow.json as scripts/export_clip.py does for an open_clip export. optimum/ stays
as optimum writes a folder (no clipflow.json): clipflow gives it transformers' rule (floor crop), which
model_outputs.json's optimum entries follow (scripts/gen_model_golden.py).

Rerun from the repo root (after build_clip_tokenizer.py):
  .venv/bin/python scripts/make_fixture_models.py
Needs onnx + onnxruntime (requirements-dev.txt); runs each model once in onnxruntime as a check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "models"
TOKENIZER = REPO / "data" / "clip" / "tokenizer.json"

OPSET = 17
EMBED = 32
HIDDEN = 64
TOK_DIM = 16
TOK_ROWS = 4096
CONTEXT = 77
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]

SEEDS = {"xenova": 101, "optimum": 202, "fastembed": 303}

OPENAI_RULES = {
    "format": "clipflow-export/1",
    "preprocess": {
        "crop_rounding": "half_even",
        "transparency": "drop",
        "reference": "OpenAI CLIP's _transform (torchvision CenterCrop, Pillow convert('RGB')), "
        "the reference of these fixtures' goldens",
    },
}

LEGACY_PREPROCESSOR = {
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
}
NEW_PREPROCESSOR = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": MEAN,
    "image_processor_type": "CLIPImageProcessor",
    "image_std": STD,
    "processor_class": "CLIPProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}


class Builder:
    """Collects nodes and initialisers; names are prefixed so two towers can share one graph."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, name: str, shape: tuple[int, ...], scale: float) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    # ---------------------------------------------------------------------------------------------
    def vision(self, pixel_values: str, p: str = "vision.") -> tuple[str, str]:
        """Returns (embeds [B,32], last_hidden_state [B,49,3])."""
        pooled = self.op("AveragePool", [pixel_values], p + "pooled", kernel_shape=[32, 32], strides=[32, 32])
        flat = self.op("Flatten", [pooled], p + "flat", axis=1)
        w1 = self.weight(p + "fc1.weight", (147, HIDDEN), 1.5 / np.sqrt(147))
        b1 = self.weight(p + "fc1.bias", (HIDDEN,), 0.1)
        h = self.op("Tanh", [self.op("Gemm", [flat, w1, b1], p + "fc1")], p + "act")
        w2 = self.weight(p + "proj.weight", (HIDDEN, EMBED), 3.0 / np.sqrt(HIDDEN))
        b2 = self.weight(p + "proj.bias", (EMBED,), 0.1)
        embeds = self.op("Gemm", [h, w2, b2], p + "embeds")
        shape = self.const(p + "grid_shape", np.array([0, 3, 49], dtype=np.int64))
        grid = self.op("Reshape", [pooled, shape], p + "grid")
        hidden = self.op("Transpose", [grid], p + "last_hidden_state", perm=[0, 2, 1])
        return embeds, hidden

    def text(self, input_ids: str, attention_mask: str, p: str = "text.") -> tuple[str, str]:
        """Returns (embeds [B,32], last_hidden_state [B,77,16])."""
        rows = self.op("Mod", [input_ids, self.const(p + "rows", np.array(TOK_ROWS, dtype=np.int64))], p + "row_ids")
        table = self.weight(p + "token_embedding", (TOK_ROWS, TOK_DIM), 1.0)
        emb = self.op("Gather", [table, rows], p + "tok_emb", axis=0)
        pos = self.weight(p + "position_embedding", (CONTEXT, TOK_DIM), 0.5)
        x = self.op("Add", [emb, pos], p + "x")
        csum = self.op("CumSum", [x, self.const(p + "seq_axis", np.array(1, dtype=np.int64))], p + "cumsum")
        inv = self.const(p + "inv_count", (1.0 / np.arange(1, CONTEXT + 1, dtype=np.float32))[:, None])
        hidden = self.op("Tanh", [self.op("Mul", [csum, inv], p + "running_mean")], p + "last_hidden_state")
        # CLIP pooling: hidden state at the EOS token = position of the largest id (first one on ties)
        eos = self.op("ArgMax", [input_ids], p + "eos_pos", axis=1, keepdims=0)
        eos_idx = self.op("Unsqueeze", [eos, self.const(p + "ax1", np.array([1], dtype=np.int64))], p + "eos_idx")
        at_eos = self.op("GatherND", [hidden, eos_idx], p + "at_eos", batch_dims=1)
        # masked mean over attention_mask
        m = self.op("Cast", [attention_mask], p + "mask_f", to=TensorProto.FLOAT)
        m3 = self.op("Unsqueeze", [m, self.const(p + "ax2", np.array([2], dtype=np.int64))], p + "mask3")
        summed = self.op(
            "ReduceSum", [self.op("Mul", [hidden, m3], p + "masked"), p + "ax1"], p + "masked_sum", keepdims=0
        )
        count = self.op("ReduceSum", [m, p + "ax1"], p + "count", keepdims=1)
        count = self.op("Max", [count, self.const(p + "one", np.array(1.0, dtype=np.float32))], p + "count1")
        mean = self.op("Div", [summed, count], p + "masked_mean")
        pooled = self.op("Concat", [at_eos, mean], p + "pooled", axis=1)
        w1 = self.weight(p + "fc1.weight", (2 * TOK_DIM, HIDDEN), 2.0 / np.sqrt(2 * TOK_DIM))
        b1 = self.weight(p + "fc1.bias", (HIDDEN,), 0.1)
        h = self.op("Tanh", [self.op("Gemm", [pooled, w1, b1], p + "fc1")], p + "act")
        w2 = self.weight(p + "proj.weight", (HIDDEN, EMBED), 3.0 / np.sqrt(HIDDEN))
        b2 = self.weight(p + "proj.bias", (EMBED,), 0.1)
        return self.op("Gemm", [h, w2, b2], p + "embeds"), hidden

    def l2_normalise(self, x: str, out: str) -> str:
        norm = self.op("ReduceL2", [x], x + ".norm", axes=[1], keepdims=1)
        return self.op("Div", [x, norm], out)

    def identity(self, x: str, out: str) -> str:
        return self.op("Identity", [x], out)

    def model(self, name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clipflow-fixtures")
        m.ir_version = 8  # readable by every onnxruntime >= 1.10
        m.doc_string = doc
        onnx.checker.check_model(m, full_check=True)
        return m


def pixel_input(batch: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [batch, 3, 224, 224])


def text_inputs(batch: str) -> list[onnx.ValueInfoProto]:
    return [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, CONTEXT]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, CONTEXT]),
    ]


def out_info(name: str, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


DOC = "clipflow test fixture: random weights, NOT a real CLIP model (scripts/make_fixture_models.py)"


def vision_model(seed: int, with_hidden: bool) -> onnx.ModelProto:
    b = Builder(seed)
    embeds, hidden = b.vision("pixel_values")
    outs = [out_info("image_embeds", ["batch_size", EMBED])]
    b.identity(embeds, "image_embeds")
    if with_hidden:
        b.identity(hidden, "last_hidden_state")
        outs.append(out_info("last_hidden_state", ["batch_size", 49, 3]))
    return b.model("vision", [pixel_input("batch_size")], outs, DOC)


def text_model(seed: int, with_hidden: bool) -> onnx.ModelProto:
    b = Builder(seed)
    embeds, hidden = b.text("input_ids", "attention_mask")
    outs = [out_info("text_embeds", ["batch_size", EMBED])]
    b.identity(embeds, "text_embeds")
    if with_hidden:
        b.identity(hidden, "last_hidden_state")
        outs.append(out_info("last_hidden_state", ["batch_size", CONTEXT, TOK_DIM]))
    return b.model("text", text_inputs("batch_size"), outs, DOC)


def optimum_model(seed: int) -> onnx.ModelProto:
    b = Builder(seed)
    # same tower order and seeds stream as the split models: text first, then vision
    t_raw, _ = b.text("input_ids", "attention_mask")
    v_raw, _ = b.vision("pixel_values")
    t = b.l2_normalise(t_raw, "text_embeds")
    v = b.l2_normalise(v_raw, "image_embeds")
    vt = b.op("Transpose", [v], "image_embeds.T", perm=[1, 0])
    sim = b.op("MatMul", [t, vt], "similarity")
    scale = b.const("logit_scale_exp", np.array(100.0, dtype=np.float32))
    lpt = b.op("Mul", [sim, scale], "logits_per_text")
    b.op("Transpose", [lpt], "logits_per_image", perm=[1, 0])
    inputs = text_inputs("text_batch_size") + [pixel_input("image_batch_size")]
    outputs = [
        out_info("logits_per_image", ["image_batch_size", "text_batch_size"]),
        out_info("logits_per_text", ["text_batch_size", "image_batch_size"]),
        out_info("text_embeds", ["text_batch_size", EMBED]),
        out_info("image_embeds", ["image_batch_size", EMBED]),
    ]
    return b.model("clip", inputs, outputs, DOC)


def save(model: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def smoke_test(root: Path) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    px = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
    ids = np.zeros((3, CONTEXT), dtype=np.int64)
    for i, n in enumerate([5, 9, 77]):
        ids[i, :n] = rng.integers(1, 49406, n)
        ids[i, 0], ids[i, n - 1] = 49406, 49407
    mask = (np.arange(CONTEXT)[None] < np.array([[5], [9], [77]])).astype(np.int64)
    for path in sorted(p for layout in SEEDS for p in (root / layout).rglob("*.onnx")):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        feed = {}
        if "pixel_values" in names:
            feed["pixel_values"] = px
        if "input_ids" in names:
            feed["input_ids"], feed["attention_mask"] = ids, mask
        outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        desc = ", ".join(f"{k}{list(v.shape)}" for k, v in outs.items())
        for k in ("image_embeds", "text_embeds"):
            if k in outs:
                norms = np.linalg.norm(outs[k], axis=1)
                assert np.all(np.isfinite(outs[k])) and np.all(norms > 0.1), (path, k, norms)
                assert not np.allclose(outs[k][0], outs[k][1], atol=1e-3), (path, k, "rows equal")
                desc += f" |{k}|={np.round(norms, 3).tolist()}"
        print(f"  {path.relative_to(REPO)} ({path.stat().st_size} B): {desc}")
    # the attention mask must matter: same ids, different mask, different text_embeds
    sess = ort.InferenceSession(str(root / "xenova/onnx/text_model.onnx"), providers=["CPUExecutionProvider"])
    a = sess.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0]
    b = sess.run(["text_embeds"], {"input_ids": ids, "attention_mask": np.ones_like(mask)})[0]
    assert not np.allclose(a[0], b[0]) and np.allclose(a[2], b[2])


def main() -> None:
    if not TOKENIZER.exists():
        raise SystemExit(f"{TOKENIZER} missing: run scripts/build_clip_tokenizer.py first")
    for layout in SEEDS:  # only this script's folders: real/ is check_exports.py's
        if (OUT / layout).exists():
            shutil.rmtree(OUT / layout)

    x = OUT / "xenova"
    save(vision_model(SEEDS["xenova"], with_hidden=True), x / "onnx" / "vision_model.onnx")
    save(text_model(SEEDS["xenova"] + 1, with_hidden=True), x / "onnx" / "text_model.onnx")
    write_json(x / "preprocessor_config.json", LEGACY_PREPROCESSOR)
    write_json(x / "clipflow.json", OPENAI_RULES)
    shutil.copyfile(TOKENIZER, x / "tokenizer.json")

    o = OUT / "optimum"
    save(optimum_model(SEEDS["optimum"]), o / "model.onnx")
    write_json(o / "preprocessor_config.json", NEW_PREPROCESSOR)
    shutil.copyfile(TOKENIZER, o / "tokenizer.json")

    f = OUT / "fastembed"
    save(vision_model(SEEDS["fastembed"], with_hidden=False), f / "vision" / "model.onnx")
    write_json(f / "vision" / "preprocessor_config.json", NEW_PREPROCESSOR)
    save(text_model(SEEDS["fastembed"] + 1, with_hidden=False), f / "text" / "model.onnx")
    shutil.copyfile(TOKENIZER, f / "text" / "tokenizer.json")
    write_json(f / "clipflow.json", OPENAI_RULES)

    print(f"wrote models under {OUT}")
    smoke_test(OUT)
    total = sum(p.stat().st_size for layout in SEEDS for p in (OUT / layout).rglob("*") if p.is_file())
    print(f"total size of the {len(SEEDS)} layouts: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
