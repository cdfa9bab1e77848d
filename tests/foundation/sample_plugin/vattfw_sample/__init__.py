"""A third-party vattfw plugin: the `cosine` loss (1 - cosine similarity of paired embeddings)."""
import torch
from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    """Mean of scale * (1 - cos(x_b, y_b)) over the clips whose mask is 1."""

    scale: float = Field(1.0, gt=0, description="Multiplies the loss.")
    eps: float = Field(1e-8, gt=0, description="Guards the norm of all-zero embeddings.")


class CosineLoss(torch.nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config

    def forward(self, x, y, mask=None):
        cos = torch.nn.functional.cosine_similarity(x, y, dim=-1, eps=self.config.eps)
        mask = torch.ones_like(cos) if mask is None else mask
        return self.config.scale * ((1 - cos) * mask).sum() / mask.sum().clamp(min=1)


def build(config: Config) -> CosineLoss:
    return CosineLoss(config)


@vattfw.hookimpl
def vattfw_components():
    return [vattfw.Component("loss", "cosine", Config, build)]
