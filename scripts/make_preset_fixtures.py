#!/usr/bin/env python3
"""Generate the preset fixtures under test/fixtures/presets/, deterministically.

Run:  bash scripts/python-venv.sh && .venv/bin/python scripts/make_preset_fixtures.py

Writes (paths relative to the repo root):
  test/fixtures/presets/rlaif-v-sample.parquet   12 rows in the exact schema of openbmb/RLAIF-V-Dataset, real photos
  test/fixtures/presets/dpo-en-demo.json          8 rows in the shape of LLaMA-Factory's data/dpo_en_demo.json (sharegpt)
  test/fixtures/presets/alpaca-ranking.json      6 rows in LLaMA-Factory's alpaca ranking shape
  test/fixtures/presets/expected.json            per file and row: valid?, the reject reason of a broken row
  test/fixtures/presets/ATTRIBUTION.md           photos used, licences, how the files were made

Everything comes from fixed text and the photos in shared/photos (or $PREFPIPE_PHOTOS); nothing depends on the
clock, so re-running gives byte-identical files with the pinned scripts/requirements.txt.
Options: --check  regenerate into a temp dir and compare with the committed files (exit 1 on a difference).
"""
from __future__ import annotations

import argparse
import filecmp
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = Path("test") / "fixtures" / "presets"


def find_photos() -> Path:
    env = os.environ.get("PREFPIPE_PHOTOS")
    cands = [Path(env)] if env else []
    cands += [ROOT.parent / "shared" / "photos", ROOT / "shared" / "photos", Path("/work/shared/photos")]
    for c in cands:
        if (c / "SOURCES.md").is_file():
            return c
    sys.exit("make_preset_fixtures: cannot find the photo pool (shared/photos/SOURCES.md); set PREFPIPE_PHOTOS")


PHOTOS = find_photos()

# ------------------------------------------------------------------------------------------------
# RLAIF-V: the schema as `datasets` writes it for openbmb/RLAIF-V-Dataset (every column a string but `image`,
# an `Image()` feature stored as struct<bytes: binary, path: string>)

RLAIF_COLUMNS = ["ds_name", "image", "question", "chosen", "rejected", "origin_dataset", "origin_split", "idx", "image_path"]
_V = {"dtype": "string", "_type": "Value"}
# byte for byte what `datasets` (5.x) writes: json.dumps with its default separators
RLAIF_HF_META = json.dumps({"info": {"features": {c: ({"_type": "Image"} if c == "image" else _V) for c in RLAIF_COLUMNS}}})
IMAGE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
RLAIF_SCHEMA = pa.schema(
    [pa.field(c, IMAGE if c == "image" else pa.string()) for c in RLAIF_COLUMNS],
    metadata={"huggingface": RLAIF_HF_META},
)

# key -> (photo, long side); every photo is stored as a baseline JPEG, quality 85
RLAIF_PHOTOS = {
    "astronaut": ("skimage-astronaut.png", 384),
    "apple": ("opencv-apple.jpg", 320),
    "orange": ("opencv-orange.jpg", 320),
    "books": ("opencv-books.jpg", 384),
    "notebook": ("opencv-notebook.jpg", 320),
    "aloe": ("opencv-aloe.jpg", 320),
    "building": ("opencv-building.jpg", 384),
}


def jpeg(key: str) -> bytes:
    name, long_side = RLAIF_PHOTOS[key]
    im = Image.open(PHOTOS / name)
    im.load()
    im = im.convert("RGB")
    w, h = im.size
    f = long_side / max(w, h)
    im = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85, optimize=False, progressive=False)
    return buf.getvalue()


def origin_split(model: str, kind: str) -> str:
    # RLAIF-V keeps generation metadata as JSON text in this string column
    return json.dumps({"model": model, "feedback_model": "RLAIF-V 12B", "type": kind}, separators=(", ", ": "))


