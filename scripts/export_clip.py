"""Exports a real CLIP to ONNX in the layout clipflow reads (Xenova: onnx/vision_model.onnx +
onnx/text_model.onnx, tokenizer.json, preprocessor_config.json). For users with internet and
PyTorch; clipflow itself never downloads anything.

    pip install torch transformers open_clip_torch onnx
    python scripts/export_clip.py --hf openai/clip-vit-base-patch32 --out models/clip-vit-b32
    python scripts/export_clip.py --open-clip ViT-B-32 --pretrained laion2b_s34b_b79k --out models/laion-b32

Outputs are the un-normalised projected embeddings (`image_embeds`, `text_embeds`); clipflow
normalises them. Text inputs are `input_ids` and `attention_mask`, [batch, 77], int64.
"""
import argparse
import json
import shutil
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


class Vision(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, pixel_values):
        return self.fn(pixel_values)


class Text(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, input_ids, attention_mask):
        return self.fn(input_ids, attention_mask)


def export(vision, text, size, out: Path):
    onnx_dir = out / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    pixels = torch.zeros(2, 3, size, size)
    ids = torch.zeros(2, 77, dtype=torch.long)
    ids[:, 0], ids[:, 1] = 49406, 49407
    mask = torch.zeros(2, 77, dtype=torch.long)
    mask[:, :2] = 1
    torch.onnx.export(vision, (pixels,), onnx_dir / "vision_model.onnx", input_names=["pixel_values"],
                      output_names=["image_embeds"], dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                      opset_version=17)
    torch.onnx.export(text, (ids, mask), onnx_dir / "text_model.onnx", input_names=["input_ids", "attention_mask"],
                      output_names=["text_embeds"],
                      dynamic_axes={"input_ids": {0: "batch"}, "attention_mask": {0: "batch"}, "text_embeds": {0: "batch"}},
                      opset_version=17)


def main():
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--hf", help="a transformers CLIP checkpoint, e.g. openai/clip-vit-base-patch32")
    src.add_argument("--open-clip", help="an open_clip architecture, e.g. ViT-B-32")
    ap.add_argument("--pretrained", help="open_clip pretrained tag, e.g. laion2b_s34b_b79k")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if a.hf:
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(a.hf).eval()
            processor = CLIPProcessor.from_pretrained(a.hf)
            processor.save_pretrained(a.out)  # tokenizer.json + preprocessor_config.json
            size = processor.image_processor.crop_size["height"]
            export(Vision(lambda p: model.get_image_features(pixel_values=p)),
                   Text(lambda i, m: model.get_text_features(input_ids=i, attention_mask=m)), size, a.out)
        else:
            import open_clip

            model, _, _ = open_clip.create_model_and_transforms(a.open_clip, pretrained=a.pretrained)
            model.eval()
            cfg = model.visual.preprocess_cfg
            size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
            (a.out / "preprocessor_config.json").write_text(json.dumps({
                "size": size, "crop_size": size, "do_center_crop": True, "do_resize": True,
                "do_normalize": True, "image_mean": list(cfg["mean"]), "image_std": list(cfg["std"]),
                "resample": 3,
            }, indent=2))
            # open_clip's OpenAI-style models share CLIP's BPE vocabulary.
            shutil.copy(REPO / "data" / "clip" / "tokenizer.json", a.out / "tokenizer.json")
            export(Vision(lambda p: model.encode_image(p)), Text(lambda i, m: model.encode_text(i)), size, a.out)
    print(f"exported to {a.out}; check it with: clipflow validate (a study naming it) or clipflow inspect tokens --model {a.out} 'a photo'")


if __name__ == "__main__":
    main()
