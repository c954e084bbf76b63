"""Recomputes numbers of a run's report from the run directory alone, with scikit-learn and
numpy: the seeded samples the analysis drew (probe split, map samples, the sweep's fit/eval
halves) are in tables/samples.parquet, so nothing depends on clipflow's random generator.

Checked, on the clean images of every model:
- kNN probe accuracy: scikit-learn's KNeighborsClassifier (cosine, brute) trained on the
  `probe` rows with role `train`, scored on role `test`;
- map trustworthiness: sklearn.manifold.trustworthiness of each clean map in
  projection_coordinates against the embeddings of its `projection` sample;
- the dimension sweep's original zero-shot top-1: numpy on the `eval` rows only.

Run by `cargo test` (tests/geometry.rs):
    .venv/bin/python scripts/check_provenance.py RUN_DIR
"""
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier


def rows(path):
    return pq.read_table(path).to_pylist()


def main(run: Path):
    manifest = json.loads((run / "manifest.json").read_text())
    settings = manifest["config"]["analysis"]
    emb = pq.read_table(run / "embeddings").to_pandas()
    samples = rows(run / "tables" / "samples.parquet")
    checked = 0
    for model, g in emb.groupby("model"):
        clean = g[(g.modality == "image") & (g.variant == "clean")]
        vec = {r.id: np.asarray(r.embedding, dtype=np.float64) for r in clean.itertuples()}
        label = dict(zip(clean.id, clean.label))
        mine = [s for s in samples if s["model"] == model]

        # kNN probe on the recorded split.
        if "probe" in settings:
            train = [s["id"] for s in mine if s["stage"] == "probe" and s["role"] == "train"]
            test = [s["id"] for s in mine if s["stage"] == "probe" and s["role"] == "test"]
            k = min(settings["probe"]["knn_k"], len(train))
            knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
            knn.fit(np.stack([vec[i] for i in train]), [label[i] for i in train])
            acc = float(np.mean(knn.predict(np.stack([vec[i] for i in test])) == [label[i] for i in test]))
            want = [
                r["value"]
                for r in rows(run / "tables" / "probe.parquet")
                if r["model"] == model and r["variant"] == "clean" and r["method"] == "knn"
            ][0]
            assert abs(acc - want) < 1e-12, f"{model}: kNN {acc} vs clipflow {want}"
            print(f"{model}: kNN probe accuracy {acc:.6f} = clipflow's")
            checked += 1

        # Trustworthiness of every clean map, from the recorded sample.
        if "projection" in settings:
            coords = [
                r
                for r in rows(run / "tables" / "projection_coordinates.parquet")
                if r["model"] == model and r["variant"] == "clean"
            ]
            quality = [
                r
                for r in rows(run / "tables" / "projection_quality.parquet")
                if r["model"] == model and r["variant"] == "clean"
            ]
            sample = [s["id"] for s in mine if s["stage"] == "projection"]
            for q in quality:
                pts = [
                    r
                    for r in coords
                    if r["method"] == q["method"] and r["perplexity"] == q["perplexity"]
                ]
                assert [r["id"] for r in pts] == [i for i in sample if i in vec], "map sample"
                x = np.stack([vec[r["id"]] for r in pts])
                y = np.array([[r["x"], r["y"]] for r in pts])
                t = trustworthiness(x, y, n_neighbors=q["k"])
                assert abs(t - q["trustworthiness"]) < 1e-9, f"{model} {q['method']}: {t} vs {q['trustworthiness']}"
                print(f"{model}: {q['method']} map trustworthiness {t:.6f} = clipflow's")
                checked += 1

        # The sweep's original zero-shot, on the recorded eval half.
        if "dimension_sweep" in settings:
            evals = [s["id"] for s in mine if s["stage"] == "dimension_sweep" and s["role"] == "eval"]
            texts = g[(g.modality == "text") & g.id.str.startswith("prompt:")]
            if len(texts) and evals:
                classes = sorted(set(texts.label))
                centres = []
                for c in classes:
                    p = np.stack([np.asarray(e, dtype=np.float64) for e in texts[texts.label == c].embedding])
                    p /= np.linalg.norm(p, axis=1, keepdims=True)
                    m = p.mean(axis=0)
                    centres.append(m / np.linalg.norm(m))
                centres = np.stack(centres).astype(np.float32)
                scored = [i for i in evals if label.get(i) in classes]
                x = np.stack([vec[i] for i in scored]).astype(np.float32)
                pred = np.argmax(x @ centres.T, axis=1)
                top1 = float(np.mean([classes[p] == label[i] for p, i in zip(pred, scored)]))
                want = [
                    r["value"]
                    for r in rows(run / "tables" / "dimension_sweep.parquet")
                    if r["model"] == model and r["projection"] == "original" and r["metric"] == "zero_shot_top1"
                ][0]
                assert abs(top1 - want) < 1e-12, f"{model}: sweep zero-shot {top1} vs {want}"
                print(f"{model}: dimension sweep original zero-shot top-1 {top1:.6f} = clipflow's")
                checked += 1
    assert checked > 0, "nothing to check"
    print(f"provenance: {checked} numbers recomputed from the run directory")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
