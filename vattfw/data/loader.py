"""Batches from webdataset shards: deterministic, resumable, split by host and worker.

Everything a batch contains is a function of (seed, batch number): that is what makes
resume exact and the output independent of the worker count.

* Each source is an endless stream of *positions*.  Epoch ``e`` of a source visits its
  shards in a seeded order (``shuffle``) and each shard's samples in a seeded order.
  Training streams never end, so no host waits.
* Global batch ``b`` takes ``k_s`` samples from source ``s`` (``k`` from the weights,
  largest remainder; 50/50 gives exactly half each): positions ``b*k_s .. b*k_s + k_s - 1``,
  in a seeded order.  Host (process) ``h`` of ``P`` reads rows ``h*n .. (h+1)*n - 1`` of it
  (``n`` = its batch size), so the global batch does not depend on ``P``: a run on 2
  processes trains on the batches of a run on 1, and resumes onto another process count
  exactly.  (Samples are read by byte range through the tar index, so reading any shard
  costs a host no more than reading its own.)  The eval split gives each host a contiguous
  slice of the samples.
* A sample's crop, flip, colour jitter and time offset come from an RNG seeded with
  (seed, source, epoch, shard, index).  A sample that cannot be used (corrupt, truncated,
  undecodable, missing a required modality, too short) is counted, logged with its shard
  and key, and replaced by a sample drawn from the same epoch with an RNG seeded by
  (seed, source, position, attempt): still deterministic.  Each bad sample is counted once:
  the loader remembers it (across epochs, workers and resume, in its state) and later skips
  it without reading it again, which changes no batch (the same replacement is drawn).
* Worker ``w`` of ``N`` makes batches ``b = w, w+N, ...``; the torch DataLoader hands them
  out in order.  The loader's state is the number of batches handed out (plus the settings
  that must match on resume) -- a few integers.
"""
from __future__ import annotations

import bisect
import hashlib
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from ..errors import DataError, Problem, UserError
from . import tarindex, urls
from .decode import one_torch_thread
from .pipeline import ADJUSTMENTS, REASONS, Sampler, Skip

log = logging.getLogger("vattfw.data")
STATE_VERSION = 1
_BATCH_SALT = 0x5EED_BA7C
MAX_REMEMBERED = 100_000  # bad samples remembered (a few MB of loader state at most)


class TooManyBad(DataError, RuntimeError):
    """Every sample tried for one batch slot was unusable."""


@dataclass(frozen=True)
class Source:
    """A datasource as the loader sees it (built by the ``webdataset`` datasource plugin)."""

    urls: tuple[str, ...]
    weight: float = 1.0
    require: tuple[str, ...] = ("video",)
    name: str = ""

    def __repr__(self) -> str:  # URLs may embed credentials: never print them raw
        return f"Source({self.name or 'webdataset'}, {len(self.urls)} url patterns, weight={self.weight})"


@dataclass
class Shards:
    """A source's shards, resolved: URL and sample index of each."""

    urls: list[str]
    samples: list[list[tarindex.SampleRef]]
    bad: dict[str, int] = field(default_factory=dict)  # skip reason -> count found while indexing

    @property
    def sizes(self) -> list[int]:
        return [len(s) for s in self.samples]


