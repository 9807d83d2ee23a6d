#!/usr/bin/env python3
"""Full-size RLHF-V stand-in for benchmarks: same schema, same scale, deterministic from a seed.

Run (from the repo root; the venv comes from `bash scripts/python-venv.sh`):
  .venv/bin/python bench/gen/make_rlhfv.py                    # 1x: rg100, ds5 and rg1 layouts
  .venv/bin/python bench/gen/make_rlhfv.py --scale 4 --layouts rg100
  .venv/bin/python bench/gen/make_rlhfv.py --check            # re-derive and compare with the files on disk

Writes into bench/data/ (git-ignored), for scale S:
  rlhfv-Sx-rg100.parquet   pyarrow, 100-row row groups, snappy, no page index (older `datasets` uploads)
  rlhfv-Sx-ds5.parquet     `datasets` 5 `Dataset.to_parquet()` (~100 MB row groups, page index, uncompressed)
  rlhfv-Sx-rg1.parquet     pyarrow defaults: a single row group, snappy
  rlhfv-Sx.meta.json       seed, counts, image size mix, bytes, sha256 of every file written

At scale 1: 5,733 rows (RLHF-V's count), 4,009 distinct images (~30% of rows reuse the image of another
row, in random order over the file), one image per row, ~350 MB. At scale S everything is S times larger
(rows and distinct images). The image mix:
  ~95%   JPEG "around 640x480" (long side 560-720, aspect 4:3, 3:4, 16:10, 1:1), quality 88-92, 4:2:0
  ~3.5%  large JPEG, long side 1200-2000 (up to 2000x1500), quality 88-92
  ~1.5%  PNG, long side 320-560 (RGB)
  ~0.5%  near-duplicates: an earlier image re-encoded at another quality or scaled by 2-4% (distinct bytes)
Each image is a random crop (12-60% of the photo's area) of one of the photos in shared/photos (licences:
shared/photos/SOURCES.md), scaled (with a random softening), colour-jittered (brightness, contrast,
saturation) and mirrored half of the time. Every image's bytes are distinct (checked). Crops of the same photo
rarely look alike: `node bench/gen/near-dups.mjs` counts ~56 pairs within 6 bits of pHash (the stage's
near-duplicate threshold) at scale 1, 20 of them the planned ones.
Row text is synthetic, RLHF-V-like (a question about the image, an accurate and a hallucinated answer);
~5% of rows are multi-turn and ~2% carry a system turn. Every row is valid for LLaMA-Factory.

The schema and the `huggingface` key-value metadata are those of fixtures/rlhf-v-sample.parquet
(scripts/make_fixtures.py); the ds5 layout carries the metadata `datasets` 5 writes itself.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data"
GENERATOR_VERSION = 2

BASE_ROWS = 5733
BASE_DISTINCT = 4009


def find_photos() -> Path:
    env = os.environ.get("PREFPIPE_PHOTOS")
    cands = [Path(env)] if env else []
    cands += [ROOT.parent / "shared" / "photos", ROOT / "shared" / "photos", Path("/work/shared/photos")]
    for c in cands:
        if (c / "SOURCES.md").is_file():
            return c
    sys.exit("make_rlhfv: cannot find the photo pool (shared/photos/SOURCES.md); set PREFPIPE_PHOTOS")


PHOTOS = find_photos()
PHOTO_FILES = sorted(p.name for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

# ------------------------------------------------------------------------------------------------
# schema: exactly scripts/make_fixtures.py's

TURN = pa.struct([pa.field("from", pa.string()), pa.field("value", pa.string())])
IMAGE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
_V = {"dtype": "string", "_type": "Value"}
HF_META = json.dumps(
    {
        "info": {
            "features": {
                "conversations": [{"from": _V, "value": _V}],
                "chosen": {"from": _V, "value": _V},
                "rejected": {"from": _V, "value": _V},
                "images": [{"_type": "Image"}],
            }
        }
    },
    separators=(",", ":"),
)
SCHEMA = pa.schema(
    [
        pa.field("conversations", pa.list_(TURN)),
        pa.field("chosen", TURN),
        pa.field("rejected", TURN),
        pa.field("images", pa.list_(IMAGE)),
    ],
    metadata={"huggingface": HF_META},
)

# ------------------------------------------------------------------------------------------------
# image specs (decided in the parent from the seed; rendered in workers, so the output does not depend on -j)

ASPECTS = [(4, 3)] * 6 + [(3, 4)] * 2 + [(16, 10)] + [(1, 1)]


def image_specs(rng: random.Random, n: int) -> list[dict]:
    specs: list[dict] = []
    n_near = max(1, round(n * 0.005))
    n_base = n - n_near
    for k in range(n_base):
        r = rng.random()
        kind = "large" if r < 0.035 else "png" if r < 0.05 else "jpeg"
        aw, ah = rng.choice(ASPECTS)
        if kind == "large":
            long_side = rng.randint(1200, 2000)
        elif kind == "png":
            long_side = rng.randint(320, 560)
        else:
            long_side = rng.randint(560, 720)
        if aw >= ah:
            w, h = long_side, round(long_side * ah / aw)
        else:
            w, h = round(long_side * aw / ah), long_side
        specs.append({
            "k": k,
            "kind": kind,
            "photo": rng.randrange(len(PHOTO_FILES)),
            "crop_area": rng.uniform(0.12, 0.6),  # of the largest crop with this aspect
            "crop_x": rng.random(),
            "crop_y": rng.random(),
            "w": w,
            "h": h,
            "soft": rng.uniform(0.75, 1.0) if kind == "jpeg" else rng.uniform(0.45, 0.6),
            "bright": rng.uniform(0.88, 1.12),
            "contrast": rng.uniform(0.88, 1.12),
            "sat": rng.uniform(0.8, 1.2),
            "mirror": rng.random() < 0.5,
            "quality": rng.randint(88, 92),
        })
    # near-duplicates of earlier images: another quality, or a 2-4% rescale
    for j in range(n_near):
        of = rng.randrange(n_base)
        base = dict(specs[of])
        base["k"] = n_base + j
        base["near_of"] = of
        if rng.random() < 0.5:
            base["quality"] = base["quality"] - rng.randint(8, 14)
            base["near"] = "quality"
        else:
            f = 1 - rng.uniform(0.02, 0.04)
            base["w"], base["h"] = round(base["w"] * f), round(base["h"] * f)
            base["near"] = "scale"
        specs.append(base)
    return specs


_photo_cache: dict[int, Image.Image] = {}


def photo(i: int) -> Image.Image:
    im = _photo_cache.get(i)
    if im is None:
        im = Image.open(PHOTOS / PHOTO_FILES[i])
        im.load()
        im = im.convert("RGB")
        _photo_cache[i] = im
    return im


def render(spec: dict) -> bytes:
    src = photo(spec["photo"])
    sw, sh = src.size
    w, h = spec["w"], spec["h"]
    # the largest crop of the target aspect, shrunk to crop_area of it
    if sw / sh > w / h:
        cw0, ch0 = sh * w / h, sh
    else:
        cw0, ch0 = sw, sw * h / w
    s = math.sqrt(spec["crop_area"])
    cw, ch = max(8, int(cw0 * s)), max(8, int(ch0 * s))
    x = int((sw - cw) * spec["crop_x"])
    y = int((sh - ch) * spec["crop_y"])
    im = src.crop((x, y, x + cw, y + ch))
    # soften (what real camera JPEGs at this size look like, byte-wise), then to the final size
    mw, mh = max(16, int(w * spec["soft"])), max(16, int(h * spec["soft"]))
    im = im.resize((mw, mh), Image.Resampling.BILINEAR, reducing_gap=2.0)
    im = im.resize((w, h), Image.Resampling.BICUBIC)
    im = ImageEnhance.Brightness(im).enhance(spec["bright"])
    im = ImageEnhance.Contrast(im).enhance(spec["contrast"])
    im = ImageEnhance.Color(im).enhance(spec["sat"])
    if spec["mirror"]:
        im = ImageOps.mirror(im)
    buf = io.BytesIO()
    if spec["kind"] == "png":
        im.save(buf, "PNG", compress_level=6)
    else:
        im.save(buf, "JPEG", quality=spec["quality"], optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# text

OBJECTS = ["the main object", "the person", "the animal", "the building", "the vehicle", "the food", "the sign",
           "the table", "the sky", "the plant", "the fruit", "the tool", "the street", "the window", "the wall"]
QUESTIONS = [
    "What is shown in this image?",
    "Describe the image in detail.",
    "What color is {o}?",
    "Where is {o} located in the picture?",
    "How many objects can you count near {o}?",
    "What is happening in this scene?",
    "Is there any text visible in the image? What does it say?",
    "What is the weather or lighting like in this photo?",
    "Describe {o} and its surroundings.",
    "What material does {o} appear to be made of?",
    "What is in the background of the image?",
    "Can you describe the left side of the picture?",
    "What stands out most about {o}?",
    "Is {o} close to the camera or far away?",
    "What might have happened just before this photo was taken?",
    "Give a short caption for this image.",
]
COLORS = ["red", "green", "blue", "yellow", "white", "black", "grey", "brown", "orange", "pink", "purple", "beige"]
PLACES = ["in the center", "on the left", "on the right", "near the top", "at the bottom", "in the foreground",
          "in the background", "in the lower left corner", "along the right edge"]
TRUE_BITS = [
    "{O} is {c} and sits {p} of the frame.",
    "The lighting is soft and comes from {p}, which leaves gentle shadows.",
    "There is a {c} surface behind {o}, slightly out of focus.",
    "{O} takes up about a {f} of the picture.",
    "The edges of {o} are sharp, while the area {p} is blurred.",
    "A few small details are visible {p}, mostly {c} and {c2}.",
    "Nothing else in the scene draws attention away from {o}.",
    "The photo appears to be taken at eye level.",
    "The overall colors are muted, with {c} and {c2} tones dominating.",
    "The texture of {o} is clearly visible up close.",
]
FALSE_BITS = [
    "{O} is bright {c} and is held by a person {p}.",
    "There are three dogs playing {p} of the frame.",
    "A large {c} umbrella covers most of the scene.",
    "Snow is falling, and the ground {p} is covered in ice.",
    "The sign {p} clearly reads \"OPEN 24 HOURS\".",
    "A crowd of people is watching {o} from {p}.",
    "There is a {c} car parked right next to {o}.",
    "The picture was taken at night under street lights.",
    "{O} is reflected in a large mirror {p}.",
    "Several birds are flying above {o} in a {c} sky.",
]
FRACTIONS = ["quarter", "third", "half", "tenth"]
SYSTEMS = ["You are a careful visual assistant. Describe only what is visible.",
           "You are a helpful assistant that answers questions about images accurately."]


def fill(t: str, rng: random.Random, o: str) -> str:
    c, c2 = rng.sample(COLORS, 2)
    return t.format(o=o, O=o[0].upper() + o[1:], c=c, c2=c2, p=rng.choice(PLACES), f=rng.choice(FRACTIONS))


def row_text(rng: random.Random, i: int) -> dict:
    o = rng.choice(OBJECTS)
    q = rng.choice(QUESTIONS).format(o=o)
    n = rng.randint(2, 6)
    chosen = " ".join(fill(t, rng, o) for t in rng.sample(TRUE_BITS, n))
    bad = rng.sample(FALSE_BITS, rng.randint(1, 3))
    keep = rng.sample(TRUE_BITS, max(1, n - len(bad)))
    rejected_bits = [fill(t, rng, o) for t in keep] + [fill(t, rng, o) for t in bad]
    rng.shuffle(rejected_bits)
    rejected = " ".join(rejected_bits)
    r = rng.random()
    conv: list[dict] = []
    if r < 0.02:
        conv.append({"from": "system", "value": rng.choice(SYSTEMS)})
    if 0.02 <= r < 0.07:
        conv += [{"from": "human", "value": f"<image>\n{q}"},
                 {"from": "gpt", "value": fill(rng.choice(TRUE_BITS), rng, o)},
                 {"from": "human", "value": f"Tell me more about {o} (question {i})."}]
    else:
        conv.append({"from": "human", "value": f"<image>\n{q}" if rng.random() < 0.8 else f"{q}\n<image>"})
    return {"conversations": conv,
            "chosen": {"from": "gpt", "value": chosen},
            "rejected": {"from": "gpt", "value": f"{rejected} (#{i})" if rng.random() < 0.5 else rejected}}


# ------------------------------------------------------------------------------------------------


def build(seed: int, scale: int, jobs: int, quiet: bool) -> tuple[list[dict], dict]:
    rng = random.Random(f"prefpipe-bench-rlhfv/{seed}/{scale}")
    n_rows = BASE_ROWS * scale
    n_img = BASE_DISTINCT * scale
    specs = image_specs(rng, n_img)
    t0 = time.time()
    if jobs > 1:
        with mp.get_context("fork").Pool(jobs) as pool:
            blobs = pool.map(render, specs, chunksize=16)
    else:
        blobs = [render(s) for s in specs]
    # bytes must be distinct: nudge the quality of a clash until it is (deterministic)
    seen: dict[bytes, int] = {}
    for k, b in enumerate(blobs):
        d = hashlib.sha256(b).digest()
        while d in seen:
            specs[k]["quality"] = max(50, specs[k]["quality"] - 1)
            specs[k]["kind"] = "jpeg" if specs[k]["kind"] == "png" else specs[k]["kind"]
            blobs[k] = b = render(specs[k])
            d = hashlib.sha256(b).digest()
        seen[d] = k
    if not quiet:
        print(f"  {n_img} images rendered in {time.time() - t0:.1f} s ({sum(map(len, blobs)) / 1e6:.1f} MB)", flush=True)
    # image of each row: every image once, the rest reuse a random image; shuffled over the file
    uses = list(range(n_img)) + [rng.randrange(n_img) for _ in range(n_rows - n_img)]
    rng.shuffle(uses)
    rows = []
    for i, k in enumerate(uses):
        r = row_text(rng, i)
        r["images"] = [{"bytes": blobs[k], "path": None}]
        rows.append(r)
    kinds: dict[str, int] = {}
    for s in specs:
        key = "near-duplicate" if s.get("near") else s["kind"]
        kinds[key] = kinds.get(key, 0) + 1
    stats = {
        "rows": n_rows,
        "distinct_images": n_img,
        "rows_reusing_an_image": n_rows - n_img,
        "image_kinds": kinds,
        "image_bytes_distinct": sum(map(len, blobs)),
        "image_bytes_all_rows": sum(len(blobs[k]) for k in uses),
        "multi_turn_rows": sum(1 for r in rows if len(r["conversations"]) == 3),
        "system_rows": sum(1 for r in rows if r["conversations"][0]["from"] == "system"),
    }
    return rows, stats


def table_of(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def write_layout(layout: str, table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    if layout == "rg100":
        pq.write_table(table, tmp, row_group_size=100, compression="snappy", write_page_index=False)
    elif layout == "rg1":
        pq.write_table(table, tmp, row_group_size=table.num_rows, compression="snappy")
    elif layout == "ds5":
        import datasets  # noqa: PLC0415

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        feats = datasets.Features({
            "conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")}),
            "chosen": {"from": datasets.Value("string"), "value": datasets.Value("string")},
            "rejected": {"from": datasets.Value("string"), "value": datasets.Value("string")},
            "images": datasets.List(datasets.Image()),
        })
        ds = datasets.Dataset(table.cast(feats.arrow_schema)).cast(feats)
        ds.to_parquet(str(tmp))  # datasets' own defaults: ~100 MB row groups
    else:
        raise ValueError(layout)
    os.replace(tmp, path)


def file_sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def summarize(path: Path) -> dict:
    md = pq.ParquetFile(path).metadata
    groups = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    kv = md.metadata or {}
    return {
        "bytes": path.stat().st_size,
        "rows": md.num_rows,
        "row_groups": len(groups),
        "row_group_rows": sorted(set(groups)),
        "codecs": sorted({md.row_group(i).column(j).compression for i in range(md.num_row_groups) for j in range(md.num_columns)}),
        "offset_index": all(md.row_group(i).column(j).has_offset_index for i in range(md.num_row_groups) for j in range(md.num_columns)),
        "huggingface_meta": b"huggingface" in kv,
        "created_by": md.created_by,
    }


def check_schema(path: Path) -> None:
    """The arrow schema (names, types) and the `datasets` features must be those of the committed sample."""
    ref = pq.read_schema(ROOT / "fixtures" / "rlhf-v-sample.parquet")
    got = pq.read_schema(path)
    if not got.remove_metadata().equals(ref.remove_metadata()):
        raise SystemExit(f"make_rlhfv: {path.name}: schema differs from fixtures/rlhf-v-sample.parquet:\n{got}\n---\n{ref}")
    import datasets  # noqa: PLC0415

    f_ref = datasets.Features.from_arrow_schema(ref)
    f_got = datasets.Features.from_arrow_schema(got)
    if f_ref != f_got:
        raise SystemExit(f"make_rlhfv: {path.name}: datasets features differ: {f_got} vs {f_ref}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=1, help="rows and distinct images times this (default 1)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--layouts", default="rg100,ds5,rg1", help="comma list of rg100, ds5, rg1 (default all three)")
    ap.add_argument("--out", default=str(DATA))
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="processes rendering images")
    ap.add_argument("--force", action="store_true", help="rewrite files that already exist")
    ap.add_argument("--check", action="store_true", help="re-derive the files and compare sha256 with the ones on disk")
    ap.add_argument("--dump-images", metavar="DIR", help="only render the distinct images into DIR (k.jpg/png + specs.json), for bench/gen/near-dups.mjs")
    a = ap.parse_args()
    if a.dump_images:
        d = Path(a.dump_images)
        d.mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"prefpipe-bench-rlhfv/{a.seed}/{a.scale}")
        specs = image_specs(rng, BASE_DISTINCT * a.scale)
        with mp.get_context("fork").Pool(a.jobs) as pool:
            blobs = pool.map(render, specs, chunksize=16)
        for s, b in zip(specs, blobs):
            (d / f"{s['k']:05d}.{'png' if s['kind'] == 'png' else 'jpg'}").write_bytes(b)
        (d / "specs.json").write_text(json.dumps([{**s, "photo_name": PHOTO_FILES[s["photo"]]} for s in specs]))
        print(f"make_rlhfv: {len(specs)} images in {d} ({sum(map(len, blobs)) / 1e6:.1f} MB)")
        return
    layouts = [x for x in a.layouts.split(",") if x]
    for lay in layouts:
        if lay not in ("rg100", "ds5", "rg1"):
            ap.error(f"unknown layout {lay!r}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"rlhfv-{a.scale}x"
    paths = {lay: out / f"{stem}-{lay}.parquet" for lay in layouts}
    meta_path = out / f"{stem}.meta.json"
    if not a.force and not a.check and all(p.is_file() for p in paths.values()) and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("seed") == a.seed and meta.get("generator") == GENERATOR_VERSION and all(lay in meta["files"] for lay in layouts):
            print(f"make_rlhfv: {', '.join(p.name for p in paths.values())} already there (seed {a.seed}); --force to rewrite")
            return
    t0 = time.time()
    print(f"make_rlhfv: scale {a.scale}, seed {a.seed}, layouts {','.join(layouts)}, {a.jobs} jobs", flush=True)
    rows, stats = build(a.seed, a.scale, a.jobs, quiet=False)
    table = table_of(rows)
    del rows
    if a.check:
        tmpdir = out / f".check-{os.getpid()}"
        tmpdir.mkdir()
        try:
            meta = json.loads(meta_path.read_text())
            bad = []
            for lay in layouts:
                p = tmpdir / paths[lay].name
                write_layout(lay, table, p)
                if file_sha256(p) != meta["files"].get(lay, {}).get("sha256"):
                    bad.append(lay)
            print("make_rlhfv --check: " + ("OK, identical" if not bad else f"DIFFER: {', '.join(bad)}"))
            sys.exit(1 if bad else 0)
        finally:
            for p in tmpdir.iterdir():
                p.unlink()
            tmpdir.rmdir()
    prev = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    files = prev.get("files", {}) if prev.get("seed") == a.seed and prev.get("generator") == GENERATOR_VERSION else {}
    for lay in layouts:
        t1 = time.time()
        write_layout(lay, table, paths[lay])
        check_schema(paths[lay])
        files[lay] = {"file": paths[lay].name, **summarize(paths[lay]), "sha256": file_sha256(paths[lay])}
        f = files[lay]
        print(f"  {paths[lay].name}: {f['bytes'] / 1e6:.1f} MB, {f['rows']} rows, {f['row_groups']} row groups "
              f"({', '.join(map(str, f['row_group_rows']))} rows), {','.join(f['codecs'])}, "
              f"offset index {'yes' if f['offset_index'] else 'no'} ({time.time() - t1:.1f} s)", flush=True)
    meta = {"generator": GENERATOR_VERSION, "seed": a.seed, "scale": a.scale, **stats, "files": files,
            "photos": len(PHOTO_FILES)}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"  {stats['rows']} rows, {stats['distinct_images']} distinct images ({stats['image_kinds']}), "
          f"{stats['rows_reusing_an_image']} rows reuse an image; done in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
