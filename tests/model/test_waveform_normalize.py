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


def projection(**fields) -> torch.Tensor:
    torch.manual_seed(0)
    config = {"name": "waveform", "patch": 128, "samples": 8192, **fields}
    return vattfw.build("tokenizer", config, dim=64).proj.weight.detach()


def test_projection_init_xavier_default_fan_in_and_gain():
    xavier, fan_in = projection(), projection(proj_init="fan_in")
    # Glorot over fan_in = patch, fan_out = patch x dim (the released Conv1D): std sqrt(2 / (128 + 8192))
    assert abs(xavier.std().item() - (2 / (128 + 128 * 64)) ** 0.5) < 0.03 * 0.0155
    assert abs(fan_in.std().item() - (1 / 128) ** 0.5) < 0.03 * 0.0884
    bound = (3 / 128) ** 0.5
    assert fan_in.abs().max() <= bound and fan_in.abs().max() > 0.99 * bound
    # fan_in: a unit-RMS patch gives tokens of unit variance (before the positions are added)
    x = torch.randn(4096, 128)
    assert abs((x @ fan_in[:, 0].T).var().item() - 1.0) < 0.05
    torch.testing.assert_close(projection(proj_init="fan_in", proj_gain=2.5), 2.5 * fan_in)
    torch.testing.assert_close(projection(proj_gain=1.0), xavier, rtol=0, atol=0)


def test_token_norm_makes_each_patch_gain_invariant_and_is_off_by_default():
    def build(**fields):
        torch.manual_seed(0)
        config = {"name": "waveform", "patch": 32, "samples": 256, "drop_token": {"enabled": False}, **fields}
        return vattfw.build("tokenizer", config, dim=16).eval()
    x = torch.randn(2, 256)
    louder = x.clone()
    louder[:, 64:96] *= 5.0  # the third patch 14 dB up
    normed, plain = build(token_norm=True), build()
    torch.testing.assert_close(normed(louder)[0], normed(x)[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(plain(louder)[0][:, 2], plain(x)[0][:, 2], atol=1e-2)
    # before the positions: zero mean, unit variance over the width, per token
    tokens = normed.token_norm(normed.proj(x.unsqueeze(1)).transpose(1, 2))
    torch.testing.assert_close(tokens.mean(-1), torch.zeros(2, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens.var(-1, unbiased=False), torch.ones(2, 8), atol=1e-3, rtol=0)
    assert "token_norm.weight" in normed.state_dict() and not any("token_norm" in k for k in plain.state_dict())
