"""Exports a model to ONNX in a folder clipflow reads, then checks the export against PyTorch.

For users with PyTorch (and, for hub names, internet); clipflow itself never downloads anything.

    pip install torch transformers open_clip_torch onnx onnxruntime
    # CLIP or SigLIP pairs (transformers 4.x or 5.x; a hub id or a local save_pretrained folder)
    python scripts/export_clip.py --hf openai/clip-vit-base-patch32 --out models/clip-vit-b32
    python scripts/export_clip.py --hf google/siglip-base-patch16-224 --out models/siglip-b16
    # open_clip 2.x/3.x architectures with OpenAI's BPE vocabulary
    python scripts/export_clip.py --open-clip ViT-B-32 --pretrained laion2b_s34b_b79k --out models/laion-b32
    # one-tower encoders: any transformers vision or text model (DINOv2, BERT, a ResNet), torchvision
    python scripts/export_clip.py --hf facebook/dinov2-small --out models/dinov2-s
    python scripts/export_clip.py --hf bert-base-uncased --out models/bert
    python scripts/export_clip.py --hf microsoft/resnet-50 --classifier --out models/resnet50
    python scripts/export_clip.py --torchvision resnet50 --weights DEFAULT --out models/tv-resnet50

Layout written (Xenova's): onnx/vision_model.onnx and/or onnx/text_model.onnx, the tokenizer
(tokenizer.json, tokenizer_config.json), the image preprocessing (preprocessor_config.json, or
transformers 5's processor_config.json), and clipflow.json:

    {"format": "clipflow-export/1",
     "scoring": {"kind": "softmax" | "sigmoid", "logit_scale": s, "logit_bias": b},
     "preprocess": {"crop_rounding": "half_even" | "floor", "transparency": "drop" | "white",
                    "reference": "<library version and processor>", "probe": {...}},
     "towers": {"image": {"outputs": [...], "pooling": ...}, ...}, "source": {...},
     "check": {...what the self-check measured...}}

"preprocess" holds the two rules the reference libraries disagree on, measured on the library this
export was made with (what a user comparing with it in Python gets; clipflow follows them): where
the center crop starts when its margin is odd (torchvision's CenterCrop, used by open_clip and
OpenAI, rounds half to even; transformers' image processors floor) and what becomes of transparency
(Pillow's convert("RGB") drops it; transformers 5's convert_to_rgb composites it over white). The
probe runs the library's own center crop on a 7x7 image cropped to 4 (margin 3) and a 1x1 image
padded to 4 (margin -3), and its whole preprocessing on a fully transparent black image; a result
that matches neither rule exits 1. For transformers the probe uses the Pillow-based processor
(`use_fast=False` in 4.x, `backend="pil"` in 5.x; transformers 5's default torchvision backend
crops and composites the same way but resizes with torch's arithmetic, which clipflow does not
reproduce).

The scoring (exp of the model's learned logit_scale, and SigLIP's logit_bias) is also written into
each graph's ONNX metadata (`clipflow.scoring`, `clipflow.logit_scale`, `clipflow.logit_bias`), so
a graph moved without its folder keeps it; clipflow reads clipflow.json first.

Pair outputs are the un-normalised projected embeddings (`image_embeds`, `text_embeds`); clipflow
normalises them. One-tower graphs output `last_hidden_state` and `pooler_output` (or `logits` and
`features`); the study picks one with `pooling` / `output` (the script prints the YAML).

The self-check runs one batch (of a size the export never saw) through ONNX Runtime and through
PyTorch and compares every output, and for pairs compares the normalised embeddings with the
model's own forward pass (`image_embeds` / `text_embeds` of CLIPModel/SiglipModel). Any difference
beyond 1e-4 (relative) or any wrong shape exits with status 1: the script never exits 0 on a broken
export. Each graph is exported with torch.export (torch >= 2.5), else with the TorchScript
exporter, and the first that passes the check is kept (the tracer bakes transformers 5's
attention-mask code into a fixed shape; torch.export does not).
"""
from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
CLIP_TOKENIZER = REPO / "data" / "clip" / "tokenizer.json"
OPSET = 17
TOLERANCE = 1e-4
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ExportError(Exception):
    """A model or export clipflow cannot use; the message says why."""


