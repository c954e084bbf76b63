"""Write `tests/fixtures/golden/transparency/`: transparent images and what Pillow makes of them in RGB.

Why: a model's preprocessing follows the library its config belongs to, and the libraries disagree on
transparency (README, Models). Pillow's `convert("RGB")` drops it (OpenAI CLIP, open_clip, transformers
4); transformers 5's `image_transforms.convert_to_rgb` composites it over white whenever the image has
an alpha band or a `transparency` entry:

    im.convert("RGBA"); Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
      .convert("RGB")

clipflow's decoder (`transparency: white`) must give these pixels bit for bit, `drop` the other set.

Inputs (`<name>.<ext>`), each with `<name>.white.png` and `<name>.drop.png` (8-bit RGB, Pillow's result):
  rgba_all.png        256x256 RGBA: red = x, alpha = y, so every (value, alpha) pair of the integer
                      compositing formula appears; green and blue vary too
  la.png              grayscale + alpha (LA), a gradient of alpha
  palette_trns1.png   palette with one fully transparent index (tRNS, Pillow's info["transparency"] int)
  palette_alphas.png  palette whose tRNS gives partial alphas to several entries (info["transparency"] bytes)
  rgb_trns.png        RGB with a tRNS colour (info["transparency"] = (r, g, b))
  gray_trns.png       L with a tRNS gray value
  rgba16.png          16-bit RGBA (Pillow reads the high byte of each sample, alpha included)
  gif_trns.gif        GIF with a transparent index
  rgba.webp           lossless WebP with alpha
index.json lists them with Pillow's mode and info. When transformers >= 5 is importable, its own
`convert_to_rgb` must equal the "white" result on every image (recorded as "equal_to"); it is not a
test requirement (the README's model venv has it).

Rerun from the repo root:
  .venv/bin/python scripts/gen_transparency_golden.py
Needs numpy + Pillow (requirements-test.txt). Deterministic: fixed seeds, no randomness otherwise.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "fixtures" / "golden" / "transparency"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_rgba16(path: Path, arr: np.ndarray) -> None:
    """Minimal 16-bit RGBA PNG writer (Pillow cannot write one). arr: HxWx4 uint16."""
    h, w = arr.shape[:2]
    rows = arr.astype(">u2").reshape(h, -1).tobytes()
    stride = len(rows) // h
    raw = b"".join(b"\x00" + rows[i * stride : (i + 1) * stride] for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
                     + png_chunk(b"IEND", b""))


def make_inputs() -> list[str]:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    names = []

    y, x = np.mgrid[0:256, 0:256]
    rgba = np.stack([x, (x * 7 + y * 3) % 256, 255 - x, y], -1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(OUT / "rgba_all.png")
    names.append("rgba_all.png")

    yy, xx = np.mgrid[0:48, 0:64]
    la = np.stack([(xx * 4 + yy) % 256, (yy * 255 // 47)], -1).astype(np.uint8)
    Image.fromarray(la, "LA").save(OUT / "la.png")
    names.append("la.png")

    idx = rng.integers(0, 16, (40, 50)).astype(np.uint8)
    pal = rng.integers(0, 256, 16 * 3).astype(np.uint8).tolist()
    p = Image.fromarray(idx, "P")
    p.putpalette(pal)
    p.save(OUT / "palette_trns1.png", transparency=5)
    names.append("palette_trns1.png")
    alphas = bytes([255, 0, 40, 128, 200, 255, 7, 250] + [255] * 8)
    p.save(OUT / "palette_alphas.png", transparency=alphas)
    names.append("palette_alphas.png")

    rgb = rng.integers(0, 4, (30, 40, 3)).astype(np.uint8) * 80
    Image.fromarray(rgb, "RGB").save(OUT / "rgb_trns.png", transparency=(80, 0, 160))
    names.append("rgb_trns.png")

    gray = (rng.integers(0, 5, (30, 40)) * 60).astype(np.uint8)
    Image.fromarray(gray, "L").save(OUT / "gray_trns.png", transparency=120)
    names.append("gray_trns.png")

    r16 = rng.integers(0, 65536, (24, 32, 4)).astype(np.uint16)
    r16[:8, :, 3] = 0
    r16[8:16, :, 3] = 65535
    write_rgba16(OUT / "rgba16.png", r16)
    names.append("rgba16.png")

    gidx = rng.integers(0, 8, (30, 40)).astype(np.uint8)
    g = Image.fromarray(gidx, "P")
    g.putpalette(rng.integers(0, 256, 8 * 3).astype(np.uint8).tolist())
    g.save(OUT / "gif_trns.gif", transparency=3)
    names.append("gif_trns.gif")

    w = np.stack([xx * 4 % 256, yy * 5 % 256, (xx + yy) % 256, (xx * yy) % 256], -1).astype(np.uint8)
    Image.fromarray(w, "RGBA").save(OUT / "rgba.webp", lossless=True)
    names.append("rgba.webp")
    return names


def white(im: Image.Image) -> Image.Image:
    """transformers 5's convert_to_rgb for a PIL image, by its definition."""
    if "A" in im.getbands() or im.info.get("transparency") is not None:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return im.convert("RGB")


def transformers_white(im: Image.Image):
    try:
        import transformers
        from transformers.image_transforms import convert_to_rgb
    except ImportError:
        return None, None
    if int(transformers.__version__.split(".")[0]) < 5:
        return None, None
    return convert_to_rgb(im, return_numpy=True), f"transformers {transformers.__version__} convert_to_rgb"


def main() -> None:
    names = make_inputs()
    entries, checked = [], []
    for name in names:
        with Image.open(OUT / name) as im:
            im.load()
            info = {k: (v if not isinstance(v, bytes) else list(v)) for k, v in im.info.items()
                    if k == "transparency"}
            stem = name.rsplit(".", 1)[0]
            w, d = white(im), im.convert("RGB")
            w.save(OUT / f"{stem}.white.png")
            d.save(OUT / f"{stem}.drop.png")
            theirs, by = transformers_white(im)
            if theirs is not None:
                if not np.array_equal(theirs, np.asarray(w)):
                    raise SystemExit(f"{name}: transformers' convert_to_rgb differs from the definition")
                checked.append(by)
            changed = int((np.asarray(w) != np.asarray(d)).any(-1).sum())
            entries.append({"image": name, "mode": im.mode, "size": list(im.size), "info": info,
                            "white": f"{stem}.white.png", "drop": f"{stem}.drop.png",
                            "pixels_white_changes": changed})
    index = {
        "about": "transparent images and Pillow's RGB results: 'white' = alpha_composite over opaque white "
        "(transformers 5's convert_to_rgb), 'drop' = convert('RGB') (scripts/gen_transparency_golden.py)",
        "pillow": Image.__version__,
        "equal_to": checked[0] if checked and len(checked) == len(names) else None,
        "images": entries,
    }
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {len(entries)} cases to {OUT}" + (f" (equal to {index['equal_to']})" if index["equal_to"] else ""))
    for e in entries:
        print(f"  {e['image']:<20} {e['mode']:<5} {e['pixels_white_changes']:>6} pixels differ between white and drop")


if __name__ == "__main__":
    main()
