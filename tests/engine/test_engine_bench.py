"""`vattfw bench`: every suite once at toy size, each one mlflow run in `vattfw-bench` on a
real server, with the machine description, and the metrics each performance suite promises
(positive rates, finite ratios, threads logged); an unknown suite is a user error."""
import math

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
    check = {"train_throughput": _train_throughput, "data": _data, "accumulation": _accumulation}.get(suite)
    if check:
        check(run.data.metrics, run.data.params)


def _ratio(m: dict, name: str) -> None:
    """Finite and positive, the median-of-steps ratio and the per-round ones ordered (only finite
    metrics reach mlflow: a missing key is a NaN or inf)."""
    assert 0 < m[name] < math.inf, name
    assert 0 < m[f"{name}_round_min"] <= m[f"{name}_round_max"] < math.inf, name


def _train_throughput(m: dict, p: dict) -> None:
    for arm in ("eager", "eager_compile", "torch", "xla"):
        assert m[f"{arm}_clips_per_s"] > 0 and m[f"{arm}_step_s"] > 0, arm
        assert m[f"{arm}_clips_per_s"] == pytest.approx(m["batch"] / m[f"{arm}_step_s"]), arm
        assert 0 < m[f"{arm}_mfu"] < 1 and m[f"{arm}_spread"] >= 0 and m[f"{arm}_compile_s"] >= 0, arm
        assert int(p[f"{arm}_threads"]) >= 1 and p[f"{arm}_interop_threads"] == "1" and p[f"{arm}_cores"], arm
    for name in ("xla_over_eager", "torch_over_eager", "compile_over_eager"):
        _ratio(m, name)
    assert m["xla_over_eager"] == pytest.approx(m["xla_clips_per_s"] / m["eager_clips_per_s"])
    assert int(p["timed_steps_per_arm"]) >= 10 and m["flops_per_step"] > 0 and m["peak_gflops"] > 0
    assert p["eager_attention"].startswith("sdpa") and p["eager_optimizer"] in ("adam (fused)", "adam (foreach)")
    assert p["torch_devices"].startswith("1 (torch") and p["xla_devices"].startswith("1 (xla")


def _data(m: dict, p: dict) -> None:
    for arm in ("loader", "loader_auto", "step"):
        assert m[f"{arm}_clips_per_s"] > 0 and m[f"{arm}_spread"] >= 0, arm
    for name in ("loader_over_step", "loader_auto_over_step"):
        _ratio(m, name)
    assert m["loader_over_step"] == pytest.approx(m["loader_clips_per_s"] / m["step_clips_per_s"])
    import yaml
    from vattfw.engine.bench import suites_dir
    own = yaml.safe_load((suites_dir().parent / "specs" / "quickstart.yaml").read_text())["data"].get("num_workers")
    auto = int(p["params/auto_num_workers"])
    assert auto >= 1 and p["params/quickstart_num_workers"] == str(auto if own in (None, "auto") else own)


def _accumulation(m: dict, p: dict) -> None:
    for arm in ("k1", "k4_cached", "k4_independent"):
        assert m[f"{arm}_step_s"] > 0 and m[f"{arm}_peak_rss_mb"] > 100 and math.isfinite(m[f"{arm}_first_loss"]), arm
    assert int(p["timed_steps_per_arm"]) >= 10 and int(p["threads"]) >= 1


def test_train_throughput_is_a_listed_suite():
    assert "train_throughput" in available()


def test_unknown_suite_is_a_user_error():
    res = run_cli("bench", "nope")
    assert res.returncode == 2 and "unknown benchmark suite(s) nope; available:" in res.stderr