def features(out):
    """transformers < 5 returns a tensor from get_*_features, 5 a ModelOutput whose
    pooler_output holds the projected features."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise ExportError(f"get_*_features returned {type(out).__name__} without a pooler_output tensor")


class Tower(torch.nn.Module):
    """Wraps a function of the graph inputs returning a tuple of tensors. Subclasses name the
    inputs, since the torch.export-based exporter maps dynamic shapes by signature."""

    def __init__(self, fn, owner):
        super().__init__()
        self.fn = fn
        self.owner = owner  # registers the model's parameters

    def call(self, *args):
        out = self.fn(*args)
        return out if isinstance(out, tuple) else (out,)


class Tower1(Tower):
    def forward(self, a):
        return self.call(a)


class Tower2(Tower):
    def forward(self, a, b):
        return self.call(a, b)


class Tower3(Tower):
    def forward(self, a, b, c):
        return self.call(a, b, c)


def graph(fn, owner):
    """What a Spec is built from: the function and the module owning its parameters."""
    return fn, owner


def make_tower(fn, owner, arity):
    return {1: Tower1, 2: Tower2, 3: Tower3}[arity](fn, owner)


class Spec:
    """One graph to export: module, input names/builders, output names, dynamic axes."""

    def __init__(self, tower, module, inputs, outputs, dynamic_seq=False, pooling=None):
        self.tower = tower  # "image" | "text"
        fn, owner = module
        self.module = make_tower(fn, owner, len(inputs))
        self.inputs = inputs  # names, in call order
        self.outputs = outputs
        self.dynamic_seq = dynamic_seq
        self.pooling = pooling  # what the study should say, for the printed YAML

    @property
    def file(self):
        return "vision_model.onnx" if self.tower == "image" else "text_model.onnx"


def onnx_export(spec: Spec, example: dict, path: Path, exporter: str) -> None:
    """`exporter` is "dynamo" (torch.export, the default of torch >= 2.9, which traces
    transformers 5's attention masks correctly) or "torchscript" (every torch 2.x)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = tuple(torch.from_numpy(example[n]) for n in spec.inputs)
    kwargs = dict(input_names=spec.inputs, output_names=spec.outputs, opset_version=OPSET)
    has_dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters
    if exporter == "dynamo":
        if not has_dynamo:
            raise ExportError("this torch has no torch.export-based ONNX exporter")
        batch = torch.export.Dim("batch", min=1, max=4096)
        seq = torch.export.Dim("sequence", min=1, max=4096)
        shapes = tuple({0: batch, 1: seq} if spec.dynamic_seq and n != "pixel_values" else {0: batch}
                       for n in spec.inputs)
        kwargs.update(dynamo=True, dynamic_shapes=shapes, optimize=True)
    else:
        axes = {}
        for name in spec.inputs:
            axes[name] = {0: "batch"}
            if spec.dynamic_seq and name != "pixel_values":
                axes[name][1] = "sequence"
        for name in spec.outputs:
            axes[name] = {0: "batch"}
            if spec.dynamic_seq and name == "last_hidden_state":
                axes[name][1] = "sequence"
        kwargs["dynamic_axes"] = axes
        if has_dynamo:
            kwargs["dynamo"] = False
    torch.onnx.export(spec.module, args, str(path), **kwargs)
    # The torch.export exporter may keep weights in a side file; clipflow wants one file.
    side = path.with_name(path.name + ".data")
    if side.exists():
        import onnx

        model = onnx.load(str(path))
        onnx.save(model, str(path), save_as_external_data=False)
        side.unlink()


def add_metadata(path: Path, scoring: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p for p in model.metadata_props}
    for key, value in (("clipflow.scoring", scoring["kind"]),
                       ("clipflow.logit_scale", repr(float(scoring["logit_scale"]))),
                       ("clipflow.logit_bias", repr(float(scoring["logit_bias"])))):
        entry = props.get(key) or model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


# ------------------------------------------------------------------------------------------------
# Sources


def text_example(tokenizer, length, texts, dynamic):
    """Token ids and mask as the model's own tokenizer makes them (padded like clipflow pads)."""
    enc = tokenizer(texts, padding="longest" if dynamic else "max_length", max_length=None if dynamic else length,
                    truncation=True, return_tensors="np")
    ids = enc["input_ids"].astype(np.int64)
    mask = enc["attention_mask"].astype(np.int64) if "attention_mask" in enc else np.ones_like(ids)
    return ids, mask


def from_transformers(name: str, out: Path, classifier: bool):
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name)
    kind = config.model_type
    source = {"library": f"transformers {transformers.__version__}", "model": name, "model_type": kind}
    if kind in ("clip", "siglip"):
        cls = transformers.CLIPModel if kind == "clip" else transformers.SiglipModel
        model = cls.from_pretrained(name).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(name)
        image_processor = transformers.AutoImageProcessor.from_pretrained(name)
        try:
            transformers.AutoProcessor.from_pretrained(name).save_pretrained(out)
        except (OSError, ValueError, TypeError):
            tokenizer.save_pretrained(out)
            image_processor.save_pretrained(out)
        size = image_processor.crop_size if getattr(image_processor, "do_center_crop", False) else image_processor.size
        height = size["height"] if "height" in size else size["shortest_edge"]
        width = size["width"] if "width" in size else height
        length = config.text_config.max_position_embeddings
        length = min(length, getattr(tokenizer, "model_max_length", length) or length)
        scale = float(model.logit_scale.exp())
        if kind == "clip":
            scoring = {"kind": "softmax", "logit_scale": scale, "logit_bias": 0.0}
            text_inputs = ["input_ids", "attention_mask"]
            text_fn = lambda i, m: features(model.get_text_features(input_ids=i, attention_mask=m))  # noqa: E731
        else:
            scoring = {"kind": "sigmoid", "logit_scale": scale, "logit_bias": float(model.logit_bias.reshape(()))}
            # SigLIP is trained on texts padded to a fixed length and attended whole: no mask.
            text_inputs = ["input_ids"]
            text_fn = lambda i: features(model.get_text_features(input_ids=i))  # noqa: E731
        specs = [
            Spec("image", graph(lambda p: features(model.get_image_features(pixel_values=p)), model),
                 ["pixel_values"], ["image_embeds"]),
            Spec("text", graph(text_fn, model), text_inputs, ["text_embeds"]),
        ]

        def reference(example):
            feed = {"pixel_values": torch.from_numpy(example["pixel_values"]),
                    "input_ids": torch.from_numpy(example["input_ids"])}
            if kind == "clip":
                feed["attention_mask"] = torch.from_numpy(example["attention_mask"])
            o = model(**feed)
            return {"image_embeds": o.image_embeds.numpy(), "text_embeds": o.text_embeds.numpy(),
                    "logits_per_image": o.logits_per_image.numpy()}

        return dict(specs=specs, size=(height, width), tokenizer=tokenizer, length=length, scoring=scoring,
                    source=source, reference=reference, model=model, rules=transformers_rules(out))

    # One tower: a vision model takes pixel_values, a text model input_ids.
    main_input = None
    if classifier:
        model = transformers.AutoModelForImageClassification.from_pretrained(name).eval()
        main_input = "pixel_values"
    else:
        model = transformers.AutoModel.from_pretrained(name).eval()
        main_input = getattr(model, "main_input_name", "input_ids")
    if main_input == "pixel_values":
        processor = transformers.AutoImageProcessor.from_pretrained(name)
        processor.save_pretrained(out)
        size = processor.crop_size if getattr(processor, "do_center_crop", False) and getattr(processor, "crop_size", None) else processor.size
        height = size.get("height") or size.get("shortest_edge")
        width = size.get("width") or height
        if classifier:
            base = getattr(model, model.base_model_prefix)

            def fn(p):
                pooled = base(pixel_values=p).pooler_output
                return model(pixel_values=p).logits, pooled.flatten(1)

            spec = Spec("image", graph(fn, model), ["pixel_values"], ["logits", "features"], pooling="output: logits")
        else:
            probe = model(pixel_values=torch.zeros(1, 3, height, width))
            outs = ["last_hidden_state"] + (["pooler_output"] if getattr(probe, "pooler_output", None) is not None else [])
            fn = lambda p: tuple(getattr(model(pixel_values=p), o) for o in outs)  # noqa: E731
            spec = Spec("image", graph(fn, model), ["pixel_values"], outs, pooling="pooling: cls")
        return dict(specs=[spec], size=(height, width), tokenizer=None, length=None, scoring=None, source=source,
                    reference=None, model=model, rules=transformers_rules(out))
    if main_input != "input_ids":
        raise ExportError(f"{name}: model_type {kind} takes {main_input}; clipflow feeds pixel_values or input_ids")
    tokenizer = transformers.AutoTokenizer.from_pretrained(name)
    tokenizer.save_pretrained(out)
    params = inspect.signature(model.forward).parameters
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in params]
    probe_ids = torch.tensor([[tokenizer.cls_token_id or 0, tokenizer.sep_token_id or 0]])
    probe = model(input_ids=probe_ids)
    outs = ["last_hidden_state"] + (["pooler_output"] if getattr(probe, "pooler_output", None) is not None else [])

    def fn(*args):
        o = model(**dict(zip(inputs, args)))
        return tuple(getattr(o, k) for k in outs)

    spec = Spec("text", graph(fn, model), inputs, outs, dynamic_seq=True, pooling="pooling: mean")
    length = min(getattr(tokenizer, "model_max_length", 512) or 512, config.max_position_embeddings
                 if hasattr(config, "max_position_embeddings") else 512)
    return dict(specs=[spec], size=None, tokenizer=tokenizer, length=length, scoring=None, source=source,
                reference=None, model=model, rules=None)


