"""Built-in loss components."""
from vattfw import Component, hookimpl

from . import mil_nce, nce


@hookimpl
def vattfw_components() -> list[Component]:
    return [
        Component("loss", "nce", nce.Config, nce.build),
        Component("loss", "mil_nce", mil_nce.Config, mil_nce.build),
    ]
