"""A toy data set (ffmpeg-made colour clips with a tone and a caption, class = colour) and a
tiny VATT spec that trains on it for a few steps and probes it, for the sweep tests."""
from pathlib import Path

import pytest

from fixtures.clips import write_clip_shards

TINY_SPEC = """
run: {{name: toy, seed: 0, compile: fast}}
mesh: {{data: -1}}
data:
  sources: [{{name: webdataset, urls: ["{root}/train/shard-{{000000..000001}}.tar"]}}]
  video: {{frames: 4, fps: 4, size: 16}}
  audio: {{sample_rate: 2048}}
  text: {{vocabulary: "{root}/vocab.txt", max_words: 4, candidates: 1}}
  num_workers: 0
model:
  tokenizers:
    video: {{name: voxel, patch: [2, 8, 8], buckets: [2, 2, 2]}}
    audio: {{name: waveform, patch: 64, samples: 2048}}
    text: {{name: word_embedding, vocab_size: 100, dim: 16, max_words: 4}}
  backbones:
    video: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 2, dropout: 0.0, attention_dropout: 0.0}}
    audio: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 2, dropout: 0.0, attention_dropout: 0.0}}
    text: {{name: t5, layers: 1, width: 32, mlp_dim: 64, heads: 2, dropout: 0.0, attention_dropout: 0.0}}
  heads:
    fac: {{name: fac, d_va: 16, d_vt: 8}}
optimizer: {{name: adam, lr: 1.0e-3}}
schedule: {{name: warmup_cosine, warmup_steps: 1, end_lr: 0.0}}
train: {{global_batch_size: 4, steps: 2, log_every: 1}}
checkpoint: {{every_steps: 1000, keep_last: 1}}
eval:
  evaluators:
    - name: linear_probe
      tag: probe
      classifier: {{name: svm}}
      clips: 1
      train: [{{name: webdataset, urls: ["{root}/train/shard-{{000000..000001}}.tar"]}}]
      test: [{{name: webdataset, urls: ["{root}/train/shard-{{000000..000001}}.tar"]}}]
"""


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    return write_clip_shards(tmp_path_factory.mktemp("sweepdata"))


@pytest.fixture
def toy_spec(toy_data, tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC.format(root=toy_data))
    return path


@pytest.fixture
def toy_grid(toy_spec) -> Path:
    """Two points, as in Table 8: ``svm`` trains the tiny model and probes it with an SVM;
    ``lrc`` probes ``svm``'s final checkpoint with the low-rank classifier (no training)."""
    grid = toy_spec.parent / "grid.yaml"
    grid.write_text("description: toy two-point grid\n"
                    "base: tiny.yaml\n"
                    "points:\n"
                    "  - {name: svm, set: [eval.evaluators.0.classifier.name=svm]}\n"
                    "  - {name: lrc, checkpoint: '@svm', set: ['eval.evaluators.0.classifier={name: lrc, steps: 50}']}\n"
                    "metrics: [probe/top1, train/final_loss]\n")
    return grid
