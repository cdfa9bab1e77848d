"""The data section: sources (datasource plugins) and the sampling pipeline."""
from __future__ import annotations

from pydantic import Field

from .base import Section, plugin


class DataSection(Section):
    sources: list[plugin("datasource")] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Datasource plugins, mixed per batch by their weights.")
    num_workers: int = Field(2, ge=0, description="Loader worker processes per host.")
