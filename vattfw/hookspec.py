"""The vattfw plugin contract, all of it in this file: the hooks a plugin may implement, and for
each kind of component what its ``build`` receives and what the built object provides.

A plugin is any module (or object) registered with vattfw's pluggy manager.  Installed
packages register theirs through the ``vattfw`` entry-point group::

    [project.entry-points.vattfw]
    my_losses = "my_package.losses"

vattfw's own built-ins (``vattfw_plugins``, folder ``plugins/``) use exactly this mechanism.

Two families of hooks exist:

* **Registration** -- :func:`vattfw_components` declares buildable components
  (kind, name, pydantic Config model, build function).  Specs name them as
  ``{name: NAME, ...fields}`` and ``vattfw.build(kind, config, **deps)`` builds them:
  ``build(config, **deps)`` gets the validated Config instance and the dependencies listed
  for its kind below, and returns an object that satisfies that kind's Protocol
  (:class:`Tokenizer`, :class:`Backbone`, :class:`Head`, :class:`Loss`, :class:`Optimizer`,
  :class:`Schedule`, :class:`Datasource`, :class:`Tracker`, :class:`Classifier`,
  :class:`Evaluator`).  A build accepts ``**deps`` and ignores what it does not use: the
  engine may pass more (e.g. ``kernels=`` to optimizers).
* **Lifecycle** -- called by the engine while a run proceeds (``vattfw run``, and ``vattfw eval``
  for the evaluation of a checkpoint), so trackers and callbacks are plugins too.  A built
  tracker is registered with the manager for the duration of its run, so its hook methods are
  called like any other plugin's.

Hook functions are marked with :data:`vattfw.hookimpl`; argument names must match the
specification below (pluggy passes arguments by name, and a plugin may accept a subset of
them).  A marked function whose name is not a hook here (``vattfw_step_ended``) is an error
naming the plugin and the hook, not a function that is silently never called.  ``-p no:NAME``
skips the plugin of entry point NAME.

A plugin writer imports only ``vattfw`` (``Component``, ``PluginConfig``, ``hookimpl``,
``UserError``, ``Problem``, ``build``), this module's Protocols for type hints, and, for an
evaluator, :mod:`vattfw.eval`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping, Protocol, Union

import pluggy

if TYPE_CHECKING:  # annotations only: importing vattfw must not import torch
    import torch
    from torch import nn

    from .host import Component, PluginHost
    from .spec.schema import Spec

PROJECT = "vattfw"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Component kinds the engine builds.  A plugin may declare components of any of these.
KINDS = (
    "tokenizer",
    "backbone",
    "head",
    "loss",
    "optimizer",
    "schedule",
    "datasource",
    "tracker",
    "classifier",
    "evaluator",
)


#: Values a run summary holds: numbers (final_loss, wall_s, clips_per_s, eval/... results),
#: the last checkpoint path and run folder (str, None when there is none), an error line.
SummaryValue = Union[float, int, str, None]


# == what each kind's build receives and returns =========================================
class Tokenizer(Protocol):
    """``build(config, dim: int, **deps) -> Tokenizer``: an ``nn.Module`` (its parameters are
    trained and checkpointed as ``tokenizers.<modality>.*``) turning one modality's batch field
    into tokens of width ``dim``, the width of the modality's backbone.

    ``forward(x)``: video ``[N, T, H, W, 3]`` in [-1, 1], audio ``[N, S]``, text word ids
    ``[N, W]`` (0 = padding) -> ``(tokens [N, S', dim], mask [N, S'] or None)``, mask 1 = a real
    token.  Runs inside the compiled train step: fixed shapes, no ``.item()``."""

    provides_agg: bool  #: position 0 of the tokens already is an aggregation token

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


class Backbone(Protocol):
    """``build(config, shared: dict, modality: str, **deps) -> Backbone``: an ``nn.Module``
    (``backbones.<modality>.*``) encoding one modality's tokens.  ``shared`` is one dict per
    model, passed to every backbone's build, so backbones can share modules (VATT-MA's one
    encoder); ``modality`` says whose backbone this is.

    ``forward(tokens [N, S, width], mask [N, S] or None) -> (pooled [N, dim], sequence [N, S, width])``."""

    width: int  #: the token width its tokenizer must produce (the tokenizer is built with ``dim=width``)
    dim: int  #: the pooled feature's width (``<modality>_pooled``; what heads receive in ``dims``)
    has_agg: bool  #: it prepends its own aggregation token (exactly one of tokenizer and backbone does)

    def __call__(self, tokens: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]: ...


class Head(Protocol):
    """``build(config, dims: dict[str, int], **deps) -> Head``: an ``nn.Module`` (``heads.<name>.*``);
    ``dims`` maps each configured modality to its backbone's pooled width.

    ``forward(features)`` reads ``<modality>_pooled`` entries (only the modalities of the batch
    are present) and returns new outputs, merged into the model's outputs: ``fac`` gives
    ``video_va``, ``audio_va``, ``video_vt``, ``text_vt``; ``linear`` gives ``logits``."""

    def __call__(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


class Loss(Protocol):
    """``build(config, **deps) -> Loss``: one term of ``losses.terms``, called as
    ``loss(x, y, mask) -> scalar tensor`` where ``x`` and ``y`` are the model outputs (or, failing
    that, batch fields such as ``label``) the term names and ``mask`` ``[B]`` (1 = the clip has the
    y modality) or None.  Under SPMD the tensors hold the global batch, so every device's clips
    are negatives without collectives; with ``train.accumulation: cached`` they hold the whole
    optimiser batch (all micro-batches).  Runs inside the compiled step: fixed shapes, no ``.item()``.

    A loss that is an ``nn.Module`` is part of the trained module: its parameters (a learnable
    temperature) and buffers are moved to the device, optimised (a group without weight decay),
    checkpointed as ``losses.terms.<term>.*`` (a submodule ``losses`` of the model; older checkpoints
    without it load) and counted by ``vattfw summary``.  A plain callable owns nothing."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor: ...


