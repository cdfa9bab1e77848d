"""Running the spec's evaluators on a model: what `vattfw eval` and the engine call."""
from __future__ import annotations

import time
from typing import Any

import torch

from ..errors import Problem, UserError


def cpu_model(model: torch.nn.Module, spec: Any, host: Any = None) -> torch.nn.Module:
    """``model`` itself when it lives on the CPU, else a CPU copy built from the spec (evaluation
    runs eagerly on the CPU; a sharded XLA model's tensors are gathered by ``.cpu()``)."""
    if all(p.device.type == "cpu" for p in model.parameters()):
        return model
    from ..model import build_model
    copy = build_model(spec.model, host)
    copy.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return copy


def run_evaluators(model: torch.nn.Module, spec: Any, host: Any = None, only: list[str] | None = None,
                   timings: dict[str, float] | None = None) -> dict[str, float]:
    """Build and run every evaluator of ``spec.eval.evaluators`` (or those whose name or tag is
    in ``only``); return their merged results.  ``model``'s train/eval mode is restored."""
    import vattfw
    refs = list(spec.eval.evaluators)
    if only:
        known = {r.name for r in refs} | {getattr(r.config, "tag", None) for r in refs}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise UserError(Problem(f"--only {', '.join(unknown)}: the spec's eval.evaluators are "
                                    f"{', '.join(sorted(str(k) for k in known if k)) or 'none'}", "eval.evaluators"))
        refs = [r for r in refs if r.name in only or getattr(r.config, "tag", None) in only]
    if not refs:
        raise UserError(Problem("the spec names no evaluators; add e.g. eval: {evaluators: [{name: "
                                "zero_shot_retrieval, data: [...]}]}", "eval.evaluators"))
    model = cpu_model(model, spec, host)
    was_training = model.training
    results: dict[str, float] = {}
    try:
        for i, ref in enumerate(refs):
            start = time.perf_counter()
            evaluator = vattfw.build("evaluator", ref, host)
            out = evaluator.run(model, spec, host)
            clash = sorted(set(out) & set(results))
            if clash:
                raise UserError(Problem(f"evaluators report the same metric {clash[0]!r}; give them different "
                                        f"`tag`s", f"eval.evaluators.{i}.tag"))
            results.update(out)
            if timings is not None:
                timings[getattr(evaluator, "prefix", None) or ref.name] = time.perf_counter() - start
    finally:
        model.train(was_training)
    return results
