"""`vattfw eval SPEC --random-init`: the untrained baseline through the CLI (subprocesses).  The
weights evaluated are compared, via the ``weight_probe`` evaluator's digest, with the tiny model
built here after seeding torch with ``run.seed``; a hook plugin records what trackers receive."""
import json
import os
import random

import numpy as np
import pytest
import torch

from enginekit import write_spec
from fixtures.processes import REPO

HOOK_PLUGIN = '''
import json, os
import vattfw

@vattfw.hookimpl
def vattfw_eval_end(step, results):
    with open(os.environ["EVAL_HOOK_OUT"], "w") as f:
        json.dump({"step": step, "results": results}, f)

@vattfw.hookimpl
def vattfw_run_end(status, summary):
    with open(os.environ["EVAL_HOOK_OUT"] + ".end", "w") as f:
        json.dump({"status": status, "summary": summary}, f)
'''


def _digest(state: dict) -> float:  # the weight_probe formula (tests/engine/weightprobe.py)
    return sum(float((v.double() * (1 + i % 7)).sum())
               for i, (_, v) in enumerate(sorted(state.items())) if v.is_floating_point())


def _seeded_state(spec, seed: int) -> dict:
    from vattfw.model import build_model
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return build_model(spec.model).state_dict()


def test_random_init_evaluates_the_seeded_untrained_model_and_says_so(tmp_path, cli):
    import vattfw
    spec_path = write_spec(tmp_path)
    spec = vattfw.load_spec(str(spec_path))
    expected = _digest(_seeded_state(spec, spec.run.seed))
    assert expected != pytest.approx(_digest(_seeded_state(spec, spec.run.seed + 1)), rel=1e-9)
    # A model.init in the spec is not applied: the baseline is the untrained model.
    other = tmp_path / "other.pt"
    torch.save(_seeded_state(spec, 5), other)
    (tmp_path / "evalhook.py").write_text(HOOK_PLUGIN)
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "engine"), str(tmp_path),
                                          os.environ.get("PYTHONPATH", "")]),
           "EVAL_HOOK_OUT": str(tmp_path / "hook.json")}
    out = tmp_path / "out.json"
    res = cli("-p", "weightprobe", "-p", "evalhook", "eval", str(spec_path), "--random-init",
              "--set", "eval.evaluators=[weight_probe]", "--set", f"model.init.checkpoint={other}",
              "--json", str(out), env=env)
    assert res.returncode == 0, res.stderr
    assert "evaluation of random initialisation (run.seed=0, no checkpoint)" in " ".join(res.stdout.split())
    got = json.loads(out.read_text())
    assert got["random_init"] is True and got["checkpoint"] is None and got["step"] == 0
    assert got["results"]["weight_probe/digest"] == pytest.approx(expected, rel=1e-12)
    hook = json.loads((tmp_path / "hook.json").read_text())
    assert hook["results"]["eval/random_init/weight_probe/digest"] == pytest.approx(expected, rel=1e-12)
    assert not any(k.startswith("eval/weight_probe") for k in hook["results"])  # never a trained run's metric
    end = json.loads((tmp_path / "hook.json.end").read_text())
    assert end["summary"]["random_init"] is True and "checkpoint" not in end["summary"]


def test_eval_needs_exactly_one_of_checkpoint_and_random_init(tmp_path, cli, capsys):
    from vattfw.cli import main
    spec_path = write_spec(tmp_path)
    none = cli("eval", str(spec_path))
    assert none.returncode == 2
    assert none.stderr.strip() == ("error: --checkpoint PATH is required (a checkpoint folder, a run's checkpoints "
                                   "folder or a .pt file); or --random-init to evaluate the untrained model")
    # the same entry point in this process (a second interpreter start costs ~10 s on 2 cores)
    assert main(["eval", str(spec_path), "--random-init", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--checkpoint and --random-init exclude each other" in err