def resolve(source: Source, retries: int = 5, backoff_s: float = 0.5, threads: int = 8) -> Shards:
    """Expand the URL patterns, check every shard exists (a missing one is a UserError naming
    it) and load its index sidecar, or scan the shard when it has none."""
    expanded = [u for pattern in source.urls for u in urls.expand(pattern)]
    if not expanded:
        raise UserError(Problem(f"datasource {source.name!r}: no shard URLs"))

    def one(url: str) -> tuple[list[tarindex.SampleRef], dict[str, int]] | None:
        try:
            text = urls.read_range(url + tarindex.SUFFIX, retries=retries, backoff_s=backoff_s)
            refs = tarindex.loads(text)
            return refs, _empty(refs, url)
        except urls.NotFound:
            pass
        except ValueError:
            log.warning("%s: index sidecar unreadable; scanning the shard", urls.redact(url))
        try:
            blob = urls.read_range(url, retries=retries, backoff_s=backoff_s)
        except urls.NotFound:
            return None
        refs, complete = tarindex.scan(blob, urls.redact(url))
        return refs, ({} if complete else {"corrupt_tar": 1}) or _empty(refs, url)

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            found = list(pool.map(one, expanded))
    except urls.StorageError as exc:
        raise UserError(Problem(f"datasource {source.name or 'webdataset'}: {exc}")) from None
    missing = [urls.redact(u) for u, f in zip(expanded, found) if f is None]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise UserError(Problem(f"datasource {source.name or 'webdataset'}: shard {', '.join(missing[:5])}{more} "
                                f"does not exist" if len(missing) == 1 else
                                f"datasource {source.name or 'webdataset'}: shards {', '.join(missing[:5])}{more} "
                                f"do not exist"))
    bad: dict[str, int] = {}
    for _, b in found:
        for k, v in b.items():
            bad[k] = bad.get(k, 0) + v
    return Shards(expanded, [f[0] for f in found], bad)


def _empty(refs: list, url: str) -> dict[str, int]:
    if refs:
        return {}
    log.warning("%s: the shard holds no sample (an empty tar); it is left out", urls.redact(url))
    return {"empty_shard": 1}


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


class SourceStream:
    """Position -> (epoch, shard, index in shard) for one source on one host."""

    def __init__(self, shards: Shards, seed: int, source_index: int, host: int, hosts: int, shuffle: bool):
        self.sizes = shards.sizes
        # Shards with no usable sample take no part (an empty epoch for a host would never end).
        self.ids = np.array([i for i, n in enumerate(self.sizes) if n > 0], np.int64)
        self.seed, self.src, self.host, self.hosts, self.shuffle = seed, source_index, host, hosts, shuffle
        self._starts = [0]  # cumulative start position of each epoch planned so far
        self._plans: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        if self.epoch_length(0) == 0:
            raise UserError(Problem(f"datasource #{source_index}: host {host} of {hosts} gets no samples "
                                    f"({sum(self.sizes)} samples in {len(self.sizes)} shards)"))

    def _order(self, epoch: int) -> np.ndarray:
        return _rng(self.seed, self.src, epoch, 1).permutation(self.ids) if self.shuffle else self.ids

    def _inner(self, epoch: int, shard: int) -> np.ndarray:
        n = self.sizes[shard]
        return _rng(self.seed, self.src, epoch, 2, shard).permutation(n) if self.shuffle else np.arange(n)

    def epoch_length(self, epoch: int) -> int:
        if len(self.ids) >= self.hosts:
            return int(sum(self.sizes[s] for s in self._order(epoch)[self.host::self.hosts]))
        return sum(self.sizes) // self.hosts

    def plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(shard, index) arrays of this host's samples in epoch order."""
        if epoch in self._plans:
            self._plans.move_to_end(epoch)
            return self._plans[epoch]
        order = self._order(epoch)
        mine = order[self.host::self.hosts] if len(self.ids) >= self.hosts else order
        shard = np.concatenate([np.full(self.sizes[s], s, np.int64) for s in mine] or [np.zeros(0, np.int64)])
        index = np.concatenate([self._inner(epoch, s) for s in mine] or [np.zeros(0, np.int64)])
        if len(self.ids) < self.hosts:
            keep = self.epoch_length(epoch)
            shard, index = shard[self.host::self.hosts][:keep], index[self.host::self.hosts][:keep]
        self._plans[epoch] = (shard, index)
        while len(self._plans) > 3:
            self._plans.popitem(last=False)
        return shard, index

    def epoch_of(self, position: int) -> tuple[int, int]:
        """(epoch, position within that epoch)."""
        while self._starts[-1] <= position:
            self._starts.append(self._starts[-1] + self.epoch_length(len(self._starts) - 1))
        epoch = bisect.bisect_right(self._starts, position) - 1
        return epoch, position - self._starts[epoch]

    def locate(self, position: int) -> tuple[int, int, int]:
        epoch, offset = self.epoch_of(position)
        shard, index = self.plan(epoch)
        return epoch, int(shard[offset]), int(index[offset])

    def replacement(self, position: int, attempt: int) -> int:
        epoch, _ = self.epoch_of(position)
        start = self._starts[epoch]
        length = self.epoch_length(epoch)
        return start + int(_rng(self.seed, self.src, position, attempt, 3).integers(length))


