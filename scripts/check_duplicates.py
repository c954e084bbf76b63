#!/usr/bin/env python3
"""Plants near-duplicates and leaks in a dataset, and checks clipflow's `duplicates` stage
against numpy and scikit-learn on the run's stored embeddings.

    check_duplicates.py plant SRC_PARQUET_DIR OUT_DIR
        Copies the Hugging Face Parquet dataset (as `clipflow synth textures` writes it) to
        OUT_DIR/data.parquet with a `split` column (every 4th row `test`, the rest `train`)
        and planted copies, listed in OUT_DIR/planted.json:
          leak      byte-identical copy of a train image, in test (a leak);
          near_leak the image 3 levels brighter, re-encoded as PNG, in test (a leak if the
                    embeddings agree to the threshold, which the check asserts);
          dup       byte-identical copy in the same split (a duplicate, not a leak);
          no_split  byte-identical copy without a split value (never a leak).
        Copies keep their original's caption and label. Deterministic.

    check_duplicates.py check RUN_DIR PLANTED_JSON
        For every model's clean images, recomputes from embeddings/ and attributes.parquet:
          pairs      every pair with cosine >= threshold (numpy, float64, full matrix) equals
                     tables/duplicate_pairs (ids and cosine to 1e-9, strongest first);
          leaks      those whose `split` values are known and differ equal
                     tables/duplicate_leaks; the counts equal tables/duplicates;
          items      per image, its duplicate counts, nearest cosine, and FiftyOne Brain's
                     uniqueness (centre, sklearn pairwise_distances cosine, 2nd-4th nearest
                     weighted 0.6/0.3/0.1, np.mean, divide by the max) equal duplicate_items;
          planted    every byte-identical planted pair is found (the brightened ones when
                     their cosine reaches the threshold), leaks across splits, the others not
                     (`planted_found` counts them by kind);
          leak effect  tables/duplicate_leak_effect: the kNN probe with and without the
                     leaking images (scikit-learn KNeighborsClassifier, cosine, brute, on the
                     probe split recorded in samples.parquet), recall@K and MRR in both
                     directions with and without them (numpy; a value must lie between the
                     optimistic and pessimistic value when scores tie, as exact copies make
                     them), and the "all items" column equal to the probe and retrieval
                     stages' own clean numbers.
        Prints a JSON summary; exits 1 on any disagreement.
"""

import io
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import KNeighborsClassifier

PLANT = [("leak", 1), ("leak", 2), ("leak", 3), ("near_leak", 5), ("near_leak", 6),
         ("dup", 9), ("dup", 10), ("no_split", 13)]


def plant(src: Path, out: Path):
    files = sorted(src.glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    rows = table.to_pylist()
    for i, r in enumerate(rows):
        r["split"] = "test" if i % 4 == 0 else "train"
    planted = []
    extra = []
    for kind, i in PLANT:
        orig = rows[i]
        assert orig["split"] == "train"
        copy = dict(orig)
        copy["id"] = f"{orig['id']}-{kind}"
        if kind == "near_leak":
            img = Image.open(io.BytesIO(orig["image"]["bytes"])).convert("RGB")
            img = img.point(lambda v: min(255, v + 3))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            copy["image"] = {"bytes": buf.getvalue(), "path": copy["id"] + ".png"}
        copy["split"] = {"leak": "test", "near_leak": "test", "dup": "train", "no_split": None}[kind]
        extra.append(copy)
        planted.append({"kind": kind, "a": orig["id"], "b": copy["id"]})
    rows.extend(extra)
    schema = table.schema.append(pa.field("split", pa.string(), nullable=True))
    schema = schema.remove_metadata()
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / "data.parquet")
    (out / "planted.json").write_text(json.dumps(planted, indent=1))
    print(json.dumps({"rows": len(rows), "planted": len(planted)}))


def rows_of(path):
    return pq.read_table(path).to_pylist() if path.exists() else []


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol


def ranks(scores, positive):
    """Optimistic and pessimistic rank of each query's best positive (1-based)."""
    opt, pess = [], []
    for s, p in zip(scores, positive):
        m = s[p].max()
        other = np.ones(len(s), bool)
        other[p] = False
        opt.append(1 + int(np.sum(s[other] > m)))
        pess.append(1 + int(np.sum(s[other] >= m)))
    return np.array(opt), np.array(pess)


def retrieval_bounds(img_ids, img_vec, txt_item, txt_vec, direction, ks):
    """(recall@k bounds per k, mrr bounds, queries) for one direction, or None."""
    if direction == "text_to_image":
        pos_of = {iid: j for j, iid in enumerate(img_ids)}
        q = [i for i, it in enumerate(txt_item) if it in pos_of]
        if not q:
            return None
        scores = txt_vec[q] @ img_vec.T
        positive = [[pos_of[txt_item[i]]] for i in q]
    else:
        caps = {}
        for j, it in enumerate(txt_item):
            caps.setdefault(it, []).append(j)
        q = [i for i, iid in enumerate(img_ids) if iid in caps]
        if not q:
            return None
        scores = img_vec[q] @ txt_vec.T
        positive = [caps[img_ids[i]] for i in q]
    opt, pess = ranks(scores, positive)
    recall = {k: (float(np.mean(pess <= k)), float(np.mean(opt <= k))) for k in ks}
    mrr = (float(np.mean(1.0 / pess)), float(np.mean(1.0 / opt)))
    return recall, mrr, len(q)


