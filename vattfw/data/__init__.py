"""Data: webdataset clip shards -> fixed-shape batch dicts (see docs/data.md).

``build_loader(spec, host, process_index, process_count, split)`` is the engine's entry;
``make_loader`` takes the pieces directly (evaluators, tests, benchmarks).
"""
from __future__ import annotations

from typing import Any

from ..errors import Problem, UserError

__all__ = ["Source", "build_loader", "make_loader", "per_host_batch"]


def __getattr__(name: str) -> Any:  # keep `import vattfw.data` light: torch loads on first use
    if name == "Source":
        from .loader import Source
        return Source
    raise AttributeError(name)


def per_host_batch(spec, process_count: int) -> int:
    """Clips per loader batch on one host: global_batch_size / grad_accumulation / process_count
    (one batch = one micro-batch of this host)."""
    from ..spec.batch import per_host_batch as split
    return split(spec.train.global_batch_size, spec.train.grad_accumulation, hosts=process_count)


def build_loader(spec, host=None, process_index: int | None = 0, process_count: int | None = 1,
                 split: str = "train", batch_size: int | None = None):
    """The loader of ``spec.data.sources`` (split='train') or ``spec.data.eval_sources`` ('eval').
    ``process_index=None, process_count=None``: this process's place in the runtime it runs under
    (:func:`vattfw.backend.runtime_process`: torch.distributed or torch_xla; (0, 1) without one)."""
    import vattfw
    if process_index is None or process_count is None:
        from ..backend import runtime_process
        process_index, process_count = runtime_process()
    refs = spec.data.sources if split == "train" else spec.data.eval_sources
    where = "data.sources" if split == "train" else "data.eval_sources"
    if not refs:
        raise UserError(Problem("no datasources configured", path=where))
    sources = [vattfw.build("datasource", ref, host=host) for ref in refs]
    return make_loader(sources, spec.data, batch_size or per_host_batch(spec, process_count),
                       seed=spec.run.seed, process_index=process_index, process_count=process_count, split=split)


def make_loader(sources, data, batch_size: int, seed: int = 0, process_index: int = 0, process_count: int = 1,
                split: str = "train", num_workers: int | None = None):
    """``sources``: list of :class:`Source`; ``data``: a DataSection (or dict of its fields)."""
    from ..spec.data import DataSection
    from .loader import BatchMaker, ClipLoader, fingerprint, resolve
    from .pipeline import Sampler
    if split not in ("train", "eval"):
        raise UserError(Problem(f"split must be 'train' or 'eval', got {split!r}"))
    if not 0 <= process_index < process_count:
        raise UserError(Problem(f"process_index {process_index} outside [0, {process_count})"))
    data = data if isinstance(data, DataSection) else DataSection.model_validate(data)
    shards = [resolve(s, data.io_retries, data.io_backoff_s) for s in sources]
    maker = BatchMaker(list(sources), shards, Sampler(data, split), batch_size, seed, process_index,
                       process_count, split, data.io_retries, data.io_backoff_s, data.max_bad_in_a_row,
                       data.shuffle and split == "train")
    workers = data.num_workers if num_workers is None else num_workers
    if workers == "auto":
        from .decode import default_workers
        workers = default_workers()
    return ClipLoader(maker, workers, data.prefetch, fingerprint(list(sources), shards, data))