def from_open_clip(arch: str, pretrained: str | None, out: Path):
    import open_clip

    model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    if type(tokenizer).__name__ != "SimpleTokenizer":
        raise ExportError(f"open_clip {arch} uses {type(tokenizer).__name__}; this script exports open_clip "
                          "models with OpenAI's BPE vocabulary (export SigLIP through --hf)")
    cfg = model.visual.preprocess_cfg
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
    resample = {"bicubic": 3, "bilinear": 2, "nearest": 0}.get(cfg.get("interpolation", "bicubic"), 3)
    if cfg.get("resize_mode", "shortest") == "squash":
        pre = {"size": {"height": size, "width": size}, "do_center_crop": False}
    elif cfg.get("resize_mode", "shortest") == "shortest":
        pre = {"size": size, "crop_size": size, "do_center_crop": True}
    else:
        raise ExportError(f"open_clip resize_mode {cfg['resize_mode']!r} has no preprocessor_config equivalent")
    pre.update({"do_resize": True, "do_normalize": True, "image_mean": list(cfg["mean"]),
                "image_std": list(cfg["std"]), "resample": resample})
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    shutil.copy(CLIP_TOKENIZER, out / "tokenizer.json")
    bias = getattr(model, "logit_bias", None)
    scoring = {"kind": "softmax" if bias is None else "sigmoid", "logit_scale": float(model.logit_scale.exp()),
               "logit_bias": 0.0 if bias is None else float(bias.reshape(()))}
    length = getattr(model, "context_length", 77)
    specs = [Spec("image", graph(lambda p: model.encode_image(p), model), ["pixel_values"], ["image_embeds"]),
             # open_clip's text tower pools at the end token (argmax) and takes no mask.
             Spec("text", graph(lambda i: model.encode_text(i), model), ["input_ids"], ["text_embeds"])]
    import open_clip as oc

    return dict(specs=specs, size=(size, size), tokenizer=None, open_clip_tokenizer=tokenizer, length=length,
                scoring=scoring, source={"library": f"open_clip {oc.__version__}", "model": arch,
                                         "pretrained": pretrained}, reference=None, model=model,
                rules=torchvision_rules(transform, f"open_clip {oc.__version__}"))


