"""`vattfw data inspect URL...`: what is in a set of shards, and does it decode."""
from __future__ import annotations

import json
import time

from concurrent.futures import ThreadPoolExecutor

from ..errors import Problem, UserError
from . import tarindex, urls
from .images import decode_image, image_member
from .pipeline import Sampler, Skip
from .shards import built_pattern


def read_shard(url: str, verify: bool) -> tuple[list[tarindex.SampleRef], list[str]] | None:
    """(samples, problems) of one shard, None when it does not exist.  Its index sidecar is used when there is one; with
    ``verify`` the tar is read too and scanned, and a sidecar that does not describe it (stale,
    or the tar was damaged since) is a problem: the scan's samples are used instead."""
    where = urls.redact(url)
    problems, refs = [], None
    try:
        refs = tarindex.loads(urls.read_range(url + tarindex.SUFFIX))
    except urls.NotFound:
        pass
    except ValueError as exc:
        problems.append(f"{where}{tarindex.SUFFIX}: unreadable index sidecar ({exc}); the tar was scanned")
    if refs is None or verify:
        try:
            blob = urls.read_range(url)
        except urls.NotFound:
            return None
        scanned, problem = tarindex.examine(blob)
        if problem:
            problems.append(f"{where}: {problem}")
        if refs is not None and _members(refs) != _members(scanned):
            problems.append(f"{where}{tarindex.SUFFIX}: does not match the tar ({len(refs)} samples indexed, "
                            f"{len(scanned)} found): stale, or the tar was damaged; rebuild, or delete the sidecar")
        refs = scanned
    if not refs and not any(p.startswith(where + ":") for p in problems):
        problems.append(f"{where}: no samples (an empty tar)")
    return refs, problems


def _members(refs: list[tarindex.SampleRef]) -> list[tuple]:
    # What a reader uses: keys and member ranges (the builder's sidecar also counts the tar
    # padding after a sample's last member in its end, a scan does not).
    return [(r.key, r.start, sorted(r.members.items())) for r in refs]


def inspect(patterns: list[str], scan: int = 200, decode: int = 3, decoder: str = "pyav",
            window: float = 3.2, short_clip: str = "loop", verify: bool = False) -> dict:
    """``window`` (seconds) and ``short_clip`` are the loader settings the ``adjusted`` counts assume;
    ``verify``: check every index sidecar against its tar.  ``problems``: one line per bad shard."""
    from ..spec.data import DataSection
    expanded = [u for p in patterns for u in urls.expand(built_pattern(p) or p)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(lambda u: read_shard(u, verify), expanded))
    except urls.StorageError as exc:
        raise UserError(Problem(str(exc))) from None
    missing = [urls.redact(u) for u, f in zip(expanded, found) if f is None]
    if missing:
        raise UserError(Problem(f"{'shard' if len(missing) == 1 else 'shards'} {', '.join(missing[:5])}"
                                f"{f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''} "
                                f"{'does' if len(missing) == 1 else 'do'} not exist"))
    refs = [(u, r) for u, (samples, _) in zip(expanded, found) for r in samples]
    report: dict = {"shards": len(expanded), "samples": len(refs), "verified": verify,
                    "problems": [p for _, found_problems in found for p in found_problems],
                    "members": {}, "scanned": 0, "duration_s": {}, "modalities": {}, "with_captions": 0,
                    "labels": {}, "adjusted": {}, "decoded": []}
    for _, r in refs:
        for ext in r.members:
            report["members"][ext] = report["members"].get(ext, 0) + 1
    step = max(1, len(refs) // max(1, scan))
    durations, sizes = [], []
    for url, ref in refs[::step][:scan]:
        if "json" not in ref.members:
            continue
        off, size = ref.members["json"]
        try:
            meta = json.loads(urls.read_range(url, off, off + size))
        except ValueError:
            continue
        report["scanned"] += 1
        if "width" in meta:  # an image: a size, no duration
            sizes.append((int(meta["width"]), int(meta.get("height") or 0)))
        else:
            durations.append(float(meta.get("duration") or 0))
            _adjustments(report["adjusted"], meta, window, short_clip)
        for m in meta.get("modalities", []):
            report["modalities"][m] = report["modalities"].get(m, 0) + 1
        report["with_captions"] += bool(meta.get("captions"))
        if meta.get("label") is not None:
            name = str(meta.get("label_name") or meta["label"])
            report["labels"][name] = report["labels"].get(name, 0) + 1
    if durations:
        report["duration_s"] = {"min": round(min(durations), 3), "mean": round(sum(durations) / len(durations), 3),
                                "max": round(max(durations), 3)}
    if report["labels"]:
        report["classes"] = len(report["labels"])
    if sizes:
        report["image_sizes"] = _sizes(sizes)
    if report["adjusted"]:
        report["adjusted"] = {"window_s": window, "short_clip": short_clip, **report["adjusted"]}
    data = DataSection.model_validate({"decoder": decoder, "text": {"vocabulary": None},
                                       "audio": {"short_clip": short_clip}})
    sampler = Sampler(data, "train")
    for url, ref in refs[::max(1, len(refs) // max(1, decode))][:decode]:
        t = time.perf_counter()
        entry = {"key": ref.key, "shard": urls.redact(url)}
        try:
            members = tarindex.members(ref, urls.read_range(url, ref.start, ref.end))
            if image_member(members):
                entry.update(_image(members, t))
                report["decoded"].append(entry)
                continue
            row = sampler(members, (), None)[0]
            entry.update({k: list(v.shape) for k, v in row.items() if v.dim()})
            entry.update({"audio_mask": float(row["audio_mask"]), "text_mask": float(row["text_mask"]),
                          "video_mask": float(row["video_mask"]), "seconds": round(time.perf_counter() - t, 3)})
        except Skip as skip:
            entry["skipped"] = f"{skip.reason}: {skip.detail}"
        except Exception as exc:  # report, do not crash: inspect exists to find bad data
            entry["error"] = f"{type(exc).__name__}: {exc}"
        report["decoded"].append(entry)
    return report


def _adjustments(counts: dict, meta: dict, window: float, short_clip: str) -> None:
    """What the loader would change in this scanned clip (counted per reason, as its ``adjusted()``):
    shorter than the window (looped or padded), no video or no audio stream (zeros, mask 0)."""
    mods = meta.get("modalities") or []
    hits = {"looped": short_clip == "loop", "padded": short_clip == "pad", "too_short (skipped)": short_clip == "skip"}
    for reason, hit in ((next(r for r, on in hits.items() if on), float(meta.get("duration") or 0) < window),
                        ("zero_video", "video" not in mods), ("zero_audio", "audio" not in mods)):
        counts[reason] = counts.get(reason, 0) + int(hit)


def _sizes(sizes: list[tuple[int, int]]) -> dict:
    """Width x height range of the scanned images, and the first few as examples."""
    ws, hs = [w for w, _ in sizes], [h for _, h in sizes]
    return {"min": [min(ws), min(hs)], "max": [max(ws), max(hs)],
            "examples": [f"{w}x{h}" for w, h in sizes[:5]]}


def _image(members: dict[str, bytes], t0: float) -> dict:
    ext = image_member(members)
    img = decode_image(members[ext])
    label = json.loads(members["json"]).get("label_name") if "json" in members else None
    return {"image": list(img.shape), "format": ext, "bytes": len(members[ext]), "label_name": label,
            "seconds": round(time.perf_counter() - t0, 3)}
