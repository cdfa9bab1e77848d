"""The model section: tokenizers, backbones and heads per modality."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section, plugin

Modality = Literal["video", "audio", "text"]


class ModelSection(Section):
    tokenizers: dict[Modality, plugin("tokenizer")] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Tokenizer per modality, e.g. video: {name: voxel, patch: [4, 16, 16]}.")
    backbones: dict[Modality, plugin("backbone")] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Backbone per modality, e.g. video: {name: transformer, size: base}.")
    heads: dict[str, plugin("head")] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Named heads on the pooled features, e.g. projection: {name: fac, d_va: 512, d_vt: 256}.")
