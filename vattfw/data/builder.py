"""`vattfw data build SRC OUT`: media files (+ caption/label sidecars) or a manifest -> shards.

Inputs
* a folder: every media file (mp4 mkv webm avi mov; wav flac mp3 ogg m4a) below it is a clip;
  files with the same path minus extension are one sample, e.g. ``a/x.mp4`` + ``a/x.wav``
  (separate audio) + ``a/x.txt`` (one caption per line) + ``a/x.json`` (``captions``,
  ``label``, ``labels`` and any other metadata).  ``label_from_folder`` takes the class
  from the parent folder's name.
* a ``.csv`` or ``.jsonl`` manifest, one row per clip: ``path`` (or ``video`` / ``audio``),
  optional ``key``, ``caption`` / ``captions`` (CSV: separated by ``|``), ``label``, ``labels``;
  paths relative to the manifest.

Images (``jpg jpeg png bmp webp``, any case) are samples too, stored as ``KEY.<ext>`` with their
encoded bytes: an ImageNet-style folder (one sub-folder per class) with ``label_from_folder``,
or a manifest whose rows all have ``path`` and ``label``.  One data set holds one kind: a
folder or manifest mixing images and media clips is refused, naming one file of each kind,
because no consumer reads both from one set of shards.  Every image is decoded once here with
the decoder the readers use (:func:`decode_image`), so a corrupt one is skipped and reported.

Media bytes are stored as they are (no re-encoding).  Each clip is probed in a worker
process; empty or undecodable files are skipped and listed in ``report.json``.  Output is
deterministic: samples are sorted by key and tar headers carry no time or owner.
Class names (string labels) become ids in sorted order, listed in ``classes.json``; with
``classes`` (e.g. the training build's ``classes.json``) the ids are that list's order instead, so a
test set missing a class keeps the training ids, and a name the list lacks is an error.
Manifests whose columns have other names (ESC-50's ``filename,category``) map them with
``path_column`` / ``label_column``.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from ..errors import Problem, UserError
from .decode import AUDIO_EXTS, VIDEO_EXTS, DecodeError, open_clip
from .images import IMAGE_EXTS, decode_image, image_member
from .shards import ShardWriter, sample_json

MEDIA_EXTS = VIDEO_EXTS + AUDIO_EXTS


def _key(rel: str) -> str:
    # webdataset splits a key from its extension at the first dot of the file name.
    return re.sub(r"[.\s]", "_", rel)


def collect_folder(src: Path, label_from_folder: bool = False) -> list[dict]:
    groups: dict[str, dict] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        ext = path.suffix.lower().lstrip(".")
        stem = str(rel.with_suffix("")).replace("\\", "/")
        item = groups.setdefault(stem, {"key": _key(stem), "media": {}, "sidecars": {}, "origin": stem})
        if ext in MEDIA_EXTS or ext in IMAGE_EXTS:
            item["media"][ext] = str(path)
            if ext in IMAGE_EXTS:  # one file per image sample: report its real name
                item["origin"] = str(rel).replace("\\", "/")
        elif ext in ("txt", "json"):
            item["sidecars"][ext] = str(path)
        if label_from_folder and rel.parent != Path("."):
            item["label"] = rel.parent.name
    items = []
    for stem in sorted(groups):
        item = groups[stem]
        if not item["media"]:
            continue  # a sidecar without media is not a clip
        captions, meta = _sidecars(item.pop("sidecars"))
        items.append({**item, **meta, "captions": captions})
    return items


def _sidecars(found: dict[str, str]) -> tuple[list[str], dict]:
    captions: list[str] = []
    meta: dict = {}
    if "txt" in found:
        captions = [ln.strip() for ln in Path(found["txt"]).read_text(encoding="utf-8").splitlines() if ln.strip()]
    if "json" in found:
        doc = json.loads(Path(found["json"]).read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise UserError(Problem(f"{found['json']}: a sidecar json must be an object"))
        extra = doc.pop("captions", None) or doc.pop("caption", None) or []
        captions += [extra] if isinstance(extra, str) else list(extra)
        meta = doc
    return captions, meta


def collect_manifest(path: Path, columns: dict[str, str] | None = None) -> list[dict]:
    """``columns``: our field -> the manifest's column name, e.g. {"path": "filename", "label": "category"}."""
    rows: list[dict] = []
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise UserError(Problem(f"invalid JSON: {exc}", file=str(path), line=n)) from None
    rows = _rename_columns(rows, columns or {}, path)
    items = []
    for n, row in enumerate(rows, 1):
        media = {}
        for field in ("path", "video", "audio"):
            if row.get(field):
                p = (path.parent / row[field]).resolve()
                media[p.suffix.lower().lstrip(".")] = str(p)
        line = n + 1 if path.suffix == ".csv" else n  # the CSV header is line 1
        if not media:
            raise UserError(Problem(f"row {n} has no path/video/audio", file=str(path), line=line))
        if image_member(media):
            _check_image_row(row, media, n, path, line)
        caps = row.get("captions", row.get("caption")) or []
        if isinstance(caps, str):
            caps = [c.strip() for c in caps.split("|") if c.strip()]
        origin = row.get("path") or row.get("video") or row.get("audio")
        key = row.get("key") or str(Path(origin).with_suffix(""))
        meta = {k: v for k, v in row.items() if k not in ("path", "video", "audio", "captions", "caption", "key")
                and v not in ("", None)}
        if isinstance(meta.get("labels"), str):
            meta["labels"] = [x for x in meta["labels"].split("|") if x]
        items.append({"key": _key(key), "media": media, "origin": origin, "captions": caps, **meta})
    return sorted(items, key=lambda it: it["key"])


