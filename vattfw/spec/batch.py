"""How the global batch splits, checked in one place: into ``grad_accumulation`` micro-batches,
each over the mesh's data x fsdp shards and over the hosts.  The spec's validation asks with the
mesh as far as it is fixed; the engine, once it has counted devices and hosts; the loader, to size
one host's batches."""
from __future__ import annotations

from ..errors import Problem, UserError


def batch_problems(global_batch: int, grad_accumulation: int, data: int | None = None, fsdp: int | None = None,
                   hosts: int = 1) -> list[Problem]:
    """Every way ``global_batch`` fails to split evenly (none: it splits).  ``data``/``fsdp`` None:
    the mesh's axis sizes are not known yet (a -1 axis takes the devices left)."""
    if global_batch % grad_accumulation:
        return [Problem(f"got {grad_accumulation}; global_batch_size {global_batch} must divide by it",
                        "train.grad_accumulation")]
    micro = global_batch // grad_accumulation
    out = []
    if data is not None and fsdp is not None and micro % (data * fsdp):
        out.append(Problem(f"got {global_batch}; each micro-batch ({micro} clips) must divide by the mesh's "
                           f"data x fsdp size ({data} x {fsdp} = {data * fsdp})", "train.global_batch_size"))
    if micro % hosts:
        out.append(Problem(f"got {global_batch}; each micro-batch ({micro} clips) must divide by the {hosts} hosts",
                           "train.global_batch_size"))
    return out


def per_host_batch(global_batch: int, grad_accumulation: int, data: int | None = None, fsdp: int | None = None,
                   hosts: int = 1) -> int:
    """Clips per micro-batch on one host; a UserError naming the field when the batch does not split."""
    problems = batch_problems(global_batch, grad_accumulation, data, fsdp, hosts)
    if problems:
        raise UserError(problems)
    return global_batch // grad_accumulation // hosts
