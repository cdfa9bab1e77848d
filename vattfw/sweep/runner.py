"""Running a grid: one parent mlflow run, one child run (and one worker process) per point,
a results table, and resume.

State lives in ``<out>/sweep.json``: the parent run id and, per point, two digests of its
resolved spec (what it trains; what it evaluates), its status, checkpoint and results.
Rerunning the same command skips the finished points; an unfinished point resumes from its
newest checkpoint (the engine's ``resume: auto``) and keeps its child run
(``<out>/<point>/mlflow_run_id``, which the mlflow tracker continues).  A finished point whose
evaluators changed is evaluated again from its final checkpoint (no retraining); one whose
training changed is an error, not a silent rerun.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..engine import signals
from ..errors import Problem, UserError
from .grid import PointPlan, plan

STATE = "sweep.json"
RUN_ID_FILE = "mlflow_run_id"  # the mlflow tracker's resume file (plugins/trackers/mlflow.py)


def default_out(grid_path: str | Path, profile: str | None) -> Path:
    name = Path(grid_path).stem
    if profile and profile != "none":
        name += "-" + Path(profile).stem
    return Path("runs") / "sweeps" / name


class Sweep:
    def __init__(self, grid_path: str | Path, overrides: list[str] = (), profile: str | None = None,
                 out: str | Path | None = None, tracking_uri: str | None = None, host: Any = None,
                 plugin_opts: list[str] = (), console: Any = None):
        from rich.console import Console
        self.grid_path = Path(grid_path)
        self.out = Path(out) if out else default_out(grid_path, profile)
        self.console = console or Console(stderr=True)
        self.plugin_opts = list(plugin_opts)
        self.stop_signal: int | None = None
        self._proc: subprocess.Popen | None = None
        forced = self._forced()
        self.grid, self.profile, self.points = plan(grid_path, list(overrides), profile, host, forced)
        self.points = [self._with_mlflow(p, forced[p.name], host) for p in self.points]
        self.state = self._read_state()
        self._check_changed()
        self.uri, self.experiment = self._tracking(tracking_uri)

    # -- planning ------------------------------------------------------------------
    def _forced(self) -> dict[str, list[str]]:
        from .grid import load_grid
        names = [p.name for p in load_grid(self.grid_path).points]
        out = str(self.out.resolve())
        return {n: [f"run.name={n}", f"run.output_dir={out}", "checkpoint.dir=null"] for n in names}

    def _with_mlflow(self, point: PointPlan, forced: list[str], host: Any) -> PointPlan:
        """Every point needs the mlflow tracker: its child run is where its metrics land."""
        from ..spec.loader import load_spec
        if not any(t.name == "mlflow" for t in point.spec.tracking.trackers):
            trackers = [t.model_dump() for t in point.spec.tracking.trackers] + [{"name": "mlflow"}]
            point.overrides = point.overrides + [f"tracking.trackers={json.dumps(trackers)}"]
        point.overrides = point.overrides + forced
        point.spec = load_spec(point.base, point.overrides, host=host)
        return point

    def _tracking(self, cli_uri: str | None) -> tuple[str, str]:
        configs = [next(t.config for t in p.spec.tracking.trackers if t.name == "mlflow") for p in self.points]
        uris = {c.tracking_uri for c in configs}
        exps = {c.experiment for c in configs}
        if len(uris) > 1 or len(exps) > 1:
            raise UserError(Problem(f"{self.grid_path}: the points' mlflow trackers disagree on tracking_uri/"
                                    f"experiment ({sorted(map(str, uris))}, {sorted(exps)}); a sweep logs to one"))
        uri = uris.pop() or cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or self.state.get("tracking_uri") \
            or f"sqlite:///{(self.out / 'mlflow.db').resolve()}"
        return uri, exps.pop()

    def _read_state(self) -> dict:
        path = self.out / STATE
        if path.is_file():
            return json.loads(path.read_text())
        return {"grid": str(self.grid_path), "points": {}}

    def _save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / (STATE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        tmp.replace(self.out / STATE)

    def _check_changed(self) -> None:
        problems = []
        for p in self.points:
            old = self.state["points"].get(p.name)
            if old and old.get("status") == "finished" and old.get("digest") != p.digest:
                problems.append(Problem(f"point {p.name}: finished earlier in {self.out} with another training "
                                        f"spec (changing only eval.* re-evaluates it); "
                                        f"use another --out, or delete {self.out / p.name} and its entry in "
                                        f"{self.out / STATE} to rerun it"))
        if problems:
            raise UserError(problems)

    # -- mlflow --------------------------------------------------------------------
    def _client(self):
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            where = (self.out.resolve() / "mlartifacts").as_uri() if self.uri.startswith("sqlite") else None
            return client, client.create_experiment(self.experiment, artifact_location=where)
        return client, exp.experiment_id

    def _parent(self, client, exp_id: str) -> str:
        run_id = self.state.get("parent_run_id")
        if run_id and self.state.get("tracking_uri") == self.uri:
            try:
                client.get_run(run_id)
                client.update_run(run_id, status="RUNNING")
                return run_id
            except Exception:  # another store, or deleted: start a new parent
                pass
        run = client.create_run(exp_id, run_name=self.grid_path.stem,
                                tags={"vattfw.sweep.grid": str(self.grid_path), "vattfw.sweep": "parent"})
        run_id = run.info.run_id
        client.log_text(run_id, self.grid_path.read_text(), "grid.yaml")
        client.log_text(run_id, self.profile.model_dump_json(indent=1), "profile.json")
        self.state.update(parent_run_id=run_id, tracking_uri=self.uri)
        self._save_state()
        return run_id

    def _child(self, client, exp_id: str, parent: str, point: PointPlan) -> str:
        """The point's child run: the one its run folder names, else one already tagged with this
        parent and point (a sweep killed between creating it and writing the folder's file), else new."""
        run_dir = self.out / point.name
        run_dir.mkdir(parents=True, exist_ok=True)
        id_file = run_dir / RUN_ID_FILE
        run = None
        if id_file.is_file():
            try:
                run = client.get_run(id_file.read_text().strip())
            except Exception:  # another store, or deleted
                run = None
            if run is not None and run.data.tags.get("mlflow.parentRunId") != parent:
                run = None
        if run is None:
            found = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent}' and "
                                                               f"tags.`vattfw.sweep.point` = '{point.name}'")
            run = found[0] if found else None
        if run is None:
            run = client.create_run(exp_id, run_name=point.name, tags={
                "mlflow.parentRunId": parent, "vattfw.sweep.point": point.name, "vattfw.sweep": "point"})
        id_file.write_text(run.info.run_id)
        if "run.name" not in run.data.params:
            self._log_spec(client, run.info.run_id, point)
        return run.info.run_id

    @staticmethod
    def _log_spec(client, run_id: str, point: PointPlan) -> None:
        import yaml
        from mlflow.entities import Param
        from ..engine.tracking import flatten, scrub
        clean = scrub(point.spec.model_dump(mode="json"))
        params = [Param(k, str(v)[:6000]) for k, v in flatten(clean).items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        client.log_text(run_id, yaml.safe_dump(clean, sort_keys=False), "spec.yaml")
        client.log_text(run_id, "\n".join(scrub(point.overrides)) + "\n", "overrides.txt")

    # -- running -------------------------------------------------------------------
    def run(self) -> int:
        client, exp_id = self._client()
        parent = self._parent(client, exp_id)
        failed: list[str] = []
        with signals.handled(self._on_signal):
            for point in self.points:
                if self.stop_signal:
                    break
                done = self.state["points"].get(point.name, {})
                if done.get("status") == "finished" and done.get("eval_digest") == point.eval_digest:
                    self.console.print(f"point {point.name}: finished earlier, skipped")
                    continue
                # trained already (finished, or its re-evaluation was interrupted): evaluate only
                trained = "checkpoint" in done and done.get("digest") == point.digest
                if not self._run_point(client, exp_id, parent, point, done if trained else None):
                    failed.append(point.name)
        rows = self.table()
        self._publish(client, parent, rows)
        status = "KILLED" if self.stop_signal else ("FAILED" if failed else "FINISHED")
        client.set_terminated(parent, status=status)
        if self.stop_signal:
            self.console.print(f"sweep stopped by {signal.Signals(self.stop_signal).name}; rerun the same command "
                               f"to resume (finished points are skipped)")
            return 128 + self.stop_signal
        if failed:
            self.console.print(f"[red]failed points:[/red] {', '.join(failed)} (logs: {self.out}/<point>/worker.log)")
            return 1
        return 0

    def _checkpoint_of(self, point: PointPlan) -> str | None:
        ref = point.checkpoint
        if not ref or not ref.startswith("@"):
            return ref
        got = self.state["points"].get(ref[1:], {})
        if got.get("status") != "finished":
            raise _PointFailed(f"checkpoint {ref}: point {ref[1:]} has not finished")
        return got["checkpoint"]

    def _run_point(self, client, exp_id: str, parent: str, point: PointPlan, earlier: dict | None = None) -> bool:
        """Train (or resume) and evaluate the point; with ``earlier`` (its entry once trained, whose
        evaluators have changed since) only evaluate its final checkpoint again."""
        run_dir = self.out / point.name
        child = self._child(client, exp_id, parent, point)
        entry = {"digest": point.digest, "eval_digest": point.eval_digest, "status": "running", "run_id": child}
        kept = {k: v for k, v in (earlier or {}).get("results", {}).items() if k.startswith("train/")}
        if earlier:
            client.update_run(child, status="RUNNING")
            # so that an interrupted re-evaluation is resumed as one
            entry.update(checkpoint=earlier["checkpoint"], results=kept, seconds=earlier.get("seconds", 0.0))
        self.state["points"][point.name] = entry
        self._save_state()
        start = time.perf_counter()
        try:
            checkpoint = earlier["checkpoint"] if earlier else self._checkpoint_of(point)
            results_file = run_dir / "results.json"
            results_file.unlink(missing_ok=True)
            job = {"spec": str(point.base), "overrides": point.overrides,
                   "checkpoint": checkpoint, "results": str(results_file.resolve()), "plugins": self.plugin_opts}
            (run_dir / "job.json").write_text(json.dumps(job, indent=1))
            self.console.print(f"point {point.name}: {'evaluating ' + checkpoint if checkpoint else 'training'} "
                               f"(log: {run_dir / 'worker.log'})")
            code = self._work(run_dir)
            if code != 0 or not results_file.is_file():
                raise _PointFailed(f"worker exited with status {code}", tail(run_dir / "worker.log"))
        except _PointFailed as exc:
            entry.update(status="interrupted" if self.stop_signal else "failed", error=exc.args[0])
            self._save_state()
            if not self.stop_signal:
                self.console.print(f"[red]point {point.name} failed:[/red] {exc.args[0]}")
                if len(exc.args) > 1 and exc.args[1]:
                    self.console.print(exc.args[1], markup=False, highlight=False)
                client.set_terminated(child, status="FAILED")
            return False
        got = json.loads(results_file.read_text())
        seconds = round(time.perf_counter() - start, 1) + (earlier or {}).get("seconds", 0.0)
        entry.update(status="finished", checkpoint=got["checkpoint"], step=got["step"],
                     results={**kept, **got["results"]}, seconds=seconds)
        entry.pop("error", None)
        self._save_state()
        client.set_tag(child, "vattfw.sweep.status", "finished")
        client.set_terminated(child, status="FINISHED")  # the sweep owns the child run, whatever its trackers did
        missing = [m for m in self.grid.metrics if m not in got["results"]]
        if missing:
            self.console.print(f"[yellow]point {point.name}: no {', '.join(missing)} in its results[/yellow] "
                               f"(it reported: {', '.join(sorted(got['results'])) or 'nothing'})")
        self.console.print(f"point {point.name}: finished in {entry['seconds']:.0f} s")
        return True

    def _work(self, run_dir: Path) -> int:
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.uri, "PYTHONUNBUFFERED": "1"}
        with open(run_dir / "worker.log", "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "vattfw.sweep.worker", str(run_dir / "job.json")],
                                           stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                return self._proc.wait()
            finally:
                self._proc = None

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)  # the engine checkpoints on SIGTERM

    # -- results -------------------------------------------------------------------
    def table(self) -> list[dict]:
        rows = []
        for p in self.points:
            entry = self.state["points"].get(p.name, {})
            results = entry.get("results") or {}
            rows.append({"point": p.name, "status": entry.get("status", "pending"),
                         **{m: results.get(m) for m in self.grid.metrics}})
        return rows

    def _publish(self, client, parent: str, rows: list[dict]) -> None:
        from mlflow.entities import Metric
        md = markdown(rows, self.grid.metrics)
        (self.out / "results.md").write_text(md)
        (self.out / "results.json").write_text(json.dumps(rows, indent=1))
        client.log_text(parent, md, "results.md")
        client.log_dict(parent, {"rows": rows}, "results.json")
        now = int(time.time() * 1000)
        metrics = [Metric(f"{r['point']}/{m}", float(r[m]), now, 0) for r in rows for m in self.grid.metrics
                   if isinstance(r.get(m), (int, float))]
        if metrics:
            client.log_batch(parent, metrics=metrics)
        print_table(rows, self.grid.metrics, f"{self.grid_path.stem}: {self.out}")


class _PointFailed(Exception):
    pass


def tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict], metrics: list[str]) -> str:
    head = ["point", *metrics]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join([r["point"], *(fmt(r.get(m)) for m in metrics)]) + " |")
    return "\n".join(out) + "\n"


def print_table(rows: list[dict], metrics: list[str], title: str) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title)
    table.add_column("point")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("status")
    for r in rows:
        table.add_row(r["point"], *(fmt(r.get(m)) for m in metrics), r["status"])
    Console(width=max(100, 24 + 18 * len(metrics))).print(table)