def check(run: Path, planted_path: Path):
    planted = json.loads(planted_path.read_text())
    tables = run / "tables"
    emb = pq.read_table(run / "embeddings").to_pandas()
    attrs = {r["id"]: r.get("split") for r in rows_of(run / "attributes.parquet")}
    summary_rows = rows_of(tables / "duplicates.parquet")
    pair_rows = rows_of(tables / "duplicate_pairs.parquet")
    leak_rows = rows_of(tables / "duplicate_leaks.parquet")
    item_rows = rows_of(tables / "duplicate_items.parquet")
    effect_rows = rows_of(tables / "duplicate_leak_effect.parquet")
    samples = rows_of(tables / "samples.parquet")
    probe_rows = rows_of(tables / "probe.parquet")
    retrieval_rows = rows_of(tables / "retrieval.parquet")
    report = {"models": {}}
    errors = []

    def expect(cond, what):
        if not cond:
            errors.append(what)

    for model, g in emb.groupby("model"):
        clean = g[(g.modality == "image") & (g.variant == "clean")]
        ids = list(clean.id)
        x32 = np.stack([np.asarray(e, dtype=np.float32) for e in clean.embedding])
        x = x32.astype(np.float64)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        cos = np.clip(xn @ xn.T, -1.0, 1.0)
        n = len(ids)
        summary = {r["metric"]: r["value"] for r in summary_rows if r["model"] == model}
        t = summary["threshold"]
        iu = np.triu_indices(n, 1)
        near = np.abs(cos[iu] - t) < 1e-9
        expect(not near.any(), f"{model}: a cosine within 1e-9 of the threshold; pick another")
        want = {frozenset((ids[a], ids[b])): cos[a, b] for a, b in zip(*iu) if cos[a, b] >= t}
        got_rows = [r for r in pair_rows if r["model"] == model]
        got = {frozenset((r["a_id"], r["b_id"])): r["cosine"] for r in got_rows}
        expect(len(got_rows) == len(got), f"{model}: a pair listed twice")
        expect(set(got) == set(want), f"{model}: pairs differ: {len(got)} vs {len(want)}")
        expect(all(close(got[p], want[p]) for p in got if p in want), f"{model}: pair cosines")
        cs = [r["cosine"] for r in got_rows]
        expect(all(a >= b for a, b in zip(cs, cs[1:])), f"{model}: pairs not strongest first")
        expect(summary["pairs"] == len(want), f"{model}: pair count {summary['pairs']}")

        group = [attrs.get(i) for i in ids]
        cross = {p for p in want
                 if all(attrs.get(i) is not None for i in p) and len({attrs[i] for i in p}) == 2}
        got_leaks = {frozenset((r["a_id"], r["b_id"])) for r in leak_rows if r["model"] == model}
        expect(got_leaks == cross, f"{model}: leaks differ: {len(got_leaks)} vs {len(cross)}")
        expect(summary["cross_group_pairs"] == len(cross), f"{model}: cross count")
        for r in got_rows:
            p = frozenset((r["a_id"], r["b_id"]))
            expect(r["cross"] == int(p in cross), f"{model}: cross flag of {sorted(p)}")
            expect(r["a_group"] == attrs.get(r["a_id"]), f"{model}: a_group of {r['a_id']}")
        leaking = {i for p in cross for i in p}
        expect(summary["leaking_images"] == len(leaking), f"{model}: leaking count")
        with_dup = {i for p in want for i in p}
        expect(summary["images_with_duplicate"] == len(with_dup), f"{model}: images with dups")

        # Uniqueness as FiftyOne Brain computes it (scikit-learn backend).
        centred = x - x.mean(axis=0)
        d = pairwise_distances(centred, metric="cosine")
        d = np.clip(d, 0, 2)
        np.fill_diagonal(d, np.nan)
        nearest = np.sort(np.where(np.isnan(d), np.inf, d), axis=1)[:, :4]
        u = np.mean(nearest[:, 1:] * np.array([0.6, 0.3, 0.1]), axis=1)
        u = u / u.max()
        items = {r["id"]: r for r in item_rows if r["model"] == model}
        expect(set(items) == set(ids), f"{model}: duplicate_items ids")
        off = cos.copy()
        np.fill_diagonal(off, -np.inf)
        worst = 0.0
        for i, iid in enumerate(ids):
            r = items[iid]
            worst = max(worst, abs(r["uniqueness"] - u[i]))
            expect(close(r["nearest_cosine"], off[i].max()), f"{model}: nearest of {iid}")
            expect(close(cos[i, ids.index(r["nearest_id"])], off[i].max()), f"{model}: nearest id")
            expect(r["duplicates"] == sum(1 for p in want if iid in p), f"{model}: dups of {iid}")
            expect(r["cross_group_duplicates"] == sum(1 for p in cross if iid in p),
                   f"{model}: cross dups of {iid}")
            expect(r["group"] == group[i], f"{model}: group of {iid}")
        expect(worst < 1e-9, f"{model}: uniqueness off by {worst}")
        expect(close(summary["nearest_cosine_median"], float(np.median(off.max(axis=1)))),
               f"{model}: nearest cosine median")

        # The planted pairs.
        # Byte-identical copies must be found whatever the threshold; a brightened copy when
        # its cosine reaches the threshold (the pair comparison above decides that).
        found = {}
        for p in planted:
            key = frozenset((p["a"], p["b"]))
            if p["kind"] != "near_leak":
                expect(key in want, f"{model}: planted {p['kind']} {p['a']} not found")
            if key in want:
                found[p["kind"]] = found.get(p["kind"], 0) + 1
                expect((key in cross) == (p["kind"] in ("leak", "near_leak")),
                       f"{model}: planted {p['kind']} {p['a']} leak flag")

        # The leak effect.
        effect = [r for r in effect_rows if r["model"] == model]
        expect(bool(effect) == bool(leaking), f"{model}: leak effect rows without leaks")
        checked_effect = 0
        for r in effect:
            if r["stage"] == "probe":
                clean_value = [p["value"] for p in probe_rows if p["model"] == model
                               and p["variant"] == "clean" and p["method"] == r["kind"]]
                expect(clean_value and close(r["all_items"], clean_value[0], 1e-12),
                       f"{model}: probe {r['kind']} all_items vs probe table")
            else:
                clean_value = [p["value"] for p in retrieval_rows if p["model"] == model
                               and p["variant"] == "clean"
                               and p.get("text_variant", "clean") == "clean"
                               and p["direction"] == r["kind"]
                               and p["metric"] == r["metric"] and p["k"] == r["k"]]
                expect(clean_value and close(r["all_items"], clean_value[0], 1e-12),
                       f"{model}: retrieval {r['kind']} {r['metric']}@{r['k']} vs retrieval table")
        # kNN probe with and without the leaking images, on the recorded split.
        label = dict(zip(clean.id, clean.label))
        vec = dict(zip(ids, x))
        mine = [s for s in samples if s["model"] == model and s["stage"] == "probe"]
        knn_rows = [r for r in effect if r["stage"] == "probe" and r["kind"] == "knn"]
        if knn_rows:
            r = knn_rows[0]
            for column, drop in (("all_items", set()), ("without_leaks", leaking)):
                train = [s["id"] for s in mine if s["role"] == "train" and s["id"] not in drop]
                test = [s["id"] for s in mine if s["role"] == "test" and s["id"] not in drop]
                k = min(r["k"], len(train))
                knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
                knn.fit(np.stack([vec[i] for i in train]), [label[i] for i in train])
                acc = float(np.mean(knn.predict(np.stack([vec[i] for i in test]))
                                    == [label[i] for i in test]))
                expect(close(acc, r[column], 1e-12), f"{model}: kNN {column} {acc} vs {r[column]}")
                expect(r["n_" + ("all" if column == "all_items" else "without")] == len(test),
                       f"{model}: kNN test count")
                checked_effect += 1
        # Retrieval with and without, both directions.
        texts = g[(g.modality == "text") & (g.variant == "clean") & ~g.id.str.startswith("prompt:")]
        if len(texts):
            t_item = [it if it is not None else i for i, it in zip(texts.id, texts.item_id)]
            t_vec = np.stack([np.asarray(e, dtype=np.float64) for e in texts.embedding])
            for direction in ("text_to_image", "image_to_text"):
                rs = [r for r in effect if r["stage"] == "retrieval"
                      and r["kind"].split(":")[0] == direction]
                if not rs:
                    continue
                ks = sorted({r["k"] for r in rs if r["metric"] == "recall"})
                for column, drop in (("all_items", set()), ("without_leaks", leaking)):
                    keep_i = [i for i, iid in enumerate(ids) if iid not in drop]
                    keep_t = [j for j, it in enumerate(t_item) if it not in drop]
                    b = retrieval_bounds([ids[i] for i in keep_i], x[keep_i],
                                         [t_item[j] for j in keep_t], t_vec[keep_t], direction, ks)
                    recall, mrr, nq = b
                    for r in rs:
                        lo, hi = recall[r["k"]] if r["metric"] == "recall" else mrr
                        v = r[column]
                        expect(lo - 1e-12 <= v <= hi + 1e-12,
                               f"{model}: {direction} {r['metric']}@{r['k']} {column} {v} "
                               f"outside [{lo}, {hi}]")
                        expect(r["n_" + ("all" if column == "all_items" else "without")] == nq,
                               f"{model}: {direction} query count")
                        checked_effect += 1
        report["models"][model] = {
            "images": n, "pairs": len(want), "cross_pairs": len(cross),
            "leaking_images": len(leaking), "uniqueness_max_error": worst,
            "leak_effect_values_checked": checked_effect, "planted_found": found,
        }
    report["ok"] = not errors
    report["errors"] = errors[:20]
    print(json.dumps(report, indent=1))
    sys.exit(0 if not errors else 1)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "plant":
        plant(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
