"""Labels and inputs never change silently: fixed class ids (--classes), manifest column names,
and the loader's / inspect's counts of looped and zero-filled clips."""
from __future__ import annotations

import json

import subprocess


def make_clip(path, seconds: float = 2.0, audio: bool = True, video: bool = True):
    """A tiny real clip made by ffmpeg: test pattern and/or a 440 Hz tone (audio-only: flac)."""
    args = ["ffmpeg", "-v", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=10:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1"]
    if audio:
        args += ["-c:a", "aac" if video else "flac"]
    subprocess.run([*args, "-fflags", "+bitexact", str(path)], check=True)


def _labels(out) -> dict[str, tuple[int, str]]:
    """key -> (label id, label_name) of every sample of a build."""
    import tarfile
    got = {}
    for shard in sorted(out.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(m).read())
                    got[m.name.split(".")[0]] = (meta["label"], meta["label_name"])
    return got


def test_esc50_style_manifest_and_a_fixed_class_list(cli, media_dir, tmp_path):
    sounds = media_dir / "sounds"
    train = tmp_path / "train.csv"  # ESC-50's column names
    train.write_text("filename,category,fold\n"
                     f"{sounds / 'tone0.flac'},dog,1\n{sounds / 'tone1.flac'},rooster,1\n"
                     f"{media_dir / 'clip00.mp4'},cat,1\n")
    r = cli("data", "build", str(train), str(tmp_path / "tr"), "--workers", "1",
            "--path-column", "filename", "--label-column", "category")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "tr" / "classes.json").read_text()) == ["cat", "dog", "rooster"]
    meta = _labels(tmp_path / "tr")
    assert sorted(meta.values()) == [(0, "cat"), (1, "dog"), (2, "rooster")]

    test = tmp_path / "test.csv"  # no "cat": sorting its own names would shift dog to 0
    test.write_text(f"filename,category\n{sounds / 'tone1.flac'},rooster\n{sounds / 'tone0.flac'},dog\n")
    args = ("--workers", "1", "--path-column", "filename", "--label-column", "category")
    r = cli("data", "build", str(test), str(tmp_path / "te"), *args, "--classes", str(tmp_path / "tr" / "classes.json"))
    assert r.returncode == 0, r.stderr
    assert sorted(_labels(tmp_path / "te").values()) == [(1, "dog"), (2, "rooster")]
    assert json.loads((tmp_path / "te" / "classes.json").read_text()) == ["cat", "dog", "rooster"]

    # a class the list lacks: one line naming it, no traceback, nothing built
    (tmp_path / "two.txt").write_text("dog\ncat\n")
    r = cli("data", "build", str(test), str(tmp_path / "bad"), *args, "--classes", str(tmp_path / "two.txt"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rooster" in r.stderr and "dog, cat" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad" / "index.json").exists()

    r = cli("data", "build", str(test), str(tmp_path / "bad2"), "--path-column", "file")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--path-column 'file'" in r.stderr and "filename, category" in r.stderr


def test_loader_counts_looped_and_zero_filled_clips(tmp_path):
    from vattfw.data import make_loader
    from vattfw.data.builder import build
    from vattfw.data.loader import Source
    media = tmp_path / "media"
    media.mkdir()
    make_clip(media / "long.mp4", seconds=2.0)
    make_clip(media / "short.mp4", seconds=0.5)
    make_clip(media / "sound.flac", seconds=2.0, video=False)
    make_clip(media / "mute.mp4", seconds=2.0, audio=False)
    build(str(media), str(tmp_path / "out"), progress=False, workers=1)
    data = {"video": {"frames": 4, "fps": 4, "size": 16}, "audio": {"sample_rate": 4000},  # 1 s window
            "text": {"vocabulary": None}, "num_workers": 0, "eval": {"clips": 1, "crops": 1}}
    src = Source((str(tmp_path / "out" / "shard-000000.tar"),), require=())
    loader = make_loader([src], data, batch_size=4, split="eval")
    batches = list(loader)
    assert sum(int(b["valid"].sum()) for b in batches) == 4
    assert loader.adjusted() == {"looped": 1, "padded": 0, "zero_video": 1, "zero_audio": 1}
    assert loader.state_dict()["adjusted"] == loader.adjusted()


def test_inspect_counts_what_the_loader_would_change(cli, shard_dir):
    # media_dir: 8 clips of 2.0-3.75 s (video + audio), 2 flac tones of 1.5 s (audio only)
    r = cli("data", "inspect", str(shard_dir), "--decode", "0", "--window", "2.9")
    assert r.returncode == 0, r.stderr
    adjusted = json.loads(r.stdout)["adjusted"]
    assert adjusted == {"window_s": 2.9, "short_clip": "loop", "looped": 6, "zero_video": 2, "zero_audio": 0}
    r = cli("data", "inspect", str(shard_dir), "--decode", "0", "--window", "2.9", "--short-clip", "pad")
    assert json.loads(r.stdout)["adjusted"]["padded"] == 6
