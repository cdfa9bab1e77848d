"""`vattfw bench`: every suite once at toy size, each one mlflow run in `vattfw-bench` on a
real server, with the machine description; an unknown suite is a user error."""
import pytest

from fixtures.processes import run_cli
from vattfw.engine.bench import available

pytestmark = [pytest.mark.xla, pytest.mark.server, pytest.mark.slow]


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("suite", available())
def test_each_suite_runs_at_toy_size_and_is_logged(suite, mlflow_server):
    from mlflow.tracking import MlflowClient
    res = run_cli("bench", suite, "--size", "toy", "--tracking-uri", mlflow_server, timeout=1400)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    assert f"bench {suite} (toy)" in res.stdout
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("vattfw-bench")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == suite]
    run = runs[0]  # newest first
    assert run.info.status == "FINISHED", run.data.tags.get("error")
    assert run.data.params["size"] == "toy" and int(run.data.params["machine.cores"]) >= 1
    assert "machine.torch_xla" in run.data.params and "machine.cpu" in run.data.params and run.data.metrics
    if suite == "train_throughput":
        m = run.data.metrics
        assert m["eager_clips_per_s"] > 0 and m["xla_clips_per_s"] > 0 and 0 < m["xla_mfu"] < 1


def test_train_throughput_is_a_listed_suite():
    assert "train_throughput" in available()


def test_unknown_suite_is_a_user_error():
    res = run_cli("bench", "nope")
    assert res.returncode == 2 and "unknown benchmark suite(s) nope; available:" in res.stderr