# (image key or None for a null image, question, chosen, rejected, origin_dataset, image.path, breaks)
RLAIF_ROWS = [
    ("astronaut", "What is the person in the image wearing?",
     "The person is wearing an orange spacesuit with mission patches on the chest and shoulder, and is holding a white helmet with a dark visor.",
     "The person is wearing a blue business suit with a red tie and a pair of sunglasses.",
     "LLaVA", None, None),
    ("apple", "Describe the fruit in the picture.",
     "It is a single large red apple with a short stem, standing on a surface in front of a blurred green and yellow background.",
     "It is a bunch of green grapes lying in a white bowl next to a knife.",
     "COCO", "apple.jpg", None),
    ("orange", "What fruit is this, and what is it resting on?",
     "It is an orange with a dimpled skin, resting on a wooden surface with a yellow object in front of it.",
     "It is a peeled tangerine lying on a glass plate covered with a napkin.",
     "VQAv2", None, None),
    ("books", "What are the titles of the two books standing on the floor?",
     "The book on the left is \"Let Us C\" and the one on the right is \"Basic Electronics\".",
     "The books are \"War and Peace\" and \"The Great Gatsby\".",
     "OK-VQA", None, None),
    ("notebook", "What keeps the notebook closed?",
     "A bright green elastic band runs down the black cover and holds the notebook closed.",
     "A metal clasp with a small padlock keeps the notebook closed.",
     "LLaVA", None, None),
    ("aloe", "What kind of plant is this, and what is it planted in?",
     "It looks like an aloe plant with long, thick, spiky green leaves, planted in a terracotta pot in front of a patterned cloth.",
     "It is a small cactus with pink flowers, planted in a blue ceramic cup.",
     "COCO", None, None),
    ("building", "Describe the building in the image.",
     "It is a modern multi-storey building with a light facade and rows of identical windows, with trees and a lawn in front of it under a blue sky.",
     "It is a small wooden cottage with a thatched roof beside a river.",
     "VQAv2", "building.jpg", None),
    ("astronaut", "<image>\nWhat can be seen on the right side of the picture?",
     "A model of a space shuttle on its launch stack stands on the right, and a white helmet is held at the lower right.",
     "A large window shows the Earth and the Moon on the right.",
     "LLaVA", None, None),
    ("apple", "Is the apple cut?",
     "No, the apple is whole.",
     "No, the apple is whole.",
     "VQAv2", None, "responses_identical"),
    ("books", "What color is the cover of the book on the right?",
     "The cover of the book on the right is dark blue.",
     "",
     "OK-VQA", None, "response_empty"),
    (None, "What is next to the orange?",
     "A yellow object lies in front of the orange.",
     "A glass of orange juice stands next to the orange.",
     "COCO", None, "image_missing"),
    ("aloe", "How many pots can you see?",
     "There is one terracotta pot in the picture.",
     "There are three pots of different sizes.",
     "COCO", "aloe.jpg", None),
]


def build_rlaif_v(out_dir: Path) -> tuple[list[dict], dict[str, bytes]]:
    images = {k: jpeg(k) for k in RLAIF_PHOTOS}
    rows = []
    models = ["OmniLMM-12B", "LLaVA-1.5-7B", "MiniCPM-V-2"]
    for i, (key, q, c, r, origin, path, _) in enumerate(RLAIF_ROWS):
        rows.append({
            "ds_name": "RLAIF-V",
            "image": None if key is None else {"bytes": images[key], "path": path},
            "question": q,
            "chosen": c,
            "rejected": r,
            "origin_dataset": origin,
            "origin_split": origin_split(models[i % len(models)], "question_answering" if i % 2 == 0 else "detailed_description"),
            "idx": str(1000 + i),
            "image_path": None if key is None else f"{origin}/images/{key}.jpg",
        })
    table = pa.Table.from_pylist(rows, schema=RLAIF_SCHEMA)
    pq.write_table(table, out_dir / OUT / "rlaif-v-sample.parquet", row_group_size=8, compression="snappy")
    return rows, images


# ------------------------------------------------------------------------------------------------
# dpo_en_demo: LLaMA-Factory's data/dpo_en_demo.json is sharegpt ranking (conversations / chosen / rejected
# objects with from/value; a leading system turn in some rows), a JSON array indented by 2, non-ASCII kept.

def H(v: str) -> dict:
    return {"from": "human", "value": v}


def G(v: str) -> dict:
    return {"from": "gpt", "value": v}


