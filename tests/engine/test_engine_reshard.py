"""Resuming onto another mesh or device count reshards: a run on 4 virtual devices with
mesh fsdp=4 checkpoints at step 3; resumed from that checkpoint with mesh data=2 x tensor=2
(4 devices) and on 1 device, steps 4-6 give the losses of the uninterrupted fsdp=4 run."""
import json

import pytest

from fixtures.processes import run_python
from enginekit import write_spec

pytestmark = [pytest.mark.xla, pytest.mark.slow]

CODE = """
import json, sys
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
out = {{}}
for name, mesh, resume in {runs}:
    spec = vattfw.load_spec({path!r}, [f"run.name={{name}}", "train.steps=6", "train.log_every=1",
                                       "checkpoint.every_steps=3", "checkpoint.keep_last=2"] + mesh)
    t = Trainer(spec, loader=Batches(), resume=resume, progress=False)
    r = t.run()
    assert r.status == "finished", r.summary
    out[name] = {{"losses": dict(r.losses), "ckpts": t.ckpt_root.as_posix(),
                  "shardings": sorted({{t.backend.sharding_of(p) for p in t.model.parameters()}})}}
print("RESULT" + json.dumps(out))
"""

FSDP4 = ["mesh.data=1", "mesh.fsdp=4", "mesh.tensor=1"]
DATA2_TENSOR2 = ["mesh.data=2", "mesh.fsdp=1", "mesh.tensor=2"]
ONE = ["mesh.data=1", "mesh.fsdp=1", "mesh.tensor=1"]


def _run(spec, devices, runs):
    res = run_python(CODE.format(runs=runs, path=str(spec)), devices=devices, timeout=500)
    assert res.returncode == 0, res.stderr[-4000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_resume_onto_another_mesh_and_device_count_gives_the_uninterrupted_losses(tmp_path):
    spec = write_spec(tmp_path)
    step3 = tmp_path / "runs" / "straight" / "checkpoints" / "step_000000003"
    four = _run(spec, 4, [("straight", FSDP4, "never"), ("data2_tensor2", DATA2_TENSOR2, str(step3))])
    one = _run(spec, 1, [("one_device", ONE, str(step3))])

    straight = {int(s): loss for s, loss in four["straight"]["losses"].items()}
    assert sorted(straight) == [1, 2, 3, 4, 5, 6]
    meta = json.loads((step3 / "meta.json").read_text())
    assert meta["step"] == 3 and meta["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    # the meshes really differ: fsdp splits weights 4 ways; data x tensor splits by 2 and replicates
    assert any("devices=[4" in s or "devices=[1,4" in s for s in four["straight"]["shardings"])
    assert any("last_tile_dim_replicate" in s for s in four["data2_tensor2"]["shardings"])
    assert one["one_device"]["shardings"] == ["replicated"]

    for name, got in (("data2_tensor2", four["data2_tensor2"]), ("one_device", one["one_device"])):
        losses = {int(s): loss for s, loss in got["losses"].items()}
        assert sorted(losses) == [4, 5, 6], (name, losses)  # resumed after step 3, not from 0
        for s in (4, 5, 6):
            assert losses[s] == pytest.approx(straight[s], abs=1e-5, rel=1e-5), (name, s, losses, straight)
        final = json.loads((tmp_path / "runs" / name / "checkpoints" / "step_000000006" / "meta.json").read_text())
        assert final["step"] == 6
