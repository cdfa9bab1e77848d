"""A third-party loss that owns an nn.Parameter (a CLIP-style learnable temperature), loaded as a
plugin module, trains under XLA through the engine: the parameter is on the device, in the
optimiser (its own group, no weight decay), changes, is checkpointed, and a run resumed from
step 2 ends exactly where an uninterrupted one does.  The built-in nce/mil_nce
learnable_temperature runs too, and `vattfw summary` counts it."""
import json
import textwrap

import pytest

from fixtures.processes import run_python
from enginekit import write_spec

PLUGIN = '''
import math
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
import vattfw

class Config(vattfw.PluginConfig):
    temperature: float = Field(0.1, gt=0, description="Starting temperature.")

class ScaledNCE(nn.Module):
    def __init__(self, temperature):
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(math.log(temperature)))
    def forward(self, x, y, mask=None):
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        logits = x @ y.t() / self.log_t.exp()
        return F.cross_entropy(logits, torch.arange(x.shape[0], device=x.device))

def build(config, **deps):
    return ScaledNCE(config.temperature)

@vattfw.hookimpl
def vattfw_components():
    return [vattfw.Component("loss", "scaled_nce", Config, build)]
'''

LOSSES = """
losses:
  terms:
    va: {loss: {name: scaled_nce, temperature: 0.1}, x: video_va, y: audio_va}
    vt: {loss: {name: mil_nce, learnable_temperature: true}, x: video_vt, y: text_vt, mask: text_mask}
"""

CODE = """
import json, sys
sys.path.insert(0, "tests/engine")
sys.path.insert(0, {site!r})
import vattfw
from vattfw.host import PluginHost
from enginekit import Batches
from vattfw.engine.trainer import Trainer
host = PluginHost.load(["scaled_loss"])

def run(name, steps, resume):
    spec = vattfw.load_spec({path!r}, [f"run.name={{name}}", f"train.steps={{steps}}", "train.log_every=1",
                                       "checkpoint.every_steps=2"], host=host)
    t = Trainer(spec, host=host, loader=Batches(), resume=resume, progress=False, evaluate=False)
    r = t.run()
    assert r.status == "finished", r.summary
    terms = t.objective.terms
    return {{"losses": r.losses, "compiles": r.summary["compiles"],
             "log_t": float(terms["va"].log_t.cpu()), "log_scale": float(terms["vt"].log_scale.cpu()),
             "device": str(terms["va"].log_t.device),
             "groups": [[len(g["params"]), g["weight_decay"]] for g in t.optimizer.param_groups]}}

out = {{"whole": run("whole", 4, "never"), "first": run("parted", 2, "never"), "rest": run("parted", 4, "auto")}}
print("RESULT" + json.dumps(out))
"""


def _spec(tmp_path):
    path = write_spec(tmp_path)
    text = path.read_text().replace("{name: adam, lr: 1.0e-3}", "{name: adamw, lr: 1.0e-2, weight_decay: 0.1}")
    text = text.replace("{name: warmup_cosine, warmup_steps: 2, end_lr: 0.0}",
                        "{name: warmup_cosine, warmup_steps: 0, end_lr: 1.0e-2}")  # constant: runs of 2 and 4 steps agree
    path.write_text(text + LOSSES)
    return path


@pytest.mark.xla
@pytest.mark.slow
def test_loss_parameter_trains_is_checkpointed_and_resumes_exactly(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "scaled_loss.py").write_text(textwrap.dedent(PLUGIN))
    res = run_python(CODE.format(site=str(site), path=str(_spec(tmp_path))), devices=1, timeout=400)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])
    whole, first, rest = out["whole"], out["first"], out["rest"]
    assert whole["device"].startswith("xla")
    # model parameters with the run's weight decay; the two loss parameters in a group without
    assert whole["groups"][1] == [2, 0.0] and whole["groups"][0][1] == 0.1
    assert abs(whole["log_t"] - __import__("math").log(0.1)) > 1e-4  # it trained
    assert abs(whole["log_scale"] - __import__("math").log(1 / 0.07)) > 1e-4
    assert whole["compiles"] == 2  # step 1, then step 2 with AdamW's state: as without loss parameters
    # resumed at step 2 from the checkpoint (loss parameters and their Adam moments included)
    assert [s for s, _ in rest["losses"]] == [3, 4]
    assert rest["losses"] == whole["losses"][2:]
    assert (rest["log_t"], rest["log_scale"]) == (whole["log_t"], whole["log_scale"])


def test_summary_counts_loss_parameters(cli, tmp_path):
    path = write_spec(tmp_path)
    plain = cli("summary", str(path))
    learnt = cli("summary", str(path), "--set", "losses.terms.nce_va.loss.learnable_temperature=true")
    assert plain.returncode == 0 and learnt.returncode == 0, plain.stderr + learnt.stderr
    total = {r: int(r_.stdout.strip().splitlines()[-1].split()[-1]) for r, r_ in (("plain", plain), ("learnt", learnt))}
    assert total["learnt"] == total["plain"] + 1
    assert any(line.split()[:2] == ["losses.nce_va", "1"] for line in learnt.stdout.splitlines())
    assert "losses." not in plain.stdout  # the paper's fixed temperature owns nothing
