"""DropToken: exact kept count, shared vs per-sample subsets, off in eval and when disabled."""
import torch

import vattfw
from vattfw_plugins.tokenizers._position import DropToken, DropTokenConfig


def test_keeps_exactly_configured_count_at_paper_sizes():
    video = vattfw.build("tokenizer", {"name": "voxel"}, dim=4).train()
    audio = vattfw.build("tokenizer", {"name": "waveform"}, dim=4).train()
    assert video(torch.zeros(2, 32, 224, 224, 3))[0].shape == (2, 784, 4)
    assert audio(torch.zeros(2, 153_600))[0].shape == (2, 600, 4)
    video.eval(), audio.eval()
    assert video(torch.zeros(2, 32, 224, 224, 3))[0].shape == (2, 1568, 4)
    assert audio(torch.zeros(2, 153_600))[0].shape == (2, 1200, 4)


def test_count_comes_from_configured_buckets_not_input_length():
    video = vattfw.build("tokenizer", {"name": "voxel"}, dim=4).train()
    assert video(torch.zeros(1, 32, 320, 320, 3))[0].shape == (1, 784, 4)   # 784 of 3200


def positions(batch: int, length: int) -> torch.Tensor:
    return torch.arange(length, dtype=torch.float32).repeat(batch, 1).unsqueeze(-1)


def test_shared_mode_same_subset_for_every_sample_without_repeats():
    drop = DropToken(DropTokenConfig(rate=0.25), 64, "t").train()
    kept = drop(positions(3, 64))[..., 0]
    assert kept.shape == (3, 16)
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[0], kept[2])
    assert kept[0].unique().numel() == 16


def test_per_sample_mode_draws_independent_subsets():
    torch.manual_seed(0)
    drop = DropToken(DropTokenConfig(rate=0.25, mode="per_sample"), 64, "t").train()
    kept = drop(positions(4, 64))[..., 0]
    assert kept.shape == (4, 16)
    assert all(row.unique().numel() == 16 for row in kept)
    assert not all(torch.equal(kept[0].sort().values, k.sort().values) for k in kept[1:])


def test_disabled_keeps_everything_in_training():
    drop = DropToken(DropTokenConfig(enabled=False), 64, "t").train()
    x = positions(2, 64)
    assert torch.equal(drop(x), x)


def test_spectrogram_tokens_and_droptoken():
    tok = vattfw.build("tokenizer", {"name": "spectrogram"}, dim=4)
    frames = 153_600 // 1008 + 1           # 21 ms hop at 48 kHz, centred STFT
    grid = (frames // 16, 80 // 5)
    assert tok.eval()(torch.zeros(1, 153_600))[0].shape == (1, grid[0] * grid[1], 4)
    assert tok.train()(torch.zeros(1, 153_600))[0].shape == (1, grid[0] * grid[1] // 2, 4)
