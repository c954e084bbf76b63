"""Checks a run's analysis tables against a direct numpy computation on the same store, and
that `clipflow analyze` reads other tools' stores (clip-retrieval's npy + metadata, a Parquet
with a plain list<float> column) to the same numbers.

Run by `cargo test` (tests/interop.rs):
    .venv/bin/python scripts/check_analysis.py RUN_DIR CLIPFLOW_BINARY
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def recall_at_k(q, g, positive, ks):
    """CLIP_benchmark's definition: a query is a hit at K when any positive is in its top K.
    Rank of the first positive under a stable descending sort (ties: earlier gallery index first)."""
    scores = q @ g.T
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = []
    for i in range(len(q)):
        pos = np.flatnonzero(positive[i][order[i]])
        ranks.append(pos[0] + 1 if len(pos) else None)
    valid = [r for r in ranks if r is not None]
    return {k: sum(r <= k for r in valid) / len(valid) for k in ks}


def table(path):
    return pq.read_table(path).to_pylist()


def check_run(run: Path):
    t = pq.read_table(run / "embeddings").to_pandas()
    retrieval = table(run / "tables" / "retrieval.parquet")
    zero_shot = table(run / "tables" / "zero_shot.parquet")
    checked = 0
    for model, g in t.groupby("model"):
        img = g[(g.modality == "image") & (g.variant == "clean")].reset_index(drop=True)
        txt = g[(g.modality == "text") & (g.variant == "clean")].reset_index(drop=True)
        caps = txt[~txt.id.str.startswith("prompt:")].reset_index(drop=True)
        prompts = txt[txt.id.str.startswith("prompt:")].reset_index(drop=True)
        I = np.stack(img.embedding.to_numpy()).astype(np.float64)
        if len(caps):
            C = np.stack(caps.embedding.to_numpy()).astype(np.float64)
            positive = caps.id.to_numpy()[:, None] == img.id.to_numpy()[None, :]
            want = recall_at_k(C, I, positive, [1, 5, 10])
            for row in retrieval:
                if row["model"] == model and row["variant"] == "clean" and row.get("text_variant", "clean") == "clean" and row["direction"] == "text_to_image:caption" and row["metric"] == "recall":
                    assert abs(row["value"] - want[row["k"]]) < 1e-12, (model, row, want)
                    checked += 1
        if len(prompts):
            P = np.stack(prompts.embedding.to_numpy()).astype(np.float64)
            classes = sorted(set(prompts.label))
            W = np.stack([P[prompts.label.to_numpy() == c].mean(0) for c in classes])
            W /= np.linalg.norm(W, axis=1, keepdims=True)
            keep = img.label.isin(classes).to_numpy()
            pred = np.argmax(I[keep] @ W.T, axis=1)
            truth = np.array([classes.index(c) for c in img.label[keep]])
            top1 = float((pred == truth).mean())
            row = [r for r in zero_shot if r["model"] == model and r["variant"] == "clean" and r.get("text_variant", "clean") == "clean" and r["metric"] == "top1"]
            assert row and abs(row[0]["value"] - top1) < 1e-12, (model, row, top1)
            checked += 1
    assert checked > 0, "nothing compared"
    return t


def check_foreign_stores(t, run: Path, binary: str):
    model = sorted(t.model.unique())[0]
    g = t[(t.model == model) & (t.variant == "clean")]
    img = g[g.modality == "image"].reset_index(drop=True)
    txt = g[(g.modality == "text") & ~g.id.str.startswith("prompt:")].set_index("id").loc[img.id].reset_index()
    I = np.stack(img.embedding.to_numpy()).astype(np.float32)
    T = np.stack(txt.embedding.to_numpy()).astype(np.float32)
    want = recall_at_k(T.astype(np.float64), I.astype(np.float64), np.eye(len(I), dtype=bool), [1, 5])
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg = d / "analysis.yaml"
        cfg.write_text("analysis:\n  retrieval:\n    k: [1, 5]\n    positives: caption\n")
        # clip-retrieval's layout, float16 vectors as it writes them.
        cr = d / "cr"
        for sub in ["img_emb", "text_emb", "metadata"]:
            (cr / sub).mkdir(parents=True)
        np.save(cr / "img_emb" / "img_emb_0.npy", I.astype(np.float16))
        np.save(cr / "text_emb" / "text_emb_0.npy", T.astype(np.float16))
        pq.write_table(pa.table({"image_path": img.id, "caption": txt.text}), cr / "metadata" / "metadata_0.parquet")
        # A plain Parquet with list<float> vectors and no clipflow columns but id/modality.
        flat = d / "flat.parquet"
        pq.write_table(pa.table({
            "id": list(img.id) + list(img.id),
            "modality": ["image"] * len(I) + ["text"] * len(T),
            "vec": pa.array([list(map(float, v)) for v in np.concatenate([I, T])], type=pa.list_(pa.float32())),
        }), flat)
        for store, extra in [(cr, []), (flat, ["--embedding-column", "vec"])]:
            out = d / ("out_" + store.stem)
            subprocess.run([binary, "analyze", str(store), "--config", str(cfg), "--out", str(out), *extra], check=True)
            rows = [r for r in table(out / "tables" / "retrieval.parquet")
                    if r["direction"] == "text_to_image:caption" and r["metric"] == "recall"]
            assert len(rows) == 2, rows
            for r in rows:
                tol = 0.05 if store == cr else 1e-12  # float16 may reorder near-ties
                assert abs(r["value"] - want[r["k"]]) <= tol, (store, r, want)


def main():
    run, binary = Path(sys.argv[1]), sys.argv[2]
    t = check_run(run)
    check_foreign_stores(t, run, binary)
    print("analysis ok")


if __name__ == "__main__":
    main()
