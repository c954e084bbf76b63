#!/usr/bin/env python3
"""Checks clipflow's embedding-atlas export independently of clipflow's code.

Usage: check_atlas_export.py RUN_DIR FILE.parquet... [--dataset DIR] [--serve]

For each exported file (exports/embedding-atlas/<model>_<map>.parquet):
  - the column types embedding-atlas reads: x, y double; neighbors
    struct<ids: list<int64>, distances: list<float>>; image struct<bytes: binary, path: string>
    when present; id, label, caption strings;
  - x, y equal to the run's tables/projection_coordinates for that model, map and the clean
    variant;
  - neighbours as embedding-atlas lists its own (umap-learn's nearest_neighbors): the row
    itself first at distance 0, then a brute-force cosine kNN (numpy, float64) of the model's
    clean image embeddings read from the run's embeddings/ with pyarrow: same row numbers (ties
    allowed to differ in order), distances to 1e-6, nearest first;
  - images decode with Pillow, and with --dataset equal the dataset's bytes for that id.
With --serve, also starts `embedding-atlas FILE --x x --y y --neighbors neighbors --text caption
--image image` (the embedding_atlas package must be installed for this Python) and checks it
serves the page and its data: the viewer's DuckDB answers the neighbours of a row, and the rows
of its neighbour overlay, through the server's query endpoint. With --image, embedding-atlas
computes a PageRank from the neighbours, which needs torch; without torch the command runs
without --image, and the PageRank's first step (embedding-atlas's knn_to_edges, umap-learn's
membership strengths) is run on the neighbours directly.

Prints a JSON summary; exits 1 on any mismatch.
"""

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def load_embeddings(run_dir, model):
    files = sorted(glob.glob(os.path.join(run_dir, "embeddings", model, "image", "*.parquet")))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    rows = {}
    for id_, variant, emb in zip(table["id"].to_pylist(), table["variant"].to_pylist(),
                                 table["embedding"].to_pylist()):
        if variant == "clean":
            rows[id_] = np.asarray(emb, dtype=np.float64)
    return rows


