"""`vattfw bench`: every ``benchmarks/<suite>.py`` through one entry point, each suite one
mlflow run in the experiment ``vattfw-bench`` (params, metrics, machine description) and a
printed table.

Where suites come from: the ``benchmarks/`` folder of the checkout vattfw runs from (next to
the ``vattfw`` package; an editable install, as scripts/setup.sh makes, or ``pip install -e .``),
or an installed package ``vattfw_benchmarks`` if one exists.  A wheel does not ship them:
setuptools' automatic discovery excludes folders named ``benchmarks``, and benchmarks
measure a checkout, not a deployment.
A suite is a module with ``run(size="paper"|"cpu"|"toy") -> dict`` (a suite without a "cpu" size
raises or runs its paper size):
string/bool values are logged as params, numbers as metrics (or return
``{"params": {...}, "metrics": {...}}``).
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import Problem, UserError

EXPERIMENT = "vattfw-bench"
ORDER = ("model", "data", "loss", "train_throughput", "quality")


def suites_dir() -> Path | None:
    here = Path(__file__).resolve().parents[2] / "benchmarks"
    if here.is_dir():
        return here
    try:
        pkg = importlib.import_module("vattfw_benchmarks")
    except ImportError:
        return None
    return Path(pkg.__file__).parent


def available() -> list[str]:
    folder = suites_dir()
    if folder is None:
        return []
    names = [p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def load_suite(name: str):
    path = suites_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"vattfw_benchmarks.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


def machine() -> dict[str, str]:
    import torch
    from .peak import cpu_model
    out = {"machine.cpu": cpu_model(), "machine.cores": str(len(os.sched_getaffinity(0))),
           "machine.platform": platform.platform(), "machine.python": platform.python_version(),
           "machine.torch": torch.__version__}
    for dist in ("torch_xla", "vattfw", "mlflow"):
        try:
            out[f"machine.{dist}"] = importlib.metadata.version(dist.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            pass
    out["machine.pjrt_device"] = os.environ.get("PJRT_DEVICE", "CPU")
    return out


def split(result: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    if set(result) <= {"params", "metrics"} and result:
        return ({k: str(v) for k, v in result.get("params", {}).items()},
                {k: float(v) for k, v in result.get("metrics", {}).items()})
    params, metrics = {}, {}
    for k, v in result.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            metrics[k] = float(v)
        else:
            params[k] = str(v)
    return params, metrics


def tracking_uri(given: str | None) -> str:
    uri = given or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = Path("bench").resolve()
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def run_suites(names: list[str], size: str = "paper", tracking_uri: str | None = None,
               list_only: bool = False) -> int:
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    known = available()
    if list_only:
        for name in known:
            doc = (load_suite(name).__doc__ or "").strip().splitlines()
            print(f"{name:18s} {doc[0] if doc else ''}")
        return 0
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(Problem(f"unknown benchmark suite(s) {', '.join(unknown)}; available: {', '.join(known)}"))
    import logging
    from mlflow.tracking import MlflowClient
    for logger in ("mlflow", "alembic"):  # a new sqlite store's migrations are not the user's news
        logging.getLogger(logger).setLevel(logging.WARNING)
    uri = globals()["tracking_uri"](tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(EXPERIMENT, artifact_location=_artifacts(uri))
    desc = machine()
    failed = 0
    for name in names or known:
        failed += _one(client, exp_id, name, size, desc)
    print(f"logged to {uri} (experiment {EXPERIMENT})")
    return 1 if failed else 0


def _artifacts(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
    return None


def _one(client, exp_id: str, name: str, size: str, desc: dict[str, str]) -> int:
    from mlflow.entities import Metric, Param
    run = client.create_run(exp_id, run_name=name, tags={"suite": name, "size": size})
    start = time.perf_counter()
    try:
        result = load_suite(name).run(size=size)
    except Exception as exc:  # one broken suite must not hide the others' numbers
        client.set_tag(run.info.run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(run.info.run_id, status="FAILED")
        print(f"{name}: FAILED ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    params, metrics = split(result or {})
    params = {"suite": name, "size": size, **desc, **params}
    metrics["wall_s"] = time.perf_counter() - start
    now = int(time.time() * 1000)
    plist = [Param(k, v[:6000]) for k, v in params.items()]
    mlist = [Metric(k, v, now, 0) for k, v in metrics.items() if math.isfinite(v)]
    for i in range(0, len(plist), 100):
        client.log_batch(run.info.run_id, params=plist[i:i + 100])
    client.log_batch(run.info.run_id, metrics=mlist)
    client.set_terminated(run.info.run_id, status="FINISHED")
    _table(name, size, {k: v for k, v in params.items() if not k.startswith("machine.")}, metrics)
    return 0


def _table(name: str, size: str, params: dict[str, str], metrics: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"bench {name} ({size})")
    table.add_column("name")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4g}")
    for k, v in params.items():
        if k not in ("suite", "size"):
            table.add_row(k, v)
    Console().print(table)
