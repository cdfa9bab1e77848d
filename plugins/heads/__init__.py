"""Built-in head components: fac (common-space projections) and linear (classifier).

A head is ``build(config, dims={modality: pooled width}) -> nn.Module`` whose
``forward(features: dict) -> dict`` reads ``<modality>_pooled`` entries and returns new outputs.
"""
from vattfw import Component, hookimpl

from . import fac, linear


@hookimpl
def vattfw_components() -> list[Component]:
    return [
        Component("head", "fac", fac.Config, fac.build),
        Component("head", "linear", linear.Config, linear.build),
    ]
