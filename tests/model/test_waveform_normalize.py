"""The waveform tokenizer's per-clip normalisation switch (normalize: none | peak | rms)."""
import torch

import vattfw


def tokenizer(normalize: str):
    torch.manual_seed(0)
    return vattfw.build("tokenizer", {"name": "waveform", "patch": 32, "samples": 256, "normalize": normalize},
                        dim=16).eval()


def test_rms_and_peak_scale_each_clip_independently():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 256, generator=gen) * torch.tensor([[0.01], [0.3], [1.0]])
    rms, peak = tokenizer("rms"), tokenizer("peak")
    expected_rms = x / x.pow(2).mean(1, keepdim=True).sqrt()
    expected_peak = x / x.abs().max(1, keepdim=True).values
    torch.testing.assert_close(rms.scale(x), expected_rms, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(peak.scale(x), expected_peak, rtol=1e-5, atol=1e-6)
    # loudness-invariant tokens: a clip 40 dB quieter gives the same tokens
    torch.testing.assert_close(rms(x * 0.01)[0], rms(x)[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(rms.scale(torch.zeros(2, 256)), torch.zeros(2, 256))  # silence stays silence


def test_none_is_the_released_code_and_default():
    x = torch.randn(2, 256)
    assert torch.equal(tokenizer("none").scale(x), x)
    torch.manual_seed(0)
    default = vattfw.build("tokenizer", {"name": "waveform", "patch": 32, "samples": 256}, dim=16).eval()
    torch.testing.assert_close(default(x)[0], tokenizer("none")(x)[0])
