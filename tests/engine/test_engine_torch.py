"""The torch backend (``run.backend: torch``) through the CLI, as a user launches it: ``torchrun
--nproc_per_node 2 -m vattfw run SPEC --set run.backend=torch`` on the CPU (gloo), against one
process without torchrun and against the XLA backend on one device.

Every run reads the same real clip shards through the real loader, with no augmentation,
dropout (backbones and the tokenizers' position dropout) or DropToken: each process draws
from its own random stream, so with any of them on, two processes' rows get other masks than
one process's rows and the losses differ (by 4.5 at step 1 with position dropout 0.1).
Per-step losses come from the ``steplog`` test plugin (each rank writes its own file), final
weights from the final checkpoint (DCP for torch, model.pt for XLA).

The optimiser is SGD with momentum, not Adam: Adam divides each gradient element by its own
size, so a parameter whose gradient is zero in exact arithmetic (attention key biases: the
softmax ignores a constant per query; the video encoder's final LayerNorm bias, which the FAC
head's BatchNorm cancels) takes steps of +-lr driven by last-bit noise alone (measured: eps
1e-8, 1e-3 per step; eps 1e-3, 2.6e-5 after 5 steps, with gradients that agree to 1e-5).
SGD moves such a parameter by lr x noise; its momentum buffer is the optimiser state that the
resume tests reload.  Tolerances are pytest.approx(abs=1e-5, rel=1e-5), as in test_engine_spmd.

The contrastive temperature is 1.0, not VATT's 0.07: cos/0.07 logits made this tiny model's
loss so steep (gradient norm ~460) that any other order of the fp32 sums moved it past 1e-5
within 5 steps, even with SGD (measured at 0.07: tensor=2 against one process 5.4e-7 relative
at step 1, 1.1e-5 at step 3, 2.1e-5 at step 4; the same step in float64 agrees to 6e-14, so
it is rounding, not arithmetic).  At 1.0, same lr, the parameters still move (median 4.8e-4
per element, max 0.011, norm 0.099 over the 5 steps) and the arms agree far inside 1e-5
(measured: losses within 1.43e-6 of ~7 for data=2, fsdp=2 and tensor=2, 2.9e-6 for XLA;
parameters and BatchNorm statistics: |a - b| - 1e-5 |b| at most 1.6e-6 for tensor=2, 3e-6 for
XLA, against the bound 1e-5).  ``pytest -s`` prints these figures.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vattfw.data.shards import ShardWriter
from fixtures.clips import clip
from fixtures.processes import REPO

STEPS = 5
TOL = 1e-5

SPEC = """
run: {{name: {name}, output_dir: {out}, seed: 1, compile: {compile}}}
mesh: {{data: -1}}
data:
  sources: [{{name: webdataset, urls: ["{root}/train/shard-{{000000..000001}}.tar"]}}]
  video: {{frames: 4, fps: 4, size: 16}}
  audio: {{sample_rate: 2048}}
  text: {{vocabulary: "{root}/vocab.txt", max_words: 4, candidates: 2}}
  augment: {{enabled: false}}
  num_workers: 0
model:
  tokenizers:
    video: {{name: voxel, patch: [2, 8, 8], buckets: [2, 2, 2], position: {{dropout: 0.0}}, drop_token: {{enabled: false}}}}
    audio: {{name: waveform, patch: 64, samples: 2048, position: {{dropout: 0.0}}, drop_token: {{enabled: false}}}}
    text: {{name: word_embedding, vocab_size: 100, dim: 16, max_words: 4}}
  backbones:
    video: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: 0.0, attention_dropout: 0.0}}
    audio: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: 0.0, attention_dropout: 0.0}}
    text: {{name: t5, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: 0.0, attention_dropout: 0.0}}
  heads:
    fac: {{name: fac, d_va: 16, d_vt: 8}}
losses:
  terms:
    nce_va: {{loss: {{name: nce, temperature: 1.0}}, x: video_va, y: audio_va, mask: audio_mask}}
    mil_nce_vt: {{loss: {{name: mil_nce, temperature: 1.0}}, x: video_vt, y: text_vt, mask: text_mask}}