def from_torchvision(name: str, weights: str | None, out: Path):
    import torchvision

    model = torchvision.models.get_model(name, weights=weights).eval()
    resize, crop, resample = 256, 224, 2
    t = None
    if weights:
        t = torchvision.models.get_model_weights(name)[weights].transforms() if weights != "DEFAULT" else \
            torchvision.models.get_model_weights(name).DEFAULT.transforms()
        resize, crop = t.resize_size[0], t.crop_size[0]
        resample = {"bilinear": 2, "bicubic": 3, "nearest": 0}.get(str(t.interpolation.value), 2)
    if t is None:  # what the weights' transforms do, for random weights
        T = torchvision.transforms
        t = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    pre = {"size": {"shortest_edge": resize}, "crop_size": {"height": crop, "width": crop}, "do_center_crop": True,
           "do_resize": True, "do_normalize": True, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD,
           "resample": resample}
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    head = model.fc if hasattr(model, "fc") else None
    if head is None:
        raise ExportError(f"torchvision {name}: only models with an `fc` classifier (ResNets) are supported")
    trunk = torch.nn.Sequential(*list(model.children())[:-1])

    def fn(p):
        f = trunk(p).flatten(1)
        return head(f), f

    spec = Spec("image", graph(fn, model), ["pixel_values"], ["logits", "features"], pooling="output: logits")
    import torchvision as tv

    return dict(specs=[spec], size=(crop, crop), tokenizer=None, length=None, scoring=None,
                source={"library": f"torchvision {tv.__version__}", "model": name, "weights": weights},
                reference=None, model=model, rules=torchvision_rules(t, f"torchvision {tv.__version__}"))


