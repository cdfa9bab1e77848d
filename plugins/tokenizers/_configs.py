"""Config sections shared by the tokenizers (pydantic only: no torch at import)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw

Interp = Literal["spline", "bicubic"]


class PositionConfig(vattfw.PluginConfig):
    interpolation: Interp = Field(
        "spline", description="How tables are resized when the token grid or a checkpoint has another bucket "
        "count: spline = 1-D polyharmonic spline of order 3 on points i/N (the released code; its public "
        "checkpoints were made with it), bicubic = bicubic resampling (the paper's words).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout on the tokens after the positions are added.")
    eps: float = Field(1e-6, gt=0, description="Epsilon of the LayerNorm applied to the position sum only.")


class DropTokenConfig(vattfw.PluginConfig):
    enabled: bool = Field(True, description="Drop tokens in training mode (never in eval). The paper turns it off "
                          "for fine-tuning; the released code leaves it on unless overridden.")
    rate: float = Field(0.5, gt=0, le=1, description="Fraction of tokens KEPT: keeps int(rate x product of the "
                        "configured buckets) tokens (0.5 -> 784 video / 600 audio tokens), as the released code.")
    mode: Literal["shared", "per_sample"] = Field(
        "shared", description="shared = one random subset for the whole batch (the released code); "
        "per_sample = an independent subset per clip.")
