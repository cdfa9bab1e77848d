"""This host's fp32 matmul peak, measured once per machine and kept in a cache file.

MFU divides by it, so it must not depend on how the process that asks happens to be set up:
it is measured with one thread per core of the machine (never the caller's thread count),
for a few seconds, and stored in ``<cache>/peak_flops.json`` keyed by CPU model, core count
and torch version; every later run and benchmark on the machine reads the same number.
``VATTFW_PEAK_GFLOPS`` overrides it (e.g. a figure measured on a quiet machine).
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch


def cache_dir() -> Path:
    """``$VATTFW_CACHE_DIR``, else ``$XDG_CACHE_HOME/vattfw``, else ``~/.cache/vattfw``."""
    if os.environ.get("VATTFW_CACHE_DIR"):
        return Path(os.environ["VATTFW_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vattfw"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _machine_key() -> str:
    return f"{cpu_model()} | {os.cpu_count()} cores | torch {torch.__version__}"


def measure(threads: int, seconds: float = 2.0, n: int = 1024) -> float:
    """Best fp32 FLOP/s of an n^3 matmul over ``seconds`` with ``threads`` intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)  # not the global RNG: a run's random stream is not ours to move
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        a @ b
        best, start = 0.0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
        return best
    finally:
        torch.set_num_threads(before)


def host_peak_flops(path: Path | None = None) -> float:
    """The cached peak of this machine, measuring and storing it on first use."""
    if os.environ.get("VATTFW_PEAK_GFLOPS"):
        return float(os.environ["VATTFW_PEAK_GFLOPS"]) * 1e9
    path = path or cache_dir() / "peak_flops.json"
    key = _machine_key()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return float(known[key]["flops"])
    threads = os.cpu_count() or 1
    flops = measure(threads)
    known[key] = {"flops": flops, "threads": threads, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "load_average": os.getloadavg()[0]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1))
        tmp.replace(path)
    except OSError:  # a read-only home: measured again next time, nothing else lost
        pass
    return flops
