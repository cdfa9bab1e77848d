"""Encoder sizes and settings shared by the backbones (pydantic only: no torch at import)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw

SIZES = {  # layers, width, mlp, heads (paper Table 7; xlarge from the released code)
    "small": (6, 512, 2048, 8),
    "base": (12, 768, 3072, 12),
    "medium": (12, 1024, 4096, 16),
    "large": (24, 1024, 4096, 16),
    "xlarge": (24, 1536, 4096, 24),
}
Size = Literal["small", "base", "medium", "large", "xlarge"]


class EncoderConfig(vattfw.PluginConfig):
    size: Size = Field("base", description="Table 7 size: small 6x512x2048x8, base 12x768x3072x12, medium "
                       "12x1024x4096x16, large 24x1024x4096x16, xlarge 24x1536x4096x24.")
    layers: int | None = Field(None, ge=1, description="Override the size's layer count.")
    width: int | None = Field(None, ge=1, description="Override the size's hidden size d.")
    mlp_dim: int | None = Field(None, ge=1, description="Override the size's MLP size.")
    heads: int | None = Field(None, ge=1, description="Override the size's head count (head dim = width / heads).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on residual branches, inside the MLP and after the final norm.")
    attention_dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the attention probabilities.")
    eps: float = Field(1e-6, gt=0, description="LayerNorm epsilon (the released code: 1e-6).")

    def shape(self) -> tuple[int, int, int, int]:
        layers, width, mlp, heads = SIZES[self.size]
        shape = (self.layers or layers, self.width or width, self.mlp_dim or mlp, self.heads or heads)
        if shape[1] % shape[3]:
            raise vattfw.UserError(vattfw.Problem(f"backbone: width {shape[1]} must divide by heads {shape[3]}"))
        return shape
