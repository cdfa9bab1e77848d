"""Tiny real media for the data tests, made with ffmpeg (lavfi testsrc / sine): no network."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest


def make_clip(path: Path, seconds: float = 2.0, size: str = "96x64", fps: int = 10, freq: int = 440,
              audio: bool = True, video: bool = True) -> Path:
    args = ["ffmpeg", "-v", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=16000:duration={seconds}"]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"]
    if audio:
        args += ["-c:a", "aac" if video else "flac"]
    args += ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", str(path)]
    subprocess.run(args, check=True)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """12 small clips with sidecars: 8 mp4 (video+audio; even ones captioned), 2 flac
    (audio only, labelled), 1 empty file, 1 garbage 'mp4'."""
    root = tmp_path_factory.mktemp("media")
    for i in range(8):
        make_clip(root / f"clip{i:02d}.mp4", seconds=2.0 + 0.25 * i, freq=300 + 40 * i)
        if i % 2 == 0:
            (root / f"clip{i:02d}.txt").write_text(f"a red square number {i}\nthe test pattern\n")
    (root / "sounds").mkdir()
    for i in range(2):
        make_clip(root / "sounds" / f"tone{i}.flac", seconds=1.5, freq=500 + 100 * i, video=False)
        (root / "sounds" / f"tone{i}.json").write_text(json.dumps({"label": f"class{i}"}))
    (root / "empty.mp4").write_bytes(b"")
    (root / "garbage.mp4").write_bytes(b"this is not a video" * 50)
    return root


@pytest.fixture(scope="session")
def shard_dir(media_dir, tmp_path_factory) -> Path:
    from vattfw.data.builder import build
    out = tmp_path_factory.mktemp("shards")
    build(str(media_dir), str(out), max_count=3, workers=2, progress=False)
    return out


SMALL = {"video": {"frames": 4, "fps": 4, "size": 32}, "audio": {"sample_rate": 8000},
         "text": {"vocabulary": None}, "num_workers": 0}