class Optimizer(Protocol):
    """``build(config, params, **deps) -> torch.optim.Optimizer``.  ``params`` is a list of
    ``(name, Parameter)`` pairs, or of param groups (dicts whose ``params`` hold such pairs, e.g.
    the loss parameters' group with ``weight_decay: 0``); names let a config select parameters by
    pattern.  The engine sets every group's ``lr`` before each step to the schedule's rate times the
    group's ``lr_scale`` (``train.lr_scale``; absent = 1), so the optimizer's ``step()`` must read
    ``group["lr"]`` there (torch's own do) and keep unknown group keys (torch's do)."""

    param_groups: list[dict]

    def step(self) -> None: ...

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Schedule(Protocol):
    """``build(config, base_lr: float, total_steps: int, **deps) -> Schedule``: ``schedule(step)``
    is the learning rate of ``step`` (0-based), a host float computed each step (never a tensor:
    it is not traced)."""

    def __call__(self, step: int) -> float: ...


class Datasource(Protocol):
    """``build(config, **deps) -> vattfw.data.loader.Source``: url patterns (local paths,
    ``s3://``, ``http(s)://``; ``{000000..000009}`` ranges) of webdataset shards, the source's
    sampling ``weight`` among the spec's sources, the modalities a sample must have
    (``require``) and a display ``name``.  The loader reads, decodes and batches the shards."""

    urls: tuple[str, ...]
    weight: float
    require: tuple[str, ...]
    name: str


class Tracker(Protocol):
    """``build(config, spec: Spec, run_dir: str, **deps) -> Tracker``: an object whose methods
    marked ``@vattfw.hookimpl`` implement any subset of the lifecycle hooks below
    (``vattfw_run_start`` ... ``vattfw_run_end``).  The engine registers it for one run (``vattfw
    run``, or ``vattfw eval`` sending a checkpoint's results) unless ``--no-track`` is given;
    other plugins receive the hooks either way.  ``vattfw_run_end`` comes also after a failure."""


