"""Built-in evaluator components.

A built evaluator has ``run(model, spec, host=None) -> dict[str, float]`` with metric names
``<tag>/<metric>`` (e.g. ``zero_shot_retrieval/R10`` = R@10: mlflow rejects "@" in names);
it reads the data its config names.
"""
from vattfw import Component, hookimpl

from . import classification, finetune_audio, finetune_image, finetune_video, linear_probe, zero_shot_retrieval


@hookimpl
def vattfw_components() -> list[Component]:
    return [Component("evaluator", "linear_probe", linear_probe.Config, linear_probe.build),
            Component("evaluator", "zero_shot_retrieval", zero_shot_retrieval.Config, zero_shot_retrieval.build),
            Component("evaluator", "finetune_video", finetune_video.Config, finetune_video.build),
            Component("evaluator", "finetune_audio", finetune_audio.Config, finetune_audio.build),
            Component("evaluator", "finetune_image", finetune_image.Config, finetune_image.build),
            Component("evaluator", "classification", classification.Config, classification.build)]
