"""``balanced_bce``: multi-label per-class sigmoid cross-entropy (AudioSet fine-tuning),
summed over classes; with ``balance`` each sample's loss is divided by the in-batch count of
the labels it carries (paper A.3; several labels: the inverse counts are averaged, as the
released code).  x = logits [B, C]; y = multi-hot (or mixed) targets [B, C]; optional mask [B]."""
from __future__ import annotations

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    balance: bool = Field(True, description="Weight samples by the inverse in-batch count of their labels (paper A.3); "
                                            "false = plain mean over samples.")


def build(config: Config, **deps) -> object:
    from ._classification import BalancedBCE
    return BalancedBCE(config.balance)
