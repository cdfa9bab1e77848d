"""Outages during `vattfw run`, with real shards and real servers on 127.0.0.1: the shard
server goes away mid-run (the loader's StorageError reaches the main thread: a checkpoint,
then one line, exit 1), and an mlflow tracking URI nobody answers (one line naming it at the
start, exit 2; or, with on_unreachable: continue, a warning line and a run without tracking)."""
from __future__ import annotations

import socket

import pytest

from fixtures.clips import write_clip_shards
from fixtures.processes import run_cli
from vattfw import checkpoint as ckpt

pytestmark = [pytest.mark.xla, pytest.mark.slow]

SPEC = """
run: {{name: {name}, output_dir: {out}, seed: 3, compile: fast}}
data:
  sources: [{{name: webdataset, urls: ["{base}/train/shard-{{000000..000001}}.tar"]}}]
  video: {{frames: 4, fps: 4, size: 16}}
  audio: {{sample_rate: 2048}}
  text: {{vocabulary: "{root}/vocab.txt", max_words: 4, candidates: 2}}
  num_workers: 0
  io_retries: 1
  io_backoff_s: 0.01
model:
  tokenizers:
    video: {{name: voxel, patch: [2, 8, 8], buckets: [2, 2, 2]}}
    audio: {{name: waveform, patch: 64, samples: 2048}}
    text: {{name: word_embedding, vocab_size: 100, dim: 16, max_words: 4}}
  backbones:
    video: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4}}
    audio: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4}}
    text: {{name: t5, layers: 1, width: 32, mlp_dim: 64, heads: 4}}
  heads:
    fac: {{name: fac, d_va: 16, d_vt: 8}}
optimizer: {{name: adam, lr: 1.0e-3}}
train: {{global_batch_size: 4, steps: {steps}, log_every: 1}}
checkpoint: {{every_steps: 2, keep_last: 3}}
tracking: {{trackers: {trackers}}}
"""

# Loaded with -p: serves the shards over http and stops serving once the first checkpoint is saved.
OUTAGE = """
import functools, http.server, os, threading
import vattfw

class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["OUTAGE_PORT"])),
                                         functools.partial(Quiet, directory=os.environ["OUTAGE_ROOT"]))
threading.Thread(target=server.serve_forever, daemon=True).start()
down = []

@vattfw.hookimpl
def vattfw_checkpoint_saved(step, path):
    if not down:
        down.append(step)
        server.shutdown()
        server.server_close()
"""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_clip_shards(tmp_path_factory.mktemp("outagedata"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(folder, root, name, base, steps=40, trackers="[]"):
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, out=folder / "runs", root=root, base=base, steps=steps,
                                trackers=trackers))
    return path


def test_a_shard_server_outage_checkpoints_then_ends_in_one_line(tmp_path, shards):
    port = _free_port()
    (tmp_path / "outage_plugin.py").write_text(OUTAGE)
    spec = _spec(tmp_path, shards, "outage", f"http://127.0.0.1:{port}")
    res = run_cli("-p", "outage_plugin", "run", str(spec), timeout=400,
                  env={"PYTHONPATH": str(tmp_path), "OUTAGE_PORT": str(port), "OUTAGE_ROOT": str(shards),
                       "CPU_NUM_DEVICES": "1"})
    assert res.returncode == 1, res.stderr[-4000:]
    assert "Traceback" not in res.stderr and "StopIteration" not in res.stderr, res.stderr[-4000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr[-4000:]
    root = tmp_path / "runs" / "outage" / "checkpoints"
    newest = ckpt.latest(root)
    step = int(newest.name[5:])
    assert step > 2 and ckpt.problem(newest) == ""  # the steps run after the outage began are kept
    assert errors[0].startswith(f"error: reading the training data failed after step {step} (StorageError: read "
                                f"http://127.0.0.1:{port}/train/shard-00000"), errors[0]
    assert "failed after 2 tries" in errors[0]
    assert errors[0].endswith(f"checkpoint {newest}; resume with the same command once the data is readable")


def test_an_unreachable_tracker_stops_at_the_start_or_is_skipped_on_request(tmp_path, shards):
    dead = f"http://127.0.0.1:{_free_port()}"  # nobody listens there
    mlflow = f"[{{name: mlflow, tracking_uri: '{dead}', check_timeout_s: 5}}]"
    spec = _spec(tmp_path, shards, "notrack", f"{shards}", steps=2, trackers=mlflow)
    res = run_cli("run", str(spec), timeout=400, env={"CPU_NUM_DEVICES": "1"})
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-4000:]
    assert res.stderr.strip().splitlines()[-1:] == [
        f"error: tracking.trackers: mlflow tracking server {dead} does not answer (ConnectionRefusedError: "
        f"[Errno 111] Connection refused; waited 5 s): start it or fix the URI (tracking_uri / "
        f"MLFLOW_TRACKING_URI), or set tracking.trackers[].on_unreachable: continue to train without it"], \
        res.stderr[-4000:]
    assert not (tmp_path / "runs" / "notrack" / "checkpoints" / "step_000000002").exists()

    res = run_cli("run", str(spec), "--set", "tracking.trackers.0.on_unreachable=continue", timeout=400,
                  env={"CPU_NUM_DEVICES": "1"})
    assert res.returncode == 0, res.stderr[-4000:]
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert warnings == [f"warning: mlflow tracking server {dead} does not answer (ConnectionRefusedError: "
                        f"[Errno 111] Connection refused; waited 5 s); training without mlflow tracking "
                        f"(on_unreachable: continue)"], res.stderr[-4000:]
    assert (tmp_path / "runs" / "notrack" / "checkpoints" / "step_000000002" / "COMPLETE").exists()