DPO_ROWS = [
    ({"conversations": [H("Give me three tips for staying focused while working from home.")],
      "chosen": G("1. Keep a fixed start and end time.\n2. Work in one place that you use only for work.\n3. Turn off notifications and check messages at set times."),
      "rejected": G("Just try harder to focus.")}, None),
    ({"conversations": [
        {"from": "system", "value": "You are a patient teacher. Explain step by step."},
        H("Why does ice float on water?")],
      "chosen": G("Water expands when it freezes: its molecules lock into an open hexagonal lattice, so ice is about 9% less dense than liquid water, and anything less dense than water floats."),
      "rejected": G("Ice floats because it is colder than water, and cold things always rise.")}, None),
    ({"conversations": [
        H("Who wrote \"Pride and Prejudice\"?"),
        G("Jane Austen wrote it; it was published in 1813."),
        H("Name two other novels by the same author.")],
      "chosen": G("\"Sense and Sensibility\" (1811) and \"Emma\" (1815)."),
      "rejected": G("\"Jane Eyre\" and \"Wuthering Heights\".")}, None),
    ({"conversations": [H("用一句话解释什么是机器学习。")],
      "chosen": G("机器学习是让计算机从数据中自动学习规律，并用这些规律对新数据做出预测或决策的方法。"),
      "rejected": G("机器学习就是让机器人学会走路。")}, None),
    ({"conversations": [H("Write a Python function that returns the squares of a list of numbers.")],
      "chosen": G("```python\ndef squares(xs):\n    return [x * x for x in xs]\n```"),
      "rejected": G("```python\ndef squares(xs):\n    return xs * 2\n```")}, None),
    # broken on purpose: chosen/rejected as plain strings (the alpaca shape); LLaMA-Factory drops such a
    # sharegpt row, prefpipe rejects it when reading (response_not_object)
    ({"conversations": [H("What is the capital of Australia?")],
      "chosen": "Canberra.",
      "rejected": "Sydney."}, "response_not_object"),
    ({"conversations": [H("Is 1 a prime number?")],
      "chosen": G("No. A prime has exactly two distinct positive divisors, and 1 has only one."),
      "rejected": G("Yes, 1 is the smallest prime number.")}, None),
    ({"conversations": [H("Convert 100 degrees Fahrenheit to Celsius.")],
      "chosen": G("(100 - 32) x 5/9 = 37.8 degrees Celsius (rounded)."),
      "rejected": G("100 degrees Fahrenheit is 212 degrees Celsius.")}, None),
]

# alpaca ranking (LLaMA-Factory data/README.md, "Preference Dataset" in alpaca format): string answers
ALPACA_ROWS = [
    ({"instruction": "Translate the word into French.", "input": "cat", "chosen": "chat", "rejected": "chien"}, None),
    ({"instruction": "Name the largest planet in the solar system.", "input": "", "chosen": "Jupiter.", "rejected": "Saturn."}, None),
    ({"instruction": "Summarize the sentence in three words.", "input": "The quick brown fox jumps over the lazy dog.",
      "chosen": "Fox jumps dog.", "rejected": "The dog sleeps.", "system": "Answer tersely."}, None),
    ({"instruction": "And its square root?", "input": "", "chosen": "The square root of 16 is 4.",
      "rejected": "The square root of 16 is 8.", "history": [["What is 8 + 8?", "16."]]}, None),
    ({"instruction": "", "input": "What color is the sky on a clear day?", "chosen": "Blue.", "rejected": "Green."}, None),
    # broken on purpose: sharegpt-style objects as answers in an alpaca file
    ({"instruction": "Say hello.", "input": "", "chosen": {"from": "gpt", "value": "Hello!"},
      "rejected": {"from": "gpt", "value": "Bye."}}, "row_shape"),
]


