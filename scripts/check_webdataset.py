"""The webdataset library's own reading of WebDataset shards, for tests/webdataset.rs.

  check_webdataset.py write DIR IMAGE...       writes DIR/gnu.tar and DIR/pax.tar, shards with
                                               the names that exercise webdataset's key rules,
                                               with Python's tarfile (long names as GNU `L`
                                               members in one, as pax `path` records in the other)
  check_webdataset.py list SHARD...            prints, as JSON, the samples wds.WebDataset
                                               yields: key, image field, caption, label

clipflow must list the same samples from the same shard (same keys, same image member, same
caption text, same class): tests/webdataset.rs compares the two.
"""

import io
import json
import sys
import tarfile

import webdataset as wds

IMAGE_FIELDS = ["jpg", "jpeg", "png", "webp"]


def write(out_dir, images):
    for fmt, name in [(tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax")]:
        write_one(f"{out_dir}/{name}.tar", fmt, f"{name}/", images)


def write_one(out, fmt, prefix, images):
    long_dir = "d" * 120
    # (member name, source image index or bytes)
    members = [
        ("__meta__", b"shard metadata, skipped"),
        ("README", b"no extension: skipped"),
        ("000.jpg", 0),
        ("000.txt", "a caption"),
        ("000.cls", b"1\n"),
        ("000.seg.png", 1),  # field "seg.png": not an image field
        ("sub/dir.v2/001.JPG", 1),  # upper-case field, dotted folder
        ("sub/dir.v2/001.txt", "second caption"),
        ("sub/dir.v2/001.cls", b"0"),
        (f"{long_dir}/002.png", 2),  # a name over 100 bytes: a GNU long-name member
        (f"{long_dir}/002.txt", "third one, with a long name"),
        ("003.webp.jpg", 3),  # field "webp.jpg"
        ("003.webp.txt", "field webp.txt"),
        ("004.jpeg", 4),
        ("004.json", '{"x": 1}'),
    ]
    with tarfile.open(out, "w", format=fmt) as tar:
        for name, content in members:
            if not name.startswith("__"):
                name = prefix + name
            if isinstance(content, int):
                data = open(images[content % len(images)], "rb").read()
            elif isinstance(content, str):
                data = content.encode()
            else:
                data = content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))


def listing(shards):
    out = []
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
        image = next((f for f in IMAGE_FIELDS if f in sample), None)
        caption = sample["txt"].decode() if "txt" in sample else None
        label = int(sample["cls"]) if "cls" in sample else None
        out.append({"key": sample["__key__"], "image": image, "caption": caption, "label": label})
    return out


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3:])
    else:
        print(json.dumps(listing(sys.argv[2:])))
