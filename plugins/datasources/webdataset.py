"""Datasource ``webdataset``: clip shards (see docs/data.md) at local, s3:// or http(s) URLs."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

import vattfw


class Config(vattfw.PluginConfig):
    urls: list[str] = Field(description="Shard URLs or brace patterns, e.g. s3://bucket/clips/shard-{000000..000099}.tar; "
                                        "a single string is accepted.", json_schema_extra={"path": True})
    weight: float = Field(1.0, gt=0, description="Share of every batch, relative to the other sources' weights.")
    require: list[Literal["video", "audio", "text"]] = Field(
        default_factory=lambda: ["video"],
        description="Modalities a sample must have; samples without one are skipped (missing_modality). "
                    "Others, when absent, are zero with mask 0.")
    tag: str = Field("", description="A name for logs and metrics (never the URLs, which may hold secrets).")

    @field_validator("urls", mode="before")
    @classmethod
    def _one(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("urls")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("at least one shard URL is needed")
        return v

    def __repr_args__(self):  # URLs can carry credentials (user:password@, presigned queries)
        from vattfw.data.urls import redact
        for k, v in super().__repr_args__():
            yield (k, [redact(u) for u in v]) if k == "urls" else (k, v)


def build(config: Config, **deps):
    from vattfw.data.loader import Source
    return Source(tuple(config.urls), config.weight, tuple(config.require), config.tag)
