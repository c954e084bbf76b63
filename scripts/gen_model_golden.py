"""Write `tests/fixtures/golden/model_outputs.json`: what the fixture models output for fixture inputs.

Why: end-to-end tests of clipflow's encode stage. For a few fixture images and a few texts (through the
reference token ids in tests/fixtures/golden/tokens.json) this records, for each model layout in
tests/fixtures/models/, the raw model output and the L2-normalised embedding clipflow should store.
Images go through the preprocessing each folder's rules give: OpenAI CLIP's for xenova/ and
fastembed/, which record it in their clipflow.json (the reference tensors in
tests/fixtures/golden/preprocess/*.npy), transformers' for optimum/, a bare Hugging Face folder
(the same Pillow pipeline with the center crop at floor((size - crop) / 2), from
scripts/gen_preprocess_golden.py).
A Rust test that runs image file -> preprocess -> ORT -> normalise (or text -> tokens -> ORT ->
normalise) can compare with these to ~1e-5.

attention_mask is 1 for the first `attention_len` positions (BOS..EOS), 0 after: built from the length,
not from ids != 0 (id 0 is also the token "!"; see the text "bang_is_id_0").
For texts whose plain tokenizer.json ids differ from OpenAI's ("differs" in tokens.json), the
embedding from the "hf_ids" is recorded as well.

Rerun from the repo root, after gen_preprocess_golden.py, gen_token_golden.py, make_fixture_models.py:
  .venv/bin/python scripts/gen_model_golden.py
Needs numpy, Pillow and onnxruntime (requirements-test.txt). Deterministic (no randomness; CPU provider, one thread).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "fixtures" / "models"
GOLDEN = REPO / "tests" / "fixtures" / "golden"
OUT = GOLDEN / "model_outputs.json"

IMAGES = ["landscape.jpg", "portrait.jpg", "rgba.png", "odd_offset_wide.png", "gray.jpg"]
TEXTS = ["plain", "bang_is_id_0", "curly_quotes", "fullwidth", "long_caption", "empty"]

# crop: "half_even" (OpenAI, recorded in the folder's clipflow.json) or "floor" (transformers' rule).
LAYOUTS = {
    "xenova": {"vision": "xenova/onnx/vision_model.onnx", "text": "xenova/onnx/text_model.onnx", "normalised": False,
               "crop": "half_even"},
    "optimum": {"vision": "optimum/model.onnx", "text": "optimum/model.onnx", "normalised": True, "crop": "floor"},
    "fastembed": {"vision": "fastembed/vision/model.onnx", "text": "fastembed/text/model.onnx", "normalised": False,
                  "crop": "half_even"},
}


def floor_crop_pixels() -> np.ndarray:
    """The images as transformers' image processors preprocess them for these configs."""
    import sys

    from PIL import Image

    sys.path.insert(0, str(REPO / "scripts"))
    import gen_preprocess_golden as ref

    out = []
    for name in IMAGES:
        with Image.open(REPO / "tests" / "fixtures" / "images" / name) as img:
            img.load()
            out.append(ref.preprocess(img, floor_crop=True))
    return np.concatenate(out)


def session(rel: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODELS / rel), opts, providers=["CPUExecutionProvider"])


def normalise(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return (x64 / np.linalg.norm(x64, axis=1, keepdims=True)).astype(np.float32)


def rounded(rows: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in rows.astype(np.float32)]


def run(sess: ort.InferenceSession, out: str, feed: dict) -> np.ndarray:
    names = {i.name for i in sess.get_inputs()}
    # the single-file optimum model needs both towers' inputs; feed a dummy for the unused one
    if "input_ids" in names and "input_ids" not in feed:
        ids = np.zeros((1, 77), np.int64)
        ids[0, :2] = [49406, 49407]
        feed = {**feed, "input_ids": ids, "attention_mask": (np.arange(77) < 2).astype(np.int64)[None]}
    if "pixel_values" in names and "pixel_values" not in feed:
        feed = {**feed, "pixel_values": np.zeros((1, 3, 224, 224), np.float32)}
    return sess.run([out], feed)[0]


def main() -> None:
    tokens = {r["name"]: r for r in json.loads((GOLDEN / "tokens.json").read_text(encoding="utf-8"))}
    pix = np.concatenate([np.load(GOLDEN / "preprocess" / (Path(name).name.replace(".", "_") + ".npy")) for name in IMAGES])

    text_rows = []  # (label, name, source, ids, attention_len)
    for name in TEXTS:
        r = tokens[name]
        text_rows.append((name, "ids", r["ids"], r["attention_len"]))
        if r["differs"]:
            hf_len = r["hf_ids"].index(49407) + 1
            text_rows.append((name, "hf_ids", r["hf_ids"], hf_len))
    ids = np.array([row[2] for row in text_rows], dtype=np.int64)
    mask = (np.arange(77)[None, :] < np.array([[row[3]] for row in text_rows])).astype(np.int64)

    result = {
        "about": "outputs of the random-weight fixture models (scripts/gen_model_golden.py); "
        "'embedding' is L2-normalised, 'raw' is the model output as is",
        "images": IMAGES,
        "texts": [{"name": n, "source": s, "attention_len": a} for n, s, _, a in text_rows],
        "layouts": {},
    }
    pixels = {"half_even": pix, "floor": floor_crop_pixels()}
    for layout, spec in LAYOUTS.items():
        v = run(session(spec["vision"]), "image_embeds", {"pixel_values": pixels[spec["crop"]]})
        t = run(session(spec["text"]), "text_embeds", {"input_ids": ids, "attention_mask": mask})
        if spec["normalised"]:
            assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
            assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
        result["layouts"][layout] = {
            "model_outputs_normalised": spec["normalised"],
            "crop_rounding": spec["crop"],
            "image": [
                {"image": name, "raw": raw, "embedding": emb}
                for name, raw, emb in zip(IMAGES, rounded(v), rounded(normalise(v)))
            ],
            "text": [
                {"name": n, "source": s, "raw": raw, "embedding": emb}
                for (n, s, _, _), raw, emb in zip(text_rows, rounded(t), rounded(normalise(t)))
            ],
            # CLIP-style scores over normalised vectors, rows = texts, columns = images
            "logits_per_text": rounded(100.0 * normalise(t) @ normalise(v).T),
        }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} B): {len(IMAGES)} images, {len(text_rows)} texts, {len(LAYOUTS)} layouts")


if __name__ == "__main__":
    main()
