"""`vattfw checkpoint inspect` and `vattfw checkpoint export` as a user runs them (subprocesses),
on an engine checkpoint of the tiny model with Adam state; the exported file is what
`vattfw eval --checkpoint OUT.pt` and ``model.init.checkpoint`` load."""
import json
import os

import pytest
import torch

from enginekit import write_spec
from fixtures.processes import REPO

PROBE_ENV = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "engine"), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def checkpoint(tmp_path):
    """(spec path, step folder, model state) of a checkpoint written by the engine's writer."""
    import vattfw
    from vattfw import checkpoint as ckpt
    from vattfw.engine.optstate import create_state
    from vattfw.engine.checkpointer import spec_hash
    from vattfw.model import build_model
    spec_path = write_spec(tmp_path)
    spec = vattfw.load_spec(str(spec_path))
    torch.manual_seed(3)
    model = build_model(spec.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    create_state(opt)
    for st in opt.state.values():  # moments unlike the weights, so a mix-up would show
        for v in st.values():
            if v.dim():
                v.normal_()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    meta = {"spec_hash": spec_hash(spec), "mesh": {"data": 1, "fsdp": 4, "tensor": 1}}
    folder = ckpt.save(tmp_path / "runs" / "tiny" / "checkpoints", 3, state, meta, keep_last=2)
    return spec_path, folder, {k: v.clone() for k, v in model.state_dict().items()}, len(opt.state)


def test_inspect_lists_every_tensor_and_says_the_checkpoint_is_intact(checkpoint, cli):
    _, folder, model_state, n_params = checkpoint
    res = cli("checkpoint", "inspect", str(folder.parent.parent), "--json")  # the run folder: newest step
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["checkpoint"] == str(folder) and info["step"] == 3 and info["ok"] and info["integrity"] == "ok"
    assert info["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    rows = {r["name"]: r for r in info["tensors"]}
    for name, value in model_state.items():
        row = rows[f"model/{name}"]
        assert row["shape"] == list(value.shape) and row["dtype"] == str(value.dtype)[6:], name
        assert row["bytes"] == value.numel() * value.element_size()
    assert info["model"] == {"tensors": len(model_state), "parameters": sum(v.numel() for v in model_state.values()),
                             "bytes": sum(v.numel() * v.element_size() for v in model_state.values())}
    moments = [r for n, r in rows.items() if n.startswith("optimizer/") and n.endswith(".exp_avg")]
    assert len(moments) == n_params and all(r["shape"] for r in moments)
    assert info["files"]["model.pt"] == (folder / "model.pt").stat().st_size

    text = cli("checkpoint", "inspect", str(folder))
    assert text.returncode == 0, text.stderr
    assert "integrity   ok" in text.stdout and "step        3" in text.stdout and "fsdp=4" in text.stdout
    name, value = next(iter(model_state.items()))
    assert any(line.startswith(f"model/{name} ") for line in text.stdout.splitlines())


def test_export_writes_the_weights_that_eval_and_model_init_load(checkpoint, cli, tmp_path):
    spec_path, folder, model_state, _ = checkpoint
    out = tmp_path / "tiny.pt"
    res = cli("checkpoint", "export", str(folder), str(out))
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout and "(step 3)" in res.stdout
    exported = torch.load(out, weights_only=True)  # a plain state dict of CPU tensors
    assert exported.keys() == model_state.keys()
    for k, v in model_state.items():
        assert torch.equal(exported[k], v), k

    # `vattfw eval` on the file puts the same weights into the model as on the checkpoint folder
    probe = ["-p", "weightprobe", "eval", str(spec_path), "--set", "eval.evaluators=[weight_probe]", "--no-track"]
    digests = []
    for source in (out, folder):
        json_out = tmp_path / f"{source.name}.json"
        ev = cli(*probe, "--checkpoint", str(source), "--json", str(json_out), env=PROBE_ENV)
        assert ev.returncode == 0, ev.stderr
        digests.append(json.loads(json_out.read_text())["results"]["weight_probe/digest"])
    expected = sum(float((v.double() * (1 + i % 7)).sum())
                   for i, (_, v) in enumerate(sorted(model_state.items())) if v.is_floating_point())
    assert digests[0] == digests[1] == pytest.approx(expected, rel=1e-12)

    # model.init reads the file as it reads the checkpoint
    import vattfw
    from vattfw.engine.initialise import apply_init
    from vattfw.model import build_model
    from vattfw.spec.model import InitSection
    torch.manual_seed(99)
    fresh = build_model(vattfw.load_spec(str(spec_path)).model)
    report = apply_init(fresh, InitSection(checkpoint=str(out)))
    assert report.counts() and all(c["new"] == 0 for c in report.counts().values())
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, model_state[k]), k


def test_a_damaged_checkpoint_is_reported_and_not_exported(checkpoint, cli, tmp_path):
    _, folder, _, _ = checkpoint
    data = bytearray((folder / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, another byte: only the digest tells
    (folder / "model.pt").write_bytes(bytes(data))
    res = cli("checkpoint", "inspect", str(folder))
    assert res.returncode == 1
    assert "UNUSABLE: model.pt does not match its sha256 in meta.json (corrupted)" in res.stdout

    out = tmp_path / "x.pt"
    res = cli("checkpoint", "export", str(folder), str(out))
    assert res.returncode == 2 and not out.exists()
    assert res.stderr.strip().splitlines() == [
        f"error: checkpoint {folder} is unusable: model.pt does not match its sha256 in meta.json (corrupted); "
        f"nothing exported"]

    res = cli("checkpoint", "export", str(tmp_path / "nowhere"), str(out))
    assert res.returncode == 2 and res.stderr.strip() == f"error: checkpoint not found: {tmp_path / 'nowhere'}"
    out.write_bytes(b"keep")
    res = cli("checkpoint", "export", str(folder), str(out))
    assert res.returncode == 2 and "exists; pass --force" in res.stderr and out.read_bytes() == b"keep"


def test_a_torch_backend_checkpoint_is_inspected_and_exported_too(tmp_path, cli):
    # run.backend: torch writes torch.distributed.checkpoint shards; inspect reads their metadata,
    # export consolidates them
    import vattfw
    from vattfw.backend import get_backend
    from vattfw.engine.mesh import plan_model
    from vattfw.engine.optstate import create_state
    from vattfw.model import build_model
    spec = vattfw.load_spec(str(write_spec(tmp_path)))
    sizes = {"data": 1, "fsdp": 1, "tensor": 1}
    backend = get_backend("torch")
    backend.start(sizes)
    torch.manual_seed(4)
    model = build_model(spec.model)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model = backend.prepare_model(model, plan_model(model, sizes, [], []))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    create_state(opt)
    with pytest.warns(UserWarning):  # DCP: "assuming the intent is to save in a single process"
        folder = backend.save_checkpoint(tmp_path / "ck", 5, model, opt, {"spec_hash": "x", "mesh": sizes}, 1)

    res = cli("checkpoint", "inspect", str(folder), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["format"] == "torch" and info["step"] == 5 and info["ok"]
    rows = {r["name"]: r for r in info["tensors"]}
    assert {n[6:] for n in rows if n.startswith("model/")} == set(expected)
    for name, value in expected.items():
        assert rows[f"model/{name}"]["shape"] == list(value.shape), name

    out = tmp_path / "w.pt"
    res = cli("checkpoint", "export", str(folder), str(out))
    assert res.returncode == 0, res.stderr
    exported = torch.load(out, weights_only=True)
    assert exported.keys() == expected.keys()
    assert all(torch.equal(exported[k], v) for k, v in expected.items())
