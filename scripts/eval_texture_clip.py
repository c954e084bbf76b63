"""Evaluate the embedded texture CLIP (and its untrained baseline) on held-out generated data.

Why: the model card's figures must come from a script anyone can rerun. Everything here is
independent of clipflow's Rust code: images are preprocessed by the PIL reference of OpenAI's CLIP
transform and texts tokenised by the `tokenizers` library on the model's tokenizer.json
(scripts/texture_clip_common.py), and the ONNX files are run with onnxruntime. Definitions follow
DESIGN.md (CLIP_benchmark):

- zero-shot: per class, embed the CLIP paper's 8 DTD templates, normalise each, average,
  renormalise; predict argmax of cosine; top-1, top-5 and mean per-class recall, over all images;
- retrieval: caption -> image (and image -> caption) recall@K over the first 1,000 images, each
  image's own synth caption being its one positive;
- robustness: zero-shot top-1 with Gaussian noise of sigma in [0, 1] pixel units added after
  resize + crop (before mean/std), clamped to [0, 1], noise seeded per sigma;
- word order: how often an image is closer to its caption than to the same caption with the two
  colours swapped (chance 0.5), or with its foreground colour replaced by another (chance 0.5).

The held-out data is seed 2000 (training used seed 1000):
  cargo run --release -- synth textures --out /tmp/texture-eval --per-class 100 --seed 2000 --layout parquet
  .venv/bin/python scripts/eval_texture_clip.py --data /tmp/texture-eval
With --synth BIN and a missing --data folder, the script runs `BIN synth textures ...` itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from texture_clip_common import DTD_TEMPLATES, IMAGE_SIZE, ClipTokenizer, l2n, load_dataset, normalize  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SIGMAS = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8]
COLOURS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray"]


class Model:
    def __init__(self, folder: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        onnx_dir = folder / "onnx" if (folder / "onnx").is_dir() else folder
        self.vision = ort.InferenceSession(str(onnx_dir / "vision_model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.text = ort.InferenceSession(str(onnx_dir / "text_model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = ClipTokenizer(folder / "tokenizer.json")
        cfg = json.loads((folder / "preprocessor_config.json").read_text())
        self.size = cfg["crop_size"] if isinstance(cfg["crop_size"], int) else cfg["crop_size"]["height"]
        self.name = folder.name

    def images(self, x01: np.ndarray) -> np.ndarray:
        out = [self.vision.run(["image_embeds"], {"pixel_values": normalize(x01[i : i + 256])})[0] for i in range(0, len(x01), 256)]
        return l2n(np.concatenate(out))

    def texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), 256):
            ids, mask = self.tokenizer(texts[i : i + 256])
            out.append(self.text.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0])
        return l2n(np.concatenate(out))


def recall_at(scores: np.ndarray, k: int) -> float:
    """scores[q, item], the positive of query q is item q."""
    own = scores[np.arange(len(scores)), np.arange(len(scores))]
    rank = (scores > own[:, None]).sum(1)
    return float((rank < k).mean())


def evaluate(model: Model, data: dict, n_retrieval: int) -> dict:
    classes = sorted(set(data["label"]))
    labels = np.array([classes.index(v) for v in data["label"]])
    crops = data["images"].astype(np.float32) / 255.0
    cls = []
    for c in classes:
        e = model.texts([t.format(c=c) for t in DTD_TEMPLATES])
        cls.append(l2n(e.mean(0)))
    cls = np.stack(cls)

    def zero_shot(img_emb):
        logits = 100.0 * img_emb @ cls.T
        top = np.argsort(-logits, axis=1)
        top1 = float((top[:, 0] == labels).mean())
        top5 = float((top[:, :5] == labels[:, None]).any(1).mean())
        per_class = float(np.mean([(top[labels == i, 0] == i).mean() for i in range(len(classes))]))
        return top1, top5, per_class, top[:, 0]

    res: dict = {"model": model.name, "images": len(labels), "classes": len(classes)}
    clean = model.images(crops)
    top1, top5, pcr, pred = zero_shot(clean)
    res["zero_shot"] = {"top1": top1, "top5": top5, "mean_per_class_recall": pcr}
    conf = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(conf, (labels, pred), 1)
    res["confusions"] = sorted(
        ([classes[i], classes[j], int(conf[i, j])] for i in range(len(classes)) for j in range(len(classes)) if i != j and conf[i, j] > 0),
        key=lambda r: -r[2],
    )[:8]

    n = min(n_retrieval, len(labels))
    caps = data["caption"][:n]
    t = model.texts(caps)
    s = t @ clean[:n].T
    res["retrieval"] = {
        "n": n,
        "text_to_image": {f"R@{k}": recall_at(s, k) for k in (1, 5, 10)},
        "image_to_text": {f"R@{k}": recall_at(s.T, k) for k in (1, 5, 10)},
    }

    # Word order and colour words.
    rng = np.random.default_rng(7)
    swapped, recoloured = [], []
    for i in range(n):
        f, b = data["fg_color"][i], data["bg_color"][i]
        swapped.append(caps[i].replace(f, "\0").replace(b, f).replace("\0", b))
        other = rng.choice([c for c in COLOURS if c not in (f, b)])
        recoloured.append(caps[i].replace(f, other))
    own = (t * clean[:n]).sum(1)
    res["word_order"] = {
        "caption_beats_colour_swapped": float((own > (model.texts(swapped) * clean[:n]).sum(1)).mean()),
        "caption_beats_other_foreground": float((own > (model.texts(recoloured) * clean[:n]).sum(1)).mean()),
    }

    res["noise"] = {}
    for k, sigma in enumerate(SIGMAS):
        nrng = np.random.default_rng(1000 + k)
        noisy = np.clip(crops + nrng.standard_normal(crops.shape, dtype=np.float32) * np.float32(sigma), 0.0, 1.0)
        res["noise"][str(sigma)] = zero_shot(model.images(noisy))[0]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/texture-eval", help="output folder of `clipflow synth textures` (seed 2000)")
    ap.add_argument("--synth", default="", help="clipflow binary to generate --data when it is missing")
    ap.add_argument("--models", nargs="+", default=[str(REPO / "models" / "texture-clip"), str(REPO / "models" / "texture-baseline")])
    ap.add_argument("--retrieval-n", type=int, default=1000)
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()

    data_dir = Path(args.data)
    if not data_dir.exists():
        if not args.synth:
            raise SystemExit(f"{data_dir} is missing: generate it with\n  clipflow synth textures --out {data_dir} --per-class 100 --seed 2000 --layout parquet")
        subprocess.run([args.synth, "synth", "textures", "--out", str(data_dir), "--per-class", "100", "--seed", "2000", "--layout", "parquet"], check=True)
    t0 = time.time()
    data = load_dataset(data_dir, IMAGE_SIZE)
    manifest = json.loads((data_dir / "synth.json").read_text()) if (data_dir / "synth.json").exists() else {}
    print(f"data: {data_dir} (seed {manifest.get('seed', '?')}, {len(data['label'])} images)")
    results = []
    for m in args.models:
        model = Model(Path(m))
        r = evaluate(model, data, args.retrieval_n)
        results.append(r)
        zs, rt = r["zero_shot"], r["retrieval"]
        print(f"\n== {r['model']} ({m})")
        print(f"zero-shot over {r['classes']} classes, {r['images']} images, DTD templates: top-1 {zs['top1']:.3f}  top-5 {zs['top5']:.3f}  mean per-class recall {zs['mean_per_class_recall']:.3f}")
        print(f"retrieval over {rt['n']} images: caption->image R@1 {rt['text_to_image']['R@1']:.3f} R@5 {rt['text_to_image']['R@5']:.3f} R@10 {rt['text_to_image']['R@10']:.3f}"
              f" | image->caption R@1 {rt['image_to_text']['R@1']:.3f} R@5 {rt['image_to_text']['R@5']:.3f} R@10 {rt['image_to_text']['R@10']:.3f}")
        wo = r["word_order"]
        print(f"word order: caption beats colour-swapped caption {wo['caption_beats_colour_swapped']:.3f}, beats other-foreground caption {wo['caption_beats_other_foreground']:.3f} (chance 0.5)")
        print("zero-shot top-1 vs noise sigma: " + "  ".join(f"{s}: {v:.3f}" for s, v in r["noise"].items()))
        print("top confusions (true, predicted, count): " + ", ".join(f"{a}->{b} {c}" for a, b, c in r["confusions"]))
    print(f"\n({time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": str(data_dir), "seed": manifest.get("seed"), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
