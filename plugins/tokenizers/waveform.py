"""``waveform`` tokenizer (audio): raw waveform patches (Conv1d, kernel = stride = patch).

Input ``[B, S]`` -> ``[B, S/patch, d]`` with one learned table of ``buckets`` positions (1200 for
3.2 s at 48 kHz and patch 128), LayerNorm on the positions, dropout, DropToken.  Parameters:
``proj``, ``pos.axis0``, ``pos.norm`` (and ``token_norm`` when on).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw

from ._configs import DropTokenConfig, PositionConfig


class Config(vattfw.PluginConfig):
    patch: int = Field(128, ge=1, description="Samples per token (Table 10: 128, 256, 512, 1024).")
    samples: int = Field(153_600, ge=1, description="Configured input length (3.2 s at 48 kHz); sets the buckets.")
    buckets: int | None = Field(None, ge=1, description="Positional buckets; null = samples // patch (1200).")
    position: PositionConfig = Field(default_factory=PositionConfig, description="Positional table.")
    drop_token: DropTokenConfig = Field(default_factory=DropTokenConfig, description="DropToken (training only).")
    normalize: Literal["none", "peak", "rms"] = Field(
        "none", description="Per-clip scaling before the patch projection: none = the stored waveform as is (the "
        "released code); peak = divided by its max |x| (the paper's 'normalized to [-1, 1]' read per clip); rms = "
        "divided by its root mean square (unit power: loudness-invariant, and the tokens' content part is ~0.18 of "
        "the LayerNormed positions at init instead of ~0.01 for a -25 dBFS clip).")
    proj_init: Literal["xavier", "fan_in"] = Field(
        "xavier", description="Patch projection init: xavier = Glorot uniform over fan_in = patch and fan_out = "
        "patch x dim (the released Conv1D; weight std 0.0155 at patch 128, d 64); fan_in = uniform with variance "
        "1 / patch, so a unit-RMS patch gives unit-variance tokens, level with the LayerNormed positions.")
    proj_gain: float = Field(1.0, gt=0, description="Factor on the initial projection weights (after proj_init): "
                             "the content part of each token against the unit-std positions.")

    token_norm: bool = Field(False, description="LayerNorm on each projected patch before the positions are added "
                             "(not in the paper or the code): every token's content at unit scale whatever its "
                             "loudness within the clip (a decaying note's tail counts as much as its onset).")

    def n_buckets(self) -> object:
        return self.buckets or self.samples // self.patch


def build(config: Config, dim: int, **_) -> object:
    from ._waveform import WaveformTokenizer
    return WaveformTokenizer(dim, config.patch, config.samples, config.n_buckets(), config.position, config.drop_token,
                             config.normalize, config.proj_init, config.proj_gain, config.token_norm)
