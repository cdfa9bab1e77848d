"""Bad input: skipped, counted per reason, logged with shard and key; the run continues."""
from __future__ import annotations

import json
import logging
import shutil

import pytest
from conftest import SMALL

from vattfw.data import make_loader
from vattfw.data.loader import Source
from vattfw.data.tarindex import loads


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def test_builder_skips_and_reports_bad_files(shard_dir):
    report = json.loads((shard_dir / "report.json").read_text())
    assert report["built"] == 10
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert reasons == {"empty": "empty", "garbage": "undecodable"}
    index = json.loads((shard_dir / "index.json").read_text())
    assert [s["samples"] for s in index["shards"]] == [3, 3, 3, 1]
    assert index["classes"] == ["class0", "class1"]


def test_builder_output_is_deterministic(media_dir, shard_dir, tmp_path):
    from vattfw.data.builder import build
    build(str(media_dir), str(tmp_path), max_count=3, workers=1, progress=False)
    for path in sorted(shard_dir.glob("shard-*")):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_corrupt_and_truncated_members_are_skipped(shard_dir, tmp_path, caplog):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    refs = loads((bad / "shard-000000.tar.idx").read_text())
    off, size = refs[0].members["mp4"]
    with open(bad / "shard-000000.tar", "r+b") as f:  # garbage over the first clip's video
        f.seek(off)
        f.write(b"\x00" * size)
    last = loads((bad / "shard-000001.tar.idx").read_text())[-1]
    data = (bad / "shard-000001.tar").read_bytes()
    (bad / "shard-000001.tar").write_bytes(data[:last.end - 700])  # cut inside its last sample
    with caplog.at_level(logging.WARNING, logger="vattfw.data"):
        loader = make_loader([Source((str(bad / "shard-{000000..000003}.tar"),))],
                             {**SMALL, "shuffle": False}, batch_size=10, seed=0)
        batch = _take(loader, 1)[0]
    assert batch["video"].shape[0] == 10
    skipped = loader.skipped()
    assert skipped["undecodable"] >= 1 and skipped["truncated"] >= 1
    assert any(refs[0].key in r.message and "shard-000000.tar" in r.message for r in caplog.records)


def test_a_shard_without_index_is_scanned_and_a_corrupt_tail_counted(shard_dir, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    data = (shard_dir / "shard-000000.tar").read_bytes()
    refs = loads((shard_dir / "shard-000000.tar.idx").read_text())
    cut = refs[1].end  # keep two whole samples, then a garbage header
    (plain / "a.tar").write_bytes(data[:cut] + b"\xff" * 512 + data[cut:])
    loader = make_loader([Source((str(plain / "a.tar"),))], SMALL, batch_size=2, seed=0)
    assert loader.maker.shards[0].sizes == [2]
    assert loader.skipped()["corrupt_tar"] == 1
    assert _take(loader, 2)[1]["video"].shape[0] == 2


def test_missing_required_modality_and_short_clips(shard_dir):
    loader = make_loader([Source((str(shard_dir / "shard-{000000..000003}.tar"),), require=("video", "text"))],
                         {**SMALL, "video": {"frames": 6, "fps": 2, "size": 32}, "audio": {"short_clip": "skip",
                                                                                          "sample_rate": 8000}},
                         batch_size=4, seed=0)
    batch = _take(loader, 2)[1]
    assert (batch["text_mask"] == 1).all() and (batch["video_mask"] == 1).all()
    skipped = loader.skipped()
    assert skipped["missing_modality"] > 0 and skipped["too_short"] > 0  # 3 s windows: clip06 is the one long captioned clip


def test_all_bad_stops_with_a_clear_error(shard_dir):
    loader = make_loader([Source((str(shard_dir / "shard-{000000..000003}.tar"),), require=("text", "audio"))],
                         {**SMALL, "max_bad_in_a_row": 3, "text": {"vocabulary": None},
                          "audio": {"short_clip": "skip"}, "video": {"frames": 100, "fps": 1, "size": 32}},
                         batch_size=2, seed=0)
    with pytest.raises(RuntimeError, match="4 samples in a row could not be used"):
        _take(loader, 1)
