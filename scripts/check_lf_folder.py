#!/usr/bin/env python3
"""Conformance checker: read a prefpipe output folder exactly as LLaMA-Factory would, for ranking (DPO) data.

Usage:  .venv/bin/python scripts/check_lf_folder.py OUT_DIR NAME [NAME...]

OUT_DIR plays LLaMA-Factory's `dataset_dir` and `media_dir` (media_dir defaults to dataset_dir). For each NAME it
replays (see shared/reference/llamafactory.md):
  1.3-1.5  the dataset_info.json entry: source = file_name, formatting sharegpt, ranking JSON true, explicit columns
           (messages/chosen/rejected/images), all seven tags if `tags` is present; file type and directory rules
  1.4      loading with datasets.load_dataset(<type>, data_files=[...], split="train"), then the column features
  2.1-2.2  SharegptDatasetConverter for ranking: system turn only at 0, role alternation (user/observation at even
           indices, assistant/function at odd ones), odd turn count, chosen/rejected dicts with an assistant/function tag
  2.3      media resolution: os.path.join(OUT_DIR, p) must be a file and must not escape OUT_DIR
  3.1      the <image>/<video>/<audio> count rule on prompt+chosen and prompt+rejected
  closing  no placeholders in chosen/rejected/system, no raw Qwen special tokens, images decodable by Pillow
           (RGB or convertible; sides < 28 px, extreme aspect ratios and EXIF rotation are warnings)

Prints ONE JSON object on stdout:
  {"datasets": {NAME: {"rows": n, "images_opened": m, "distinct_images": k}},
   "errors": [{"dataset", "row", "code", "message"}...], "warnings": [...same shape...]}
Warnings include anything logged by `datasets`/`huggingface_hub`/`fsspec` and Python `warnings` during loading.
Exit status: 0 when there is no error, 1 when there is any, 2 on bad usage.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import warnings
from typing import Any

MAX_PER_CODE = 50  # per dataset and code; the rest are counted in one "...omitted" entry

FILEEXT2TYPE = {"arrow": "arrow", "csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "txt": "text"}
SOURCE_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
KNOWN_ENTRY_KEYS = {"file_name", "formatting", "ranking", "subset", "split", "folder", "num_samples", "columns", "tags",
                    *SOURCE_KEYS}
COLUMN_KEYS = ("prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
               "chosen", "rejected", "kto_tag")
TAG_KEYS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
TAG_DEFAULTS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
PLACEHOLDERS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
QWEN_SPECIAL = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>")


class Report:
    def __init__(self) -> None:
        self.datasets: dict[str, dict[str, int]] = {}
        self.errors: list[dict] = []
        self.warnings: list[dict] = []
        self._counts: dict[tuple, int] = {}

    def _add(self, kind: list, level: str, dataset: str | None, row: int | None, code: str, message: str) -> None:
        key = (level, dataset, code)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n <= MAX_PER_CODE:
            kind.append({"dataset": dataset, "row": row, "code": code, "message": message})

    def error(self, dataset: str | None, row: int | None, code: str, message: str) -> None:
        self._add(self.errors, "e", dataset, row, code, message)

    def warn(self, dataset: str | None, row: int | None, code: str, message: str) -> None:
        self._add(self.warnings, "w", dataset, row, code, message)

    def finish(self) -> dict:
        for (level, dataset, code), n in self._counts.items():
            if n > MAX_PER_CODE:
                target = self.errors if level == "e" else self.warnings
                target.append({"dataset": dataset, "row": None, "code": code,
                               "message": f"{n - MAX_PER_CODE} more `{code}` entries omitted ({n} in total)"})
        return {"datasets": self.datasets, "errors": self.errors, "warnings": self.warnings}


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured(report: Report, dataset: str):
    """Record `datasets`/hub/fsspec log warnings and Python warnings raised inside the block into the report."""
    handler = _Capture()
    loggers = [logging.getLogger(n) for n in ("datasets", "huggingface_hub", "fsspec", "pyarrow", "PIL", "")]
    for lg in loggers:
        lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeHandler(handler)
            seen = set()
            for r in handler.records:
                msg = f"{r.name}: {r.levelname}: {r.getMessage()}"
                if msg not in seen:
                    seen.add(msg)
                    report.warn(dataset, None, "python_log", msg)
            for w in ws:
                msg = f"{w.category.__name__}: {w.message}"
                if msg not in seen:
                    seen.add(msg)
                    report.warn(dataset, None, "python_warning", msg)


# ------------------------------------------------------------------------------------------------
# dataset_info.json entry


def check_entry(report: Report, out_dir: str, name: str, entry: Any) -> dict | None:
    """Return {"path", "files", "type", "columns", "tags"} or None when the entry cannot be loaded."""
    if not isinstance(entry, dict):
        report.error(name, None, "entry_not_object", f"dataset_info.json[{name!r}] is not an object")
        return None
    for k in entry:
        if k not in KNOWN_ENTRY_KEYS:
            report.warn(name, None, "entry_unknown_key", f"unknown key {k!r} is ignored by LLaMA-Factory")
    src = [k for k in SOURCE_KEYS if k in entry]
    if src:
        report.error(name, None, "entry_not_local", f"{src[0]} takes precedence over file_name (source must be a local file_name)")
    ok = True
    if entry.get("formatting", "alpaca") != "sharegpt":
        report.error(name, None, "entry_formatting", f"formatting is {entry.get('formatting', '(missing: alpaca)')!r}, expected \"sharegpt\"")
        ok = False
    if entry.get("ranking") is not True:
        report.error(name, None, "entry_ranking", f"ranking is {json.dumps(entry.get('ranking'))}, expected JSON true (DPO rejects non-ranking data)")
    cols = entry.get("columns")
    columns: dict[str, Any] = {}
    if not isinstance(cols, dict):
        report.error(name, None, "entry_columns", "columns is missing or not an object; list messages, chosen, rejected and images explicitly")
        columns = {"messages": "conversations"}
        ok = False
    else:
        for k in cols:
            if k not in COLUMN_KEYS:
                report.warn(name, None, "entry_unknown_column_key", f"columns.{k} is ignored by LLaMA-Factory")
        columns = {k: cols.get(k) for k in COLUMN_KEYS}  # join(): every key missing from "columns" becomes None
        for k in ("messages", "chosen", "rejected", "images"):
            if not isinstance(cols.get(k), str) or not cols.get(k):
                report.error(name, None, "entry_columns", f"columns.{k} is missing or not a string (it becomes None when `columns` is present)")
                ok = False
    tags = dict(TAG_DEFAULTS)
    if "tags" in entry:
        t = entry["tags"]
        if not isinstance(t, dict):
            report.error(name, None, "entry_tags", "tags is not an object")
            ok = False
        else:
            tags = {k: t.get(k) for k in TAG_KEYS}
            missing = [k for k in TAG_KEYS if not isinstance(t.get(k), str)]
            if missing:
                report.error(name, None, "entry_tags", f"tags lacks {missing}: they become None (a system turn is then not extracted)")
            for k in t:
                if k not in TAG_KEYS:
                    report.warn(name, None, "entry_unknown_tag_key", f"tags.{k} is ignored by LLaMA-Factory")
    fn = entry.get("file_name")
    if not isinstance(fn, str) or not fn:
        report.error(name, None, "entry_file_name", "file_name is missing (required for a local dataset)")
        return None
    if os.path.isabs(fn):
        report.warn(name, None, "entry_file_name_absolute", f"file_name {fn!r} is absolute; the folder is not relocatable")
    path = os.path.join(out_dir, fn)
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in sorted(os.listdir(path))]
        if not files:
            report.error(name, None, "file_missing", f"{fn} is an empty directory")
            return None
        bad = [os.path.basename(f) for f in files if os.path.isdir(f) or os.path.basename(f).startswith(".")]
        if bad:
            report.error(name, None, "file_dir_entries", f"{fn}/ holds subfolders or hidden files {bad[:5]}; LLaMA-Factory loads every entry")
        exts = {f.rsplit(".", 1)[-1] if "." in os.path.basename(f) else "" for f in files}
        if len(exts) > 1:
            report.error(name, None, "file_types", f"{fn}/: File types should be identical (got {sorted(exts)})")
            return None
        ext = exts.pop()
        files = [f for f in files if os.path.isfile(f)]
    elif os.path.isfile(path):
        files = [path]
        ext = fn.rsplit(".", 1)[-1] if "." in os.path.basename(fn) else ""
    else:
        report.error(name, None, "file_missing", f"File {path} not found.")
        return None
    if ext not in FILEEXT2TYPE:
        report.error(name, None, "file_type", f"{fn}: Allowed file types: {','.join(FILEEXT2TYPE)}.")
        return None
    if FILEEXT2TYPE[ext] not in ("json", "parquet", "arrow"):
        report.error(name, None, "file_type", f"{fn}: {ext} cannot hold sharegpt messages (use json, jsonl or parquet)")
        return None
    if not ok:
        return None
    return {"path": path, "files": files, "type": FILEEXT2TYPE[ext], "columns": columns, "tags": tags}


# ------------------------------------------------------------------------------------------------
# features


def check_features(report: Report, name: str, ds: Any, columns: dict) -> bool:
    import pyarrow as pa  # noqa: PLC0415

    schema = ds.data.schema
    names = set(schema.names)
    ok = True

    def is_str(t: pa.DataType) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    def turn_ok(t: pa.DataType, where: str) -> bool:
        if not pa.types.is_struct(t):
            report.error(name, None, "feature_type", f"{where} is {t}, expected a struct {{from, value}} of strings")
            return False
        fields = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        good = True
        for k in fields:
            if not (is_str(fields[k]) or pa.types.is_null(fields[k])):
                report.error(name, None, "feature_type", f"{where}.{k} is {fields[k]}, expected string")
                good = False
        return good

    def col(key: str) -> str | None:
        c = columns.get(key)
        if c is None:
            return None
        if c not in names:
            report.error(name, None, "column_missing", f"column {c!r} (columns.{key}) is not in the data (has {sorted(names)}); LLaMA-Factory raises KeyError")
            return None
        return c

    m = col("messages")
    if m:
        t = schema.field(m).type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            report.error(name, None, "feature_type", f"{m} is {t}, expected a list of {{from, value}}")
            ok = False
        else:
            ok &= turn_ok(t.value_type, f"{m}[]")
    else:
        ok = False
    for key in ("chosen", "rejected"):
        c = col(key)
        if c:
            t = schema.field(c).type
            if is_str(t):
                report.error(name, None, "feature_type", f"{c} is a string; in sharegpt ranking it must be an object {{from, value}} (strings make LLaMA-Factory drop every row)")
                ok = False
            else:
                ok &= turn_ok(t, c)
        else:
            ok = False
    for key in ("images", "videos", "audios"):
        c = col(key)
        if c:
            t = schema.field(c).type
            if pa.types.is_list(t) or pa.types.is_large_list(t):
                vt = t.value_type
                if pa.types.is_null(vt):
                    report.warn(name, None, "feature_type", f"{c} is list<null>: no row has any {key}")
                elif not is_str(vt):
                    report.error(name, None, "feature_type", f"{c} is {t}, expected a list of path strings")
                    ok = False
            elif is_str(t):
                report.warn(name, None, "feature_type", f"{c} is a bare string; write a list of strings")
            else:
                report.error(name, None, "feature_type", f"{c} is {t}, expected a list of path strings")
                ok = False
        elif key == "images" and columns.get("images") is not None:
            ok = False
    s = col("system")
    if s and not is_str(schema.field(s).type):
        report.error(name, None, "feature_type", f"{s} (columns.system) is {schema.field(s).type}, expected string")
    return ok


# ------------------------------------------------------------------------------------------------
# rows


class ImageChecker:
    def __init__(self, report: Report, out_dir: str):
        self.report = report
        self.root = os.path.realpath(out_dir)
        self.cache: dict[str, tuple[str, str] | None] = {}  # realpath -> None (ok) | (code, message)
        self.warned: set[str] = set()

    def check(self, name: str, row: int, item: Any, kind: str) -> str | None:
        """Resolve one media item like _find_medias; for images also decode it. Returns the realpath if found."""
        rep = self.report
        if not isinstance(item, str):
            rep.error(name, row, "media_type", f"{kind} item is {type(item).__name__}, expected a path string")
            return None
        if item == "":
            rep.error(name, row, "media_path", f"empty {kind} path")
            return None
        if "://" in item or item.startswith("data:"):
            rep.error(name, row, "media_path", f"{kind} path {item[:80]!r} is a URL or data URI; LLaMA-Factory only opens local files")
            return None
        if "\\" in item:
            rep.warn(name, row, "media_path_backslash", f"{kind} path {item!r} has backslashes; use forward slashes")
        if os.path.isabs(item):
            rep.error(name, row, "media_path_escapes", f"{kind} path {item!r} is absolute (outside the dataset folder)")
        p = os.path.join(self.root, item)
        real = os.path.realpath(p)
        if real != self.root and not real.startswith(self.root + os.sep):
            if not os.path.isabs(item):
                rep.error(name, row, "media_path_escapes", f"{kind} path {item!r} resolves outside OUT_DIR ({real})")
            return None
        if not os.path.isfile(p):
            rep.error(name, row, "media_missing", f"Media {item} does not exist in `media_dir` ({self.root}); LLaMA-Factory would fall back to the CWD and fail")
            return None
        if kind != "images":
            return real
        if real not in self.cache:
            self.cache[real] = self._open(real)
        res = self.cache[real]
        if res is not None:
            code, msg = res
            if code.startswith("E:"):  # an error is reported on every row that uses the image
                rep.error(name, row, code[2:], f"{item}: {msg}")
                return None
            if real not in self.warned:  # a warning only once per distinct image
                self.warned.add(real)
                rep.warn(name, row, code[2:], f"{item}: {msg}")
        return real

    @staticmethod
    def _open(path: str) -> tuple[str, str] | None:
        from PIL import Image  # noqa: PLC0415

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    im.load()
                    mode, size = im.mode, im.size
                    orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
                    if mode != "RGB":
                        try:
                            im.convert("RGB")
                        except Exception as e:  # noqa: BLE001
                            return ("E:image_mode", f"mode {mode} cannot be converted to RGB ({e})")
        except Exception as e:  # noqa: BLE001
            return ("E:image_decode", f"Pillow cannot open it: {type(e).__name__}: {e}")
        w, h = size
        notes = []
        if mode not in ("RGB", "L"):  # L -> RGB is lossless; the others lose alpha, or resize with NEAREST first
            notes.append(f"mode {mode}: LLaMA-Factory resizes it before converting to RGB (alpha dropped, palette/16-bit resized with NEAREST)")
        if min(w, h) < 28:
            notes.append(f"size {w}x{h}: a side under 28 px is stretched to 28 by the Qwen2-VL plugin")
        if max(w, h) / max(1, min(w, h)) > 180:
            notes.append(f"aspect ratio {w}x{h} exceeds 180:1")
        if orientation not in (1, None):
            notes.append(f"EXIF orientation {orientation} is ignored by LLaMA-Factory")
        if notes:
            code = "W:image_small" if min(w, h) < 28 and len(notes) == 1 else "W:image_note"
            return (code, "; ".join(notes))
        return None


def text_rules(rep: Report, name: str, i: int, where: str, text: str, placeholders_allowed: bool) -> None:
    for tok in QWEN_SPECIAL:
        if tok in text:
            rep.error(name, i, "qwen_special_token", f"{where} contains the raw Qwen special token {tok}")
            break
    if not placeholders_allowed:
        for ph in PLACEHOLDERS.values():
            if ph in text:
                rep.error(name, i, "placeholder_outside_prompt", f"{where} contains {ph}; put placeholders only in user turns of the prompt")


def check_rows(rep: Report, name: str, ds: Any, columns: dict, tags: dict, images: ImageChecker) -> tuple[int, int, set]:
    role, content = tags["role_tag"], tags["content_tag"]
    odd_tags = (tags["user_tag"], tags["observation_tag"])
    even_tags = (tags["assistant_tag"], tags["function_tag"])
    tag_mapping = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant", tags["observation_tag"]: "observation",
                   tags["function_tag"]: "function", tags["system_tag"]: "system"}
    mcol, ccol, rcol = columns["messages"], columns["chosen"], columns["rejected"]
    opened = 0
    distinct: set = set()
    rows = 0
    for i, ex in enumerate(ds):
        rows += 1
        messages = ex.get(mcol)
        if not isinstance(messages, list):
            rep.error(name, i, "messages_type", f"{mcol} is {type(messages).__name__}, expected a list")
            continue
        bad_turn = False
        for k, t in enumerate(messages):
            if not isinstance(t, dict) or t.get(role) is None or t.get(content) is None:
                rep.error(name, i, "turn_keys", f"{mcol}[{k}] lacks {role!r}/{content!r} or has null values (KeyError / .count() on None)")
                bad_turn = True
            elif not isinstance(t.get(content), str):
                rep.error(name, i, "turn_keys", f"{mcol}[{k}].{content} is not a string")
                bad_turn = True
        if bad_turn:
            continue
        system = ""
        if tags["system_tag"] and messages and messages[0][role] == tags["system_tag"]:
            system = messages[0][content]
            messages = messages[1:]
        elif columns.get("system"):
            system = ex.get(columns["system"]) or ""
        if system:
            text_rules(rep, name, i, "system", system, placeholders_allowed=False)
        # role alternation
        broken = False
        for k, t in enumerate(messages):
            accept = odd_tags if k % 2 == 0 else even_tags
            if t[role] not in accept:
                rep.error(name, i, "invalid_role", f"Invalid role tag {t[role]!r} at turn {k} (after the system turn): expected one of {list(accept)}; LLaMA-Factory skips the row")
                broken = True
                break
        if not broken and len(messages) % 2 != 1:
            rep.error(name, i, "invalid_message_count", f"Invalid message count {len(messages)}: a ranking prompt must have an odd number of turns (end on a user turn)")
            broken = True
        for k, t in enumerate(messages):
            text_rules(rep, name, i, f"{mcol}[{k}]", t[content], placeholders_allowed=t[role] in odd_tags)
        responses = {}
        for key, cname in (("chosen", ccol), ("rejected", rcol)):
            r = ex.get(cname)
            if not isinstance(r, dict):
                rep.error(name, i, "response_not_object", f"{key} is {type(r).__name__}; sharegpt ranking needs an object (the row is dropped)")
                broken = True
                continue
            if r.get(role) is None or r.get(content) is None or not isinstance(r.get(content), str):
                rep.error(name, i, "turn_keys", f"{key} lacks {role!r}/{content!r} or has a null/non-string value")
                broken = True
                continue
            if r[role] not in tag_mapping:
                rep.error(name, i, "response_role_unknown", f"{key}.{role} = {r[role]!r} is not a known tag: KeyError aborts LLaMA-Factory's dataset.map")
                broken = True
            elif r[role] not in even_tags:
                rep.error(name, i, "response_role", f"{key}.{role} = {r[role]!r}; expected the assistant tag (LLaMA-Factory only warns and trains it as a {tag_mapping[r[role]]} turn)")
            text_rules(rep, name, i, key, r[content], placeholders_allowed=False)
            if r[content].strip() == "":
                rep.warn(name, i, "response_empty", f"{key} text is empty")
            responses[key] = r[content]
        if len(responses) == 2 and responses["chosen"] == responses["rejected"]:
            rep.warn(name, i, "chosen_equals_rejected", "chosen and rejected are identical (no preference signal)")
        # placeholder count rule, on prompt+chosen and prompt+rejected
        prompt_text = [t[content] for t in messages]
        for key, ph in PLACEHOLDERS.items():
            c = columns.get(key)
            medias = ex.get(c) if c else None
            if c and medias is None:
                if key == "images":
                    rep.warn(name, i, "images_null", f"{c} is null; write [] for none")
            elif c and not isinstance(medias, list):
                medias = [medias]
            n = len(medias) if medias else 0
            for rkey in ("chosen", "rejected"):
                if rkey not in responses:
                    continue
                got = sum(s.count(ph) for s in prompt_text) + responses[rkey].count(ph)
                if got != n:
                    rep.error(name, i, f"{key}_count", f"The number of {key} ({n}) does not match the number of {ph} tokens ({got}) in prompt + {rkey}")
            if medias:
                if isinstance(medias[0], list):
                    medias = [x for sub in medias for x in (sub if isinstance(sub, list) else [sub])]
                kinds = {type(m).__name__ for m in medias}
                if len(kinds) > 1:
                    rep.error(name, i, "media_type", f"{c} mixes {sorted(kinds)} (LLaMA-Factory checks only the first item's type)")
                for m in medias:
                    real = images.check(name, i, m, key)
                    if key == "images" and real is not None:
                        opened += 1
                        distinct.add(real)
    return rows, opened, distinct


# ------------------------------------------------------------------------------------------------


def check_dataset(rep: Report, out_dir: str, name: str, info: dict, images: ImageChecker, cache_dir: str) -> None:
    rep.datasets[name] = {"rows": 0, "images_opened": 0, "distinct_images": 0}
    key = name.strip()
    if key not in info:
        rep.error(name, None, "undefined_dataset", f"Undefined dataset {key} in dataset_info.json.")
        return
    spec = check_entry(rep, out_dir, key, info[key])
    if spec is None:
        return
    import datasets  # noqa: PLC0415

    try:
        with captured(rep, name):
            ds = datasets.load_dataset(spec["type"], data_files=spec["files"], split="train", cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001
        rep.error(name, None, "load_failed", f"datasets.load_dataset({spec['type']!r}) failed: {type(e).__name__}: {e}")
        return
    if not check_features(rep, name, ds, spec["columns"]):
        rep.datasets[name]["rows"] = len(ds)
        return
    with captured(rep, name):
        rows, opened, distinct = check_rows(rep, name, ds, spec["columns"], spec["tags"], images)
    rep.datasets[name] = {"rows": rows, "images_opened": opened, "distinct_images": len(distinct)}
    if rows == 0:
        rep.error(name, None, "no_rows", "Cannot find valid samples: the dataset has no rows")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    out_dir, names = argv[0], argv[1:]
    rep = Report()
    real_stdout = sys.stdout
    # keep stdout for the one JSON object: anything else printed by libraries goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import datasets  # noqa: PLC0415

            datasets.disable_progress_bars()
        except Exception as e:  # noqa: BLE001
            rep.error(None, None, "python_env", f"cannot import datasets: {e}")
        info = None
        cfg = os.path.join(out_dir, "dataset_info.json")
        if not os.path.isdir(out_dir):
            rep.error(None, None, "out_dir_missing", f"{out_dir} is not a directory")
        else:
            try:
                with open(cfg, encoding="utf-8") as f:
                    info = json.load(f)
                if not isinstance(info, dict):
                    rep.error(None, None, "dataset_info", "dataset_info.json is not a JSON object")
                    info = None
            except Exception as e:  # noqa: BLE001
                rep.error(None, None, "dataset_info", f"Cannot open {cfg} due to {e}.")
        if info is not None and not rep.errors:
            images = ImageChecker(rep, out_dir)
            with tempfile.TemporaryDirectory(prefix="check-lf-cache-") as cache_dir:
                for name in names:
                    check_dataset(rep, out_dir, name, info, images, cache_dir)
        else:
            for name in names:
                rep.datasets[name] = {"rows": 0, "images_opened": 0, "distinct_images": 0}
    out = rep.finish()
    real_stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    real_stdout.flush()
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