optimizer: {{name: sgd, lr: 3.0e-3, momentum: 0.9}}
schedule: {{name: warmup_cosine, warmup_steps: 2, end_lr: 0.0}}
train: {{global_batch_size: 16, steps: {steps}, log_every: 1}}
checkpoint: {{every_steps: {every}, keep_last: 5}}
tracking: {{trackers: []}}
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """16 distinct clips (moving pattern, own colour and tone) in 2 shards: one global batch
    of 16 without repeats.  (The 6 clips of write_clip_shards in batches of 4 leave the FAC
    head's BatchNorm so little variance that it amplifies last-bit differences 10-30x: one
    process against itself at 1 and 2 threads differed by 3e-3 after 5 steps.)"""
    root = tmp_path_factory.mktemp("torchdata")
    words = ["a", "red", "green", "blue", "clip", "square"]
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    writer = ShardWriter(root / "train", max_count=8)
    for i in range(16):
        meta = {"label": i % 3, "captions": [f"a {words[1 + i % 3]} clip", "a square"][:1 + i % 2],
                "duration": 2.0, "modalities": ["video", "audio", "text"]}
        data = clip(root / f"c{i}.mp4", (0x302010 * (i + 1)) & 0xFFFFFF, 200 + 37 * i, moving=True)
        writer.add(f"c{i:02d}", {"mp4": data, "json": json.dumps(meta).encode()}, meta)
    writer.close()
    return root