def check_file(run_dir, path, dataset_images, problems):
    name = Path(path).stem
    model, _, map_name = name.partition("_")
    t = pq.read_table(path)
    schema = t.schema
    want = {
        "id": pa.string(),
        "x": pa.float64(),
        "y": pa.float64(),
        "label": pa.string(),
        "caption": pa.string(),
        "neighbors": pa.struct([("ids", pa.list_(pa.int64())), ("distances", pa.list_(pa.float32()))]),
    }
    for col, typ in want.items():
        if schema.field(col).type != typ:
            problems.append(f"{name}: column {col} is {schema.field(col).type}, expected {typ}")
    has_image = "image" in schema.names
    if has_image and schema.field("image").type != pa.struct([("bytes", pa.binary()), ("path", pa.string())]):
        problems.append(f"{name}: image column is {schema.field('image').type}")

    coords = pq.read_table(os.path.join(run_dir, "tables", "projection_coordinates.parquet")).to_pylist()
    method, perplexity = map_name, None
    if map_name.startswith("tsne_p"):
        method, perplexity = "tsne", float(map_name[len("tsne_p"):])
    expected_xy = {
        r["id"]: (r["x"], r["y"]) for r in coords
        if r["model"] == model and r["variant"] == "clean" and r["method"] == method
        and (perplexity is None or r["perplexity"] == perplexity)
    }
    ids = t["id"].to_pylist()
    if sorted(ids) != sorted(expected_xy):
        problems.append(f"{name}: ids differ from projection_coordinates")
    for id_, x, y in zip(ids, t["x"].to_pylist(), t["y"].to_pylist()):
        if expected_xy.get(id_) != (x, y):
            problems.append(f"{name}: {id_} at ({x}, {y}), table says {expected_xy.get(id_)}")
            break

    emb = load_embeddings(run_dir, model)
    x = np.stack([emb[i] for i in ids])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1.0 - x @ x.T
    np.fill_diagonal(dist, np.inf)
    neighbors = t["neighbors"].to_pylist()
    k = len(neighbors[0]["ids"]) - 1
    for row, nb in enumerate(neighbors):
        # As umap-learn's nearest_neighbors (embedding-atlas's own): the row itself first.
        if nb["ids"][0] != row or nb["distances"][0] != 0.0 or len(nb["ids"]) != k + 1:
            problems.append(f"{name}: row {row} does not list itself first at distance 0")
            break
        got_ids, got_d = nb["ids"][1:], np.asarray(nb["distances"][1:], dtype=np.float64)
        order = np.argsort(dist[row], kind="stable")[:k]
        want_d = dist[row][order]
        if row in got_ids:
            problems.append(f"{name}: row {row} lists itself twice")
            break
        if np.any(np.diff(got_d) < -1e-7):
            problems.append(f"{name}: row {row}: distances not ascending")
            break
        if not np.allclose(got_d, want_d, atol=1e-6):
            problems.append(f"{name}: row {row}: distances {got_d[:3]} vs numpy {want_d[:3]}")
            break
        # The same rows, except where a distance ties with the k-th (order among ties is free).
        strict = set(order[want_d < want_d[-1] - 1e-9].tolist())
        if not strict.issubset(set(got_ids)):
            problems.append(f"{name}: row {row}: neighbours {got_ids[:5]} vs numpy {order[:5].tolist()}")
            break
        if not np.allclose(dist[row][got_ids], got_d, atol=1e-6):
            problems.append(f"{name}: row {row}: listed distances do not match the rows listed")
            break

    images = 0
    if has_image:
        from io import BytesIO

        from PIL import Image

        for id_, img in zip(ids, t["image"].to_pylist()):
            if img is None or not img["bytes"] or not img["path"]:
                problems.append(f"{name}: {id_} has no image")
                break
            Image.open(BytesIO(img["bytes"])).load()
            if dataset_images is not None and dataset_images.get(id_) != img["bytes"]:
                problems.append(f"{name}: {id_}: image bytes differ from the dataset's")
                break
            images += 1
    return {"file": name, "rows": t.num_rows, "k": k, "images": images}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_check(path, problems):
    """Starts the embedding-atlas command on `path` and queries it like its viewer does."""
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "embedding-atlas")
    try:
        import torch  # noqa: F401  (embedding-atlas's PageRank, run when --image is given)
        image = ["--image", "image"]
    except ImportError:
        image = []
    cmd = [exe, str(path), "--x", "x", "--y", "y", "--neighbors", "neighbors",
           "--text", "caption"] + image + ["--port", str(port), "--no-auto-port",
                                           "--host", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    result = {"command": " ".join(["embedding-atlas", Path(path).name] + cmd[2:cmd.index("--port")])}
    if not image:
        from embedding_atlas.graph_metrics import knn_to_edges

        nb = pq.read_table(path, columns=["neighbors"])["neighbors"].to_pylist()
        edges = knn_to_edges(np.stack([np.array(r["ids"]) for r in nb]),
                             np.stack([np.array(r["distances"]) for r in nb]))
        weights = np.array([w for _, _, w in edges])
        result["knn_to_edges"] = {"edges": len(edges), "min_weight": float(weights.min()),
                                  "max_weight": float(weights.max())}
        if not len(edges) or not (weights > 0).all() or weights.max() > 1.0 + 1e-6:
            problems.append(f"knn_to_edges gave {result['knn_to_edges']}")
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(base + "/data/metadata.json", timeout=2) as r:
                    result["metadata"] = json.loads(r.read())
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        if "metadata" not in result:
            problems.append("embedding-atlas did not serve the file: " + (proc.stdout.read() if proc.poll() is not None else "no answer in 300 s"))
            return result
        with urllib.request.urlopen(base + "/", timeout=10) as r:
            result["page_bytes"] = len(r.read())
        # The viewer's nearest-neighbour query (Embedding.svelte), through the server's DuckDB.
        props = result["metadata"]["props"]["data"]
        sql = (f'SELECT "{props["neighbors"]}" AS knn FROM dataset '
               f'WHERE "{props["id"]}" = 3')
        req = urllib.request.Request(
            base + "/data/query", data=json.dumps({"sql": sql, "type": "json"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            rows = json.loads(r.read())
        result["neighbors_of_row_3"] = rows
        knn = rows[0]["knn"]
        overlay = [3] + list(knn["ids"])
        sql = (f'SELECT "{props["id"]}" AS id, "{props["projection"]["x"]}" AS x FROM dataset '
               f'WHERE "{props["id"]}" IN ({", ".join(map(str, overlay))})')
        req = urllib.request.Request(
            base + "/data/query", data=json.dumps({"sql": sql, "type": "json"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            found = json.loads(r.read())
        result["overlay_rows"] = len(found)
        if len(found) != len(set(overlay)):
            problems.append(f"embedding-atlas found {len(found)} of the {len(set(overlay))} overlay rows")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("files", nargs="+")
    p.add_argument("--dataset")
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()
    dataset_images = None
    if args.dataset:
        dataset_images = {}
        for f in sorted(glob.glob(os.path.join(args.dataset, "*.parquet"))):
            t = pq.read_table(f, columns=["id", "image"])
            for id_, img in zip(t["id"].to_pylist(), t["image"].to_pylist()):
                dataset_images[id_] = img["bytes"] if isinstance(img, dict) else img
    problems = []
    files = [check_file(args.run_dir, f, dataset_images, problems) for f in args.files]
    summary = {"ok": False, "files": files}
    if args.serve:
        summary["serve"] = serve_check(args.files[0], problems)
    summary["ok"] = not problems
    summary["problems"] = problems
    print(json.dumps(summary, indent=2, default=str))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
