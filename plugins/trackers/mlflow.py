"""``mlflow``: logs a run to MLflow (the default tracker).

Where: ``tracking_uri`` from the spec, else ``MLFLOW_TRACKING_URI``, else an embedded local
store in the run folder (``sqlite:///<run_dir>/mlflow.db``, artifacts in
``<run_dir>/mlartifacts``; browse with ``mlflow ui --backend-store-uri sqlite:///...``).
What: the resolved spec (params, dotted keys; the YAML as artifact ``spec.yaml``), every
logged step's metrics (loss, loss/<term>, lr, grad_norm, clips_per_s, mfu, skipped/<reason>),
checkpoint paths (tag ``last_checkpoint``), the ``model.init`` report (artifact
``init_report.json``, tags ``init.source`` / ``init.totals``), the final summary and status.  Credentials are
never logged: the spec is scrubbed (secret-looking keys redacted, URL user info and query
strings removed) and the environment is not read except for MLFLOW_TRACKING_URI itself.
A resumed run (same run folder) continues the same MLflow run.
An http(s) tracking server is checked once at the start (``check_timeout_s``): unreachable,
the run stops there with one line naming the URI, or with ``on_unreachable: continue``
trains without this tracker, saying so (mlflow's own retries would take minutes per call).
"""
from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

import vattfw

RUN_ID_FILE = "mlflow_run_id"


class Config(vattfw.PluginConfig):
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; none = $MLFLOW_TRACKING_URI, else "
                                                       "sqlite:///<run_dir>/mlflow.db (embedded local store).")
    experiment: str = Field("vattfw", description="MLflow experiment name (created if missing).")
    run_name: str | None = Field(None, description="MLflow run name; none = the spec's run.name.")
    log_spec: bool = Field(True, description="Log the resolved spec as params and as the artifact spec.yaml.")
    check_timeout_s: float = Field(10.0, gt=0, le=60, description="Seconds to wait for an http(s) tracking "
                                                                  "server to answer at the start of a run.")
    on_unreachable: Literal["stop", "continue"] = Field(
        "stop", description="An http(s) tracking server that does not answer at the start: stop (one error line "
                            "naming the URI, exit 2) or continue the run without this tracker (one warning line).")


def build(config: Config, spec: Any = None, run_dir: str | None = None, **deps) -> object:
    return MlflowTracker(config)


def resolve_uri(configured: str | None, run_dir: str | Path) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def unreachable(uri: str, timeout: float) -> str:
    """Why the tracking server at ``uri`` does not answer ("" when it does, or is not http)."""
    if not uri.startswith(("http://", "https://")):
        return ""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return ""
    except urllib.error.HTTPError:  # it answered, if not with a 200: reachable
        return ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


class MlflowTracker:
    def __init__(self, config: Config):
        self.config = config
        self.client = None
        self.run_id: str | None = None
        self.off = False  # on_unreachable: continue, and the server did not answer

    # -- hooks -----------------------------------------------------------------
    @vattfw.hookimpl
    def vattfw_run_start(self, spec: Any, run_dir: str) -> None:
        import logging
        from mlflow.tracking import MlflowClient
        for name in ("mlflow", "alembic"):  # the local store's schema migrations are not the user's news
            logging.getLogger(name).setLevel(logging.WARNING)
        local = not (self.config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        uri = resolve_uri(self.config.tracking_uri, run_dir)
        if self._unreachable(uri):
            return
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(self.config.experiment)
        if exp is None:
            where = (Path(run_dir).resolve() / "mlartifacts").as_uri() if local else None
            exp_id = self.client.create_experiment(self.config.experiment, artifact_location=where)
        else:
            exp_id = exp.experiment_id
        self.run_id = self._resume_id(run_dir, exp_id)
        if self.run_id is None:
            run = self.client.create_run(exp_id, run_name=self.config.run_name or spec.run.name,
                                         tags={"vattfw.version": vattfw.__version__})
            self.run_id = run.info.run_id
            (Path(run_dir) / RUN_ID_FILE).write_text(self.run_id)
            if self.config.log_spec:
                self._log_spec(spec)
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    @vattfw.hookimpl
    def vattfw_step_end(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric
        if self.off:
            return
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])

    @vattfw.hookimpl
    def vattfw_eval_end(self, step: int, results: dict[str, float]) -> None:
        self.vattfw_step_end(step, results)

    @vattfw.hookimpl
    def vattfw_model_init(self, report: dict[str, Any]) -> None:
        # An artifact and tags, not params: a fresh start in an existing run folder continues
        # that mlflow run, and params cannot change once logged.
        if self.off:
            return
        totals = report["totals"]
        self.client.log_dict(self.run_id, report, "init_report.json")
        self.client.set_tag(self.run_id, "init.source", str(report["source"]))
        self.client.set_tag(self.run_id, "init.totals", ", ".join(f"{k} {v}" for k, v in totals.items()))

    @vattfw.hookimpl
    def vattfw_checkpoint_saved(self, step: int, path: str) -> None:
        if not self.off:
            self.client.set_tag(self.run_id, "last_checkpoint", str(path))

    @vattfw.hookimpl
    def vattfw_run_end(self, status: str, summary: dict[str, Any]) -> None:
        from mlflow.entities import Metric
        if self.client is None:
            return
        now = int(time.time() * 1000)
        step = int(summary.get("step", 0))
        metrics = [Metric(f"final/{k}", float(v), now, step) for k, v in summary.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
        if summary.get("checkpoint"):
            self.client.set_tag(self.run_id, "final_checkpoint", str(summary["checkpoint"]))
        mlflow_status = {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=mlflow_status)

    # -- helpers ---------------------------------------------------------------
    def _unreachable(self, uri: str) -> bool:
        """True when the run goes on without this tracker; a UserError when it must stop."""
        from vattfw.engine.tracking import scrub_url
        why = unreachable(uri, self.config.check_timeout_s)
        if not why:
            return False
        where = f"mlflow tracking server {scrub_url(uri)} does not answer ({why}; waited {self.config.check_timeout_s:g} s)"
        if self.config.on_unreachable == "continue":
            print(f"warning: {where}; training without mlflow tracking (on_unreachable: continue)", file=sys.stderr)
            self.off = True
            return True
        raise vattfw.UserError(vattfw.Problem(
            f"{where}: start it or fix the URI (tracking_uri / MLFLOW_TRACKING_URI), or set "
            f"tracking.trackers[].on_unreachable: continue to train without it", "tracking.trackers"))

    def _resume_id(self, run_dir: str, exp_id: str) -> str | None:
        path = Path(run_dir) / RUN_ID_FILE
        if not path.is_file():
            return None
        run_id = path.read_text().strip()
        try:
            run = self.client.get_run(run_id)
        except Exception:  # another store, or the run was deleted: start a new one
            return None
        return run_id if run.info.experiment_id == exp_id else None

    def _log_spec(self, spec: Any) -> None:
        import yaml
        from mlflow.entities import Param
        from vattfw.engine.tracking import flatten, scrub
        clean = scrub(spec.model_dump(mode="json"))
        params = [Param(k, str(v)[:6000]) for k, v in flatten(clean).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        self.client.log_text(self.run_id, yaml.safe_dump(clean, sort_keys=False), "spec.yaml")
