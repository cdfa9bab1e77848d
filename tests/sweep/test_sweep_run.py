"""A toy grid end to end: training, evaluation, the results table, parent/child runs in a real
mlflow server, and resume after the sweep is killed between its points."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.server, pytest.mark.xla]


def _kill_after_first_point(args: list[str], state: Path, timeout: float = 400) -> None:
    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = state.parent.parent / "killed-sweep.log"
    state.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "vattfw"), *args], stdout=subprocess.DEVNULL,
                                stderr=err, env=env, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if state.is_file() and json.loads(state.read_text())["points"].get("svm", {}).get("status") == "finished":
                break
            time.sleep(0.2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, without a chance to clean up
        except ProcessLookupError:  # it ended by itself: reported below with its log
            pass
        rc = proc.wait()
    assert rc == -signal.SIGKILL, f"the sweep ended (rc {rc}) before it could be killed:\n{log.read_text()[-3000:]}"


def test_toy_grid_killed_after_first_point_resumes_with_the_second_only(toy_grid, tmp_path, mlflow_server, cli):
    from mlflow.tracking import MlflowClient
    out = tmp_path / "sweep"
    args = ["sweep", str(toy_grid), "--out", str(out), "--tracking-uri", mlflow_server]
    _kill_after_first_point(args, out / "sweep.json")
    assert json.loads((out / "sweep.json").read_text())["points"].get("lrc", {}).get("status") != "finished"

    res = cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "point svm: finished earlier, skipped" in res.stderr
    assert "point lrc: evaluating" in res.stderr
    assert (out / "svm" / "worker.log").read_text().count("vattfw run svm: finished") == 1  # trained once
    # the table: rows are the points, columns the grid's metrics
    header = next(line for line in res.stdout.splitlines() if "probe/top1" in line)
    assert "train/final_loss" in header
    rows = {line.split()[1]: line for line in res.stdout.splitlines() if line.split()[1:2] in (["svm"], ["lrc"])}
    assert set(rows) == {"svm", "lrc"} and all("finished" in r for r in rows.values())
    table = (out / "results.md").read_text().splitlines()
    assert table[0] == "| point | probe/top1 | train/final_loss |" and len(table) == 4

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("vattfw")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("vattfw.sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"svm", "lrc"}  # the killed sweep's children were reused, not duplicated
    for name, child in children.items():
        assert child.info.status == "FINISHED" and "eval/probe/top1" in child.data.metrics, name
        assert child.data.params["run.name"] == name
    assert "loss" in children["svm"].data.metrics  # the engine's training metrics landed in the child run
    assert parent.info.status == "FINISHED"
    assert {"svm/probe/top1", "lrc/probe/top1"} <= set(parent.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.md", "results.json", "grid.yaml"} <= artifacts

    # new evaluators re-evaluate the final checkpoints; the training is neither rerun nor forgotten
    before = json.loads((out / "sweep.json").read_text())["points"]
    res = cli(*args, "--set", "eval.evaluators.0.top_k=[1, 2]")
    assert res.returncode == 0, res.stderr[-3000:]
    after = json.loads((out / "sweep.json").read_text())["points"]
    assert (out / "svm" / "worker.log").read_text().count("vattfw run svm: finished") == 1
    assert f"pointsvm:evaluating{before['svm']['checkpoint']}" in "".join(res.stderr.split())  # rich wraps lines
    assert after["svm"]["results"]["train/final_loss"] == before["svm"]["results"]["train/final_loss"]
    assert "probe/top2" in after["svm"]["results"] and "probe/top2" in after["lrc"]["results"]
    assert after["svm"]["digest"] == before["svm"]["digest"] != "" and after["svm"]["eval_digest"] != before["svm"]["eval_digest"]
    children = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"svm", "lrc"} and "eval/probe/top2" in children["svm"].data.metrics
    # a changed training spec is refused for a finished point, by name, before anything runs
    res = cli(*args, "--set", "train.steps=3")
    assert res.returncode == 2 and "point svm: finished earlier" in res.stderr and "Traceback" not in res.stderr
