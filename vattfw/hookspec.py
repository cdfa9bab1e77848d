"""The vattfw plugin contract: every hook a plugin may implement, in one file.

A plugin is any module (or object) registered with vattfw's pluggy manager.  Installed
packages register theirs through the ``vattfw`` entry-point group::

    [project.entry-points.vattfw]
    my_losses = "my_package.losses"

vattfw's own built-ins (``vattfw_plugins``, folder ``plugins/``) use exactly this mechanism.

Two families of hooks exist:

* **Registration** -- :func:`vattfw_components` declares buildable components
  (kind, name, pydantic Config model, build function).  Specs name them as
  ``{name: NAME, ...fields}`` and ``vattfw.build(kind, config)`` builds them.
* **Lifecycle** -- called by the engine while a run proceeds, so trackers and callbacks
  are plugins too.  A built tracker component is registered with the manager for the
  duration of its run, so its hook methods are called like any other plugin's.

Hook functions are marked with :data:`vattfw.hookimpl`; argument names must match
the specification below (pluggy passes arguments by name, and a plugin may accept a
subset of them).
"""
from __future__ import annotations

from typing import Any

import pluggy

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


@hookspec
def vattfw_components() -> list[Any]:
    """Declare the components this plugin provides.

    Return a list of :class:`vattfw.Component`, each naming its ``kind`` (one of
    :data:`KINDS`), a ``name`` unique within that kind across all installed plugins,
    a pydantic ``config`` model (``extra="forbid"``, every field described) and a
    ``build(config, **deps)`` function returning the built object.
    """


@hookspec
def vattfw_run_start(spec: Any, run_dir: str) -> None:
    """A run begins: ``spec`` is the validated :class:`vattfw.spec.Spec`, ``run_dir``
    the folder that holds its checkpoints and local artefacts."""


@hookspec
def vattfw_step_end(step: int, metrics: dict[str, float]) -> None:
    """A logged training step ended.  ``metrics`` maps names (``loss``,
    ``loss/nce_va``, ``lr``, ``grad_norm``, ``clips_per_s``, ...) to host floats.
    Called from a step closure: never on a device tensor."""


@hookspec
def vattfw_eval_end(step: int, results: dict[str, float]) -> None:
    """Evaluators finished at ``step``; ``results`` maps ``evaluator/metric`` to a value."""


@hookspec
def vattfw_checkpoint_saved(step: int, path: str) -> None:
    """A checkpoint for ``step`` was written atomically and is complete at ``path``."""


@hookspec
def vattfw_run_end(status: str, summary: dict[str, Any]) -> None:
    """The run ended.  ``status`` is ``"finished"``, ``"interrupted"`` or ``"failed"``;
    ``summary`` holds final metrics and the last checkpoint path (if any)."""
