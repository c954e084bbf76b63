"""Opens a clipflow run directory the way users' analytics tools do and checks the contract.

Run by `cargo test` (tests/interop.rs) and usable by hand:
    .venv/bin/python scripts/check_interop.py runs/demo

Checks: pyarrow and polars read `embedding` as a fixed-size list / Array(Float32, D); the
vectors are L2-normalised; DuckDB reads the same rows and its cosine similarity over the
column cast to FLOAT[D] equals numpy's.
"""
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


def main(run_dir: Path) -> None:
    emb = run_dir / "embeddings"
    table = pq.read_table(emb)
    field = table.schema.field("embedding")
    assert pa.types.is_fixed_size_list(field.type), field.type
    dim = field.type.list_size
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    assert meta.get("clipflow.embedding_dim") == str(dim), meta
    for col in ["model", "modality", "id", "variant", "label", "text"]:
        assert col in table.column_names, col
    vectors = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(-1, dim)
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5), norms

    df = pl.read_parquet(str(emb / "**" / "*.parquet"))
    assert df.schema["embedding"] == pl.Array(pl.Float32, dim), df.schema["embedding"]
    assert df.height == table.num_rows

    con = duckdb.connect()
    glob = str(emb / "**" / "*.parquet")
    images = con.sql(
        f"select id, variant, model, embedding from read_parquet('{glob}') "
        "where modality = 'image' order by model, id, variant"
    ).fetchall()
    texts = con.sql(
        f"select id, model, embedding from read_parquet('{glob}') where modality = 'text' order by model, id"
    ).fetchall()
    assert images and texts
    model = images[0][2]
    duck = con.sql(
        f"""
        with e as (select * from read_parquet('{glob}') where model = '{model}')
        select i.id, i.variant, t.id,
               array_cosine_similarity(i.embedding::FLOAT[{dim}], t.embedding::FLOAT[{dim}]) as cos,
               list_cosine_similarity(i.embedding, t.embedding) as lcos
        from e i, e t where i.modality = 'image' and t.modality = 'text'
        order by i.id, i.variant, t.id
        """
    ).fetchall()
    img = {(r[0], r[1]): np.asarray(r[3], dtype=np.float64) for r in images if r[2] == model}
    txt = {r[0]: np.asarray(r[2], dtype=np.float64) for r in texts if r[1] == model}
    assert len(duck) == len(img) * len(txt)
    for iid, variant, tid, cos, lcos in duck:
        a, b = img[(iid, variant)], txt[tid]
        want = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert abs(cos - want) < 1e-5, (iid, tid, cos, want)
        assert abs(lcos - want) < 1e-5, (iid, tid, lcos, want)
    errors = pq.read_table(run_dir / "errors.parquet")
    assert {"id", "stage", "reason", "source"} <= set(errors.column_names)
    print(f"interop ok: {table.num_rows} rows, D={dim}, {len(duck)} DuckDB cosines equal numpy's")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
