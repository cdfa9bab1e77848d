"""`vattfw bench`: every suite once at toy size, each one mlflow run in `vattfw-bench` on a
real server, with the machine description; an unknown suite is a user error."""
import pytest

from fixtures.processes import run_cli
from vattfw.engine.bench import available

pytestmark = [pytest.mark.xla, pytest.mark.server, pytest.mark.slow]


def test_every_suite_runs_at_toy_size_and_is_logged(mlflow_server):
    from mlflow.tracking import MlflowClient
    suites = available()
    assert "train_throughput" in suites
    res = run_cli("bench", "--size", "toy", "--tracking-uri", mlflow_server, timeout=900)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("vattfw-bench")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(suites) <= set(runs)
    for name in suites:
        run = runs[name]
        assert run.info.status == "FINISHED", (name, run.data.tags.get("error"))
        assert run.data.params["size"] == "toy" and int(run.data.params["machine.cores"]) >= 1
        assert "machine.torch_xla" in run.data.params and run.data.metrics
    tt = runs["train_throughput"].data.metrics
    assert tt["eager_clips_per_s"] > 0 and tt["xla_clips_per_s"] > 0 and 0 < tt["xla_mfu"] < 1
    assert f"bench train_throughput (toy)" in res.stdout


def test_unknown_suite_is_a_user_error():
    res = run_cli("bench", "nope")
    assert res.returncode == 2 and "unknown benchmark suite(s) nope; available:" in res.stderr