def _rename_columns(rows: list[dict], columns: dict[str, str], path: Path) -> list[dict]:
    """Rows with the manifest's ``columns`` renamed to our field names (the originals dropped)."""
    columns = {ours: theirs for ours, theirs in columns.items() if theirs and theirs != ours}
    if not columns or not rows:
        return rows
    have = list(dict.fromkeys(k for r in rows for k in r))
    missing = [f"--{ours}-column {theirs!r}" for ours, theirs in columns.items() if theirs not in have]
    if missing:
        raise UserError(Problem(f"{', '.join(missing)}: no such column; the manifest's columns are "
                                f"{', '.join(have)}", file=str(path)))
    theirs = set(columns.values())
    out = []
    for row in rows:
        new = {k: v for k, v in row.items() if k not in theirs and k not in columns}
        new.update({ours: row.get(name) for ours, name in columns.items()})
        out.append(new)
    return out


def read_classes(path: str) -> list[str]:
    """A class list: a JSON list of names (``classes.json`` of a build) or one name per line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(Problem(f"--classes {path}: cannot read it ({exc.strerror or exc})")) from None
    if p.suffix == ".json" or text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except ValueError as exc:
            raise UserError(Problem(f"--classes {path}: not JSON ({exc}); give a JSON list of class names "
                                    f"(a build's classes.json) or one name per line")) from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(Problem(f"--classes {path}: expected a JSON list of class names"))
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if not names or dupes:
        why = f"names repeat: {', '.join(dupes)}" if dupes else "no class names"
        raise UserError(Problem(f"--classes {path}: {why}"))
    return names


def _check_image_row(row: dict, media: dict, n: int, path: Path, line: int) -> None:
    # An image manifest is a labelled set (ImageNet style): a row without a label or naming a
    # file that is not there is a typo to fix, not a sample to skip.
    if row.get("label") in (None, ""):
        raise UserError(Problem(f"row {n} has no label (image manifests need path and label: a class "
                                f"name or id)", file=str(path), line=line))
    missing = next((p for p in media.values() if not Path(p).is_file()), None)
    if missing:
        raise UserError(Problem(f"row {n}: no such file {missing}", file=str(path), line=line))


def _check_kinds(items: list[dict], src: str) -> None:
    images = [it for it in items if image_member(it["media"])]
    clips = [it for it in items if any(ext in MEDIA_EXTS for ext in it["media"])]
    if images and clips:
        img = next(p for p in images[0]["media"].values() if Path(p).suffix.lower().lstrip(".") in IMAGE_EXTS)
        clip = next(p for p in clips[0]["media"].values() if Path(p).suffix.lower().lstrip(".") in MEDIA_EXTS)
        raise UserError(Problem(f"{src}: mixes images ({img}) and media clips ({clip}); one data set holds one "
                                f"kind: build them into separate outputs"))
    many = next((it for it in images if len(it["media"]) > 1), None)
    if many:
        raise UserError(Problem(f"{src}: one sample, several images ({', '.join(sorted(many['media'].values()))}); "
                                f"give each image its own name"))


def _read_member(path: str, origin: str) -> bytes | dict:
    """A media file's bytes, or the skip record of an unreadable or empty one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return {"skip": "unreadable", "detail": str(exc), "origin": origin}
    return data if data else {"skip": "empty", "detail": "0 bytes", "origin": origin}


