"""Writing clip shards: plain tar files, byte-for-byte deterministic, with index sidecars."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from ..errors import Problem, UserError
from . import tarindex

SHARD_PATTERN = "shard-{:06d}.tar"
INDEX_FILE = "index.json"
INDEX_FORMAT = "vattfw-clips/1"


def _padded(n: int) -> int:
    return (n + 511) // 512 * 512


class ShardWriter:
    """Appends samples to ``out/shard-000000.tar``, ``...001.tar`` ...; a new shard starts
    when the current one holds ``max_count`` samples or would pass ``max_bytes``."""

    def __init__(self, out: str | Path, max_count: int = 1000, max_bytes: int = 1 << 30):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.max_count, self.max_bytes = max_count, max_bytes
        self.shards: list[dict] = []
        self._buf: io.BytesIO | None = None
        self._tar: tarfile.TarFile | None = None
        self._refs: list[tarindex.SampleRef] = []
        self._stats: dict = {}

    def _open(self) -> None:
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.GNU_FORMAT)
        self._refs = []
        self._stats = {"duration": 0.0, "modalities": {}}

    def add(self, key: str, members: dict[str, bytes], meta: dict | None = None) -> None:
        size = sum(512 + _padded(len(b)) for b in members.values())
        if self._tar is not None and (len(self._refs) >= self.max_count or
                                      (self._refs and self._tar.offset + size > self.max_bytes)):
            self._close()
        if self._tar is None:
            self._open()
        start = self._tar.offset
        offsets = {}
        for ext in sorted(members):  # a fixed member order: same input, same bytes
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
            offsets[ext] = (self._tar.offset - _padded(len(data)), len(data))
        self._refs.append(tarindex.SampleRef(key, start, self._tar.offset, offsets))
        meta = meta or {}
        self._stats["duration"] += float(meta.get("duration") or 0)
        for m in meta.get("modalities", []):
            self._stats["modalities"][m] = self._stats["modalities"].get(m, 0) + 1

    def _close(self) -> None:
        self._tar.close()
        data = self._buf.getvalue()
        name = SHARD_PATTERN.format(len(self.shards))
        (self.out / name).write_bytes(data)
        (self.out / (name + tarindex.SUFFIX)).write_text(tarindex.dumps(self._refs, len(data)))
        self.shards.append({"name": name, "samples": len(self._refs), "bytes": len(data),
                            "duration": round(self._stats["duration"], 3),
                            "modalities": dict(sorted(self._stats["modalities"].items()))})
        self._tar = self._buf = None

    def close(self, extra: dict | None = None) -> dict:
        """Finish the last shard and write ``index.json``: samples (and bytes, seconds,
        modalities) per shard."""
        if self._tar is not None:
            self._close()
        n = len(self.shards)
        index = {"format": INDEX_FORMAT, "shards": self.shards,
                 "samples": sum(s["samples"] for s in self.shards),
                 "urls": f"shard-{{000000..{n - 1:06d}}}.tar" if n else "", **(extra or {})}
        (self.out / INDEX_FILE).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
        return index


def sample_json(captions: list[str], **meta) -> bytes:
    """The ``.json`` member: captions plus metadata, with sorted keys (deterministic)."""
    return json.dumps({"captions": list(captions), **meta}, sort_keys=True, ensure_ascii=False).encode()


def built_pattern(folder: str) -> str | None:
    """``folder/shard-{000000..N}.tar`` when ``folder`` is a local output of `vattfw data build`
    (it has ``index.json``), else None: lets commands take the folder itself."""
    index = Path(folder, INDEX_FILE)
    if not index.is_file():
        return None
    try:
        pattern = json.loads(index.read_text()).get("urls")
    except ValueError:
        raise UserError(Problem(f"{index}: not JSON; rebuild with vattfw data build")) from None
    if not pattern:
        raise UserError(Problem(f"{index}: the data set has no shards (0 samples built; see report.json)"))
    return str(Path(folder, pattern))
