"""The fine-tuning evaluators train through the engine's Trainer: their results equal those of
the eager plain-torch loop they replaced (``_finetune.train`` up to commit 89cd4cd), on the
same tiny data with the same seed.

How compared: before the eager loop was removed, the evaluators at 89cd4cd were run on this
configuration (the colour clips, the tiny model with every dropout off, 12 SGD steps at batch 6,
seed 0) and their results recorded below (RECORDED; the same on two runs).  Both versions start
from the same pretrained weights and classifier initialisation, read the same batches in the same
order (the loader's seed) and draw the same mixup λ and partners (the evaluator's generator, on the
host); with dropout and DropToken off nothing random is left to differ (dropout draws come from
the CPU RNG in one and the XLA RNG in the other), only XLA's fp32 arithmetic against eager torch's.
Required, on either backend: the test metrics (top-1/top-5; mAP, AUC, d') equal to 1e-9 and the
last training loss within 1e-5 relative (measured on XLA: 2.2e-7 video, 0 audio, 8.6e-8 audio
without mixup; the torch backend, eager on the CPU, gives the recorded values exactly).
"""
import copy
import math

import pytest

import vattfw
from vattfw.spec.loader import validate

from conftest import SMALL_DATA, TINY_MODEL
from test_eval_finetune import finetune_cfg

pytestmark = pytest.mark.xla

RECORDED = {  # the eager loop's results at 89cd4cd (see the module docstring)
    "video": {"finetune_video/top1": 1.0, "finetune_video/top5": 1.0, "finetune_video/train_loss": 1.1059678792953491},
    "audio": {"finetune_audio/mAP": 0.5944444444444444, "finetune_audio/AUC": 0.5833333333333334,
              "finetune_audio/d_prime": 0.2975906890538079, "finetune_audio/train_loss": 0.7413301467895508},
    "audio_nomix": {"nomix/mAP": 0.6166666666666666, "nomix/AUC": 0.5416666666666666,
                    "nomix/d_prime": 0.1479740520073885, "nomix/train_loss": 0.6918005347251892},
}
CASES = {"video": ("finetune_video", {"crops": 1, "dropout": 0.0}),
         "audio": ("finetune_audio", {"dropout": 0.0}),
         "audio_nomix": ("finetune_audio", {"dropout": 0.0, "mixup": False, "tag": "nomix"})}


@pytest.fixture(params=["xla", "torch"])
def no_dropout_spec(eval_media, request):
    root, vocab = eval_media
    model = copy.deepcopy(TINY_MODEL)
    for backbone in model["backbones"].values():
        backbone.update(dropout=0.0, attention_dropout=0.0)
    for modality in ("video", "audio"):  # the tokens' dropout after the positions
        model["tokenizers"][modality]["position"] = {"dropout": 0.0}
    data = {**SMALL_DATA, "text": {"vocabulary": str(vocab), "max_words": 4, "candidates": 2}}
    return validate({"run": {"backend": request.param}, "model": model, "data": data}, vattfw.default_host()), root


@pytest.mark.parametrize("case", list(CASES))
def test_engine_results_equal_the_eager_loop(case, no_dropout_spec, tiny_model):
    spec, root = no_dropout_spec
    name, kw = CASES[case]
    ev = vattfw.build("evaluator", finetune_cfg(name, root, **kw))
    got = ev.run(tiny_model, spec)
    for key, want in RECORDED[case].items():
        if key.endswith("train_loss"):
            assert math.isclose(got[key], want, rel_tol=1e-5), (key, got[key], want)
        else:
            assert got[key] == pytest.approx(want, abs=1e-9), (key, got[key], want)


class _CountingBackend:
    name = "fake"

    def __init__(self):
        self.starts = []

    def start(self, mesh_shape):
        self.starts.append(dict(mesh_shape))


def test_a_started_backend_is_not_started_again_on_its_mesh():
    from vattfw.backend import running, start_once
    outer = _CountingBackend()
    start_once(outer, {"data": 2, "fsdp": 1, "tensor": 1})
    assert running("fake") is outer  # what a fine-tuning evaluator's Trainer is given
    start_once(outer, {"data": 2, "fsdp": 1, "tensor": 1})  # the inner Trainer's setup
    assert outer.starts == [{"data": 2, "fsdp": 1, "tensor": 1}]
    start_once(outer, {"data": 1, "fsdp": 2, "tensor": 1})  # another mesh is a new start
    other = _CountingBackend()
    start_once(other, {"data": 1, "fsdp": 2, "tensor": 1})  # as is another backend
    assert len(outer.starts) == 2 and len(other.starts) == 1 and running("fake") is other


