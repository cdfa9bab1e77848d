"""Where each sample lives inside a shard, so any sample can be read with one range read.

A shard's index is a JSON sidecar ``<shard>.idx`` written by the builder::

    {"format": "vattfw-shard-index/1", "bytes": N,
     "samples": [[key, start, end, {ext: [data_offset, size], ...}], ...]}

``start``/``end`` bound the sample's tar members (headers included); offsets are absolute.
Shards from elsewhere (plain webdataset tars) have no sidecar: they are scanned once.
"""
from __future__ import annotations

import io
import json
import logging
import tarfile
from dataclasses import dataclass

log = logging.getLogger("vattfw.data")
FORMAT = "vattfw-shard-index/1"
SUFFIX = ".idx"


@dataclass(frozen=True)
class SampleRef:
    key: str
    start: int
    end: int
    members: dict[str, tuple[int, int]]  # ext -> (absolute data offset, size)


def split_name(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (folder + "/" if folder else "") + stem, ext if dot else ""


def scan(data: bytes, where: str = "") -> tuple[list[SampleRef], bool]:
    """Index the tar in ``data``.  Returns (samples, complete); ``complete`` is False
    when the tar is corrupt or truncated after the samples returned."""
    samples, problem = examine(data)
    if problem:
        log.warning("%s: %s", where, problem)
    return samples, not problem


def examine(data: bytes) -> tuple[list[SampleRef], str]:
    """(samples, "") for a sound tar; else the samples before the damage and what is wrong
    ("not a tar file", "corrupt after N samples", "truncated ...")."""
    samples: list[SampleRef] = []
    current: tuple[str, int, int, dict] | None = None
    problem = ""
    if not data:
        return [], "an empty file, not a tar"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                end = info.offset_data + info.size
                if end > len(data):
                    problem = f"truncated inside member {info.name} (after {len(samples)} whole samples)"
                    break
                key, ext = split_name(info.name)
                if current is None or current[0] != key:
                    if current is not None:
                        samples.append(SampleRef(current[0], current[1], current[2], current[3]))
                    current = (key, info.offset, end, {})
                current[3][ext] = (info.offset_data, info.size)
                current = (current[0], current[1], end, current[3])
    except tarfile.TarError as exc:
        first = current is None and not samples
        problem = "not a tar file" if first else f"tar is corrupt after {len(samples)} samples: {exc}"
    if not problem:
        # tarfile ends quietly at a bad header: only zero blocks may follow the last member.
        tail = data[(current[2] + 511) // 512 * 512:] if current is not None else data
        if tail.strip(b"\0"):
            got = len(samples) + (current is not None)
            problem = f"tar is corrupt after {got} samples" if got else "not a tar file"
    if current is not None:  # the last sample keeps the members fully present
        samples.append(SampleRef(current[0], current[1], current[2], current[3]))
    return samples, problem


def dumps(samples: list[SampleRef], nbytes: int) -> str:
    rows = [[s.key, s.start, s.end, {e: list(v) for e, v in s.members.items()}] for s in samples]
    return json.dumps({"format": FORMAT, "bytes": nbytes, "samples": rows}, separators=(",", ":"))


def loads(text: str | bytes) -> list[SampleRef]:
    """The samples of an index sidecar; ValueError for anything that is not one."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} index")
    try:
        return [SampleRef(str(k), int(s), int(e), {str(x): (int(v[0]), int(v[1])) for x, v in m.items()})
                for k, s, e, m in doc["samples"]]
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"a malformed {FORMAT} index ({type(exc).__name__})") from None


def members(ref: SampleRef, blob: bytes) -> dict[str, bytes]:
    """Member bytes from the range [ref.start, ref.end) read in one go."""
    out = {}
    for ext, (off, size) in ref.members.items():
        lo = off - ref.start
        chunk = blob[lo:lo + size]
        if len(chunk) != size:
            raise EOFError(f"member {ref.key}.{ext} is truncated ({len(chunk)} of {size} bytes)")
        out[ext] = chunk
    return out
