"""Objective sections: loss terms, optimiser, learning-rate schedule."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Section, plugin


class LossTerm(Section):
    loss: plugin("loss") = Field(description="The loss plugin, e.g. {name: nce, temperature: 0.07}.")  # type: ignore[valid-type]
    weight: float = Field(1.0, ge=0, description="Weight w_i of this term in the total loss.")
    x: str = Field(description="Model output (or, failing that, batch field) used as the anchor side, e.g. 'video_va' or 'logits'.")
    y: str = Field(description="Model output (or, failing that, batch field) used as the candidate/target side, e.g. 'audio_va', 'text_vt' or 'label'.")
    mask: str | None = Field(None, description="Batch field marking clips that have the y modality (e.g. 'text_mask'); none = all valid.")


class LossesSection(Section):
    terms: dict[str, LossTerm] = Field(
        default_factory=lambda: {
            "nce_va": {"loss": {"name": "nce"}, "weight": 1.0, "x": "video_va", "y": "audio_va", "mask": "audio_mask"},
            "mil_nce_vt": {"loss": {"name": "mil_nce"}, "weight": 1.0, "x": "video_vt", "y": "text_vt", "mask": "text_mask"},
        },
        description="Named loss terms; each is logged as loss/<name>.")
    combine: Literal["sum", "normalized"] = Field(
        "sum", description="sum: total = sum w_i L_i (the paper); normalized: sum w_i L_i / sum w_i (the released code).")

    @model_validator(mode="after")
    def _usable(self) -> "LossesSection":
        if not self.terms:
            raise ValueError("terms: at least one loss term is needed")
        if self.combine == "normalized" and sum(t.weight for t in self.terms.values()) <= 0:
            raise ValueError("combine 'normalized' divides by the sum of the term weights, which is 0")
        return self
