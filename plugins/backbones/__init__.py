"""Built-in backbone components: transformer (modality-specific), t5 (text), shared (VATT-MA).

A backbone is ``build(config, shared=dict, modality=str) -> nn.Module`` with ``width`` (the token
width its tokenizer must produce), ``dim`` (pooled width), ``has_agg`` and
``forward(tokens, mask) -> (pooled [N, dim], sequence [N, S, width])``.
"""
from vattfw import Component, hookimpl

from . import shared, t5, transformer


@hookimpl
def vattfw_components() -> list[Component]:
    return [
        Component("backbone", "transformer", transformer.Config, transformer.build),
        Component("backbone", "t5", t5.Config, t5.build),
        Component("backbone", "shared", shared.Config, shared.build),
    ]
