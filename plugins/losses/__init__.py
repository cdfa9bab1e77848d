"""Built-in loss components (the contract: :class:`vattfw.hookspec.Loss`).  nce and mil_nce own
one parameter when ``learnable_temperature`` is on (log(1/tau)), none otherwise."""
from vattfw import Component, hookimpl

from . import balanced_bce, cross_entropy, mil_nce, nce


@hookimpl
def vattfw_components() -> list[Component]:
    return [
        Component("loss", "nce", nce.Config, nce.build),
        Component("loss", "mil_nce", mil_nce.Config, mil_nce.build),
        Component("loss", "cross_entropy", cross_entropy.Config, cross_entropy.build),
        Component("loss", "balanced_bce", balanced_bce.Config, balanced_bce.build),
    ]