# ------------------------------------------------------------------------------------------------
# Preprocessing rules


def probe_crop(crop) -> tuple[str, dict]:
    """The library's center-crop rule: `crop(uint8 HxWx3 array, c)` -> the c x c crop (zeros where a
    larger crop pads). Pixel (y, x) of the probe holds x and y, so the crop's first pixel is its
    offset."""
    arr = np.zeros((7, 7, 3), np.uint8)
    arr[..., 0] = np.arange(7)[None, :] * 20 + 10
    arr[..., 1] = np.arange(7)[:, None] * 20 + 10
    out = np.asarray(crop(arr, 4))
    odd = ((int(out[0, 0, 1]) - 10) // 20, (int(out[0, 0, 0]) - 10) // 20)
    small = np.full((1, 1, 3), 200, np.uint8)
    out = np.asarray(crop(small, 4))
    ys, xs = np.nonzero(out[..., 0])
    padded = (-int(ys[0]), -int(xs[0])) if len(ys) == 1 else None
    probe = {"margin_3_offset": list(odd), "margin_minus_3_offset": list(padded) if padded else None}
    # torchvision: round(1.5) = 2, a larger crop pads (4 - 1) // 2 = 1 before; transformers: 3 // 2
    # = 1, and -3 // 2 = -2.
    rules = {((2, 2), (-1, -1)): "half_even", ((1, 1), (-2, -2)): "floor"}
    rule = rules.get((odd, padded))
    if rule is None:
        raise ExportError(f"the library's center crop matches no rule clipflow knows: {probe}")
    return rule, probe


def probe_transparency(preprocess) -> tuple[str, dict]:
    """Whether the library's whole preprocessing (`preprocess(PIL image)` -> float array) drops
    transparency or composites it over white: a fully transparent black image (RGBA, and a palette
    image with a transparent index) against opaque black and white ones."""
    from PIL import Image

    def run(img):
        try:
            out = np.asarray(preprocess(img), dtype=np.float64)
        except Exception as e:  # noqa: BLE001 - a processor that takes RGB images only
            return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        return out if out.ndim == 3 and out.shape[0] == 3 else f"output shape {out.shape}"

    black, white = run(Image.new("RGB", (8, 8), (0, 0, 0))), run(Image.new("RGB", (8, 8), (255, 255, 255)))
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.info["transparency"] = 0
    found, probe = set(), {}
    for name, img in (("rgba", rgba), ("palette_trns", palette)):
        out = run(img)
        if isinstance(out, str):
            # The processor does not convert: callers pass RGB (Pillow's convert("RGB") drops).
            found.add("drop")
            probe[name] = f"not taken ({out}): callers convert with Pillow"
        elif np.allclose(out, white):
            found.add("white")
            probe[name] = "white"
        elif np.allclose(out, black):
            found.add("drop")
            probe[name] = "black (dropped)"
        else:
            raise ExportError(f"transparency probe ({name}): neither dropped nor composited over white")
    if len(found) != 1:
        raise ExportError(f"the library treats alpha and palette transparency differently: {probe}")
    return found.pop(), probe


def transformers_rules(folder: Path) -> dict:
    """The rules of transformers' Pillow-based image processor for the exported folder."""
    import transformers
    from transformers import AutoImageProcessor

    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        proc = AutoImageProcessor.from_pretrained(folder, backend="pil")
    else:
        proc = AutoImageProcessor.from_pretrained(folder, use_fast=False)

    def crop(arr, c):
        if major >= 5:
            from transformers.image_utils import SizeDict

            return np.moveaxis(proc.center_crop(np.moveaxis(arr, -1, 0), SizeDict(height=c, width=c)), 0, -1)
        return proc.center_crop(arr, {"height": c, "width": c}, input_data_format="channels_last")

    crop_rule, crop_probe = probe_crop(crop)
    transparency, t_probe = probe_transparency(lambda img: proc(images=img, return_tensors="np")["pixel_values"][0])
    return {"crop_rounding": crop_rule, "transparency": transparency,
            "reference": f"transformers {transformers.__version__} {type(proc).__name__}",
            "probe": {"center_crop": crop_probe, "transparency": t_probe}}


def torchvision_rules(transform, library: str) -> dict:
    """The rules of a torchvision-style pipeline (open_clip's, torchvision's): its CenterCrop class
    (torchvision's, or open_clip's CenterCropOrPad), and the whole `transform` for transparency."""
    import torchvision
    from PIL import Image

    crop_cls = torchvision.transforms.CenterCrop
    for t in getattr(transform, "transforms", []):
        if type(t).__name__ in ("CenterCrop", "CenterCropOrPad"):
            crop_cls = type(t)
    crop_rule, crop_probe = probe_crop(lambda arr, c: np.asarray(crop_cls(c)(Image.fromarray(arr))))
    transparency, t_probe = probe_transparency(lambda img: transform(img).numpy())
    return {"crop_rounding": crop_rule, "transparency": transparency,
            "reference": f"{library} ({crop_cls.__module__}.{crop_cls.__name__})",
            "probe": {"center_crop": crop_probe, "transparency": t_probe}}


# ------------------------------------------------------------------------------------------------
# Check


TEXTS = ["a photo of a cat", "", "a diagram of an awkward, very long caption " * 6]


def example_inputs(src, batch_images: int, texts: list[str]) -> dict:
    ex = {}
    if src["size"] is not None:
        g = torch.Generator().manual_seed(0)
        ex["pixel_values"] = torch.randn(batch_images, 3, *src["size"], generator=g).numpy()
    text_spec = next((s for s in src["specs"] if s.tower == "text"), None)
    if text_spec is not None:
        if src.get("open_clip_tokenizer") is not None:
            ids = src["open_clip_tokenizer"](texts).numpy().astype(np.int64)
            mask = (ids != 0).astype(np.int64)
        else:
            ids, mask = text_example(src["tokenizer"], src["length"], texts, text_spec.dynamic_seq)
        ex["input_ids"], ex["attention_mask"] = ids, mask
        ex["token_type_ids"] = np.zeros_like(ids)
    return ex


def normalise(x):
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def relative_diff(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) / max(1.0, float(np.max(np.abs(b)))))


