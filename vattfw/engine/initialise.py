"""``model.init``: a fresh run's model initialised from another run's checkpoint (pretrain ->
fine-tune), matched tensor by tensor, with one report of what happened to every tensor.

Each model tensor is *loaded* (same name and shape), *resampled* (a positional table with another
bucket count: the tokenizer's own ``_load_from_state_dict`` resamples it, as for any checkpoint
load) or *newly initialised* (not in the checkpoint, left out by include/exclude, or -- with
``strict: false`` -- of another shape: it keeps the spec's fresh initialisation, i.e. a new head).
Checkpoint tensors that are not used are *ignored*.  Counts are reported per component
(``backbones.video``, ``heads.classifier``, ...).

Only :func:`read_source` knows checkpoint formats; a distributed checkpoint would be read there.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import Problem, UserError

KINDS = ("loaded", "resampled", "new", "ignored")
FIELD = "model.init.checkpoint"


def read_source(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, description) of an init source: a run folder (its ``checkpoints/``), a
    checkpoints folder or one checkpoint (newest complete; files verified by the checkpoint
    module's loader), or a state-dict file."""
    from .weights import read_checkpoint
    path = Path(path)
    if path.is_dir() and not (path / "meta.json").exists() and (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    try:
        state, step, where = read_checkpoint(path)
    except UserError as exc:
        raise UserError([Problem(p.message, p.path or FIELD, p.file, p.line) for p in exc.problems]) from None
    return state, f"{where}" + (f" (step {step})" if step is not None else "")


def component(name: str) -> str:
    """``backbones.video.layers.0.attn.q.weight`` -> ``backbones.video``."""
    return ".".join(name.split(".")[:2])


def under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass
class InitReport:
    source: str
    names: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def counts(self) -> dict[str, dict[str, int]]:
        """{component: {loaded, resampled, new, ignored}}, components sorted."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KINDS, 0))
        for kind, names in self.names.items():
            for name in names:
                out[component(name)][kind] += 1
        return {k: out[k] for k in sorted(out)}

    def totals(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.names.items()}

    def headline(self) -> str:
        t = self.totals()
        return (f"model.init from {self.source}: {t['loaded']} tensors loaded, {t['resampled']} resampled, "
                f"{t['new']} newly initialised, {t['ignored']} checkpoint tensors ignored")

    def text(self) -> str:
        """The headline and one line per component (what the run prints)."""
        rows = [f"  {c:<24} " + "  ".join(f"{k} {n}" for k, n in counts.items() if n)
                for c, counts in self.counts().items()]
        return "\n".join([self.headline(), *rows])

    def as_dict(self) -> dict[str, Any]:
        """For trackers: source, totals, counts per component and every tensor name per kind."""
        return {"source": self.source, "totals": self.totals(), "components": self.counts(),
                "tensors": {k: sorted(v) for k, v in self.names.items()}}


def plan(own: Mapping[str, torch.Size], theirs: Mapping[str, torch.Size], init: Any, source: str = "") -> InitReport:
    """Classify every tensor (names -> shapes); a UserError for the first strict mismatch."""
    from .weights import RESAMPLED
    report = InitReport(source)
    used: set[str] = set()
    for name, shape in own.items():
        wanted = (not init.include or under(name, init.include)) and not under(name, init.exclude)
        other = theirs.get(name)
        if not wanted:
            kind = "new"
        elif other is None:
            if init.strict and init.include:
                raise UserError(Problem(f"{name} {list(shape)} is under include {init.include} but not in "
                                        f"checkpoint {source}; narrow include or set model.init.strict=false", FIELD))
            kind = "new"
        elif other == shape:
            kind = "loaded"
        elif RESAMPLED.match(name) and other[1:] == shape[1:]:
            kind = "resampled"
        elif init.strict:
            raise UserError(Problem(f"tensor {name} has shape {list(shape)} in the model but {list(other)} in "
                                    f"checkpoint {source}; add its component to model.init.exclude (e.g. "
                                    f"{component(name)!r}) or set model.init.strict=false to keep it fresh", FIELD))
        else:
            kind = "new"
        report.names[kind].append(name)
        if kind in ("loaded", "resampled"):
            used.add(name)
    report.names["ignored"] = [n for n in theirs if n not in used]
    if not used:
        raise UserError(Problem(f"checkpoint {source} shares no tensor with the spec's model (model components: "
                                f"{', '.join(sorted({component(n) for n in own}))}; checkpoint components: "
                                f"{', '.join(sorted({component(n) for n in theirs})) or 'none'}); check the "
                                f"path and model.init.include/exclude", FIELD))
    return report


def apply_init(model: torch.nn.Module, init: Any) -> InitReport:
    """Initialise ``model`` (on the CPU, before sharding) from ``init.checkpoint``; returns the report."""
    state, source = read_source(init.checkpoint)
    own = model.state_dict()
    report = plan({k: v.shape for k, v in own.items()}, {k: v.shape for k, v in state.items()}, init, source)
    chosen = {k: state[k] for k in report.names["loaded"] + report.names["resampled"]}
    try:  # positional tables are resampled by their module's _load_from_state_dict
        result = model.load_state_dict(chosen, strict=False)
    except RuntimeError as exc:  # a third-party table the name pattern took for a resampled one
        raise UserError(Problem(f"checkpoint {source} does not load: {' '.join(str(exc).split())[:300]}",
                                FIELD)) from None
    assert not result.unexpected_keys, result.unexpected_keys  # chosen holds only the model's own names
    return report