def probe(item: dict) -> dict:
    """Read and check one sample (in a worker): returns the sample or a skip reason."""
    if image_member(item["media"]):
        return probe_image(item)
    members: dict[str, bytes] = {}
    info = {"duration": 0.0, "fps": None, "modalities": []}
    for ext, path in sorted(item["media"].items()):
        data = _read_member(path, item["origin"])
        if isinstance(data, dict):
            return data
        try:
            clip = open_clip(data)
            if clip.has_video:
                clip.frames_at([0.0])
                rate = clip.vstream.average_rate
                info["fps"] = float(rate) if rate else None
                info["modalities"].append("video")
            if clip.has_audio:
                info["modalities"].append("audio")
            info["duration"] = max(info["duration"], clip.duration)
        except (DecodeError, Exception) as exc:  # noqa: B014 - any decoder failure means undecodable
            return {"skip": "undecodable", "detail": f"{type(exc).__name__}: {exc}", "origin": item["origin"]}
        members[ext] = data
    if not info["modalities"] or info["duration"] <= 0:
        return {"skip": "empty", "detail": "no audio or video stream / zero duration", "origin": item["origin"]}
    if item["captions"]:
        info["modalities"].append("text")
    info["modalities"] = sorted(set(info["modalities"]))
    return {"key": item["key"], "members": members, "info": info}


def probe_image(item: dict) -> dict:
    """Decode one image (its bytes are stored as they are); a corrupt one is a skip."""
    ext, path = next(iter(item["media"].items()))
    data = _read_member(path, item["origin"])
    if isinstance(data, dict):
        return data
    try:
        height, width = decode_image(data).shape[:2]
    except Exception as exc:  # noqa: BLE001 - any decoder failure means undecodable
        return {"skip": "undecodable", "detail": f"{type(exc).__name__}: {exc}", "origin": item["origin"]}
    info = {"modalities": ["image"], "width": int(width), "height": int(height)}
    return {"key": item["key"], "members": {ext: data}, "info": info}


