"""Per-host paths without a pod: torch_xla's CPU client runs one SPMD process per machine, so two
processes are *forced* to be process 0 and 1 of 2 (``VATTFW_FORCE_PROCESS``; each is its own
runtime with the 4 virtual devices, standing for devices 0-1 and 2-3, with file barriers).

* data: each process's real loader (webdataset clips) yields its rows of every global batch:
  disjoint, and together the single process's batch, in order;
* checkpoint: both train the same 6 steps (same injected global batches) with mesh fsdp=4 and
  checkpoint at step 3; process 1's file holds only pieces of devices 2-3, process 0's the rest
  plus the replicated tensors; merged, it equals the single process's gathered checkpoint
  exactly, and a 1-device run resumes from it with the uninterrupted losses.
What this cannot show: torch_xla assembling one global batch from two hosts' pieces
(``minibatch``) and its rendezvous across hosts; both need several runtimes (a pod)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from enginekit import TINY
from fixtures.clips import write_clip_shards
from fixtures.processes import REPO, run_python

pytestmark = [pytest.mark.xla, pytest.mark.slow]

DATA = """
data:
  sources: [{{name: webdataset, urls: ["{root}/train/shard-{{000000..000001}}.tar"]}}]
  video: {{frames: 4, fps: 4, size: 16}}
  audio: {{sample_rate: 1024}}
  text: {{vocabulary: "{root}/vocab.txt", max_words: 4, candidates: 2}}
  num_workers: 0
"""

CODE = """
import json, sys, torch
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
spec = vattfw.load_spec({path!r}, ["run.name={name}", "train.steps={steps}", "checkpoint.every_steps=3",
                                   "mesh.data=1", "mesh.fsdp={fsdp}", "mesh.tensor=1"])
t = Trainer(spec, loader=Batches(), resume={resume!r}, progress=False)
r = t.run()
assert r.status == "finished", r.summary
rows = []
if {data}:
    loader = t._build_loader()  # the real loader, for this process's rows
    it = iter(loader)
    rows = [next(it)["video"] for _ in range(2)]
    torch.save(rows, {rows_out!r})
print("RESULT" + json.dumps({{"losses": dict(r.losses), "shard": list(t.backend.data_shard),
                              "checkpoint": r.summary["checkpoint"]}}))
"""


def _env(extra):
    return {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2", "CPU_NUM_DEVICES": "4", **extra}


def _result(stdout):
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("RESULT")][-1][6:])


def test_forced_processes_read_their_rows_and_write_their_shards(tmp_path):
    (tmp_path / "clips").mkdir()
    root = write_clip_shards(tmp_path / "clips")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(name="tiny", out=tmp_path / "runs", p=0.0, drop="false") + DATA.format(root=root))
    barrier = tmp_path / "barrier"
    barrier.mkdir()

    def code(name, rows_out, steps=6, fsdp=4, resume="never", data=True):
        return CODE.format(path=str(spec), name=name, rows_out=str(rows_out), steps=steps, fsdp=fsdp,
                           resume=resume, data=data)

    procs = [subprocess.Popen([sys.executable, "-c", code("hosts", tmp_path / f"rows{i}.pt")], cwd=REPO,
                              env=_env({"VATTFW_FORCE_PROCESS": f"{i}/2", "VATTFW_FORCE_BARRIER": str(barrier)}),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    hosts = [_result(out) for out, _ in outs]
    single = run_python(code("single", tmp_path / "rows.pt"), devices=4, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]
    one = _result(single.stdout)

    # data: process i reads rows [4i, 4i+4) of each global batch of 8 (its data shard)
    assert [h["shard"] for h in hosts] == [[0, 2], [1, 2]] and one["shard"] == [0, 1]
    mine = [torch.load(tmp_path / f"rows{i}.pt") for i in range(2)]
    whole = torch.load(tmp_path / "rows.pt")
    for b in range(2):
        assert mine[0][b].shape[0] == mine[1][b].shape[0] == 4 and whole[b].shape[0] == 8
        assert torch.equal(torch.cat([mine[0][b], mine[1][b]]), whole[b])
        flat = [r.flatten() for r in whole[b]]
        assert len({tuple(r.tolist()) for r in flat}) == 8  # 8 distinct clips: the halves are disjoint

    # the same training in every process
    assert hosts[0]["losses"] == hosts[1]["losses"] == one["losses"]
    folder = tmp_path / "runs" / "hosts" / "checkpoints" / "step_000000003"
    assert hosts[0]["checkpoint"] == hosts[1]["checkpoint"] == str(folder.parent / "step_000000006")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["shards"] == 2
    assert sorted(meta["files"]) == ["layout.pt", "shards-00000-of-00002.pt", "shards-00001-of-00002.pt"]

    # process 1 wrote only pieces of its devices 2-3: the second half of an fsdp-split dimension
    p0 = torch.load(folder / "shards-00000-of-00002.pt")
    p1 = torch.load(folder / "shards-00001-of-00002.pt")
    layout = torch.load(folder / "layout.pt")
    q = "model/backbones.video.encoder.layers.0.attn.q.weight"  # [32, 32], split 4 ways on dim 1
    assert [idx for idx, _ in p0[q]] == [((0, 32), (0, 8)), ((0, 32), (8, 16))]
    assert [idx for idx, _ in p1[q]] == [((0, 32), (16, 24)), ((0, 32), (24, 32))]
    for key, pieces in p1.items():
        shape = layout["tensors"][key][0]
        for idx, _ in pieces:
            assert any(a >= n // 2 for (a, _), n in zip(idx, shape)), (key, idx)  # never the first half
    replicated = [k for k, (shape, _) in layout["tensors"].items() if not shape]  # scalars: process 0's
    assert replicated and all(k in p0 and k not in p1 for k in replicated)

    # merged, it is the single process's gathered checkpoint
    from vattfw import checkpoint as ckpt
    merged, _ = ckpt.load(folder)
    gathered, _ = ckpt.load(tmp_path / "runs" / "single" / "checkpoints" / "step_000000003")
    assert merged["model"].keys() == gathered["model"].keys()
    for k in gathered["model"]:
        assert torch.equal(merged["model"][k], gathered["model"][k]), k
    assert merged["optimizer"]["param_groups"] == gathered["optimizer"]["param_groups"]
    for pid, st in gathered["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(merged["optimizer"]["state"][pid][k], v), (pid, k)

    # and a single process on one device resumes from it with the uninterrupted losses
    resumed = run_python(code("resumed", tmp_path / "unused.pt", fsdp=1, resume=str(folder), data=False),
                         devices=1, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    after = _result(resumed.stdout)["losses"]
    assert sorted(after, key=int) == ["4", "5", "6"]
    for s in after:
        assert after[s] == pytest.approx(one["losses"][s], abs=1e-5, rel=1e-5), s

    # the CLI reads it: inspect names who wrote what, export consolidates it
    from fixtures.processes import run_cli
    res = run_cli("checkpoint", "inspect", str(folder), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["ok"] and info["step"] == 3
    rows = {r["name"]: r for r in info["tensors"]}
    assert rows[q]["sharding"] == "4 piece(s) from process(es) 0,1" and rows[q]["shape"] == [32, 32]
    assert rows["optimizer/0.step"]["sharding"] == "1 piece(s) from process(es) 0"
    res = run_cli("checkpoint", "export", str(folder), str(tmp_path / "w.pt"))
    assert res.returncode == 0, res.stderr
    exported = torch.load(tmp_path / "w.pt", weights_only=True)
    assert all(torch.equal(exported[k], gathered["model"][k]) for k in exported) and len(exported) > 50
