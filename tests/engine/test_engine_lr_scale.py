"""``train.lr_scale``: per-parameter learning-rate multipliers.  The grouping against a hand-built
expectation, the spec and run errors through the CLI, and under XLA one SGD step whose update of
the scaled tower is exactly the factor times the plain run's while every other parameter moves
as in the plain run."""
import json

import pytest
import torch

from fixtures.processes import run_cli, run_python
from enginekit import write_spec
from vattfw.engine.param_groups import param_groups
from vattfw.errors import UserError


def _named(*names):
    return [(n, torch.nn.Parameter(torch.zeros(1))) for n in names]


def test_no_scale_keeps_the_flat_list():
    named = _named("tokenizers.audio.proj.weight", "backbones.audio.w")
    assert param_groups(named, {}) == named


def test_groups_follow_the_first_matching_pattern_and_loss_parameters_keep_no_decay():
    named = _named("tokenizers.audio.proj.weight", "backbones.video.w", "backbones.audio.w", "heads.fac.w",
                   "losses.terms.nce_va.loss.log_scale")
    groups = param_groups(named, {"backbones.audio|tokenizers.audio": 3.0, "backbones": 0.5, "losses": 2.0})
    got = [([n for n, _ in g["params"]], g.get("lr_scale", 1.0), g.get("weight_decay")) for g in groups]
    assert got == [(["tokenizers.audio.proj.weight", "backbones.audio.w"], 3.0, None),
                   (["backbones.video.w"], 0.5, None),
                   (["heads.fac.w"], 1.0, None),
                   (["losses.terms.nce_va.loss.log_scale"], 2.0, 0.0)]


def test_a_pattern_that_matches_nothing_names_itself_and_the_names():
    with pytest.raises(UserError) as err:
        param_groups(_named("backbones.audio.w"), {"backbone.audio": 2.0})
    text = str(err.value)
    assert "train.lr_scale" in text and "'backbone.audio'" in text and "backbones.audio" in text


@pytest.mark.parametrize("value, says", [('{"(": 2}', "not a valid regular expression"),
                                         ('{"backbones": 0}', "must be > 0")])
def test_bad_lr_scale_is_one_spec_error(tmp_path, value, says):
    res = run_cli("validate", str(write_spec(tmp_path)), "--set", f"train.lr_scale={value}")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "train.lr_scale" in res.stderr and says in res.stderr, res.stderr


@pytest.mark.xla
def test_unmatched_pattern_stops_the_run_with_one_message(tmp_path):
    res = run_cli("run", str(write_spec(tmp_path)), "--dry-run", "--set", 'train.lr_scale={"backbone.audio": 2}')
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "train.lr_scale" in res.stderr and "matches no trainable parameter" in res.stderr, res.stderr


CODE = """
import json, sys
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
from vattfw.engine.checkpointer import seed_host
from vattfw.model import build_model

def run(name, sets):
    spec = vattfw.load_spec({path!r}, [f"run.name={{name}}", "train.steps=1", *sets])
    seed_host(0)
    model = build_model(spec.model, vattfw.default_host())  # the same weights in both runs
    before = {{n: p.detach().clone() for n, p in model.named_parameters()}}
    t = Trainer(spec, model=model, loader=Batches(), resume="auto", progress=False, evaluate=False)
    assert t.run().status == "finished"
    delta = {{n: (p.detach().cpu() - before[n]).tolist() for n, p in t.model.named_parameters()}}
    return {{"delta": delta, "lrs": sorted(g["lr"] for g in t.optimizer.param_groups)}}

out = {{"plain": run("plain", []), "scaled": run("scaled", ['train.lr_scale={{"backbones.audio": 4.0}}'])}}
try:  # the scaled run's final checkpoint, resumed without the mapping
    run("scaled", ["train.steps=2"])
except vattfw.UserError as exc:
    out["resume_error"] = str(exc)
print("RESULT" + json.dumps(out))
"""


@pytest.mark.xla
def test_scaled_tower_steps_by_the_factor(tmp_path):
    path = write_spec(tmp_path)
    text = path.read_text().replace("{name: adam, lr: 1.0e-3}", "{name: sgd, lr: 0.1, momentum: 0.0}")
    path.write_text(text.replace("{name: warmup_cosine, warmup_steps: 2, end_lr: 0.0}",
                                 "{name: warmup_cosine, warmup_steps: 0, end_lr: 0.1}"))  # constant 0.1
    res = run_python(CODE.format(path=str(path)), devices=1, timeout=400)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])
    plain, scaled = out["plain"], out["scaled"]
    assert plain["lrs"] == pytest.approx([0.1]) and scaled["lrs"] == pytest.approx([0.1, 0.4])
    moved = 0
    for name, d in plain["delta"].items():
        d_plain, d_scaled = torch.tensor(d), torch.tensor(scaled["delta"][name])
        factor = 4.0 if name.startswith("backbones.audio") else 1.0
        torch.testing.assert_close(d_scaled, factor * d_plain, atol=2e-6, rtol=1e-4, msg=name)
        moved += name.startswith("backbones.audio") and float(d_plain.abs().max()) > 1e-5
    assert moved > 4  # the audio tower's weights did change, so the factor was tested
    assert "train.lr_scale" in out.get("resume_error", ""), out.get("resume_error")


def test_a_pattern_shadowed_by_an_earlier_one_is_an_error():
    with pytest.raises(UserError) as err:
        param_groups(_named("backbones.audio.w"), {"backbones": 2.0, "backbones.audio": 3.0})
    assert "'backbones.audio'" in str(err.value) and "earlier pattern" in str(err.value)