def check_graph(spec: Spec, ex: dict, path: Path) -> tuple[dict, list[str], dict]:
    """One batch the export never saw through ONNX Runtime and PyTorch: (report, failures,
    ONNX Runtime's outputs)."""
    import onnxruntime as ort

    report, failures, outputs = {}, [], {}
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any load error is a failed export
        return report, [f"{spec.file}: ONNX Runtime cannot load it: {e}"], outputs
    names = [i.name for i in sess.get_inputs()]
    if names != spec.inputs:
        return report, [f"{spec.file}: inputs {names}, expected {spec.inputs}"], outputs
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {n: ex[n] for n in names})))
    with torch.no_grad():
        want = spec.module(*[torch.from_numpy(ex[n]) for n in spec.inputs])
    for name, w in zip(spec.outputs, want):
        w = w.numpy()
        g = got.get(name)
        if g is None or g.shape != w.shape:
            failures.append(f"{spec.file}: output {name} has shape {None if g is None else g.shape}, "
                            f"PyTorch gives {w.shape}")
            continue
        d = relative_diff(g, w)
        report[f"{spec.tower}.{name}.max_rel_diff"] = d
        if not np.isfinite(d) or d > TOLERANCE:
            failures.append(f"{spec.file}: output {name} differs from PyTorch by {d:.2e} (> {TOLERANCE})")
        outputs[name] = g
    first = spec.outputs[0]
    if first in ("image_embeds", "text_embeds") and first in outputs and outputs[first].ndim != 2:
        failures.append(f"{spec.file}: {first} has shape {outputs[first].shape}; clipflow needs [batch, D]")
    return report, failures, outputs


