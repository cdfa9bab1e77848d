"""Checkpoint integrity and failures: sha256 per file checked on load, a bad checkpoint named
in one warning line and the previous one used, every checkpoint bad = an error (not a silent
restart over them), out of disk while writing (a real file-size limit, RLIMIT_FSIZE, makes
torch.save fail as a full disk does), a read-only or uncreatable output folder."""
from __future__ import annotations

import json
import os
import textwrap

import pytest
import torch

from enginekit import write_spec
from fixtures.processes import run_cli, run_python
from vattfw import checkpoint as ckpt
from vattfw.errors import UserError


def _save(root, step, value=0.0):
    state = {"model": {"w": torch.full((64, 64), float(step) + value)}, "optimizer": {"state": {}}}
    meta = {"spec_hash": "h", "rng": {"host": "", "device": None}, "data": None, "skipped_steps": 0}
    return ckpt.save(root, step, state, meta, keep_last=5)


def _warnings():
    lines = []
    return lines, lines.append


def test_random_bytes_inside_a_file_of_the_same_size_are_caught(tmp_path):
    _save(tmp_path, 1)
    newest = _save(tmp_path, 2)
    meta = json.loads((newest / "meta.json").read_text())
    assert set(meta["files"]["model.pt"]) == {"bytes", "sha256"}
    model = newest / "model.pt"
    data = bytearray(model.read_bytes())
    data[len(data) // 2 - 2048:len(data) // 2 + 2048] = os.urandom(4096)
    model.write_bytes(bytes(data))
    assert ckpt.is_complete(newest)  # sizes still match: only the digest tells
    assert ckpt.problem(newest) == "model.pt does not match its sha256 in meta.json (corrupted)"
    with pytest.raises(UserError, match="model.pt does not match its sha256"):
        ckpt.load(newest)
    lines, warn = _warnings()
    assert ckpt.newest_intact(tmp_path, warn) == ckpt.step_dir(tmp_path, 1)
    assert lines == [f"checkpoint {newest} is unusable: model.pt does not match its sha256 in meta.json "
                     f"(corrupted); trying the previous one"]
    tensors, _ = ckpt.load(ckpt.step_dir(tmp_path, 1))
    assert torch.equal(tensors["model"]["w"], torch.full((64, 64), 1.0))


@pytest.mark.parametrize("damage, reason", [
    (lambda p: (p / "model.pt").write_bytes((p / "model.pt").read_bytes()[:-100]), "model.pt has"),
    (lambda p: (p / "COMPLETE").unlink(), "no COMPLETE marker"),
    (lambda p: (p / "meta.json").write_text("{not json"), "meta.json is unreadable"),
    (lambda p: (p / "meta.json").write_text("[1, 2]"), "meta.json holds a list"),
    (lambda p: _edit_meta(p, files=["model.pt"]), "meta.json lists no files"),
    (lambda p: _edit_meta(p, rng=5), "meta.json: rng of the wrong type"),
    (lambda p: _edit_meta(p, step="2"), "meta.json: step of the wrong type"),
    (lambda p: _edit_meta(p, step=7), "meta.json says step 7"),
    (lambda p: _edit_meta(p, files={"../x.pt": 1}), "files.../x.pt is not a file entry"),
    (lambda p: (p / "optimizer.pt").unlink(), "optimizer.pt is missing"),
])
def test_each_kind_of_damage_is_named_and_skipped(tmp_path, damage, reason):
    _save(tmp_path, 1)
    newest = _save(tmp_path, 2)
    damage(newest)
    assert reason in ckpt.problem(newest)
    lines, warn = _warnings()
    assert ckpt.newest_intact(tmp_path, warn) == ckpt.step_dir(tmp_path, 1)
    assert len(lines) == 1 and newest.name in lines[0] and reason in lines[0]


def _edit_meta(path, **fields):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(fields)
    (path / "meta.json").write_text(json.dumps(meta))


def test_every_checkpoint_bad_is_an_error_not_a_fresh_start(tmp_path):
    for step in (1, 2):
        (_save(tmp_path, step) / "COMPLETE").unlink()
    lines, warn = _warnings()
    with pytest.raises(UserError) as info:
        ckpt.newest_intact(tmp_path, warn)
    (problem,) = info.value.problems
    assert problem.path == "checkpoint.resume"
    assert "no usable checkpoint in" in problem.message and "--resume never" in problem.message
    assert "step_000000002 (no COMPLETE marker" in problem.message and len(lines) == 2
    assert ckpt.newest_intact(tmp_path / "none", warn) is None  # nothing there: a fresh start


def test_an_older_checkpoint_without_digests_still_loads(tmp_path):
    path = _save(tmp_path, 3)
    meta = json.loads((path / "meta.json").read_text())
    meta["files"] = {k: v["bytes"] for k, v in meta["files"].items()}  # the format before digests
    (path / "meta.json").write_text(json.dumps(meta))
    assert ckpt.problem(path) == ""
    assert torch.equal(ckpt.load(path)[0]["model"]["w"], torch.full((64, 64), 3.0))


FULL_DISK = """
import json, resource, signal, sys, torch
from pathlib import Path
from vattfw import checkpoint as ckpt
root = Path({root!r})
state = lambda v: {{"model": {{"w": torch.full((256, 256), v)}}, "optimizer": {{}}}}
meta = {{"spec_hash": "h", "rng": {{"host": "", "device": None}}}}
ckpt.save(root, 1, state(1.0), meta, keep_last=3)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
try:
    ckpt.save(root, 2, state(2.0), meta, keep_last=3)
except ckpt.CheckpointError as exc:
    print("ERROR " + str(exc))
"""


def test_a_failed_write_leaves_no_tmp_folder_and_the_previous_checkpoint(tmp_path):
    res = run_python(FULL_DISK.format(root=str(tmp_path)), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    (line,) = [ln for ln in res.stdout.splitlines() if ln.startswith("ERROR ")]
    assert f"writing the checkpoint for step 2 in {tmp_path} failed (" in line
    assert f"the previous checkpoint {tmp_path / 'step_000000001'} is intact" in line
    assert "\n" not in line and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000001"]  # no .tmp- left filling the disk
    assert ckpt.problem(tmp_path / "step_000000001") == ""


# A tiny run whose second periodic checkpoint hits the file-size limit: one error line, exit 1,
# the first checkpoint kept and resumable.
RUN = """
import resource, signal, sys
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer

class Limit:
    @vattfw.hookimpl
    def vattfw_checkpoint_saved(self, step, path):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))

spec = vattfw.load_spec({path!r}, ["train.steps=6", "checkpoint.every_steps=2", "run.name=full"])
host = vattfw.default_host()
if {limit}:
    host.pm.register(Limit())
r = Trainer(spec, host, loader=Batches(), resume="auto", progress=False).run()
print("RESULT", r.status, r.step, r.summary.get("checkpoint"))
sys.exit(r.exit_code)
"""


@pytest.mark.xla
def test_out_of_disk_during_a_run_is_one_line_and_exit_1(tmp_path):
    spec = write_spec(tmp_path)
    res = run_python(RUN.format(path=str(spec), limit=True), devices=1, timeout=300)
    assert res.returncode == 1, res.stderr[-4000:]
    assert "Traceback" not in res.stderr, res.stderr[-4000:]
    root = tmp_path / "runs" / "full" / "checkpoints"
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr[-4000:]
    assert errors[0].startswith(f"error: writing the checkpoint for step 4 in {root} failed (")
    assert errors[0].endswith(f"the previous checkpoint {root / 'step_000000002'} is intact")
    assert sorted(p.name for p in root.iterdir()) == ["step_000000002"]

    resumed = run_python(RUN.format(path=str(spec), limit=False), devices=1, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "RESULT finished 6" in resumed.stdout


RESUME = """
import sys
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
spec = vattfw.load_spec({path!r}, ["train.steps={steps}", "checkpoint.every_steps=2", "run.name=bad"])
r = Trainer(spec, loader=Batches(), resume="auto", progress=False).run()
print("RESULT", r.status, r.step, r.losses[0][0])
"""


@pytest.mark.xla
def test_resume_skips_a_corrupt_checkpoint_saying_so_and_refuses_when_all_are_bad(tmp_path):
    spec = write_spec(tmp_path)
    res = run_python(RESUME.format(path=str(spec), steps=4), devices=1, timeout=300)
    assert res.returncode == 0 and "RESULT finished 4" in res.stdout, res.stderr[-4000:]
    root = tmp_path / "runs" / "bad" / "checkpoints"
    model = root / "step_000000004" / "model.pt"
    data = bytearray(model.read_bytes())
    data[-6000:-1904] = os.urandom(4096)
    model.write_bytes(bytes(data))

    res = run_python(RESUME.format(path=str(spec), steps=6), devices=1, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "RESULT finished 6 3" in res.stdout  # resumed from step 2: its first logged step is 3
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert warnings == [f"warning: checkpoint {root / 'step_000000004'} is unusable: model.pt does not match "
                        f"its sha256 in meta.json (corrupted); trying the previous one"], res.stderr[-3000:]

    for path in ckpt.step_dirs(root):
        (path / "COMPLETE").unlink()
    before = sorted(p.name for p in root.iterdir())
    cli = run_cli("run", str(spec), "--set", "run.name=bad", timeout=300)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr[-3000:]
    errors = [ln for ln in cli.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"no usable checkpoint in {root}" in errors[0], cli.stderr[-3000:]
    assert "--resume never" in errors[0]
    assert sorted(p.name for p in root.iterdir()) == before  # nothing overwritten


@pytest.mark.xla
def test_an_uncreatable_output_folder_is_one_line_exit_2(tmp_path):
    spec = write_spec(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = run_cli("run", str(spec), "--set", f"run.output_dir={afile}", timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert lines == [f"error: checkpoint.dir: cannot write checkpoints to {afile / 'tiny' / 'checkpoints'}: "
                     f"Not a directory (set checkpoint.dir or run.output_dir to a writable folder)"], res.stderr
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        res = run_cli("run", str(spec), "--set", f"run.output_dir={ro}", timeout=300)
        assert res.returncode == 2 and "cannot write checkpoints" in res.stderr, res.stderr[-3000:]
