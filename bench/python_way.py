#!/usr/bin/env python3
"""The Python way: prepare an RLHF-V parquet for LLaMA-Factory as users do today, for comparison.

  .venv/bin/python bench/python_way.py --input bench/data/rlhfv-1x-rg100.parquet --out /tmp/py-out [--procs 1|2]

What it does (a careful user's script, not a strawman):
- reads the file with pyarrow, 100 rows at a time (`ParquetFile.iter_batches`);
- hashes each image's source bytes (sha256) and processes every distinct source image once;
- resizes as LLaMA-Factory does (reference/llamafactory.md 3.2 step A): above image_max_pixels (262,144), scale
  by sqrt(max/(w*h)) to (int(w*f), int(h*f)) with `image.resize` and Pillow's default filter (BICUBIC), then
  convert to RGB; then rounds to the 28-pixel grid as Qwen2-VL's smart_resize would (min_pixels 3136,
  max_pixels = image_max_pixels), resizing again with BICUBIC only if the size changed;
- encodes JPEG quality 90 (Pillow defaults: 4:2:0, baseline) and writes it content-addressed as
  images/ab/<sha256>.jpg (skipped if that file exists);
- writes the sharegpt ranking rows in input order to rlhf_v_train.jsonl, image paths relative to the folder,
  and a dataset_info.json entry.
--procs 2 runs the image work in a 2-process pool (concurrent.futures), at most 4 x procs images in flight,
rows still written in order. Prints one JSON line with counts and seconds.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import io
import json
import math
import os
import time
from collections import deque
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

MAX_PIXELS = 262_144
MIN_PIXELS = 32 * 32  # LLaMA-Factory's image_min_pixels default
FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QUALITY = 90

OUT: Path | None = None


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = QWEN_MIN_PIXELS, max_pixels: int = MAX_PIXELS):
    """transformers' Qwen2-VL smart_resize."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def preprocess(image: Image.Image) -> Image.Image:
    """LLaMA-Factory MMPluginMixin._preprocess_image + Qwen2VLPlugin extras, then the 28-grid rounding."""
    if image.width * image.height > MAX_PIXELS:
        f = math.sqrt(MAX_PIXELS / (image.width * image.height))
        image = image.resize((int(image.width * f), int(image.height * f)))
    if image.width * image.height < MIN_PIXELS:
        f = math.sqrt(MIN_PIXELS / (image.width * image.height))
        image = image.resize((int(image.width * f), int(image.height * f)))
    if image.mode != "RGB":
        image = image.convert("RGB")
    if min(image.width, image.height) < 28:
        image = image.resize((max(image.width, 28), max(image.height, 28)))
    h, w = smart_resize(image.height, image.width)
    if (w, h) != image.size:
        image = image.resize((w, h), Image.Resampling.BICUBIC)
    return image


def init(out: str) -> None:
    global OUT
    OUT = Path(out)


def work(src: bytes) -> tuple[str, int, int, int] | None:
    """Decode, resize, encode, write content-addressed. Returns (relative path, width, height, bytes), or None
    for bytes Pillow cannot read (the row is then left out)."""
    try:
        image = preprocess(Image.open(io.BytesIO(src)))
    except (OSError, ValueError):
        return None
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=QUALITY)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    rel = f"images/{sha[:2]}/{sha}.jpg"
    p = OUT / rel
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, p)
    return rel, image.width, image.height, len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--procs", type=int, default=1, choices=[1, 2, 3, 4])
    ap.add_argument("--name", default="rlhf_v")
    a = ap.parse_args()
    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    init(a.out)
    pool = cf.ProcessPoolExecutor(a.procs, initializer=init, initargs=(a.out,)) if a.procs > 1 else None
    window = 4 * a.procs

    done: dict[str, str | None] = {}     # source sha256 -> output relative path (None: unreadable)
    inflight: deque = deque()            # (source sha, future)
    submitted: set[str] = set()
    pending: deque = deque()             # (row, [source sha, ...]) in input order
    jsonl_tmp = out / f"{a.name}_train.jsonl.tmp"
    rows_out = 0
    rows_bad = 0
    distinct = 0
    bytes_out = 0

    def finish_one() -> None:
        nonlocal bytes_out
        sha, fut = inflight.popleft()
        r = fut.result()
        done[sha] = r[0] if r else None
        bytes_out += r[3] if r else 0

    with open(jsonl_tmp, "w", encoding="utf-8") as f:
        def flush_rows() -> None:
            nonlocal rows_out, rows_bad
            while pending and all(s in done for s in pending[0][1]):
                row, shas = pending.popleft()
                if any(done[s] is None for s in shas):
                    rows_bad += 1
                    continue
                f.write(json.dumps({
                    "conversations": row["conversations"],
                    "chosen": row["chosen"],
                    "rejected": row["rejected"],
                    "images": [done[s] for s in shas],
                }, ensure_ascii=False) + "\n")
                rows_out += 1

        pf = pq.ParquetFile(a.input)
        for batch in pf.iter_batches(batch_size=100):
            for row in batch.to_pylist():
                shas = []
                for im in row["images"] or []:
                    src = im["bytes"]
                    sha = hashlib.sha256(src).hexdigest()
                    shas.append(sha)
                    if sha in submitted:
                        continue
                    submitted.add(sha)
                    distinct += 1
                    if pool is None:
                        r = work(src)
                        done[sha] = r[0] if r else None
                        bytes_out += r[3] if r else 0
                    else:
                        inflight.append((sha, pool.submit(work, src)))
                        while len(inflight) >= window:
                            finish_one()
                pending.append((row, shas))
                flush_rows()
        while inflight:
            finish_one()
        flush_rows()
    if pool is not None:
        pool.shutdown()
    os.replace(jsonl_tmp, out / f"{a.name}_train.jsonl")
    info = {a.name + "_train": {"file_name": f"{a.name}_train.jsonl", "formatting": "sharegpt", "ranking": True,
                                "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "images": "images"}}}
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({"rows": rows_out, "rows_unreadable_image": rows_bad, "distinct_images": distinct, "image_mb_out": round(bytes_out / 1e6, 2),
                      "procs": a.procs, "wall": round(time.time() - t0, 3)}))


if __name__ == "__main__":
    main()