class Launch:
    """One ``vattfw run`` of the tiny spec: ``nproc`` > 0 under torchrun, 0 = a plain process."""

    def __init__(self, folder: Path, root: Path, name: str, nproc: int = 0, backend: str = "torch",
                 sets: tuple = (), every: int = 1000, log: str = "", env: dict | None = None):
        self.folder, self.name, self.nproc = folder, name, nproc
        self.spec = folder / f"{name}.yaml"
        self.spec.write_text(SPEC.format(name=name, out=folder / "runs", root=root, steps=STEPS, every=every,
                                         compile="fast" if backend == "xla" else "auto"))
        self.log = folder / (log or f"{name}.steps")
        sets = [f"run.backend={backend}", *sets]
        vattfw = ["-m", "vattfw", "-p", "steplog", "run", str(self.spec), "--no-track",
                  *[a for s in sets for a in ("--set", s)]]
        if nproc:
            torchrun = str(Path(sys.executable).parent / "torchrun")
            self.argv = [torchrun, "--standalone", "--nproc_per_node", str(nproc), *vattfw]
        else:
            self.argv = [sys.executable, *vattfw]
        self.env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2", "CPU_NUM_DEVICES": "1",
                    "OMP_NUM_THREADS": "1", "VATTFW_STEPLOG": str(self.log),
                    "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "engine"),
                                                   os.environ.get("PYTHONPATH", "")]), **(env or {})}

    def run(self, timeout: float = 300) -> subprocess.CompletedProcess:
        self.t0 = time.perf_counter()
        proc = subprocess.run(self.argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        self.wall = time.perf_counter() - self.t0
        self.output = proc.stdout + proc.stderr  # every rank's, under torchrun
        return proc

    def losses(self, rank: int = 0) -> dict[int, float]:
        path = Path(f"{self.log}.{rank}")
        rows = [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []
        return {r["step"]: r["loss"] for r in rows}

    def flops_per_step(self) -> int:
        """The count in the run summary's table (printed once, by the main process)."""
        found = re.findall(r"flops_per_step\W+(\d+)", self.output)
        assert len(found) == 1, self.output[-3000:]
        return int(found[0])

    def checkpoint(self, step: int = STEPS) -> Path:
        return self.folder / "runs" / self.name / "checkpoints" / f"step_{step:09d}"

    def params(self, step: int = STEPS) -> dict[str, torch.Tensor]:
        path = self.checkpoint(step)
        if (path / "model.pt").exists():  # the XLA backend's format
            return torch.load(path / "model.pt", map_location="cpu")
        from vattfw.backend.torch_checkpoint import read_model_state
        return read_model_state(path)


def _ok(launch: Launch, **kw) -> Launch:
    proc = launch.run(**kw)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return launch


def _same_losses(got: dict, want: dict, what: str, tol: float = TOL) -> None:
    assert sorted(got) == sorted(want), (what, got, want)
    worst = max(abs(got[s] - want[s]) for s in want)
    print(f"{what}: losses differ by at most {worst:.3g}")  # (pytest -s shows the measured figures)
    assert got == pytest.approx(want, abs=tol, rel=tol), f"{what}: losses differ by {worst:.3g}: {got} vs {want}"


def _same_params(got: dict, want: dict, what: str, tol: float = TOL) -> None:
    assert got.keys() == want.keys(), (what, sorted(set(got) ^ set(want)))
    # |a - b| <= TOL + TOL |b| element by element (pytest.approx's rule, as for the losses)
    excess = {k: float(((got[k].float() - want[k].float()).abs() - tol * want[k].float().abs()).max()) for k in want}
    worst = max(excess, key=excess.get)
    diff = float((got[worst].float() - want[worst].float()).abs().max())
    print(f"{what}: parameters differ by at most {max(float((got[k].float() - want[k].float()).abs().max()) for k in want):.3g} "
          f"(closest to the tolerance: {worst}, {diff:.3g}, |a - b| - tol |b| = {excess[worst]:.3g})")
    assert excess[worst] <= tol, f"{what}: parameter {worst} differs by {diff:.3g}"


@pytest.fixture(scope="module")
def single(shards, tmp_path_factory):
    """The reference: one process, torch backend, no torchrun."""
    return _ok(Launch(tmp_path_factory.mktemp("single"), shards, "single"))


def test_two_processes_data_parallel_match_one_process(tmp_path, shards, single):
    two = _ok(Launch(tmp_path, shards, "data2", nproc=2, sets=("mesh.data=2",)))
    # one process speaks for the run: each progress line and the summary once in both ranks' output
    for step in range(1, STEPS + 1):
        assert two.output.count(f"step {step}/{STEPS} loss ") == 1, two.output[-3000:]
    assert two.output.count("vattfw run data2: finished") == 1, two.output[-3000:]
    assert two.flops_per_step() == single.flops_per_step() > 0  # the global step's model FLOPs
    want = single.losses()
    assert sorted(want) == list(range(1, STEPS + 1))
    _same_losses(two.losses(0), want, "torchrun data=2, rank 0")
    _same_losses(two.losses(1), want, "torchrun data=2, rank 1")  # every rank sees the global loss
    _same_params(two.params(), single.params(), "torchrun data=2")


@pytest.mark.slow
@pytest.mark.parametrize("mesh", ["fsdp=2", "tensor=2"])
def test_two_processes_fsdp_or_tensor_parallel_match_one_process(tmp_path, shards, single, mesh):
    axis = mesh.split("=")[0]
    sets = ["mesh.data=1", f"mesh.{mesh}"] + (["mesh.fsdp=1"] if axis == "tensor" else [])
    two = _ok(Launch(tmp_path, shards, axis, nproc=2, sets=tuple(sets)))
    # FLOPs counted on the undistributed model: FSDP2 / DTensor modules do not change the count
    assert two.flops_per_step() == single.flops_per_step() > 0
    for rank in (0, 1):
        _same_losses(two.losses(rank), single.losses(), f"torchrun {mesh}, rank {rank}")
    _same_params(two.params(), single.params(), f"torchrun {mesh}")


@pytest.mark.slow
@pytest.mark.xla
def test_one_process_torch_matches_the_xla_backend(tmp_path, shards, single):
    xla = _ok(Launch(tmp_path, shards, "xla", backend="xla"))
    # (the parameters include the FAC head's BatchNorm running statistics: see
    # test_xla_batch_norm_updates_running_statistics_as_eager)
    _same_losses(single.losses(), xla.losses(), "torch vs xla, one device")
    _same_params(single.params(), xla.params(), "torch vs xla, one device")


@pytest.mark.xla
def test_xla_batch_norm_updates_running_statistics_as_eager():
    """torch_xla 2.9 alone moves running_var towards the biased batch variance; the XLA
    backend's BatchNorm (EagerRunningStats) updates both running statistics as eager does."""
    code = """
import json, torch, torch_xla.core.xla_model as xm
from vattfw.backend.xla import use_eager_running_stats
torch.manual_seed(0)
x = torch.randn(16, 4, 3) * 2 + 1
eager = torch.nn.BatchNorm1d(4)
y = eager(x); eager(x * 3)
plain = torch.nn.BatchNorm1d(4).to(xm.xla_device())
plain(x.to(plain.weight.device))
bn = torch.nn.BatchNorm1d(4)
use_eager_running_stats(bn)
bn = bn.to(xm.xla_device())
yx = bn(x.to(bn.weight.device)); bn(x.to(bn.weight.device) * 3); xm.mark_step()
print("RESULT" + json.dumps({"y": float((y - yx.cpu()).abs().max()), "plain": plain.running_var.cpu().tolist(),
    "unbiased": (0.9 + 0.1 * x.var((0, 2))).tolist(),
    **{k: (getattr(eager, k).tolist(), getattr(bn, k).cpu().tolist()) for k in ("running_mean", "running_var")},
    "batches": [int(eager.num_batches_tracked), int(bn.num_batches_tracked.cpu())]}))
"""
    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2", "CPU_NUM_DEVICES": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert res["plain"] != pytest.approx(res["unbiased"], rel=1e-3)  # what torch_xla does by itself
    assert res["y"] < 1e-5 and res["batches"] == [2, 2]
    for k in ("running_mean", "running_var"):
        assert res[k][1] == pytest.approx(res[k][0], rel=1e-6, abs=1e-6), k


def _killed(launch: Launch, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``launch`` (whose rank kills itself, see steplog); seconds from the kill to the exit."""
    proc = launch.run(timeout=timeout)
    end = launch.t0 + launch.wall
    rank = int(launch.env["VATTFW_KILL_AT"].split(":")[0])
    killed_at = Path(f"{launch.log}.{rank}").stat().st_mtime  # its last line, just before the kill
    return proc, time.time() - (time.perf_counter() - end) - killed_at


def test_a_killed_rank_stops_the_run_and_it_resumes_on_one_process(tmp_path, shards, single):
    """SIGKILL rank 1 of 2 in step 4 (after the checkpoint of step 3): every process exits
    within 60 s, rc != 0, the message names rank 1; one process resumes from step 3 and
    gives the uninterrupted run's losses and weights."""
    two = Launch(tmp_path, shards, "crash", nproc=2, sets=("mesh.data=2",), every=3, log="crash.a",
                 env={"VATTFW_KILL_AT": "1:4"})
    proc, after_kill = _killed(two)
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert after_kill < 60, after_kill
    # rank 0's one line (from the backend), then torchrun's report
    assert "error: rank 0 of 2 stops: rank 1 exited (killed or crashed" in proc.stderr, proc.stderr[-3000:]
    assert "[rank0]: Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "rank      : 1" in proc.stderr and "Signal 9 (SIGKILL)" in proc.stderr, proc.stderr[-3000:]
    assert two.checkpoint(3).is_dir() and not two.checkpoint(4).exists()
    want = single.losses()
    ran = two.losses(0)  # steps 1-3, and 4 when rank 0 got that far
    assert {1, 2, 3} <= set(ran) <= {1, 2, 3, 4}, ran
    _same_losses(ran, {s: want[s] for s in ran}, "2 processes before the kill")
    one = _ok(Launch(tmp_path, shards, "crash", nproc=0, every=3, log="crash.b"))
    _same_losses(one.losses(), {s: want[s] for s in (4, 5)}, "resumed on 1 process from 2")
    _same_params(one.params(), single.params(), "resumed on 1 process from 2")


@pytest.mark.slow
def test_one_process_checkpoint_resumes_on_two_processes(tmp_path, shards, single):
    one = Launch(tmp_path, shards, "grow", nproc=0, every=3, log="grow.a", env={"VATTFW_KILL_AT": "0:4"})
    proc = one.run()
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    two = _ok(Launch(tmp_path, shards, "grow", nproc=2, sets=("mesh.fsdp=2", "mesh.data=1"), every=3, log="grow.b"))
    want = single.losses()
    for rank in (0, 1):
        _same_losses(two.losses(rank), {s: want[s] for s in (4, 5)}, f"resumed on 2 processes (fsdp) from 1, rank {rank}")
    _same_params(two.params(), single.params(), "resumed on 2 processes (fsdp) from 1")