def batch_counts(weights: list[float], batch: int) -> list[int]:
    """Samples per source in every batch: proportional to the weights, largest remainder."""
    total = sum(weights)
    exact = [w / total * batch for w in weights]
    counts = [int(x) for x in exact]
    by_fraction = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_fraction[: batch - sum(counts)]:
        counts[i] += 1
    return counts


def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


class BatchMaker(torch.utils.data.IterableDataset):
    """Makes batch ``b`` from nothing but ``b``; iterated by DataLoader workers."""

    def __repr__(self) -> str:
        return f"BatchMaker({len(self.sources)} sources, batch {self.batch_size})"

    def __init__(self, sources: list[Source], shards: list[Shards], sampler: Sampler, batch_size: int,
                 seed: int, host: int, hosts: int, split: str, retries: int, backoff_s: float,
                 max_bad: int, shuffle: bool):
        super().__init__()
        self.sources, self.shards, self.sampler = sources, shards, sampler
        self.batch_size, self.seed, self.host, self.hosts = batch_size, seed, host, hosts
        self.train = split == "train"
        self.retries, self.backoff_s, self.max_bad = retries, backoff_s, max_bad
        self.first_batch = 0
        self.known_bad: set[tuple[int, int, int]] = set()  # (source, shard, index): skipped unread
        self._aws = urls.aws_environment()
        if self.train:
            # one order of the global batch's samples on every host; each reads its rows of it
            self.counts = batch_counts([s.weight for s in sources], batch_size * hosts)
            self.streams = [SourceStream(sh, seed, i, 0, 1, shuffle) for i, sh in enumerate(shards)]
        else:
            self._eval_plan()

    # -- eval: a finite, ordered, equal-length slice per host ---------------------
    def _eval_plan(self) -> None:
        items = [(s, k, i) for s, sh in enumerate(self.shards) for k, n in enumerate(sh.sizes) for i in range(n)]
        per_host = -(-len(items) // self.hosts)
        lo = self.host * per_host
        self.eval_items = items[lo:lo + per_host]
        self.eval_global_start = lo
        self.eval_per_host = per_host
        self.num_batches = -(-per_host // self.batch_size)

    # -- reading one sample ------------------------------------------------------
    def _load(self, src: int, shard: int, index: int, rng, skipped: list):
        if (src, shard, index) in self.known_bad:
            return None
        ref = self.shards[src].samples[shard][index]
        url = self.shards[src].urls[shard]
        try:
            try:
                blob = urls.read_range(url, ref.start, ref.end, self.retries, self.backoff_s)
            except urls.NotFound:
                raise Skip("unreadable", "object vanished") from None
            if len(blob) < ref.end - ref.start:
                raise Skip("truncated", f"{len(blob)} of {ref.end - ref.start} bytes")
            try:
                members = tarindex.members(ref, blob)
            except EOFError as exc:
                raise Skip("truncated", str(exc)) from None
            return self.sampler(members, self.sources[src].require, rng)
        except Skip as skip:
            reason, detail = skip.reason, skip.detail
        except Exception as exc:  # a decoder crash on hostile bytes must not end the run
            if isinstance(exc, DataError):
                raise
            reason, detail = "undecodable", f"{type(exc).__name__}: {exc}"
        skipped.append((src, shard, index, REASONS.index(reason)))
        if len(self.known_bad) < MAX_REMEMBERED:
            self.known_bad.add((src, shard, index))
        log.warning("skipped %s in %s (%s): %s", ref.key, urls.redact(url), reason, detail)
        return None

    def _train_row(self, src: int, position: int, skipped: list) -> dict[str, torch.Tensor]:
        stream = self.streams[src]
        where = position
        for attempt in range(self.max_bad + 1):
            epoch, shard, index = stream.locate(where)
            rng = _rng(self.seed, src, epoch, shard, index)
            rows = self._load(src, shard, index, rng, skipped)
            if rows is not None:
                return rows[0]
            where = stream.replacement(position, attempt)
        raise TooManyBad(f"datasource #{src} ({self.sources[src].name or 'webdataset'}): {self.max_bad + 1} "
                         f"samples in a row could not be used; see the skipped-sample warnings")

    def make(self, b: int) -> dict[str, torch.Tensor]:
        adjusted = self.sampler.adjusted.copy()
        skipped: list[tuple[int, int, int, int]] = []  # (source, shard, index, reason) newly found bad
        if self.train:
            slots = [(s, b * k + j) for s, k in enumerate(self.counts) for j in range(k)]
            order = _rng(self.seed, _BATCH_SALT, b).permutation(len(slots))
            mine = order[self.host * self.batch_size:(self.host + 1) * self.batch_size]
            out = collate([self._train_row(*slots[i], skipped) for i in mine])
        else:
            out = self._eval_batch(b, skipped)
        out["_bad"] = torch.tensor(skipped, dtype=torch.int64).reshape(-1, 4)
        out["_adjusted"] = torch.from_numpy(self.sampler.adjusted - adjusted)
        return out

    def _eval_batch(self, b: int, skipped: list) -> dict[str, torch.Tensor]:
        views = self.sampler.views()
        rows, valid, sample = [], [], []
        for j in range(b * self.batch_size, (b + 1) * self.batch_size):
            got = None
            if j < len(self.eval_items):
                src, shard, index = self.eval_items[j]
                got = self._load(src, shard, index, None, skipped)
            if got is None:
                rows.extend([self.sampler.blank()] * views)
                valid.extend([0.0] * views)
                sample.extend([-1] * views)
            else:
                rows.extend(got)
                valid.extend([1.0] * views)
                sample.extend([self.eval_global_start + j] * views)
        out = collate(rows)
        out["valid"] = torch.tensor(valid)
        out["sample"] = torch.tensor(sample, dtype=torch.int64)
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, n = (0, 1) if info is None else (info.id, info.num_workers)
        if info is not None:
            urls.apply_environment(self._aws)
        b = self.first_batch + wid
        while self.train or b < self.num_batches:
            try:
                with one_torch_thread():
                    batch = self.make(b)
            except DataError as exc:  # handed over as a batch: a worker's raise would arrive as a traceback text
                yield {"_raise": exc}
                return
            yield batch
            b += n


class ClipLoader:
    """Iterable of batch dicts with exact resume.  ``iter()`` continues from the current
    cursor; ``state_dict()`` after k batches + ``load_state_dict()`` on a fresh loader yields
    batch k+1 onwards exactly as the uninterrupted loader would."""

    def __repr__(self) -> str:
        return f"ClipLoader({len(self.maker.sources)} sources, batch {self.batch_size}, at batch {self.batches})"

    def __init__(self, maker: BatchMaker, num_workers: int = 2, prefetch: int = 2, fingerprint: str = ""):
        self.maker = maker
        self.num_workers = num_workers
        self.prefetch = prefetch
        self.fingerprint = fingerprint
        self.batches = 0
        self._skipped = np.zeros(len(REASONS), np.int64)
        self._adjusted = np.zeros(len(ADJUSTMENTS), np.int64)  # samples used but changed, per reason
        self._bad: dict[tuple[int, int, int], int] = {}  # bad samples found so far -> reason
        for sh in maker.shards:
            for reason, n in sh.bad.items():
                self._skipped[REASONS.index(reason)] += n

    @property
    def batch_size(self) -> int:
        return self.maker.batch_size

    def __len__(self) -> int:
        if self.maker.train:
            raise TypeError("the training loader is endless")
        return self.maker.num_batches

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self.maker.first_batch = self.batches
        self.maker.known_bad.update(self._bad)  # workers start knowing every bad sample found so far
        if self.num_workers == 0:
            it: Any = iter(self.maker)
        else:
            workers = self.num_workers if self.maker.train else max(1, min(self.num_workers,
                                                                           len(self) - self.batches))
            it = iter(torch.utils.data.DataLoader(self.maker, batch_size=None, num_workers=workers,
                                                  prefetch_factor=self.prefetch, persistent_workers=False,
                                                  multiprocessing_context=worker_context()))
        for batch in it:
            if "_raise" in batch:
                raise batch["_raise"]
            self._count(batch.pop("_bad").tolist())
            self._adjusted += batch.pop("_adjusted").numpy()
            self.batches += 1
            yield batch

    def _count(self, rows: list[list[int]]) -> None:
        """Count each bad sample once, though several workers may each meet it first."""
        for src, shard, index, reason in rows:
            key = (src, shard, index)
            if key not in self._bad:
                self._skipped[reason] += 1
                if len(self._bad) < MAX_REMEMBERED:
                    self._bad[key] = reason

    def skipped(self) -> dict[str, int]:
        return {r: int(n) for r, n in zip(REASONS, self._skipped)}

    def adjusted(self) -> dict[str, int]:
        """Samples used but changed, per reason (``pipeline.ADJUSTMENTS``): looped, padded, zero_video..."""
        return {r: int(n) for r, n in zip(ADJUSTMENTS, self._adjusted)}

    def position(self) -> list[dict[str, int]]:
        """Per source: epoch, shard cursor (index in the host's epoch order) and offset in it."""
        if not self.maker.train:
            return []
        out = []
        for stream, k in zip(self.maker.streams, self.maker.counts):
            epoch, offset = stream.epoch_of(self.batches * k)
            shard, _ = stream.plan(epoch)
            starts = np.flatnonzero(np.r_[True, shard[1:] != shard[:-1]])
            cursor = int(np.searchsorted(starts, offset, side="right") - 1)
            first = int(starts[cursor])
            out.append({"position": self.batches * k, "epoch": epoch, "shard_cursor": cursor,
                        "shard_offset": offset - first})
        return out

    def state_dict(self) -> dict[str, Any]:
        m = self.maker
        return {"version": STATE_VERSION, "batches": self.batches, "seed": m.seed, "split": "train" if m.train
                else "eval", "batch_size": m.batch_size, "process_index": m.host, "process_count": m.hosts,
                "fingerprint": self.fingerprint, "sources": self.position(),
                "skipped": self.skipped(), "adjusted": self.adjusted(), "bad": [[*k, r] for k, r in self._bad.items()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        m = self.maker
        if state.get("version") != STATE_VERSION:
            raise UserError(Problem(f"data loader state version {state.get('version')!r}; expected {STATE_VERSION}"))
        # The process count may change (each process reads its rows of the same global batches).
        theirs = {"seed": state.get("seed"), "fingerprint": state.get("fingerprint"),
                  "global batch": int(state.get("batch_size", 0)) * int(state.get("process_count", 1))}
        mine = {"seed": m.seed, "fingerprint": self.fingerprint, "global batch": m.batch_size * m.hosts}
        diff = {k: (theirs[k], v) for k, v in mine.items() if theirs[k] != v}
        if diff:
            raise UserError(Problem("cannot resume the data loader exactly: its settings changed "
                                    + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())))
        self.batches = int(state["batches"])
        self._skipped = np.array([int(state.get("skipped", {}).get(r, 0)) for r in REASONS], np.int64)
        self._adjusted = np.array([int(state.get("adjusted", {}).get(r, 0)) for r in ADJUSTMENTS], np.int64)
        self._bad = {(int(s), int(k), int(i)): int(r) for s, k, i, r in state.get("bad", [])}


def worker_context():
    """Workers come from a fork server, never from a fork of this process: after decoding
    (FFmpeg, OpenMP) or starting the XLA runtime here, a forked child can crash or hang."""
    import multiprocessing as mp
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "numpy", "av", "vattfw.data.pipeline", "vattfw.data.loader"])
    return ctx


def fingerprint(sources: list[Source], shards: list[Shards], data_section) -> str:
    """Digest of what decides the sample order and content (not the worker count)."""
    h = hashlib.sha256()
    for s, sh in zip(sources, shards):
        h.update(repr((s.weight, s.require, [urls.redact(u) for u in sh.urls], sh.sizes)).encode())
    keep = data_section.model_dump(exclude={"sources", "eval_sources", "num_workers", "prefetch",
                                            "io_retries", "io_backoff_s"})
    h.update(repr(sorted(keep.items())).encode())
    return h.hexdigest()[:16]