def check_pair(src, ex: dict, outputs: dict) -> tuple[dict, list[str]]:
    """The exported pair against the model's own forward(): embeddings and logits."""
    report, failures = {}, []
    with torch.no_grad():
        ref = src["reference"](ex)
    for name in ("image_embeds", "text_embeds"):
        cos = np.sum(normalise(outputs[name]) * normalise(ref[name]), axis=1)
        report[f"{name}.one_minus_min_cosine_vs_forward"] = float(1 - cos.min())
        if 1 - cos.min() > 1e-5:
            failures.append(f"{name}: 1 - cosine with the model's forward() is {1 - cos.min():.2e}")
    s = src["scoring"]
    cos = normalise(outputs["image_embeds"]) @ normalise(outputs["text_embeds"]).T
    logits = s["logit_scale"] * cos + s["logit_bias"]
    d = relative_diff(logits, ref["logits_per_image"])
    report["logits_per_image.max_rel_diff"] = d
    if d > 1e-4:
        failures.append(f"logit_scale/logit_bias do not reproduce the model's logits_per_image ({d:.2e})")
    return report, failures


def export_and_check(src, out: Path) -> dict:
    """Exports every graph with the torch.export-based exporter, else the TorchScript one, keeping
    the first whose outputs match PyTorch; raises ExportError when none does."""
    example = example_inputs(src, 2, ["a photo", "two words"])
    check_inputs = example_inputs(src, 3, TEXTS)
    report, outputs = {}, {}
    for spec in src["specs"]:
        path = out / "onnx" / spec.file
        tried = []
        for exporter in ("dynamo", "torchscript"):
            try:
                with torch.no_grad():
                    onnx_export(spec, example, path, exporter)
            except Exception as e:  # noqa: BLE001 - an exporter that cannot trace the model
                tried.append(f"{exporter}: export failed: {str(e).splitlines()[0][:300]}")
                continue
            r, failures, outs = check_graph(spec, check_inputs, path)
            if not failures:
                report.update(r)
                report[f"{spec.tower}.exporter"] = exporter
                outputs.update(outs)
                break
            tried.append(f"{exporter}: " + "; ".join(failures))
        else:
            path.unlink(missing_ok=True)
            raise ExportError(f"{spec.file} does not match PyTorch with any exporter:\n  " + "\n  ".join(tried))
    if src["reference"] is not None:
        r, failures = check_pair(src, check_inputs, outputs)
        report.update(r)
        if failures:
            raise ExportError("the export does not match PyTorch:\n  " + "\n  ".join(failures))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--hf", help="a transformers model: hub id or local save_pretrained folder")
    src.add_argument("--open-clip", help="an open_clip architecture, e.g. ViT-B-32 or RN50")
    src.add_argument("--torchvision", help="a torchvision classifier, e.g. resnet50")
    ap.add_argument("--pretrained", help="open_clip pretrained tag (none: random weights)")
    ap.add_argument("--weights", help="torchvision weights enum name, e.g. DEFAULT (none: random weights)")
    ap.add_argument("--classifier", action="store_true", help="--hf image classifier: export logits and features")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    try:
        with torch.no_grad():
            if a.hf:
                source = from_transformers(a.hf, a.out, a.classifier)
            elif a.open_clip:
                source = from_open_clip(a.open_clip, a.pretrained, a.out)
            else:
                source = from_torchvision(a.torchvision, a.weights, a.out)
        report = export_and_check(source, a.out)
    except ExportError as e:
        print(f"export_clip: FAILED: {e}", file=sys.stderr)
        return 1
    scoring = source["scoring"]
    for spec in source["specs"]:
        if scoring is not None:
            add_metadata(a.out / "onnx" / spec.file, scoring)
    info = {
        "format": "clipflow-export/1",
        "scoring": scoring,
        "towers": {s.tower: {"graph": f"onnx/{s.file}", "inputs": s.inputs, "outputs": s.outputs} for s in source["specs"]},
        "source": source["source"],
        "check": report,
    }
    if source.get("rules") is not None:
        info["preprocess"] = source["rules"]
    if scoring is None:
        del info["scoring"]
    (a.out / "clipflow.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"exported to {a.out}; PyTorch vs ONNX Runtime: " + ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items()))
    snippet = [f"  - path: {a.out}"]
    for s in source["specs"]:
        if s.pooling:
            snippet.append(f"    {s.tower}: {{{s.pooling}}}")
    rules = source.get("rules")
    if rules is not None:
        print(f"preprocessing rules ({rules['reference']}): crop_rounding {rules['crop_rounding']}, "
              f"transparency {rules['transparency']}")
    print("use it in a study as:\nmodels:\n" + "\n".join(snippet))
    return 0


if __name__ == "__main__":
    sys.exit(main())