NESTED = """
import json, sys, warnings
sys.path.insert(0, "tests/engine")
warnings.simplefilter("always")
import vattfw
from vattfw.backend.xla import XlaBackend
from enginekit import Batches
from vattfw.engine.trainer import Trainer
starts = []
original = XlaBackend.start
XlaBackend.start = lambda self, shape: (starts.append(dict(shape)), original(self, shape))[1]
out = {{}}
for name, extra in (("plain", ["eval.evaluators=[]"]), ("nested", [])):
    spec = vattfw.load_spec({path!r}, [f"run.name={{name}}"] + extra)
    t = Trainer(spec, loader=Batches(), resume="never", progress=False)
    r = t.run()
    assert r.status == "finished", r.summary
    out[name] = {{"losses": [l for _, l in r.losses], "eval": t.eval_results, "spmd": t.backend.spmd,
                  "compiles": r.summary["compiles"], "eval_compiles": r.summary.get("eval_compiles", 0)}}
out["starts"] = starts
odd = vattfw.build("evaluator", spec.eval.evaluators[0].config.model_copy(update={{"train_batch_size": 5}}))
try:
    odd.run(t.model, spec)
except vattfw.UserError as exc:
    out["odd_batch"] = str(exc)
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow  # one subprocess, two runs with XLA compiles: 35-45 s on 2 loaded cores
def test_a_finetune_evaluator_inside_an_spmd_run_reuses_its_backend(tmp_path, eval_media):
    """Periodic evaluation during an SPMD run (2 virtual devices, mesh data=2) with finetune_video:
    the evaluator's Trainer runs on the run's backend, started once per run (no second SPMD
    set-up: torch_xla would warn about replicating existing tensors), and the outer run's losses
    are those of the same run without the evaluator (evaluation draws nothing training uses).  A
    training batch that does not divide over the mesh is named as the evaluator's field."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from enginekit import write_spec
    from fixtures.processes import run_python
    root, _ = eval_media
    path = write_spec(tmp_path)
    ev = finetune_cfg("finetune_video", root, crops=1, steps=4)
    path.write_text(path.read_text() + "data: " + json.dumps({"video": SMALL_DATA["video"], "num_workers": 0})
                    + "\neval: " + json.dumps({"every_steps": 3, "evaluators": [ev]}) + "\n")
    res = run_python(NESTED.format(path=str(path)), devices=2, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Replicating tensors" not in res.stderr and "XLA_USE_SPMD is being deprecated" not in res.stderr
    got = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    assert got["nested"]["spmd"] and got["starts"] == [{"data": 2, "fsdp": 1, "tensor": 1}] * 2, got  # once a run
    assert 0 <= got["nested"]["eval"]["eval/finetune_video/top1"] <= 1, got
    assert got["nested"]["losses"] == got["plain"]["losses"], got
    # the run's compile count is its own step's, the evaluator's graphs are counted apart: the
    # nested run's step is the plain run's program (XLA's in-process cache: no compile), so all
    # it compiled is the evaluator's
    counts = {n: (got[n]["compiles"], got[n]["eval_compiles"]) for n in ("plain", "nested")}
    assert counts["plain"][0] >= 1 and counts["nested"][0] == 0 and counts["nested"][1] > 0, counts
    assert "train_batch_size 5 does not divide over the mesh's 2 batch devices" in got["odd_batch"], got


def test_a_stop_signal_during_fine_tuning_reaches_the_enclosing_run(eval_spec, tiny_model, monkeypatch, capsys):
    """The evaluator's Trainer installs its own SIGTERM handler while it trains; a signal it
    catches ends the fine-tuning early and is handed on to the handler of the run being evaluated
    (which then stops after this evaluation and checkpoints), with a warning."""
    import os
    import signal
    from vattfw.engine import signals
    from vattfw_plugins.evaluators import _finetune
    spec, root = eval_spec
    spec = spec.model_copy(update={"run": spec.run.model_copy(update={"backend": "torch"})})  # no compile: fast
    real = _finetune.train_loader

    def killing_loader(*args):
        for i, batch in enumerate(real(*args)):
            if i == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    monkeypatch.setattr(_finetune, "train_loader", killing_loader)
    monkeypatch.setattr("vattfw_plugins.evaluators.finetune_video.train_loader", killing_loader)
    outer = []
    ev = vattfw.build("evaluator", finetune_cfg("finetune_video", root, crops=1, steps=50))
    with signals.handled(lambda signum, frame: outer.append(signum)):
        out = ev.run(tiny_model, spec)
    assert outer == [signal.SIGTERM]
    assert math.isfinite(out["finetune_video/train_loss"])
    import re
    stopped = re.search(r"fine-tuning stopped by SIGTERM after step (\d+) of 50", capsys.readouterr().err)
    assert stopped and int(stopped.group(1)) < 10, stopped
