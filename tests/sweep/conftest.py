"""A toy data set (ffmpeg-made colour clips with a tone and a caption, class = colour) and a
tiny VATT spec that trains on it for a few steps and probes it, for the sweep tests."""
import json
import subprocess
from pathlib import Path

import pytest

COLOURS = [("red", 0xD02020, 300), ("green", 0x20C040, 500), ("blue", 0x3030E0, 700)]

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


def _clip(path: Path, rgb: int, freq: int) -> bytes:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=0x{rgb:06X}:size=32x32:rate=4:duration=2",
                    "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=8000:duration=2", "-c:a", "aac",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-threads", "1",
                    "-fflags", "+bitexact", "-shortest", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    from vattfw.data.shards import ShardWriter
    root = tmp_path_factory.mktemp("sweepdata")
    (root / "vocab.txt").write_text("a\nred\ngreen\nblue\nclip\n")
    writer = ShardWriter(root / "train", max_count=3)
    for k, (name, rgb, freq) in enumerate(COLOURS):
        for j in range(2):
            meta = {"label": k, "captions": [f"a {name} clip"], "duration": 2.0,
                    "modalities": ["video", "audio", "text"]}
            data = _clip(root / f"c{k}{j}.mp4", rgb + 0x101010 * j, freq + 40 * j)
            writer.add(f"c{k}{j}", {"mp4": data, "json": json.dumps(meta).encode()}, meta)
    writer.close()
    return root


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
