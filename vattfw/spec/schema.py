"""The whole spec: one typed model that flows from `vattfw run` to every component."""
from __future__ import annotations

from pydantic import Field

from .base import Section
from .data import DataSection
from .model import ModelSection
from .objective import LossesSection
from .base import plugin
from .run import CheckpointSection, EvalSection, MeshSection, RunSection, TrackingSection, TrainSection


class Spec(Section):
    run: RunSection = Field(default_factory=RunSection, description="Name, seed and output folder.")
    mesh: MeshSection = Field(default_factory=MeshSection, description="Device mesh axes (data, fsdp, tensor).")
    data: DataSection = Field(default_factory=DataSection, description="Training data sources and sampling.")
    model: ModelSection = Field(default_factory=ModelSection, description="Tokenizers, backbones and heads.")
    losses: LossesSection = Field(default_factory=LossesSection, description="Loss terms and how they combine.")
    optimizer: plugin("optimizer") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "adam"}, description="Optimizer plugin, e.g. {name: adam, lr: 1.0e-4}.")
    schedule: plugin("schedule") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "warmup_cosine"}, description="Learning-rate schedule plugin.")
    train: TrainSection = Field(default_factory=TrainSection, description="Batch, steps, accumulation, precision.")
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection, description="Checkpoint cadence and resume.")
    tracking: TrackingSection = Field(default_factory=TrackingSection, description="Experiment trackers.")
    eval: EvalSection = Field(default_factory=EvalSection, description="Evaluators and their cadence.")
