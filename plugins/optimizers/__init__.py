"""Built-in optimizer components."""
from vattfw import Component, hookimpl


@hookimpl
def vattfw_components() -> list[Component]:
    return []
