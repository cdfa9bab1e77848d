"""`vattfw data build|inspect` on bad input and bad shards: one line each, a non-zero exit
where something is wrong; empty shards counted; bad samples remembered across epochs."""
from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tarfile

import pytest
import torch
from conftest import SMALL

from vattfw.data import loader as loader_mod
from vattfw.data import make_loader
from vattfw.data.loader import Source
from vattfw.data.tarindex import loads

PATTERN = "shard-{000000..000003}.tar"


def one_line(res, rc: int = 2) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == rc and "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_build_into_a_file_or_an_uncreatable_path_is_one_line(cli, media_dir, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    line = one_line(cli("data", "build", str(media_dir), str(afile)))
    assert line == f"error: {afile} exists and is not a folder; give a folder for the shards"
    line = one_line(cli("data", "build", str(media_dir), str(afile / "out")))
    assert line.startswith(f"error: cannot write shards to {afile / 'out'}: "), line
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        assert one_line(cli("data", "build", str(media_dir), str(ro))).startswith("error: cannot write shards")
    assert afile.read_text() == "x"


def _empty_tar() -> bytes:
    buf = io.BytesIO()
    tarfile.open(fileobj=buf, mode="w").close()
    return buf.getvalue()


def test_inspect_reports_non_tars_and_empty_tars_and_exits_1(cli, shard_dir, tmp_path):
    (tmp_path / "notatar.tar").write_bytes(b"hello, I am a text file\n" * 40)
    (tmp_path / "empty.tar").write_bytes(_empty_tar())
    shutil.copy(shard_dir / "shard-000000.tar", tmp_path / "good.tar")
    res = cli("data", "inspect", str(tmp_path / "{notatar,empty,good}.tar"), "--decode", "0")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    report = json.loads(res.stdout)
    assert report["samples"] == 3
    assert report["problems"] == [f"{tmp_path / 'notatar.tar'}: not a tar file",
                                  f"{tmp_path / 'empty.tar'}: no samples (an empty tar)"]
    assert res.stderr.strip().splitlines() == [f"problem: {p}" for p in report["problems"]]
    res = cli("data", "inspect", str(tmp_path / "good.tar"), "--decode", "0")
    assert res.returncode == 0 and json.loads(res.stdout)["problems"] == [], res.stderr


def test_inspect_verify_catches_a_stale_index(cli, shard_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    data = (bad / "shard-000001.tar").read_bytes()
    last = loads((bad / "shard-000001.tar.idx").read_text())[-1]
    (bad / "shard-000001.tar").write_bytes(data[:last.start] + b"\xff" * 512)  # damaged after the .idx was written
    trusting = cli("data", "inspect", str(bad / PATTERN), "--decode", "0")
    assert trusting.returncode == 0 and json.loads(trusting.stdout)["problems"] == []  # the sidecar is trusted
    res = cli("data", "inspect", str(bad / PATTERN), "--decode", "0", "--verify")
    assert res.returncode == 1, res.stderr
    report = json.loads(res.stdout)
    assert report["verified"] and report["samples"] == json.loads(trusting.stdout)["samples"] - 1
    shard = bad / "shard-000001.tar"
    assert report["problems"] == [f"{shard}: tar is corrupt after 2 samples",
                                  f"{shard}.idx: does not match the tar (3 samples indexed, 2 found): stale, "
                                  f"or the tar was damaged; rebuild, or delete the sidecar"]
    clean = cli("data", "inspect", str(shard_dir / PATTERN), "--decode", "0", "--verify")
    assert clean.returncode == 0 and json.loads(clean.stdout)["problems"] == [], clean.stderr


def test_the_loader_counts_and_leaves_out_an_empty_shard(shard_dir, tmp_path, caplog):
    (tmp_path / "empty.tar").write_bytes(_empty_tar())
    with caplog.at_level(logging.WARNING, logger="vattfw.data"):
        loader = make_loader([Source((str(shard_dir / "shard-000000.tar"), str(tmp_path / "empty.tar")))],
                             SMALL, batch_size=2, seed=0)
    assert loader.maker.shards[0].sizes == [3, 0]
    assert loader.skipped()["empty_shard"] == 1
    assert any("empty.tar" in r.message and "no sample" in r.message for r in caplog.records)
    assert next(iter(loader))["video"].shape[0] == 2


def _corrupt_first_clip(shard_dir, folder):
    shutil.copytree(shard_dir, folder)
    refs = loads((folder / "shard-000000.tar.idx").read_text())
    off, size = refs[0].members["mp4"]
    with open(folder / "shard-000000.tar", "r+b") as f:
        f.seek(off)
        f.write(b"\x00" * size)
    return refs[0].key


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_sample_is_read_and_counted_once_across_epochs(shard_dir, tmp_path, caplog, monkeypatch, workers):
    key = _corrupt_first_clip(shard_dir, tmp_path / "bad")
    src = [Source((str(tmp_path / "bad" / PATTERN),))]
    settings = {**SMALL, "num_workers": workers}
    # 10 samples, batches of 5: 8 batches are 4 epochs
    with caplog.at_level(logging.WARNING, logger="vattfw.data"):
        remembering = make_loader(src, settings, batch_size=5, seed=1)
        it = iter(remembering)
        got = [next(it) for _ in range(8)]
        del it
    assert remembering.skipped()["undecodable"] == 1, remembering.skipped()
    if workers == 0:  # worker processes log to their own stderr
        assert sum(key in r.message for r in caplog.records) == 1
    state = remembering.state_dict()
    assert state["bad"] and state["bad"][0][3] == loader_mod.REASONS.index("undecodable")

    monkeypatch.setattr(loader_mod, "MAX_REMEMBERED", 0)  # the same stream, re-reading the bad clip
    forgetful = make_loader(src, {**SMALL, "num_workers": 0}, batch_size=5, seed=1)
    it = iter(forgetful)
    again = [next(it) for _ in range(8)]
    assert forgetful.skipped()["undecodable"] >= 4  # at least once per epoch
    for a, b in zip(got, again):
        for k in a:
            assert torch.equal(a[k], b[k]), k

    monkeypatch.setattr(loader_mod, "MAX_REMEMBERED", 100_000)
    resumed = make_loader(src, settings, batch_size=5, seed=1)
    resumed.load_state_dict(state)
    assert resumed.skipped()["undecodable"] == 1
    next(iter(resumed))
    assert resumed.skipped()["undecodable"] == 1  # known from the state: not read, not counted again
