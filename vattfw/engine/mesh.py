"""The device mesh (axes data, fsdp, tensor) and the sharding plan, checked before compiling.

Plan (partition specs name mesh axes per tensor dimension):
* batch fields: dimension 0 over (data, fsdp), the rest replicated;
* column-parallel Linear (q, k, v, fc1; weight [out, in]): (tensor, fsdp), bias (tensor,);
* row-parallel Linear (o, fc2): (fsdp, tensor), bias replicated;
* every other parameter: its largest dimension that divides by fsdp, over fsdp (ZeRO-3
  style; XLA all-gathers it where it is used); replicated over data.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from torch import nn

from ..errors import Problem, UserError
from ..spec.batch import per_host_batch

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def resolve_mesh(section, devices: int) -> dict[str, int]:
    """Sizes per axis with -1 filled in; UserError naming the axis when they do not fit."""
    sizes = {a: getattr(section, a) for a in AXES}
    fixed = math.prod(s for s in sizes.values() if s != -1)
    wild = [a for a, s in sizes.items() if s == -1]
    if wild:
        if devices % fixed:
            raise UserError(Problem(
                f"the fixed axis sizes multiply to {fixed}, which does not divide the {devices} available "
                f"devices, so {wild[0]}=-1 cannot take the rest", f"mesh.{wild[0]}"))
        sizes[wild[0]] = devices // fixed
    elif fixed != devices:
        raise UserError(Problem(
            f"axis sizes data={sizes['data']} x fsdp={sizes['fsdp']} x tensor={sizes['tensor']} = {fixed}, "
            f"but {devices} devices are available; make the product {devices} or set one axis to -1", "mesh"))
    return sizes


def check_batch(global_batch: int, grad_accumulation: int, process_count: int, sizes: dict[str, int]) -> int:
    """The per-host micro-batch; UserError if it does not split evenly over data x fsdp and the hosts."""
    return per_host_batch(global_batch, grad_accumulation, sizes["data"], sizes["fsdp"], process_count)


def batch_specs(batch: dict) -> dict[str, tuple]:
    return {k: (BATCH_AXES,) + (None,) * (v.dim() - 1) for k, v in batch.items()}


@dataclass
class Plan:
    specs: dict[str, tuple] = field(default_factory=dict)  # parameter name -> partition spec
    column: list[str] = field(default_factory=list)
    row: list[str] = field(default_factory=list)


def plan_model(model: nn.Module, sizes: dict[str, int], column: list[str], row: list[str]) -> Plan:
    """Partition specs for every parameter; UserError if heads or widths do not divide ``tensor``."""
    tp, fsdp = sizes["tensor"], sizes["fsdp"]
    col_re = [re.compile(p) for p in column]
    row_re = [re.compile(p) for p in row]
    plan = Plan()
    problems: list[Problem] = []
    for mod_name, module in model.named_modules():
        heads = getattr(module, "heads", None)
        if isinstance(heads, int) and tp > 1 and heads % tp:
            problems.append(Problem(f"{mod_name} has {heads} attention heads, which do not divide by "
                                    f"tensor={tp}", "mesh.tensor"))
        if not isinstance(module, nn.Linear):
            continue
        out_f, in_f = module.weight.shape
        if any(r.search(mod_name) for r in col_re):
            plan.column.append(mod_name)
            if out_f % tp:
                problems.append(Problem(f"{mod_name} (column-parallel) has {out_f} outputs, which do not "
                                        f"divide by tensor={tp}", "mesh.tensor"))
                continue
            plan.specs[f"{mod_name}.weight"] = ("tensor", "fsdp" if in_f % fsdp == 0 else None)
            if module.bias is not None:
                plan.specs[f"{mod_name}.bias"] = ("tensor",)
        elif any(r.search(mod_name) for r in row_re):
            plan.row.append(mod_name)
            if in_f % tp:
                problems.append(Problem(f"{mod_name} (row-parallel) has {in_f} inputs, which do not divide "
                                        f"by tensor={tp}", "mesh.tensor"))
                continue
            plan.specs[f"{mod_name}.weight"] = ("fsdp" if out_f % fsdp == 0 else None, "tensor")
    if problems:
        raise UserError(problems)
    for name, param in model.named_parameters():
        if name not in plan.specs:
            plan.specs[name] = _fsdp_spec(tuple(param.shape), fsdp)
    return plan


def _fsdp_spec(shape: tuple[int, ...], fsdp: int) -> tuple:
    spec: list = [None] * len(shape)
    if fsdp > 1:
        dims = sorted((d for d in range(len(shape)) if shape[d] % fsdp == 0), key=lambda d: -shape[d])
        if dims:
            spec[dims[0]] = "fsdp"
    return tuple(spec)


def per_device_bytes(model: nn.Module, plan: Plan, sizes: dict[str, int], state_copies: int) -> int:
    """Bytes of parameters, gradients and optimiser state one device holds under ``plan``
    (``state_copies`` optimiser tensors per parameter: 2 for Adam)."""
    total = 0
    for name, p in model.named_parameters():
        split = math.prod(sizes[a] for a in _axes(plan.specs.get(name, ())))
        copies = 1 + ((1 + state_copies) if p.requires_grad else 0)
        total += p.numel() * p.element_size() * copies // split
    return total


def _axes(spec: tuple):
    for entry in spec:
        if isinstance(entry, tuple):
            yield from entry
        elif entry is not None:
            yield entry
