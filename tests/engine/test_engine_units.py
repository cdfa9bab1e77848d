"""Mesh resolution and checks, the sharding plan, atomic checkpoints, secret scrubbing."""
import json

import pytest
import torch
from torch import nn

import vattfw
from vattfw import checkpoint as ckpt
from vattfw.engine.mesh import check_batch, plan_model, resolve_mesh
from vattfw.engine.tracking import flatten, scrub
from vattfw.spec.run import MeshSection


def mesh(**kw):
    return MeshSection(**kw)


def test_mesh_fills_the_wildcard_and_rejects_sizes_that_do_not_fit():
    assert resolve_mesh(mesh(data=-1, fsdp=2), 8) == {"data": 4, "fsdp": 2, "tensor": 1}
    assert resolve_mesh(mesh(data=2, fsdp=1, tensor=-1), 4) == {"data": 2, "fsdp": 1, "tensor": 2}
    with pytest.raises(vattfw.UserError, match="does not divide the 4 available devices"):
        resolve_mesh(mesh(data=-1, fsdp=3), 4)
    with pytest.raises(vattfw.UserError, match="= 6, but 4 devices"):
        resolve_mesh(mesh(data=3, fsdp=2, tensor=1), 4)


def test_batch_must_split_over_data_times_fsdp():
    sizes = {"data": 2, "fsdp": 2, "tensor": 1}
    assert check_batch(16, 2, 1, sizes) == 8
    with pytest.raises(vattfw.UserError, match=r"must divide by the mesh's data x fsdp size \(2 x 2 = 4\)"):
        check_batch(12, 2, 1, sizes)
    with pytest.raises(vattfw.UserError, match=r"global_batch_size 15 must divide by it"):
        check_batch(15, 2, 1, sizes)
    with pytest.raises(vattfw.UserError, match=r"\(12 clips\) must divide by the 8 hosts"):
        check_batch(24, 2, 8, {"data": 4, "fsdp": 1, "tensor": 1})


def test_one_batch_check_for_spec_engine_and_loader(tmp_path):
    # validation (mesh fixed), the engine (devices counted) and the loader (hosts) give one message
    from vattfw.data import per_host_batch
    from vattfw.spec.loader import validate
    bad = {"mesh": {"data": 4, "fsdp": 1}, "train": {"global_batch_size": 10}}
    with pytest.raises(vattfw.UserError) as at_validation:
        validate(bad, vattfw.default_host())
    with pytest.raises(vattfw.UserError) as at_run:
        check_batch(10, 1, 1, {"data": 4, "fsdp": 1, "tensor": 1})
    assert at_validation.value.problems[0].message == at_run.value.problems[0].message
    spec = validate({"train": {"global_batch_size": 12, "grad_accumulation": 2}}, vattfw.default_host())
    assert per_host_batch(spec, 2) == 3
    with pytest.raises(vattfw.UserError, match=r"\(6 clips\) must divide by the 4 hosts"):
        per_host_batch(spec, 4)


class Block(nn.Module):
    def __init__(self, width=8, heads=4):
        super().__init__()
        self.heads = heads
        self.attn = nn.Module()
        self.attn.q, self.attn.o = nn.Linear(width, width), nn.Linear(width, width)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(width, 12), nn.Linear(12, width)
        self.norm = nn.LayerNorm(width)


def test_plan_splits_column_then_row_and_shards_the_rest_fsdp_style():
    sec = mesh()
    plan = plan_model(Block(), {"data": 1, "fsdp": 2, "tensor": 2}, sec.column_parallel, sec.row_parallel)
    assert plan.specs["attn.q.weight"] == ("tensor", "fsdp") and plan.specs["attn.q.bias"] == ("tensor",)
    assert plan.specs["mlp.fc1.weight"] == ("tensor", "fsdp")
    assert plan.specs["attn.o.weight"] == ("fsdp", "tensor") and plan.specs["mlp.fc2.weight"] == ("fsdp", "tensor")
    assert plan.specs["norm.weight"] == ("fsdp",)
    assert plan.specs["attn.o.bias"] == ("fsdp",)


