"""The model under torch_xla (CPU PJRT) gives the eager CPU outputs; FAC BatchNorm under SPMD."""
import json

import pytest

CODE = r'''
import json, sys, torch
import torch_xla, torch_xla.core.xla_model as xm
from vattfw.model import build_model
layers, text_layers, frames, samples, vocab = {layers}, {text_layers}, {frames}, {samples}, {vocab}
section = {{"tokenizers": {{"video": {{"name": "voxel"}}, "audio": {{"name": "waveform"}},
                          "text": {{"name": "word_embedding", "vocab_size": vocab}}}},
           "backbones": {{"video": {{"name": "transformer", "size": "base", "layers": layers}},
                         "audio": {{"name": "transformer", "size": "base", "layers": layers}},
                         "text": {{"name": "t5", "size": "small", "layers": text_layers}}}},
           "heads": {{"fac": {{"name": "fac"}}}}}}
torch.manual_seed(0)
model = build_model(section).eval()
g = torch.Generator().manual_seed(1)
batch = {{"video": torch.rand(1, frames, 224, 224, 3, generator=g) * 2 - 1,
          "audio": torch.rand(1, samples, generator=g) * 2 - 1,
          "text": torch.randint(0, vocab, (1, 5, 16), generator=g)}}
batch["text"][..., 10:] = 0
with torch.no_grad():
    eager = model(batch)
    dev = torch_xla.device()
    model.to(dev)
    lazy = model({{k: v.to(dev) for k, v in batch.items()}})
    lazy = {{k: v.cpu() for k, v in lazy.items()}}
print(json.dumps({{k: [(eager[k] - lazy[k]).abs().max().item(), eager[k].abs().max().item(), list(lazy[k].shape)]
                  for k in eager}}))
'''


def check(python_runner, layers, text_layers, frames=32, samples=153_600, vocab=65_536):
    r = python_runner(CODE.format(layers=layers, text_layers=text_layers, frames=frames, samples=samples, vocab=vocab))
    assert r.returncode == 0, r.stderr[-3000:]
    diffs = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(diffs) == {"video_pooled", "audio_pooled", "text_pooled", "video_va", "video_vt", "audio_va", "text_vt"}
    for key, (diff, scale, _) in diffs.items():
        assert diff <= 1e-4 * max(1.0, scale), (key, diff, scale)
    return diffs


@pytest.mark.xla
def test_xla_forward_matches_eager_small_depth(python_runner):
    """One layer per tower, shorter clips (the positional tables are resampled at run time)."""
    diffs = check(python_runner, 1, 1, frames=8, samples=38_400, vocab=1000)
    assert diffs["text_vt"][2] == [1, 5, 256]


@pytest.mark.xla
@pytest.mark.slow
def test_xla_forward_matches_eager_full_vatt_bbs(python_runner):
    """Paper-size VATT-BBS (video Base, audio Base, text T5-Small), batch 1."""
    check(python_runner, 12, 6)


SPMD = r'''
import json, numpy as np, torch
import torch_xla, torch_xla.runtime as xr, torch_xla.distributed.spmd as xs
xr.use_spmd()
import vattfw
torch.manual_seed(0)
head = vattfw.build("head", {"name": "fac"}, dims={"video": 32, "audio": 16, "text": 8}).train()
x = {"video_pooled": torch.randn(8, 32), "audio_pooled": torch.randn(8, 16), "text_pooled": torch.randn(8, 5, 8)}
eager = head(x)
n = xr.global_runtime_device_count()
mesh = xs.Mesh(np.arange(n), (n, 1), ("data", "model"))
dev = torch_xla.device()
head.to(dev)
xd = {}
for k, v in x.items():
    t = v.to(dev)
    xs.mark_sharding(t, mesh, ("data",) + (None,) * (v.dim() - 1))
    xd[k] = t
out = {k: v.cpu() for k, v in head(xd).items()}
print(json.dumps({"devices": n, **{k: (eager[k].detach() - out[k]).abs().max().item() for k in eager}}))
'''


@pytest.mark.xla
def test_fac_batchnorm_global_under_spmd(python_runner):
    """The batch is sharded over 2 devices, yet BatchNorm normalises with the statistics of the
    whole (global) batch: the outputs equal one-device eager ones."""
    r = python_runner(SPMD, devices=2)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res.pop("devices") == 2
    assert max(res.values()) < 1e-5, res
