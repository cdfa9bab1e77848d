"""The model section: tokenizers, backbones and heads per modality, and where their weights start."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section, plugin

Modality = Literal["video", "audio", "text"]


class InitSection(Section):
    """Start a fresh run from another run's weights (pretrain -> fine-tune).  Applied once, when a
    run starts without a checkpoint of its own; a resumed run loads its own checkpoint and ignores
    this section, which is also why it does not enter the resume digest (spec_hash)."""

    checkpoint: str = Field(
        description="A pretraining run folder (its checkpoints/ newest complete checkpoint), a checkpoints "
                    "folder (newest), one step_NNNNNNNNN folder, or a .pt state-dict file.  The checkpoint may come "
                    "from any spec: tensors are matched by name, unlike `checkpoint.resume`.")
    include: list[str] = Field(
        default_factory=list,
        description="Load only tensors under these dotted prefixes (whole components: 'backbones.video' matches "
                    "backbones.video.* but not backbones.videos); [] = every tensor both sides have.")
    exclude: list[str] = Field(
        default_factory=list,
        description="Never load tensors under these prefixes (e.g. an old classifier: ['heads.classifier']); "
                    "they keep their fresh initialisation.")
    strict: bool = Field(
        True, description="true: a tensor both sides have with other shapes (positional tables excepted: they are "
                          "resampled), or a model tensor under an `include` prefix that the checkpoint lacks, is an "
                          "error naming it; false: such tensors keep their fresh initialisation and are reported.")

    @field_validator("include", "exclude")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        out = [p.strip().rstrip(".") for p in value]
        if any(not p for p in out):
            raise ValueError("prefixes must be non-empty dotted names such as 'backbones.video'")
        return out


class ModelSection(Section):
    tokenizers: dict[Modality, plugin("tokenizer")] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Tokenizer per modality, e.g. video: {name: voxel, patch: [4, 16, 16]}.")
    backbones: dict[Modality, plugin("backbone")] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Backbone per modality, e.g. video: {name: transformer, size: base}.")
    heads: dict[str, plugin("head")] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Named heads on the pooled features, e.g. projection: {name: fac, d_va: 512, d_vt: 256}.")
    init: InitSection | None = Field(
        None, description="Initialise from another run's checkpoint on a fresh start (e.g. fine-tuning from "
                          "pretraining: `--set model.init.checkpoint=runs/pretrain`); none = fresh initialisation.  "
                          "A resumed run loads its own checkpoint instead.")
