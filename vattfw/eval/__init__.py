"""What an evaluator needs, as public API: a third-party evaluator imports only these names.

* the eval data: :func:`loader` (batches of its own datasource specs; eval views = clips x
  crops consecutive rows per sample, padding rows ``valid = 0``) and :func:`derived_spec`;
* batched feature collection from a frozen model: :func:`collect` (outputs regrouped per sample)
  and :func:`forward` (one modality);
* the model's output names: :func:`pooled` (``video_pooled``), :func:`projected` (``video_vt``),
  :data:`LOGITS`, :data:`MODALITIES`, :data:`SPACES`;
* checkpoints: :func:`load_weights` (a fine-tuning evaluator starts from the pretrained weights);
* metrics: :func:`topk_accuracy`, :func:`retrieval_metrics`, :func:`multilabel_metrics`,
  :func:`check_labels`, and :func:`text_to_video` retrieval over clip pools.

The evaluator contract itself (``build(config) -> obj`` with ``obj.run(model, spec, host) -> dict``)
is :class:`vattfw.hookspec.Evaluator`.  The model an evaluator is given is on the spec's device
(:func:`vattfw.engine.evaluate.device_model`); :func:`forward` moves each batch there and its
outputs back to the CPU, where the metrics are computed.
"""
from ..engine.weights import load_weights
from .data import derived_spec, loader
from .features import LOGITS, MODALITIES, SPACES, collect, forward, pooled, projected
from .metrics import check_labels, multilabel_metrics, retrieval_metrics, topk_accuracy
from .retrieval import text_to_video

__all__ = ["LOGITS", "MODALITIES", "SPACES", "check_labels", "collect", "derived_spec", "forward", "load_weights",
           "loader", "multilabel_metrics", "pooled", "projected", "retrieval_metrics", "text_to_video",
           "topk_accuracy"]
