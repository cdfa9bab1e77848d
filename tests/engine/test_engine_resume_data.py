"""Exact resume with the REAL data loader (webdataset shards of ffmpeg-made clips, decoding,
augmentation) behind the device loader's prefetch, with DropToken and dropout on.

8 steps uninterrupted (no checkpoint on the way) against one run interrupted twice:
SIGTERM between periodic checkpoints (stops after step 3, the signal's checkpoint is the
only one), resume; SIGKILL after the periodic checkpoint of step 5 (killed in step 7),
resume to 8.  Every step's loss and the final parameters must be bit-identical.  Before
the fix this caught, a host-side sync (the checkpoint's) moved torch_xla's device seed, so
a run that checkpointed drew other dropout / DropToken masks from then on.

Each phase runs in its own process.  The stops are deterministic: the run signals itself
from the host-side closure of a chosen step (closures run at the next step boundary, so
the process stops one step later, the same step every time)."""
import json
import os

import pytest
import torch

from fixtures.clips import write_clip_shards
from fixtures.processes import run_python

pytestmark = [pytest.mark.xla, pytest.mark.slow]

STEPS = 8

SPEC = """
run: {{name: {name}, output_dir: {out}, seed: 3, compile: fast}}
mesh: {{data: -1}}
data:
  sources: [{{name: webdataset, urls: ["{root}/train/shard-{{000000..000001}}.tar"]}}]
  video: {{frames: 4, fps: 4, size: 16}}
  audio: {{sample_rate: 2048}}
  text: {{vocabulary: "{root}/vocab.txt", max_words: 4, candidates: 2}}
  augment: {{enabled: true}}
  num_workers: 0
model:
  tokenizers:
    video: {{name: voxel, patch: [2, 8, 8], buckets: [2, 2, 2], drop_token: {{enabled: true}}}}
    audio: {{name: waveform, patch: 64, samples: 2048, drop_token: {{enabled: true}}}}
    text: {{name: word_embedding, vocab_size: 100, dim: 16, max_words: 4}}
  backbones:
    video: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: 0.1, attention_dropout: 0.1}}
    audio: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: 0.1, attention_dropout: 0.1}}
    text: {{name: t5, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: 0.1, attention_dropout: 0.1}}
  heads:
    fac: {{name: fac, d_va: 16, d_vt: 8}}
optimizer: {{name: adam, lr: 1.0e-3}}
schedule: {{name: warmup_cosine, warmup_steps: 2, end_lr: 0.0}}
train: {{global_batch_size: 4, steps: {steps}, log_every: 1}}
checkpoint: {{every_steps: {every}, keep_last: 3}}
tracking: {{trackers: []}}
"""

# `signal_at`: the closure of that step sends the signal to this very process.  Losses are
# printed as they come, so a killed phase still reports the steps it ran.
CODE = """
import json, os, signal, sys
import vattfw
from vattfw.engine.trainer import Trainer

class SignalsItself(Trainer):
    def _on_log(self, step, *args):
        super()._on_log(step, *args)
        print("LOSS" + json.dumps(self.losses[-1]), flush=True)
        if step == {signal_at}:
            os.kill(os.getpid(), {signum})

spec = vattfw.load_spec({path!r})
r = SignalsItself(spec, resume="auto", progress=False).run()
print("RESULT" + json.dumps({{"status": r.status, "step": r.step, "checkpoint": r.summary["checkpoint"]}}))
sys.exit(r.exit_code)
"""

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    # a moving pattern, so that augmentation (crops, flips) draws matter
    return write_clip_shards(tmp_path_factory.mktemp("resumedata"), moving=True, extra_captions=("a square",))


def _phase(folder, root, name, every, signal_at=0, signum=0):
    path = folder / f"{name}-{every}-{signal_at}.yaml"
    path.write_text(SPEC.format(name=name, out=folder / "runs", root=root, steps=STEPS, every=every))
    res = run_python(CODE.format(path=str(path), signal_at=signal_at, signum=signum), devices=1, timeout=300)
    out = res.stdout.splitlines()
    losses = {int(s): v for s, v in (json.loads(ln[4:]) for ln in out if ln.startswith("LOSS"))}
    result = [json.loads(ln[6:]) for ln in out if ln.startswith("RESULT")]
    return res, losses, (result[-1] if result else None)


def _params(checkpoint):
    return torch.load(os.path.join(checkpoint, "model.pt"))


def test_real_loader_resume_after_sigterm_and_sigkill_is_exact(tmp_path, shards):
    res, expected, straight = _phase(tmp_path, shards, "straight", every=100)
    assert res.returncode == 0, res.stderr[-4000:]
    assert sorted(expected) == list(range(1, STEPS + 1))

    # SIGTERM between periodic checkpoints (every_steps=100): the signal's checkpoint is the only one
    res, losses, stopped = _phase(tmp_path, shards, "stopped", every=100, signal_at=2, signum=15)
    assert res.returncode == 143, res.stderr[-4000:]
    assert stopped["status"] == "interrupted" and stopped["step"] == 3, stopped
    assert losses == {s: expected[s] for s in (1, 2, 3)}

    # resumed from the SIGTERM checkpoint; SIGKILL after the periodic checkpoint of step 5
    res, losses, _ = _phase(tmp_path, shards, "stopped", every=5, signal_at=6, signum=9)
    assert res.returncode == -9, res.stderr[-4000:]
    assert losses == {s: expected[s] for s in (4, 5, 6)}, (losses, expected)

    res, losses, resumed = _phase(tmp_path, shards, "stopped", every=5)
    assert res.returncode == 0, res.stderr[-4000:]
    assert losses == {s: expected[s] for s in range(6, STEPS + 1)}, (losses, expected)
    a, b = _params(straight["checkpoint"]), _params(resumed["checkpoint"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
