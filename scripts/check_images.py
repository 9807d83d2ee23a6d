#!/usr/bin/env python3
"""Pillow conformance check of images written by prefpipe's images stage.

Every file under FOLDER (recursively, hidden files included) must be an image that:
  - Pillow opens and fully decodes (Image.open + load);
  - is JPEG, PNG or WebP, mode "RGB" (8-bit, three channels, no alpha, no palette);
  - has no EXIF orientation other than 1;
  - has sides that are multiples of --factor and at least --factor;
  - has --min-pixels <= w*h <= --max-pixels and an aspect ratio <= 200;
  - passes LLaMA-Factory's Qwen2VLPlugin._preprocess_image unchanged (w*h within image_min/max_pixels,
    min side >= 28, aspect <= 200), and is a fixed point of Qwen2-VL's smart_resize with the processor's
    own bounds (--processor-min-pixels / --processor-max-pixels), so nothing resamples it again.

Prints one JSON object: {"ok", "checked", "failures": [{"file", "problems"}], "modes", "formats", "sizes"}.
Exit status 0 when every image conforms, 1 otherwise, 2 on bad usage.

--smart-resize reads a JSON list of [height, width, factor, min_pixels, max_pixels] from stdin and prints
the list of [h_bar, w_bar] (or {"error": message}) that this reimplementation of transformers'
smart_resize gives: the TypeScript tests compare their port against it.

Usage:
  .venv/bin/python scripts/check_images.py out/images --max-pixels 262144 --factor 28
  echo '[[512, 512, 28, 3136, 262144]]' | .venv/bin/python scripts/check_images.py --smart-resize
"""
import argparse
import json
import math
import os
import sys


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    """transformers models/qwen2_vl/image_processing_qwen2_vl.py::smart_resize (the current form)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
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


def lf_preprocess_size(width, height, image_max_pixels, image_min_pixels):
    """The size LLaMA-Factory's Qwen2VLPlugin._preprocess_image gives (w, h): step A of reference §3.2."""
    if width * height > image_max_pixels:
        f = math.sqrt(image_max_pixels / (width * height))
        width, height = int(width * f), int(height * f)
    if width * height < image_min_pixels:
        f = math.sqrt(image_min_pixels / (width * height))
        width, height = int(width * f), int(height * f)
    if min(width, height) < 28:
        width, height = max(width, 28), max(height, 28)
    if width / height > 200:
        width, height = height * 180, height
    if height / width > 200:
        width, height = width, width * 180
    return width, height


def check_file(path, args):
    from PIL import Image

    problems = []
    info = {}
    try:
        with Image.open(path) as im:
            im.load()
            info = {"format": im.format, "mode": im.mode, "width": im.width, "height": im.height}
            orientation = im.getexif().get(0x0112)
    except Exception as err:  # noqa: BLE001 - any failure to open is a finding
        return info, [f"does not open in Pillow: {type(err).__name__}: {err}"]
    w, h = info["width"], info["height"]
    f = args.factor
    if info["format"] not in ("JPEG", "PNG", "WEBP"):
        problems.append(f"format {info['format']}, not JPEG, PNG or WebP")
    if info["mode"] != "RGB":
        problems.append(f"mode {info['mode']}, not RGB")
    if orientation not in (None, 1):
        problems.append(f"EXIF orientation {orientation}")
    if w % f or h % f:
        problems.append(f"{w}x{h}: a side is not a multiple of {f}")
    if w < f or h < f:
        problems.append(f"{w}x{h}: a side is under {f}")
    if w * h > args.max_pixels:
        problems.append(f"{w}x{h} = {w * h} pixels > {args.max_pixels}")
    if w * h < args.min_pixels:
        problems.append(f"{w}x{h} = {w * h} pixels < {args.min_pixels}")
    if max(w, h) / min(w, h) > 200:
        problems.append(f"{w}x{h}: aspect ratio above 200")
    if (w, h) != lf_preprocess_size(w, h, args.max_pixels, args.image_min_pixels):
        problems.append(f"{w}x{h}: LLaMA-Factory would resize it to {lf_preprocess_size(w, h, args.max_pixels, args.image_min_pixels)}")
    try:
        fixed = smart_resize(h, w, f, args.processor_min_pixels, args.processor_max_pixels)
        if fixed != (h, w):
            problems.append(f"{w}x{h}: smart_resize would resize it to {fixed[1]}x{fixed[0]}")
    except ValueError as err:
        problems.append(f"{w}x{h}: smart_resize raises: {err}")
    return info, problems


def run_folder(args):
    files = []
    for root, _dirs, names in os.walk(args.folder):
        for name in names:
            files.append(os.path.join(root, name))
    files.sort()
    failures, modes, formats, sizes = [], {}, {}, {}
    for path in files:
        info, problems = check_file(path, args)
        rel = os.path.relpath(path, args.folder)
        if info:
            modes[info["mode"]] = modes.get(info["mode"], 0) + 1
            formats[info["format"]] = formats.get(info["format"], 0) + 1
            key = f"{info['width']}x{info['height']}"
            sizes[key] = sizes.get(key, 0) + 1
        if problems:
            failures.append({"file": rel, "problems": problems})
    ok = bool(files) and not failures
    result = {"ok": ok, "checked": len(files), "failures": failures, "modes": modes, "formats": formats, "sizes": sizes}
    if not files:
        result["failures"] = [{"file": ".", "problems": ["no files found"]}]
    print(json.dumps(result, sort_keys=True))
    return 0 if ok else 1


def run_smart_resize():
    out = []
    for h, w, factor, min_pixels, max_pixels in json.load(sys.stdin):
        try:
            out.append(list(smart_resize(h, w, factor, min_pixels, max_pixels)))
        except (ValueError, ZeroDivisionError) as err:
            out.append({"error": str(err)})
    print(json.dumps(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", nargs="?")
    p.add_argument("--max-pixels", type=int, default=262144, help="image_max_pixels / the stage's maxPixels")
    p.add_argument("--min-pixels", type=int, default=3136, help="the stage's minPixels")
    p.add_argument("--factor", type=int, default=28, help="grid factor: 28 (Qwen2/2.5-VL) or 32 (Qwen3-VL)")
    p.add_argument("--image-min-pixels", type=int, default=32 * 32, help="LLaMA-Factory image_min_pixels (default 1024)")
    p.add_argument("--processor-min-pixels", type=int, default=3136, help="processor min_pixels (Qwen2-VL 3136)")
    p.add_argument("--processor-max-pixels", type=int, default=12845056, help="processor max_pixels (Qwen2-VL 12845056)")
    p.add_argument("--smart-resize", action="store_true", help="compute smart_resize for JSON on stdin")
    args = p.parse_args()
    if args.smart_resize:
        return run_smart_resize()
    if not args.folder:
        p.print_usage(sys.stderr)
        return 2
    if not os.path.isdir(args.folder):
        print(json.dumps({"ok": False, "checked": 0, "failures": [{"file": args.folder, "problems": ["not a folder"]}]}))
        return 1
    return run_folder(args)


if __name__ == "__main__":
    sys.exit(main())
