"""Built-in tracker components."""
from vattfw import Component, hookimpl

from . import mlflow


@hookimpl
def vattfw_components() -> list[Component]:
    return [Component("tracker", "mlflow", mlflow.Config, mlflow.build)]
