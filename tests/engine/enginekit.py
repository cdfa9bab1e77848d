"""Shared pieces of the engine tests: a tiny VATT spec and a deterministic batch source.

The batch source stands in for the data loader only where a test is about the engine's
mechanics (SPMD equivalence, resume, NaN handling); it honours the loader contract
(fixed-shape CPU tensor dicts, state_dict/load_state_dict/skipped)."""
from __future__ import annotations

from pathlib import Path

import torch

TINY = """
run: {{name: {name}, output_dir: {out}, seed: 0, compile: fast}}
mesh: {{data: -1}}
model:
  tokenizers:
    video: {{name: voxel, patch: [2, 8, 8], buckets: [2, 2, 2], position: {{dropout: {p}}},
            drop_token: {{enabled: {drop}}}}}
    audio: {{name: waveform, patch: 64, samples: 1024, position: {{dropout: {p}}},
            drop_token: {{enabled: {drop}}}}}
    text: {{name: word_embedding, vocab_size: 100, dim: 16, max_words: 4}}
  backbones:
    video: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: {p}, attention_dropout: {p}}}
    audio: {{name: transformer, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: {p}, attention_dropout: {p}}}
    text: {{name: t5, layers: 1, width: 32, mlp_dim: 64, heads: 4, dropout: {p}, attention_dropout: {p}}}
  heads:
    fac: {{name: fac, d_va: 16, d_vt: 8}}
optimizer: {{name: adam, lr: 1.0e-3}}
schedule: {{name: warmup_cosine, warmup_steps: 2, end_lr: 0.0}}
train: {{global_batch_size: 8, steps: 6, log_every: 1}}
checkpoint: {{every_steps: 1000, keep_last: 2}}
tracking: {{trackers: []}}
"""


def write_spec(folder: Path, name: str = "tiny", dropout: float = 0.0, drop_token: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(name=name, out=folder / "runs", p=dropout, drop=str(drop_token).lower()))
    return path


class Batches:
    """Batch ``n`` is a pure function of (seed, n); ``nan_at`` poisons the video of batch n."""

    def __init__(self, batch: int = 8, seed: int = 0, nan_at: int | None = None):
        self.batch, self.seed, self.n, self.nan_at = batch, seed, 0, nan_at

    def __iter__(self):
        while True:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.n)
            b = self.batch
            out = {"video": torch.rand(b, 4, 16, 16, 3, generator=g) * 2 - 1,
                   "audio": torch.rand(b, 1024, generator=g) * 2 - 1,
                   "text": torch.randint(1, 100, (b, 2, 4), generator=g),
                   "text_mask": torch.ones(b), "audio_mask": torch.ones(b)}
            if self.nan_at is not None and self.n == self.nan_at:
                out["video"][0, 0, 0, 0, 0] = float("nan")
            self.n += 1
            yield out

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]

    def skipped(self):
        return {"corrupt": 0}