def test_plan_names_heads_and_widths_that_do_not_divide_tensor():
    sec = mesh()
    with pytest.raises(vattfw.UserError) as err:
        plan_model(Block(width=9, heads=3), {"data": 1, "fsdp": 1, "tensor": 2}, sec.column_parallel, sec.row_parallel)
    text = str(err.value)
    assert "3 attention heads, which do not divide by tensor=2" in text
    assert "attn.q (column-parallel) has 9 outputs" in text
    assert "mlp.fc2 (row-parallel) has 12 inputs" not in text  # 12 divides by 2


def _state(v):
    return {"model": {"w": torch.full((3,), float(v))}, "optimizer": {"state": {}}}


def test_checkpoints_are_atomic_pruned_and_torn_ones_ignored(tmp_path):
    for step in (1, 2, 3):
        ckpt.save(tmp_path, step, _state(step), {"spec_hash": "x"}, keep_last=2)
    assert [p.name for p in ckpt.list_complete(tmp_path)] == ["step_000000002", "step_000000003"]
    # torn: marker missing; and a file truncated after the marker was written
    torn = tmp_path / "step_000000004"
    torn.mkdir()
    (torn / "model.pt").write_bytes(b"partial")
    assert ckpt.latest(tmp_path).name == "step_000000003"
    good = tmp_path / "step_000000003"
    size = (good / "model.pt").stat().st_size
    (good / "model.pt").write_bytes(b"x" * (size // 2))
    assert ckpt.latest(tmp_path).name == "step_000000002"
    tensors, meta = ckpt.load(ckpt.latest(tmp_path))
    assert meta["step"] == 2 and torch.equal(tensors["model"]["w"], torch.full((3,), 2.0))
    with pytest.raises(vattfw.UserError, match="not a usable vattfw checkpoint: no meta.json"):
        ckpt.load(torn)


def test_out_of_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt.save(tmp_path, 1, _state(1), {}, keep_last=3)
    real = ckpt.folder._torch_save

    def full_disk(obj, path):  # the OS's own ENOSPC: /dev/full accepts no bytes
        if path.name == "optimizer.pt":
            with open("/dev/full", "wb") as f:
                torch.save(obj, f)
                f.flush()
        real(obj, path)

    monkeypatch.setattr(ckpt.folder, "_torch_save", full_disk)
    with pytest.raises(ckpt.CheckpointError, match=r"out of disk space\); the previous checkpoint .*step_000000001 is intact"):
        ckpt.save(tmp_path, 2, _state(2), {}, keep_last=3)
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000001"]
    assert ckpt.latest(tmp_path).name == "step_000000001"


def test_spec_params_are_flat_and_free_of_secrets():
    data = {"data": {"sources": [{"name": "webdataset", "urls": ["s3://AKIAXX:hunter2@bucket/a-{000..009}.tar",
                                                                    "https://h/x.tar?X-Amz-Signature=abc&X-Amz-Credential=k"],
                                  "endpoint_url": "http://user:pw@127.0.0.1:9000", "aws_secret_access_key": "s3cr3t",
                                  "token": None}]},
            "train": {"steps": 5}}
    flat = flatten(scrub(data))
    assert flat["train.steps"] == 5
    text = json.dumps(flat)
    for secret in ("hunter2", "AKIAXX", "abc", "s3cr3t", "pw@", "X-Amz"):
        assert secret not in text, secret
    assert flat["data.sources.0.urls.0"] == "s3://bucket/a-{000..009}.tar"
    assert flat["data.sources.0.aws_secret_access_key"] == "<redacted>"
    assert flat["data.sources.0.endpoint_url"] == "http://127.0.0.1:9000"

