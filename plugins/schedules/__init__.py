"""Built-in schedule components."""
from vattfw import Component, hookimpl

from . import warmup_cosine


@hookimpl
def vattfw_components() -> list[Component]:
    return [Component("schedule", "warmup_cosine", warmup_cosine.Config, warmup_cosine.build)]
