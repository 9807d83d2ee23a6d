#!/usr/bin/env python3
"""Generate prefpipe's parquet fixtures, deterministically.

Run:  bash scripts/python-venv.sh && .venv/bin/python scripts/make_fixtures.py   (= `npm run fixtures`)

Writes (paths relative to the repo root):
  fixtures/rlhf-v-sample.parquet          48 RLHF-V-shaped rows, real photos, 9 rows that each break one rule
  fixtures/rlhf-v-sample.expected.json    per row: valid?, which rule it breaks, image sha256s
  fixtures/ATTRIBUTION.md                 photos used, licences, how the files were made
  test/fixtures/parquet/*.parquet         reader test files (row-group layouts, codecs, edge cases)
  test/fixtures/parquet/*.expected.jsonl  the source rows of each generated file, one JSON line per row

Everything is derived from fixed seeds and the photos in shared/photos (or $PREFPIPE_PHOTOS); nothing
depends on the clock, so re-running gives byte-identical files with the pinned scripts/requirements.txt.
Options: --check  regenerate into a temp dir and compare with the committed files (exit 1 on a difference).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def find_photos() -> Path:
    env = os.environ.get("PREFPIPE_PHOTOS")
    cands = [Path(env)] if env else []
    cands += [ROOT.parent / "shared" / "photos", ROOT / "shared" / "photos", Path("/work/shared/photos")]
    for c in cands:
        if (c / "SOURCES.md").is_file():
            return c
    sys.exit("make_fixtures: cannot find the photo pool (shared/photos/SOURCES.md); set PREFPIPE_PHOTOS")


PHOTOS = find_photos()

# ------------------------------------------------------------------------------------------------
# schema

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


def H(v: str) -> dict:
    return {"from": "human", "value": v}


def G(v: str) -> dict:
    return {"from": "gpt", "value": v}


def sha(b: bytes | None) -> str | None:
    return None if b is None else hashlib.sha256(b).hexdigest()


def table_of(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        [{k: r[k] for k in ("conversations", "chosen", "rejected", "images")} for r in rows], schema=SCHEMA
    )


def expected_line(i: int, r: dict) -> str:
    imgs = r["images"]
    o = {
        "row": i,
        "conversations": r["conversations"],
        "chosen": r["chosen"],
        "rejected": r["rejected"],
        "images": [
            {"sha256": sha(im["bytes"]), "len": None if im["bytes"] is None else len(im["bytes"]), "path": im["path"]}
            for im in (imgs or [])
        ],
        "images_null": imgs is None,
    }
    return json.dumps(o, ensure_ascii=False, separators=(",", ":"))


def write_expected_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(expected_line(i, r) + "\n" for i, r in enumerate(rows)), encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# a. fixtures/rlhf-v-sample.parquet

# file, long side (None: keep size), output format. Licences: see SOURCES.md / ATTRIBUTION.md.
SAMPLE_PHOTOS = {
    "cat": ("skimage-chelsea.png", 451, "JPEG"),
    "coffee": ("skimage-coffee.png", 512, "JPEG"),
    "rocket": ("skimage-rocket.jpg", 512, "JPEG"),
    "pagoda": ("sklearn-china.jpg", 640, "JPEG"),
    "fruits": ("opencv-fruits.jpg", 448, "JPEG"),
    "butterfly": ("opencv-butterfly.jpg", 493, "JPEG"),
    "squirrel": ("opencv-squirrel.jpg", 535, "JPEG"),
    "sign": ("opencv-scenetext01.jpg", 640, "JPEG"),
    "desk": ("opencv-desk-stuff.jpg", 512, "JPEG"),
    "motorcycle": ("skimage-motorcycle-left.png", 600, "JPEG"),
    "pub": ("opencv-scenetext06.jpg", 576, "JPEG"),
    "board": ("opencv-board.jpg", 512, "JPEG"),
    "coins": ("skimage-coins.png", None, "PNG"),  # grayscale (mode L), kept as PNG
    "house": ("opencv-red-house.png", None, "PNG"),  # RGB, kept as PNG
}
SAMPLE_PATHS = {  # the few rows (by sample key order) that carry a plain file name, as RLHF-V sometimes does
    "cat": "chelsea.jpg",
    "rocket": "rocket.jpg",
    "coins": "coins.png",
}


def sample_image(key: str) -> bytes:
    name, long_side, fmt = SAMPLE_PHOTOS[key]
    im = Image.open(PHOTOS / name)
    im.load()
    if fmt == "JPEG":
        im = im.convert("RGB")
    if long_side is not None and max(im.size) != long_side:
        w, h = im.size
        f = long_side / max(w, h)
        im = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.save(buf, "JPEG", quality=85, optimize=False, progressive=False)
    else:
        im.save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()


# (image key, conversations, chosen text, rejected text); "Q" strings get "<image>\n" prepended to the first turn.
# Chosen answers describe the photo accurately; rejected answers hallucinate, as in RLHF-V.
VALID = [
    ("cat", ["What animal is shown in the image, and what is notable about its eyes?"],
     "The image is a close-up of a tabby cat with brown, black and ginger striped fur. Its eyes are large and yellow-green, and it is looking slightly to the side rather than straight at the camera.",
     "The image shows a small brown dog. Its eyes are bright blue, and it is wearing a red collar with a small bell."),
    ("cat", ["Describe the background of the photo."],
     "The background is out of focus and mostly pale pink and beige, so the cat's face is the only sharp part of the picture.",
     "The cat is sitting on a green lawn in front of a white wooden fence covered with climbing roses."),
    ("cat", ["Is the cat wearing a collar or any accessory?"],
     "No. Only the cat's head and the top of its neck are visible, and there is no collar, tag or other accessory in view.",
     "Yes, the cat is wearing a blue collar with a round silver name tag."),
    ("cat", ["What color is the cat's nose?"],
     "The cat's nose is pinkish orange with a darker outline, surrounded by white and ginger fur.",
     "The cat's nose is completely black, and it has long black whiskers on a white face."),
    ("coffee", ["What is in the cup?"],
     "The cup holds espresso-style coffee with a layer of light brown crema on top.",
     "The cup is filled with hot chocolate topped with whipped cream and a few marshmallows."),
    ("coffee", ["Describe the cup, the saucer and anything on them."],
     "A small red ceramic cup with a white inside sits on a matching red saucer. A small metal spoon rests on the saucer to the right of the cup.",
     "A tall white mug sits on a glass plate, next to two sugar cubes and a silver fork."),
    ("coffee", ["What kind of surface is the cup standing on?"],
     "It stands on a wooden table with visible grain in warm brown tones.",
     "It stands on a white marble countertop next to an open laptop."),
    ("rocket", ["What is happening in this photo?"],
     "A white rocket stands upright on its launch pad at dusk, between tall lattice towers. Bright lights illuminate the pad against a deep blue sky; the rocket has not launched yet.",
     "A rocket is lifting off in a huge plume of fire and smoke while a crowd watches from the foreground."),
    ("rocket", ["How many tall towers can you see around the rocket?"],
     "There are four tall lattice towers around the rocket, two on each side of it.",
     "There is a single tower next to the rocket, connected to it by three swing arms."),
    ("rocket", ["What time of day does it appear to be?"],
     "It looks like evening twilight: the sky is dark blue, fading lighter near the horizon, and the pad lights are switched on.",
     "It is the middle of the day; the sky is bright and cloudless and no lights are on."),
    ("pagoda", ["What building is in the picture?"],
     "It is a traditional Chinese multi-storey tower with several tiers of upturned eaves, painted red with green and blue decoration, standing on a hillside among trees.",
     "It is a modern glass skyscraper standing in the middle of a busy city street."),
    ("pagoda", ["What can be seen in the distance behind the building?"],
     "Behind the tower there is a wide lake under a hazy pale sky, with faint low buildings along the far shore.",
     "Snow-covered mountains rise behind the building, and a large waterfall pours down into a river."),
    ("fruits", ["Which fruits can you identify in the image?"],
     "I can see an orange cut in half in the middle, a lemon half at the lower right, a whole lime on the right and half a kiwi at the lower left. Something purple, probably red cabbage, fills the top of the frame.",
     "The image shows a bunch of bananas, three red apples and a pineapple arranged in a wicker basket."),
    ("fruits", ["Are any of the fruits cut open?"],
     "Yes. The orange, the lemon and the kiwi are cut, so their flesh is visible; the lime appears to be whole.",
     "No, all of the fruits are whole and unpeeled."),
    ("fruits", ["What is the dominant color in the center of the image?"],
     "Orange: the cut orange in the middle takes up most of the frame.",
     "Red: a large watermelon slice takes up most of the frame."),
    ("butterfly", ["Describe the insect in the image."],
     "It is a butterfly with black wings covered in cream-white spots, with small red and blue eyespots near the bottom of the hind wings. It rests with its wings spread flat on a large striped leaf.",
     "It is a monarch butterfly with bright orange wings and black veins, drinking nectar from a pink flower."),
    ("butterfly", ["What does the leaf beneath it look like?"],
     "The leaf is large and green with pale yellow stripes running along it, and its edges at the top of the frame look reddish pink.",
     "The leaf is brown, dry and curled, as if it has fallen from a tree in autumn."),
    ("butterfly", ["Are the butterfly's antennae visible?"],
     "Yes, two thin dark antennae stick up from its head toward the top of the image.",
     "No, the butterfly's head is hidden under a leaf, so the antennae cannot be seen."),
    ("squirrel", ["What is the animal doing?"],
     "A red squirrel is sitting on a mossy branch and holding food up to its mouth with its front paws.",
     "A chipmunk is running down a tree trunk with an acorn in its mouth."),
    ("squirrel", ["Describe the surroundings."],
     "The branch is surrounded by bright green leaves, and the background is softly blurred green foliage lit by sunlight.",
     "The squirrel is in a snowy winter forest with bare trees and a frozen pond."),
    ("sign", ["What does the sign say?"],
     "The sign has \"NOTICE\" in white letters on a red band at the top, and below it reads \"DOUBLE PARKING PROHIBITED AT ALL TIMES\".",
     "The sign says \"NO ENTRY\" and shows a crossed-out bicycle."),
    ("sign", ["What vehicle is parked behind the sign post?"],
     "A silver station wagon is parked along the street behind the sign post.",
     "A yellow school bus is parked behind the sign, next to two motorcycles."),
    ("desk", ["List the objects lying on the table."],
     "On a grey surface there is a pencil, a white ball, a small dark round lid near the top, a small clear button in the middle and a pink lighter at the bottom.",
     "There is a smartphone, a pair of glasses and a cup of tea on a wooden desk."),
    ("desk", ["What color is the lighter?"],
     "The lighter is pink with a silver metal top.",
     "The lighter is dark blue with a black top."),
    ("motorcycle", ["Describe the vehicle in the image."],
     "It is a red and black motorcycle with a black seat, chrome exhaust pipes and an exposed engine, standing on its side stand.",
     "It is a blue scooter with a basket on the front and a white top box on the back."),
    ("motorcycle", ["Where is the motorcycle parked?"],
     "Indoors, in a garage or storeroom: behind it are metal shelves full of cardboard boxes, and there is a wooden bench on the left.",
     "In an outdoor parking lot, between several cars, under a cloudy sky."),
    ("motorcycle", ["Is anyone riding the motorcycle?"],
     "No, nobody is on it; the motorcycle is parked and there are no people in the picture.",
     "Yes, a rider in a black leather jacket and a white helmet is sitting on it."),
    ("pub", ["What is the name written on the building?"],
     "The dark blue fascia above the windows reads \"priory galleries at the ship\", and a hanging sign on the wall repeats the name.",
     "The sign above the door says \"The Red Lion Inn\"."),
    ("pub", ["What colors are the building and its window frames?"],
     "The building is painted yellow, with dark blue window frames and a dark blue shop front. A red car is parked in the street on the left.",
     "The building is white brick with green shutters and a green front door."),
    ("board", ["What is this object?"],
     "It is a close-up of a green printed circuit board with integrated circuits, electrolytic capacitors, small resistors and rows of header pins.",
     "It is an aerial view of green farmland with rows of vegetables and a few small sheds."),
    ("board", ["Can you spot any large integrated circuits?"],
     "Yes. A large square chip with many pins on each side sits in the lower middle of the board, and smaller chips are at the top left.",
     "No, the board only has loose wires and a single battery on it."),
    ("coins", ["How many coins are there, and how are they arranged?"],
     "There are 24 coins laid out in four rows of six on a dark background.",
     "There are three gold coins stacked on top of each other on a wooden table."),
    ("coins", ["Is this a color photograph?"],
     "No, it is a black-and-white (grayscale) photograph; the coins appear in shades of grey against a dark background.",
     "Yes, the coins are shiny gold and copper coloured on a blue velvet cloth."),
    ("house", ["Describe the building in the image."],
     "It is a red brick house with a tall brick chimney, white trim and gutters and a dark roof, seen against a pale blue sky.",
     "It is a wooden log cabin with a thatched roof, surrounded by snow."),
    ("house", ["What is the sky like?"],
     "The sky is clear and pale blue, with no visible clouds.",
     "The sky is dark and stormy, with a bolt of lightning over the roof."),
]

# multi-turn rows (human, gpt, human) and one row with a leading system turn
MULTI = [
    ("squirrel",
     [H("<image>\nWhat animal is in the picture?"),
      G("It is a red squirrel sitting on a branch."),
      H("What color is its belly?")],
     "Its chest and belly are white or cream, contrasting with the reddish-brown fur on its back.",
     "Its belly is black, the same as its tail."),
    ("sign",
     [H("<image>\nWhat does the sign on the pole say?"),
      G("It says \"NOTICE: DOUBLE PARKING PROHIBITED AT ALL TIMES\"."),
      H("Are there any people in the picture?")],
     "Yes. A person in a red shirt stands at the right edge of the picture, and part of another person is visible at the far left.",
     "No, the street is completely empty of people."),
    ("coffee",
     [H("<image>\nWhat drink is this?"),
      G("It looks like an espresso in a small red cup."),
      H("Is there a spoon?")],
     "Yes, a small metal spoon lies on the saucer to the right of the cup.",
     "No, there is no spoon; a biscuit lies on the saucer instead."),
    ("pagoda",
     [{"from": "system", "value": "You are a careful assistant. Describe only what is visible in the image and do not mention objects that are not there."},
      H("<image>\nWhat kind of trees are near the building?")],
     "Leafy green trees grow on the slope around the tower, and there is a tall conifer on the right edge of the picture.",
     "Palm trees line a sandy beach in front of the building."),
]

# (rule, image key, conversations, chosen, rejected, image override)
INVALID = [
    ("image count mismatch", "desk",
     [H("What is the round white object on the table?")],
     G("It is a white ball, roughly the size of a table-tennis ball."), G("It is a white coffee cup seen from above."), None),
    ("<image> in chosen", "board",
     [H("<image>\nWhat color is the circuit board?")],
     G("As you can see in <image>, the circuit board is green."), G("The circuit board is blue."), None),
    ("chosen identical to rejected", "fruits",
     [H("<image>\nIs there a lime in the picture?")],
     G("Yes, there is a whole lime on the right side of the picture."), G("Yes, there is a whole lime on the right side of the picture."), None),
    ("even turn count", "rocket",
     [H("<image>\nWhat is standing on the launch pad?"), G("A white rocket.")],
     G("A white rocket flanked by four lattice towers."), G("A space shuttle attached to a fuel tank."), None),
    ("wrong role order", "cat",
     [H("<image>\nWhat animal is this?"), H("Please also describe its fur."), H("Answer in one sentence.")],
     G("It is a tabby cat with brown, black and ginger striped fur."), G("It is a fox with thick red fur."), None),
    ("chosen role not assistant", "pub",
     [H("<image>\nWhat color is the car on the left?")],
     H("The car parked on the left is red."), G("The car parked on the left is green."), None),
    ("empty rejected", "coins",
     [H("<image>\nWhat is the background color?")],
     G("The coins lie on a dark, almost black background."), G(""), None),
    ("raw qwen special token", "butterfly",
     [H("<image>\n<|image_pad|>What insect is this?")],
     G("It is a butterfly with black and cream-spotted wings."), G("It is a dragonfly with transparent wings."), None),
    ("empty image bytes", "squirrel",
     [H("<image>\nWhat is the squirrel holding?")],
     G("It is holding a piece of food up to its mouth with its front paws."), G("It is holding a pine cone in its tail."), b""),
]


def build_sample(out_dir: Path) -> dict:
    images = {k: sample_image(k) for k in SAMPLE_PHOTOS}
    rows = []
    for key, qs, c, r in VALID:
        rows.append({"key": key, "conversations": [H("<image>\n" + qs[0])], "chosen": G(c), "rejected": G(r),
                     "breaks": None, "bytes": images[key]})
    for key, conv, c, r in MULTI:
        rows.append({"key": key, "conversations": conv, "chosen": G(c), "rejected": G(r), "breaks": None, "bytes": images[key]})
    for rule, key, conv, c, r, override in INVALID:
        rows.append({"key": key, "conversations": conv, "chosen": c, "rejected": r, "breaks": rule,
                     "bytes": images[key] if override is None else override})
    random.Random(20240611).shuffle(rows)
    # a plain file name on the first row of a few images (RLHF-V mostly has path = null)
    named: set[str] = set()
    for row in rows:
        p = None
        if row["key"] in SAMPLE_PATHS and row["key"] not in named and row["breaks"] is None:
            p = SAMPLE_PATHS[row["key"]]
            named.add(row["key"])
        row["images"] = [{"bytes": row["bytes"], "path": p}]
    assert len(rows) == 48, len(rows)

    path = out_dir / "fixtures" / "rlhf-v-sample.parquet"
    pq.write_table(table_of(rows), path, row_group_size=16, compression="snappy")
    exp = [{"row": i, "valid": r["breaks"] is None, "breaks": r["breaks"], "image_sha256": [sha(im["bytes"]) for im in r["images"]]}
           for i, r in enumerate(rows)]
    (out_dir / "fixtures" / "rlhf-v-sample.expected.json").write_text(
        "[\n" + ",\n".join("  " + json.dumps(e, ensure_ascii=False) for e in exp) + "\n]\n", encoding="utf-8")
    return {"rows": rows, "images": images}


def write_attribution(out_dir: Path, sample: dict) -> None:
    sources = (PHOTOS / "SOURCES.md").read_text(encoding="utf-8").splitlines()
    header = [l for l in sources if l.startswith("| file |") or l.startswith("|---")][:2]
    used = {v[0] for v in SAMPLE_PHOTOS.values()}
    table = [l for l in sources if l.startswith("| ") and l.split("|")[1].strip() in used]
    reuse = {}
    for r in sample["rows"]:
        reuse[r["key"]] = reuse.get(r["key"], 0) + 1
    sizes = {}
    for k, b in sample["images"].items():
        im = Image.open(io.BytesIO(b))
        sizes[k] = f"{im.format} {im.size[0]}x{im.size[1]} {im.mode}, {len(b)} bytes"
    pool = ", ".join(TEST_POOL_PHOTOS)
    lines = [
        "# Fixture attribution",
        "",
        "Generated by `scripts/make_fixtures.py` (run `npm run fixtures`); do not edit by hand.",
        "",
        "## fixtures/rlhf-v-sample.parquet",
        "",
        "48 rows in the exact schema of the Hub dataset `llamafactory/RLHF-V` (`conversations`, `chosen`, `rejected`,",
        "`images` = list of `{bytes, path}`), written by pyarrow with the `huggingface` key-value metadata",
        "(`\"images\": [{\"_type\": \"Image\"}]`), snappy, row groups of 16 rows.",
        "The question/answer text was written for these photos in the style of RLHF-V (chosen = accurate,",
        "rejected = hallucinated details); it is not taken from RLHF-V. 9 rows each break one LLaMA-Factory or",
        "pipeline rule; `fixtures/rlhf-v-sample.expected.json` says which (and every row's image sha256).",
        "",
        "How the images were made (Pillow): each photo was converted to RGB, resized with LANCZOS to the long side",
        "listed below and saved as baseline JPEG quality 85; the two PNGs were re-encoded as PNG at their original size",
        "(coins stays grayscale). No metadata is copied. One image is used by several rows, as RLHF-V asks several",
        "questions about one image. One row carries zero-length image bytes on purpose.",
        "",
        "| key | photo | stored as | rows |",
        "|---|---|---|---|",
    ]
    for k, (name, _, _) in SAMPLE_PHOTOS.items():
        lines.append(f"| {k} | {name} | {sizes[k]} | {reuse.get(k, 0)} |")
    lines += [
        "",
        "The photos are from `shared/photos` (real photographs copied from Debian 12 packages). Their sources and",
        "licences, copied from `shared/photos/SOURCES.md`:",
        "",
        *header,
        *table,
        "",
        "Attribution: `sklearn-china.jpg` is CC-BY-2.0, \"Some rights reserved by danielbuechele\" (Flickr), as",
        "shipped in scikit-learn's `sklearn/datasets/images` (see its README.txt). The other photos used here are under",
        "BSD-3-Clause (scikit-image; upstream public domain or CC0 where noted) or Apache-2.0 AND BSD-3-Clause (OpenCV",
        "samples). No GPL-licensed photo is used.",
        "",
        "## test/fixtures/parquet/*.parquet",
        "",
        "Tiny 16x12 JPEGs (quality 80), each a resized random crop (fixed seed) of one of these photos, all distinct:",
        pool + ".",
        "The row text is synthetic. Each `<name>.expected.jsonl` lists the source rows that were written (not read",
        "back): conversations, chosen, rejected, and for each image its sha256, byte length and path.",
        "",
    ]
    (out_dir / "fixtures" / "ATTRIBUTION.md").write_text("\n".join(lines), encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# c. test/fixtures/parquet

TEST_POOL_PHOTOS = [
    "skimage-chelsea.png", "skimage-coffee.png", "skimage-rocket.jpg", "skimage-hubble-deep-field.jpg",
    "skimage-motorcycle-left.png", "skimage-ihc.png", "opencv-fruits.jpg", "opencv-butterfly.jpg",
    "opencv-squirrel.jpg", "opencv-building.jpg", "opencv-home.jpg", "opencv-plant.jpg", "opencv-board.jpg",
    "opencv-baboon.jpg", "opencv-aero1.jpg", "opencv-scenetext06.jpg", "opencv-leuven.jpg", "opencv-rubberwhale.png",
]


class TinyPool:
    """Distinct 16x12 JPEGs cut from the photos; image k is the same on every run."""

    def __init__(self, seed: int = 1729):
        self.rng = random.Random(seed)
        self.src = [Image.open(PHOTOS / n).convert("RGB") for n in TEST_POOL_PHOTOS]
        self.items: list[bytes] = []
        self.seen: set[bytes] = set()

    def get(self, k: int) -> bytes:
        while len(self.items) <= k:
            im = self.src[len(self.items) % len(self.src)]
            w, h = im.size
            while True:
                cw = self.rng.randint(32, min(w, 240))
                ch = max(12, cw * 3 // 4)
                x = self.rng.randint(0, w - cw)
                y = self.rng.randint(0, h - ch)
                buf = io.BytesIO()
                im.crop((x, y, x + cw, y + ch)).resize((16, 12), Image.Resampling.BILINEAR).save(buf, "JPEG", quality=80)
                b = buf.getvalue()
                if b not in self.seen:
                    break
            self.seen.add(b)
            self.items.append(b)
        return self.items[k]


TOPICS = ["the colors", "the main object", "the background", "the lighting", "any text", "the texture",
          "the left half", "the top edge"]
ZH = ["这张图片里有什么？", "请描述图片中的颜色。", "图中的物体是什么材质？"]
EMOJI = ["🐱", "🚀", "🍊", "🦋", "☕", "🏠"]


def synth_rows(n: int, pool: TinyPool, tag: str) -> list[dict]:
    """Varied RLHF-V-shaped rows: mostly 1 image, some 0 or 2, multi-turn, system turns, paths, CJK/emoji."""
    rows = []
    nxt = 0
    for i in range(n):
        nimg = 0 if i % 11 == 5 else 2 if i % 13 == 7 else 1
        imgs = []
        for j in range(nimg):
            path = f"img/{tag}-{i:05d}-{j}.jpg" if i % 5 == 2 else None
            imgs.append({"bytes": pool.get(nxt), "path": path})
            nxt += 1
        topic = TOPICS[i % len(TOPICS)]
        if i % 9 == 4:
            q = f"{ZH[i % len(ZH)]} {EMOJI[i % len(EMOJI)]} (#{i})"
            c, r = f"图片 {i} 显示了一个清晰的物体 {EMOJI[i % len(EMOJI)]}。", f"图片 {i} 里什么都没有。"
        else:
            q = f"Row {i} of {tag}: describe {topic}."
            c, r = f"Accurate answer {i}: {topic} as seen in the picture.", f"Hallucinated answer {i}: {topic} with objects that are not there."
        prefix = "<image>\n" if nimg == 1 else "<image>\n<image>\nCompare the two images. " if nimg == 2 else ""
        conv = []
        if i % 17 == 9:
            conv.append({"from": "system", "value": f"You are a careful visual assistant ({tag} {i})."})
        if i % 7 == 3:
            conv += [H(prefix + q), G(f"First answer for row {i}."), H("And what else do you notice?")]
        else:
            conv.append(H(prefix + q))
        rows.append({"conversations": conv, "chosen": G(c), "rejected": G(r), "images": imgs})
    return rows


def edge_rows(pool: TinyPool) -> list[dict]:
    b = lambda k: pool.get(10000 + k)  # noqa: E731  (distinct from the other files' images)
    return [
        {"conversations": [H("<image>\nWhat is in this picture?")], "chosen": G("A small crop of a photo."),
         "rejected": G("A large painting."), "images": [{"bytes": b(0), "path": None}]},
        {"conversations": [H("Tell me a fact about parquet files.")], "chosen": G("They are columnar."),
         "rejected": G("They are row-oriented."), "images": []},
        {"conversations": [H("<image>\nDescribe the image.")], "chosen": G("Edge row with a suspicious path."),
         "rejected": G("Nothing to see."), "images": [{"bytes": b(1), "path": "../../etc/passwd"}]},
        {"conversations": [H("<image>\nDescribe the image.")], "chosen": G("Edge row with a relative path."),
         "rejected": G("Nothing to see."), "images": [{"bytes": b(2), "path": "img/001.jpg"}]},
        {"conversations": [H("<image>\n<image>\nWhat differs between the two images?")],
         "chosen": G("The first is darker than the second."), "rejected": G("They are identical."),
         "images": [{"bytes": b(3), "path": None}, {"bytes": b(4), "path": None}]},
        {"conversations": [H("<image>\n这张图片里有什么？请详细描述。")], "chosen": G("图片里有一只猫，它的眼睛是黄绿色的。"),
         "rejected": G("图片里有一只狗。"), "images": [{"bytes": b(5), "path": None}]},
        {"conversations": [H("<image>\nWhich emoji fits this picture? 🤔")], "chosen": G("🐱 fits best: it shows a cat."),
         "rejected": G("🚗 fits best: it shows a car."), "images": [{"bytes": b(6), "path": None}]},
        {"conversations": [{"from": "system", "value": "You are a helpful assistant."}, H("<image>\nWhat color dominates?")],
         "chosen": G("Green dominates."), "rejected": G("Purple dominates."), "images": [{"bytes": b(7), "path": None}]},
        {"conversations": [H("What is the capital of France?")], "chosen": G("Paris."), "rejected": G("Lyon."),
         "images": None},
        {"conversations": [H("<image>\nWhat is shown?"), G("A photo crop."), H("Is it sharp? 清晰吗？")],
         "chosen": G("No, it is tiny and blurry. 不清晰。"), "rejected": G("Yes, razor sharp."),
         "images": [{"bytes": b(8), "path": None}]},
        {"conversations": [H("<image>\nMixed text: naïve café — “quotes” ‘and’ tabs\tand\nnewlines 🎉🇨🇳")],
         "chosen": G("Unicode survives: ñ é ü 中文 😀 \\u0000 not a null."), "rejected": G("ASCII only."),
         "images": [{"bytes": b(9), "path": "img/002.jpg"}]},
        {"conversations": [H("<image>\n" + "A long question. " * 200)], "chosen": G("A long answer. " * 300),
         "rejected": G("Short."), "images": [{"bytes": b(10), "path": None}]},
    ]


def write_tests(out_dir: Path) -> dict:
    d = out_dir / "test" / "fixtures" / "parquet"
    d.mkdir(parents=True, exist_ok=True)
    pool = TinyPool()
    made = {}

    def emit(name: str, rows: list[dict], **kw):
        pq.write_table(table_of(rows), d / f"{name}.parquet", **kw)
        write_expected_jsonl(d / f"{name}.expected.jsonl", rows)
        made[name] = rows

    base250 = synth_rows(250, pool, "t")
    emit("rg100", base250, row_group_size=100, compression="snappy", write_page_index=False)
    emit("rg1", base250, row_group_size=len(base250), compression="snappy", write_page_index=False)
    emit("offset-index", base250, row_group_size=len(base250), compression="snappy", write_page_index=True,
         data_page_size=4096, write_batch_size=8, use_dictionary=False)
    base120 = synth_rows(120, pool, "c")
    emit("zstd", base120, row_group_size=50, compression="zstd")
    emit("gzip", base120, row_group_size=50, compression="gzip")
    emit("edge", edge_rows(pool), compression="snappy")

    # rg1500: the way datasets 5 writes it (Dataset.to_parquet: per-column codecs, PLAIN images, content-defined
    # chunking, page index); its default row-group size targets ~100 MB, so batch_size=1500 gives ~1500-row groups.
    rows3100 = synth_rows(3100, pool, "ds")
    import datasets  # noqa: PLC0415  (slow import, only needed here)

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    feats = datasets.Features({
        "conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")}),
        "chosen": {"from": datasets.Value("string"), "value": datasets.Value("string")},
        "rejected": {"from": datasets.Value("string"), "value": datasets.Value("string")},
        "images": datasets.List(datasets.Image()),
    })
    ds = datasets.Dataset(table_of(rows3100).cast(feats.arrow_schema)).cast(feats)
    ds.to_parquet(str(d / "rg1500.parquet"), batch_size=1500)
    write_expected_jsonl(d / "rg1500.expected.jsonl", rows3100)
    made["rg1500"] = rows3100

    (d / "not-parquet.parquet").write_bytes(b"this is not a parquet file\n")
    pq.write_table(pa.table({"question": ["What is 2+2?", "Capital of France?", "Color of the sky?"],
                             "answer": ["4", "Paris", "Blue"]}), d / "wrong-schema.parquet", compression="snappy")
    return made


# ------------------------------------------------------------------------------------------------
# verification


def summarize(path: Path) -> str:
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001
        return f"{path.name}: not readable by pyarrow ({type(e).__name__})"
    md = pf.metadata
    groups = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    codecs = sorted({md.row_group(i).column(j).compression for i in range(md.num_row_groups) for j in range(md.num_columns)})
    offset = all(md.row_group(i).column(j).has_offset_index for i in range(md.num_row_groups) for j in range(md.num_columns))
    kv = md.metadata or {}
    hf = "huggingface" if b"huggingface" in kv else "no-hf-meta"
    return (f"{path.name}: {path.stat().st_size} B, {md.num_rows} rows, row groups {groups}, codecs {codecs}, "
            f"offset index {'yes' if offset else 'no'}, {hf}, created_by {md.created_by!r}")


def verify(out_dir: Path, made: dict) -> None:
    import datasets  # noqa: PLC0415

    d = out_dir / "test" / "fixtures" / "parquet"
    for name, rows in made.items():
        t = pq.read_table(d / f"{name}.parquet")
        got = t.to_pylist()
        assert len(got) == len(rows), name
        for i, (g, r) in enumerate(zip(got, rows)):
            for k in ("conversations", "chosen", "rejected", "images"):
                assert g[k] == r[k], (name, i, k)
    sample = out_dir / "fixtures" / "rlhf-v-sample.parquet"
    for p in [sample, d / "rg100.parquet", d / "rg1500.parquet", d / "edge.parquet"]:
        ds = datasets.load_dataset("parquet", data_files=[str(p)], split="train")
        img = ds.features["images"]
        assert isinstance(img, datasets.List) and isinstance(img.feature, datasets.Image), (p.name, ds.features)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare byte for byte")
    ap.add_argument("--out", default=str(ROOT), help="root to write under (default: the repo)")
    ap.add_argument("--no-verify", action="store_true")
    a = ap.parse_args()

    if a.check:
        tmp = Path(tempfile.mkdtemp(prefix="prefpipe-fixtures-"))
        try:
            gen(tmp, verify_=False, quiet=True)
            bad = []
            for p in sorted(tmp.rglob("*")):
                if p.is_file():
                    rel = p.relative_to(tmp)
                    ref = ROOT / rel
                    if not ref.is_file() or ref.read_bytes() != p.read_bytes():
                        bad.append(str(rel))
            print("make_fixtures --check: " + ("OK, all files identical" if not bad else "DIFFER: " + ", ".join(bad)))
            sys.exit(1 if bad else 0)
        finally:
            shutil.rmtree(tmp)
    gen(Path(a.out), verify_=not a.no_verify, quiet=False)


def gen(out: Path, verify_: bool, quiet: bool) -> None:
    (out / "fixtures").mkdir(parents=True, exist_ok=True)
    sample = build_sample(out)
    write_attribution(out, sample)
    made = write_tests(out)
    if verify_:
        verify(out, made)
    if quiet:
        return
    files = [out / "fixtures" / "rlhf-v-sample.parquet"] + sorted((out / "test" / "fixtures" / "parquet").glob("*.parquet"))
    for p in files:
        print(summarize(p))

    def du(p: Path) -> int:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())

    print(f"total: fixtures/ {du(out / 'fixtures')} B, test/fixtures/parquet/ {du(out / 'test' / 'fixtures' / 'parquet')} B")
    inval = [(i, r["breaks"]) for i, r in enumerate(sample["rows"]) if r["breaks"]]
    print(f"rlhf-v-sample: {len(sample['rows'])} rows, {len(sample['images'])} distinct images, invalid rows {inval}")


if __name__ == "__main__":
    main()