def write_json_rows(path: Path, rows: list[tuple[dict, str | None]]) -> None:
    path.write_text(json.dumps([r for r, _ in rows], ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_expected(out_dir: Path, rlaif_rows: list[dict]) -> None:
    def rows(breaks: list[str | None]) -> list[dict]:
        return [{"row": i, "valid": b is None, "reason": b} for i, b in enumerate(breaks)]

    exp = {
        "rlaif-v-sample.parquet": [
            {**e, "image_sha256": None if r["image"] is None else sha(r["image"]["bytes"])}
            for e, r in zip(rows([x[6] for x in RLAIF_ROWS]), rlaif_rows)
        ],
        "dpo-en-demo.json": rows([b for _, b in DPO_ROWS]),
        "alpaca-ranking.json": rows([b for _, b in ALPACA_ROWS]),
    }
    text = "{\n" + ",\n".join(
        f"  {json.dumps(k)}: [\n" + ",\n".join("    " + json.dumps(e, ensure_ascii=False) for e in v) + "\n  ]"
        for k, v in exp.items()
    ) + "\n}\n"
    (out_dir / OUT / "expected.json").write_text(text, encoding="utf-8")


def write_attribution(out_dir: Path, images: dict[str, bytes]) -> None:
    sources = (PHOTOS / "SOURCES.md").read_text(encoding="utf-8").splitlines()
    header = [l for l in sources if l.startswith("| file |") or l.startswith("|---")][:2]
    used = {name for name, _ in RLAIF_PHOTOS.values()}
    table = [l for l in sources if l.startswith("| ") and l.split("|")[1].strip() in used]
    uses = {k: sum(1 for x in RLAIF_ROWS if x[0] == k) for k in RLAIF_PHOTOS}
    lines = [
        "# Preset fixture attribution",
        "",
        "Generated by `scripts/make_preset_fixtures.py`; do not edit by hand.",
        "",
        "## rlaif-v-sample.parquet",
        "",
        f"{len(RLAIF_ROWS)} rows in the exact schema of the Hub dataset `openbmb/RLAIF-V-Dataset` (`ds_name`, `image` =",
        "`{bytes, path}`, `question`, `chosen`, `rejected`, `origin_dataset`, `origin_split`, `idx`, `image_path`, all",
        "strings but `image`), written by pyarrow with the `huggingface` key-value metadata as `datasets` writes it",
        "(`\"image\": {\"_type\": \"Image\"}`, the rest `Value(\"string\")`), snappy, row groups of 8 rows.",
        "The text was written for these photos in the style of RLAIF-V; it is not taken from RLAIF-V, and the",
        "`ds_name`/`origin_*`/`idx`/`image_path` values are made up in the dataset's style.",
        "3 rows are broken on purpose (identical answers, an empty rejected answer, a null image); `expected.json`",
        "says which. Each photo was converted to RGB, resized with LANCZOS to the long side below and saved as",
        "baseline JPEG quality 85 (Pillow); no metadata is copied.",
        "",
        "| key | photo | stored as | rows |",
        "|---|---|---|---|",
    ]
    for k, (name, _) in RLAIF_PHOTOS.items():
        im = Image.open(io.BytesIO(images[k]))
        lines.append(f"| {k} | {name} | JPEG {im.size[0]}x{im.size[1]}, {len(images[k])} bytes | {uses[k]} |")
    lines += [
        "",
        "The photos are from `shared/photos` (real photographs copied from Debian 12 packages). Their sources and",
        "licences, copied from `shared/photos/SOURCES.md`:",
        "",
        *header,
        *table,
        "",
        "No GPL-licensed or CC-BY photo is used.",
        "",
        "## dpo-en-demo.json, alpaca-ranking.json",
        "",
        "Text only, written for these fixtures. `dpo-en-demo.json` has the shape of LLaMA-Factory's",
        "`data/dpo_en_demo.json` (a JSON array of sharegpt ranking rows: `conversations`, `chosen`, `rejected` with",
        "`from`/`value`; a leading `system` turn in one row), with one broken row (string answers).",
        "`alpaca-ranking.json` has LLaMA-Factory's alpaca ranking shape (`instruction`, `input`, `chosen`, `rejected`,",
        "optional `system` and `history`), with one broken row (object answers).",
        "",
    ]
    (out_dir / OUT / "ATTRIBUTION.md").write_text("\n".join(lines), encoding="utf-8")


def generate(out_dir: Path) -> None:
    (out_dir / OUT).mkdir(parents=True, exist_ok=True)
    rows, images = build_rlaif_v(out_dir)
    write_json_rows(out_dir / OUT / "dpo-en-demo.json", DPO_ROWS)
    write_json_rows(out_dir / OUT / "alpaca-ranking.json", ALPACA_ROWS)
    write_expected(out_dir, rows)
    write_attribution(out_dir, images)


FILES = ["rlaif-v-sample.parquet", "dpo-en-demo.json", "alpaca-ranking.json", "expected.json", "ATTRIBUTION.md"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare a fresh generation with the committed files")
    args = ap.parse_args()
    if not args.check:
        generate(ROOT)
        print(f"make_preset_fixtures: wrote {', '.join(str(OUT / f) for f in FILES)}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        bad = [f for f in FILES if not filecmp.cmp(Path(tmp) / OUT / f, ROOT / OUT / f, shallow=False)]
    if bad:
        sys.exit(f"make_preset_fixtures --check: differs from the committed files: {', '.join(bad)}")
    print("make_preset_fixtures --check: identical")


if __name__ == "__main__":
    main()