def build(src: str, out: str, max_count: int = 1000, max_bytes: int = 1 << 30, workers: int = 2,
          label_from_folder: bool = False, source: str | None = None, progress: bool = True,
          classes: str | list[str] | None = None, columns: dict[str, str] | None = None) -> dict:
    """Build shards in ``out`` from a folder or manifest ``src``; returns the index.  ``classes``:
    the class list (or a file holding it) whose order gives the ids; ``columns``: manifest renames."""
    src_path = Path(src)
    if src_path.is_dir():
        if any((columns or {}).values()):
            raise UserError(Problem(f"{src}: --path-column/--label-column apply to a .csv/.jsonl manifest, "
                                    f"not to a folder"))
        items = collect_folder(src_path, label_from_folder)
    elif src_path.is_file() and src_path.suffix in (".csv", ".jsonl"):
        items = collect_manifest(src_path, columns)
    else:
        raise UserError(Problem(f"{src}: expected a folder of media files or a .csv/.jsonl manifest"))
    if not items:
        raise UserError(Problem(f"{src}: no media files ({', '.join(MEDIA_EXTS)}) or images "
                                f"({', '.join(IMAGE_EXTS)})"))
    _check_kinds(items, src)
    dupes = sorted({it["key"] for it in items if sum(1 for o in items if o["key"] == it["key"]) > 1})
    if dupes:
        raise UserError(Problem(f"{src}: sample keys are not unique: {', '.join(dupes[:5])}"))
    classes = _classes(items, read_classes(classes) if isinstance(classes, str) else classes,
                       classes if isinstance(classes, str) else "the given class list")
    name = source or src_path.stem
    writer = ShardWriter(out, max_count, max_bytes)
    skipped: list[dict] = []
    for item, result in zip(items, _probe_all(items, workers, progress)):
        if "skip" in result:
            skipped.append({"path": result["origin"], "reason": result["skip"], "detail": result["detail"]})
            continue
        writer.add(result["key"], {**result["members"], "json": _json(item, result["info"], name, classes)},
                   result["info"])
    reasons: dict[str, int] = {}
    for s in skipped:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    index = writer.close({"source": name, "classes": classes, "skipped": reasons})
    Path(out, "report.json").write_text(json.dumps({"built": index["samples"], "skipped": skipped},
                                                   indent=1, sort_keys=True) + "\n")
    if classes:
        Path(out, "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    return index


def _probe_all(items: list[dict], workers: int, progress: bool):
    from .loader import worker_context
    ctx = worker_context()
    with ctx.Pool(max(1, workers)) as pool:
        results = pool.imap(probe, items, chunksize=4)
        if not progress:
            yield from results
            return
        from rich.progress import Progress
        with Progress(transient=True) as bar:
            task = bar.add_task("building shards", total=len(items))
            for r in results:
                bar.advance(task)
                yield r


def _classes(items: list[dict], fixed: list[str] | None = None, origin: str = "") -> list[str]:
    """The build's class list: its names sorted, or ``fixed`` (which must hold every name found)."""
    names = set()
    for it in items:
        for v in [it.get("label")] + list(it.get("labels") or []):
            if isinstance(v, str) and not v.lstrip("-").isdigit():
                names.add(v)
    if fixed is None:
        return sorted(names)
    unknown = sorted(names - set(fixed))
    if unknown:
        more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
        raise UserError(Problem(f"--classes {origin}: the data has classes it does not list: "
                                f"{', '.join(unknown[:10])}{more}; its classes are {', '.join(fixed[:20])}"
                                f"{' ...' if len(fixed) > 20 else ''}"))
    return list(fixed)


def _label_id(v: Any, classes: list[str]) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, str):
        return classes.index(v) if v in classes else int(v)
    return int(v)


def _json(item: dict, info: dict, source: str, classes: list[str]) -> bytes:
    skip = {"key", "media", "origin", "captions", "label", "labels"}
    meta = {k: v for k, v in item.items() if k not in skip}
    label = _label_id(item.get("label"), classes)
    labels = [_label_id(v, classes) for v in item.get("labels") or []]
    if label is not None:
        meta["label"] = label
        name = item.get("label")  # a class name; a numeric label ("3") names no class
        meta["label_name"] = name if isinstance(name, str) and name in classes else None
    if labels:
        meta["labels"] = labels
    fields = dict(info)  # clips: duration, fps, modalities; images: width, height, modalities
    if "duration" in fields:
        fields["duration"] = round(fields["duration"], 4)
    # The builder's own fields win over same-named sidecar metadata.
    return sample_json(item["captions"], **{**meta, "source": source, "original": item["origin"], **fields})