class Classifier(Protocol):
    """``build(config, num_classes: int | None, **deps) -> Classifier``: a classifier trained on
    frozen features (the linear probes).  ``num_classes`` None = max label + 1."""

    def fit(self, features: torch.Tensor, labels: torch.Tensor) -> Classifier:
        """``features [N, d]`` float, ``labels [N]`` class ids; returns itself."""

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """``[M, d] -> [M, num_classes]``, higher = more likely."""


class Evaluator(Protocol):
    """``build(config, **deps) -> Evaluator``: reads the data its config names (its own
    datasource specs, through :func:`vattfw.eval.loader`) and measures a model.

    ``run(model, spec, host)`` gets the model on the spec's device (the model being trained,
    during `vattfw run`; else moved there by the spec's backend): :func:`vattfw.eval.forward` /
    :func:`vattfw.eval.collect` move each batch there and its outputs back to the CPU; the
    run's spec and the plugin host (to build classifiers, datasources), and returns metrics named
    ``<tag>/<metric>`` (e.g. ``zero_shot_retrieval/R10``; mlflow rejects "@" in names), host
    floats.  The model's train/eval mode is restored by the caller.  ``prefix`` (optional) is the
    evaluator's tag, used to label its time."""

    def run(self, model: nn.Module, spec: Spec, host: PluginHost | None = None) -> dict[str, float]: ...


# == hooks ==================================================================================
@hookspec
def vattfw_components() -> list[Component]:
    """Declare the components this plugin provides.

    Return a list of :class:`vattfw.Component`, each naming its ``kind`` (one of
    :data:`KINDS`), a ``name`` unique within that kind across all installed plugins,
    a pydantic ``config`` model (``extra="forbid"``, every field described) and a
    ``build(config, **deps)`` function returning an object of that kind's Protocol above.
    """


@hookspec
def vattfw_run_start(spec: Spec, run_dir: str) -> None:
    """A run begins: ``spec`` is the validated :class:`vattfw.spec.Spec`, ``run_dir``
    the folder that holds its checkpoints and local artefacts."""


@hookspec
def vattfw_step_end(step: int, metrics: dict[str, float]) -> None:
    """A logged training step ended.  ``metrics`` maps names (``loss``,
    ``loss/nce_va``, ``lr``, ``grad_norm``, ``clips_per_s``, ...) to host floats.
    Called from a step closure: never on a device tensor."""


@hookspec
def vattfw_eval_end(step: int, results: dict[str, float]) -> None:
    """Evaluators finished at ``step`` (during training, or `vattfw eval` on a checkpoint of
    that step: the same names either way).  ``results`` maps ``eval/<tag>/<metric>`` (e.g.
    ``eval/zero_shot_retrieval/R10``) to a value, plus ``eval/seconds``, the evaluators' time."""


@hookspec
def vattfw_model_init(report: dict[str, Any]) -> None:
    """A fresh run's model was initialised from another checkpoint (``model.init``), right after
    ``vattfw_run_start``.  ``report``: ``source``, ``totals`` and per-component ``components``
    counts of loaded / resampled / new / ignored tensors, and ``tensors`` (names per kind)."""


@hookspec
def vattfw_checkpoint_saved(step: int, path: str) -> None:
    """A checkpoint for ``step`` was written atomically and is complete at ``path``."""


@hookspec
def vattfw_run_end(status: Literal["finished", "interrupted", "failed"],
                   summary: dict[str, SummaryValue]) -> None:
    """The run ended.  ``status`` is ``"finished"``, ``"interrupted"`` or ``"failed"``;
    ``summary`` holds final metrics and the last checkpoint path (if any)."""
