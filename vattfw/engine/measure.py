"""Process-per-arm timing for benchmarks: each arm (a way of doing the same work, e.g. eager
PyTorch vs vattfw's XLA step) lives in its own Python process with its threads pinned; the
arms take turns in interleaved rounds, so a change of machine load hits every arm alike; the
result is a median and a spread per arm and per-round ratios.

A suite (``benchmarks/<suite>.py``) declares ``ARMS``: arm name -> ``setup(size) -> Arm``.
The parent calls :func:`compare`; each worker is ``python -m vattfw.engine.measure SUITE ARM
SIZE`` and talks over its stdin / stdout in lines starting with ``@@bench`` (anything else a
library prints is passed through to stderr).  After the rounds each arm's optional ``end()``
reports what only the end of its run knows (peak memory), in :attr:`ArmResult.end`.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

TAG = "@@bench "


@dataclass
class Arm:
    """One arm, built in its worker: ``step()`` does one unit of work and returns when it is
    done (device work included); ``items`` is what one step processes (clips); ``info`` is sent
with "ready" (after set-up and warm-up); ``end()``, if given, after the last round.
``round_start`` / ``round_end``, if given, run untimed around each round's steps (and the
warm-up): an arm with background work (a loader's worker processes) starts it and stops it
there, so it never runs during another arm's turn."""
    step: Callable[[], Any]
    items: int
    info: dict[str, Any] = field(default_factory=dict)
    end: Callable[[], dict[str, Any]] | None = None
    round_start: Callable[[], Any] | None = None
    round_end: Callable[[], Any] | None = None


@dataclass
class ArmResult:
    name: str
    times: list[float]  # seconds per step, every timed step, in order
    rounds: list[float]  # median step time of each round
    items: int
    info: dict[str, Any]
    end: dict[str, Any] = field(default_factory=dict)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> float:
        """(p90 - p10) / median of the timed steps: how much the step time moved."""
        q = statistics.quantiles(self.times, n=10, method="inclusive") if len(self.times) > 1 else [self.times[0]] * 9
        return (q[8] - q[0]) / self.median_s

    @property
    def rate(self) -> float:
        return self.items / self.median_s


# -- threads -------------------------------------------------------------------------

def thread_env(threads: int) -> dict[str, str]:
    """Environment that fixes every thread pool a worker may start before it imports torch."""
    env = dict(os.environ)
    n = str(threads)
    env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, VATTFW_BENCH_THREADS=n,
               TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "2"), PJRT_DEVICE=env.get("PJRT_DEVICE", "CPU"))
    return env


def pin_threads(threads: int) -> dict[str, Any]:
    """In a worker: this process on ``threads`` cores (XLA's CPU runtime sizes its pool by the
    cores it may use), torch's intra-op pool of that size, one inter-op thread.  Returns what
    was set, to be printed and logged."""
    import torch
    cores = sorted(os.sched_getaffinity(0))
    if threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already started by an import: leave it
        pass
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "cores": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
            "omp": os.environ.get("OMP_NUM_THREADS", ""), "mkl": os.environ.get("MKL_NUM_THREADS", "")}


def default_threads() -> int:
    return len(os.sched_getaffinity(0))


# -- parent ----------------------------------------------------------------------------

class _Worker:
    def __init__(self, suite: str, arm: str, size: str, threads: int, warmup: int, log: Callable[[str], None]):
        self.name, self.log = arm, log
        cmd = [sys.executable, "-m", "vattfw.engine.measure", suite, arm, size, str(warmup)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=thread_env(threads), bufsize=1)

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                msg = json.loads(line[len(TAG):])
                if "error" in msg:
                    raise RuntimeError(f"arm {self.name}: {msg['error']}")
                return msg
            sys.stderr.write(line)
        raise RuntimeError(f"arm {self.name}: its process ended (exit status {self.proc.wait()})")

    def ready(self) -> dict:
        return self._read()["ready"]

    def run(self, steps: int) -> list[float]:
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        return self._read()["times"]

    def end(self) -> dict:
        self.proc.stdin.write("-1\n")
        self.proc.stdin.flush()
        return self._read()["end"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("0\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def compare(suite: str, arms: list[str], size: str, rounds: int, steps: int, warmup: int,
            threads: int | None = None, log: Callable[[str], None] | None = None) -> dict[str, ArmResult]:
    """Start one worker per arm (one after another: set-up and compiles do not overlap), then
    ``rounds`` rounds in which each arm in turn times ``steps`` steps (the order rotates every
    round); only one arm runs at any moment."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    threads = threads or default_threads()
    workers: list[_Worker] = []
    infos: dict[str, dict] = {}
    try:
        for arm in arms:
            t0 = time.perf_counter()
            w = _Worker(suite, arm, size, threads, warmup, log)
            workers.append(w)
            infos[arm] = w.ready()
            infos[arm]["setup_s"] = time.perf_counter() - t0
            log(f"arm {arm}: ready in {infos[arm]['setup_s']:.1f} s; " + ", ".join(
                f"{k}={v}" for k, v in infos[arm].items() if k != "setup_s"))
        times: dict[str, list[float]] = {a: [] for a in arms}
        per_round: dict[str, list[float]] = {a: [] for a in arms}
        for r in range(rounds):
            order = workers[r % len(workers):] + workers[:r % len(workers)]
            for w in order:
                got = w.run(steps)
                times[w.name] += got
                per_round[w.name].append(statistics.median(got))
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{a} {per_round[a][-1]:.4g} s" for a in arms))
        ends = {w.name: w.end() for w in workers}
    finally:
        for w in workers:
            w.close()
    return {a: ArmResult(a, times[a], per_round[a], int(infos[a].pop("items")), infos[a], ends[a]) for a in arms}


def ratio(results: dict[str, ArmResult], num: str, den: str) -> dict[str, float]:
    """Speed of ``num`` over ``den`` (> 1 = ``num`` faster): from the medians of all steps, and
    the median / min / max of the per-round ratios (each round's arms ran back to back)."""
    a, b = results[num], results[den]
    per_round = [tb / ta for ta, tb in zip(a.rounds, b.rounds)]
    return {"ratio": b.median_s / a.median_s, "round_median": statistics.median(per_round),
            "round_min": min(per_round), "round_max": max(per_round)}


# -- worker ----------------------------------------------------------------------------

def _send(msg: dict) -> None:
    sys.stdout.write(TAG + json.dumps(msg) + "\n")
    sys.stdout.flush()


def _worker(suite: str, arm_name: str, size: str, warmup: int) -> None:
    pinned = pin_threads(int(os.environ.get("VATTFW_BENCH_THREADS", default_threads())))
    from .bench import load_suite
    module = load_suite(suite)
    try:
        arm = module.ARMS[arm_name](size)
        _round(arm, warmup)
    except Exception as exc:
        _send({"error": f"{type(exc).__name__}: {exc}"})
        raise
    _send({"ready": {**pinned, **arm.info, "items": arm.items, "warmup_steps": warmup}})
    for line in sys.stdin:
        n = int(line)
        if n < 0:
            _send({"end": arm.end() if arm.end else {}})
            continue
        if n == 0:
            return
        _send({"times": _round(arm, n)})


def _round(arm: Arm, steps: int) -> list[float]:
    if arm.round_start:
        arm.round_start()
    try:
        out = []
        for _ in range(steps):
            t = time.perf_counter()
            arm.step()
            out.append(time.perf_counter() - t)
        return out
    finally:
        if arm.round_end:
            arm.round_end()


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
