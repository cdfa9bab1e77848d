"""Built-in optimizer components."""
from vattfw import Component, hookimpl

from . import adam, adamw, sgd


@hookimpl
def vattfw_components() -> list[Component]:
    return [
        Component("optimizer", "adam", adam.Config, adam.build),
        Component("optimizer", "adamw", adamw.Config, adamw.build),
        Component("optimizer", "sgd", sgd.Config, sgd.build),
    ]
