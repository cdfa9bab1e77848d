"""Exact resume: 10 steps uninterrupted == 5 steps, SIGKILL, resume to 10 (losses and
parameters), with dropout and DropToken on so the RNG states matter; a torn checkpoint
is ignored in favour of the previous one."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fixtures.processes import REPO, run_python
from enginekit import write_spec

pytestmark = [pytest.mark.xla, pytest.mark.slow]

CODE = """
import json, sys, time
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer

class Stalls(Batches):  # hangs once it has produced `stall` batches: the process is killed there
    def __init__(self, stall):
        super().__init__()
        self.stall = stall
    def __iter__(self):
        for b in super().__iter__():
            if self.n > self.stall:
                time.sleep(600)
            yield b

spec = vattfw.load_spec({path!r}, ["train.steps=10", "train.log_every=1", "checkpoint.every_steps=5",
                                   "run.name={name}"])
loader = Stalls({stall}) if {stall} else Batches()
r = Trainer(spec, loader=loader, resume="auto", progress=False).run()
print("RESULT" + json.dumps({{"losses": r.losses, "status": r.status, "checkpoint": r.summary["checkpoint"]}}))
"""


def _code(path, name, stall=0):
    return CODE.format(path=str(path), name=name, stall=stall)


def _result(res):
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])


def test_kill_and_resume_gives_the_uninterrupted_run(tmp_path):
    spec = write_spec(tmp_path, dropout=0.1, drop_token=True)
    straight = _result(run_python(_code(spec, "straight"), devices=1, timeout=300))
    assert [s for s, _ in straight["losses"]] == list(range(1, 11))

    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2", "CPU_NUM_DEVICES": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _code(spec, "killed", stall=7)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    ckpts = tmp_path / "runs" / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not (ckpts / "step_000000005" / "COMPLETE").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint at step 5"
        time.sleep(0.2)
    time.sleep(1.0)  # it is now stalled in the loader, past step 5
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # a write torn after the previous checkpoint: a half-written folder without its marker
    torn = ckpts / "step_000000007"
    torn.mkdir()
    (torn / "model.pt").write_bytes(b"\x80partial")
    (ckpts / ".tmp-step_000000008-123").mkdir()

    resumed = _result(run_python(_code(spec, "killed"), devices=1, timeout=300))
    assert [s for s, _ in resumed["losses"]] == list(range(6, 11))  # resumed from 5, not from the torn 7
    assert dict(resumed["losses"]) == {s: l for s, l in straight["losses"] if s > 5}  # bit-identical
    a = torch.load(os.path.join(straight["checkpoint"], "model.pt"))
    b = torch.load(os.path.join(resumed["checkpoint"], "model.pt"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    oa = torch.load(os.path.join(straight["checkpoint"], "optimizer.pt"))["state"]
    ob = torch.load(os.path.join(resumed["checkpoint"], "optimizer.pt"))["state"]
    for i in oa:
        for k in oa[i]:
            assert torch.equal(oa[i][k], ob[i][k]), (i, k)
    assert not (ckpts / ".tmp-step_000000008-123").exists()
