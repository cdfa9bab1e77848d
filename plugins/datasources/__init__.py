"""Built-in datasource components."""
from vattfw import Component, hookimpl

from . import webdataset


@hookimpl
def vattfw_components() -> list[Component]:
    return [Component("datasource", "webdataset", webdataset.Config, webdataset.build)]
