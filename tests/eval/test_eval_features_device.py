"""Feature extraction runs on the spec's device: the evaluators are given the model there
(``device_model``), ``forward`` moves each batch to it and only the outputs come back to the CPU.
Compared with the same model on the CPU (eager torch, the previous path): features within 1e-5,
retrieval results equal."""
import copy

import pytest
import torch

import vattfw
from vattfw.engine.evaluate import device_model, run_evaluators
from vattfw.eval import collect, loader, pooled, projected
from vattfw.spec.loader import validate

from test_eval_evaluators import shards

pytestmark = pytest.mark.xla


def test_features_on_the_xla_device_equal_the_cpu_ones(eval_spec, tiny_model):
    spec, root = eval_spec
    batches = list(loader(spec, shards(root, "test"), batch_size=4, clips=2))
    plan = {"video": [pooled("video"), projected("video", "vt")], "audio": [pooled("audio")],
            "text": [projected("text", "vt")]}
    on_cpu = collect(tiny_model, batches, plan, 2, "test")
    moved = device_model(copy.deepcopy(tiny_model), spec)
    assert {p.device.type for p in moved.parameters()} == {"xla"}
    on_device = collect(moved, batches, plan, 2, "test")
    assert set(on_device) == set(on_cpu)
    for key, want in on_cpu.items():
        assert on_device[key].device.type == "cpu", key
        torch.testing.assert_close(on_device[key], want, rtol=1e-5, atol=1e-5, msg=key)


def test_run_evaluators_gives_the_evaluators_the_model_on_the_device(eval_spec, tiny_model, monkeypatch):
    from vattfw.eval import features
    spec, root = eval_spec
    seen = []
    original = features.forward
    monkeypatch.setattr(features, "forward", lambda model, *a: (seen.append(next(model.parameters()).device.type),
                                                                  original(model, *a))[1])
    ref = {"name": "zero_shot_retrieval", "data": shards(root, "test"), "batch_size": 4, "clips": 2}
    want = vattfw.build("evaluator", ref).run(copy.deepcopy(tiny_model), spec)  # on the CPU, as before
    raw = spec.model_dump()
    raw["data"] = {k: v for k, v in raw["data"].items() if k not in ("sources", "eval_sources")}
    spec = validate({**raw, "eval": {"evaluators": [ref]}}, vattfw.default_host())
    seen.clear()
    got = run_evaluators(copy.deepcopy(tiny_model), spec)
    assert got == pytest.approx(want, abs=1e-9)
    assert seen and set(seen) == {"xla"}


class _BufferOnly(torch.nn.Module):
    """A feature module without parameters (as the quality bench's log-mel baseline)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, batch):
        return {pooled("audio"): batch["audio"][:, :8] * self.scale}


def test_a_module_with_buffers_only_is_moved_and_fed_on_the_device(eval_spec):
    spec, root = eval_spec
    batches = list(loader(spec, shards(root, "test"), batch_size=4, clips=1))
    want = collect(_BufferOnly(), batches, {"audio": [pooled("audio")]}, 1, "test")
    moved = device_model(_BufferOnly(), spec)
    assert moved.scale.device.type == "xla"
    got = collect(moved, batches, {"audio": [pooled("audio")]}, 1, "test")
    torch.testing.assert_close(got[pooled("audio")], want[pooled("audio")])


SPMD = """
import copy, json, sys
sys.path.insert(0, "tests/eval")
import torch
import vattfw
from conftest import TINY_MODEL
from vattfw.backend import running
from vattfw.engine.evaluate import device_model
from vattfw.eval import collect, pooled, projected
from vattfw.model import build_model
from vattfw.spec.loader import validate
spec = validate({"model": TINY_MODEL, "mesh": {"data": 2}}, vattfw.default_host())
torch.manual_seed(0)
model = build_model(spec.model).eval()
g = torch.Generator().manual_seed(0)
def batch(n):
    return {"video": torch.rand(n, 4, 16, 16, 3, generator=g) * 2 - 1, "audio": torch.rand(n, 512, generator=g) * 2 - 1,
            "text": torch.randint(1, 100, (n, 4), generator=g), "valid": torch.ones(n), "sample": torch.arange(n)}
batches = [batch(8), batch(5)]  # the second does not divide over 2 devices: replicated
plan = {"video": [pooled("video"), projected("video", "vt")], "audio": [pooled("audio")], "text": [projected("text", "vt")]}
want = collect(copy.deepcopy(model), batches, plan, 1, "t")
moved = device_model(model, spec)
backend = running("xla")
got = collect(moved, batches, plan, 1, "t")
print("RESULT" + json.dumps({"spmd": backend.spmd,
    "split": backend.sharding_of(moved.place_batch(batches[0]["video"])),
    "short": backend.sharding_of(moved.place_batch(batches[1]["video"])),
    "diff": max(float((got[k] - want[k]).abs().max()) for k in want)}))
"""


def test_eval_rows_are_split_over_an_spmd_mesh_and_give_the_cpu_features():
    """Two virtual devices, mesh data=2: a batch of 8 rows is split over both devices (4 each), a
    short batch of 5 is replicated, and every feature equals the CPU model's to 1e-5."""
    import json
    from fixtures.processes import run_python
    res = run_python(SPMD, devices=2, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    assert got["spmd"] and "devices=[2,1,1,1,1]" in got["split"], got
    assert got["short"] == "replicated" or "replicated" in got["short"], got
    assert got["diff"] < 1e-5, got
