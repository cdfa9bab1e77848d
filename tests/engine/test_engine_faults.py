"""Bad input and faults: mesh/batch errors before compiling, NaN/inf losses (stop or skip),
SIGTERM (checkpoint, exit 143)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fixtures.processes import REPO, run_cli, run_python
from enginekit import write_spec

pytestmark = [pytest.mark.xla]


def test_mesh_and_batch_errors_are_reported_before_compiling(tmp_path):
    spec = write_spec(tmp_path)
    res = run_cli("run", str(spec), "--set", "mesh.data=2", "--set", "mesh.fsdp=2", env={"CPU_NUM_DEVICES": "2"})
    assert res.returncode == 2, res.stderr
    assert "mesh: axis sizes data=2 x fsdp=2 x tensor=1 = 4, but 2 devices are available" in res.stderr
    res = run_cli("run", str(spec), "--set", "train.global_batch_size=6", "--set", "mesh.fsdp=-1",
                  "--set", "mesh.data=4", env={"CPU_NUM_DEVICES": "8"})
    assert res.returncode == 2, res.stderr
    assert "train.global_batch_size: got 6" in res.stderr and "data x fsdp size (4 x 2 = 8)" in res.stderr
    res = run_cli("run", str(spec), "--set", "mesh.data=1", "--set", "mesh.tensor=-1",
                  "--set", "model.backbones.video.heads=2", env={"CPU_NUM_DEVICES": "4"})
    assert res.returncode == 2, res.stderr
    assert "2 attention heads, which do not divide by tensor=4" in res.stderr
    assert "Traceback" not in res.stderr
    ckpts = tmp_path / "runs" / "tiny" / "checkpoints"
    assert not ckpts.exists() or not list(ckpts.iterdir())


NAN = """
import json, sys
sys.path.insert(0, "tests/engine")
import torch, vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
from vattfw import checkpoint as ckpt
out = {{}}
for policy in ("stop", "skip"):
    spec = vattfw.load_spec({path!r}, ["train.steps=4", "train.log_every=1", "checkpoint.every_steps=1",
                                       f"train.nan_policy={{policy}}", f"run.name={{policy}}"])
    t = Trainer(spec, loader=Batches(nan_at=2), resume="never", progress=False)
    r = t.run()
    finite = all(bool(torch.isfinite(p.cpu()).all()) for p in t.model.parameters())
    out[policy] = {{"status": r.status, "code": r.exit_code, "error": r.summary.get("error", ""),
                    "latest": ckpt.latest(t.ckpt_root).name if ckpt.latest(t.ckpt_root) else None,
                    "skipped": r.summary.get("skipped_steps"), "finite": finite, "losses": r.losses}}
print("RESULT" + json.dumps(out))
"""


def test_nan_loss_stops_naming_step_and_terms_or_is_skipped_and_counted(tmp_path):
    spec = write_spec(tmp_path)
    res = run_python(NAN.format(path=str(spec)), devices=1, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])
    stop = out["stop"]
    assert stop["status"] == "failed" and stop["code"] == 1
    assert "non-finite loss at step 3 (loss=nan, nce_va=nan, mil_nce_vt=nan)" in stop["error"], stop["error"]
    assert stop["latest"] == "step_000000002"  # the last good checkpoint stays the newest
    assert "step_000000002" in stop["error"]
    skip = out["skip"]
    assert skip["status"] == "finished" and skip["skipped"] == 1 and skip["finite"]
    assert skip["latest"] == "step_000000004"


SLOW = """
import sys, time
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer

class Slow(Batches):
    def __iter__(self):
        for b in super().__iter__():
            time.sleep(0.3)
            yield b

spec = vattfw.load_spec({path!r}, ["train.steps=500", "train.log_every=1", "run.name=sig"])
r = Trainer(spec, loader=Slow(), resume="never", progress=True).run()
sys.exit(r.exit_code)
"""


def test_sigterm_finishes_the_step_checkpoints_and_exits_143(tmp_path):
    spec = write_spec(tmp_path)
    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2", "CPU_NUM_DEVICES": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SLOW.format(path=str(spec))], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.time() + 240
    for line in proc.stderr:  # wait until training is under way (step 3 logged)
        lines.append(line)
        if line.startswith("step 3/500"):
            break
        assert time.time() < deadline, "".join(lines)[-3000:]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == 143, err[-3000:]
    assert "stopped by SIGTERM at step" in err
    ckpts = sorted(p.name for p in (tmp_path / "runs" / "sig" / "checkpoints").iterdir())
    assert len(ckpts) == 1 and int(ckpts[0][5:]) >= 3, ckpts
