"""The mlflow tracker against a real `mlflow server` (sqlite backend) on 127.0.0.1."""
import json

import pytest

from fixtures.processes import run_python
from enginekit import write_spec

pytestmark = [pytest.mark.xla, pytest.mark.server]

CODE = """
import json, sys
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
spec = vattfw.load_spec({path!r}, ["train.steps=4", "train.log_every=2",
    "tracking.trackers=[{{name: mlflow, tracking_uri: '{uri}', experiment: engine-test}}]",
    "data.sources=[{{name: webdataset, urls: ['s3://AKIAKEY:hunter2@bucket/shard-{{000..009}}.tar', 'https://h/x.tar?X-Amz-Signature=sig123']}}]"])
r = Trainer(spec, loader=Batches(), resume="never", progress=False).run()
print("RESULT" + json.dumps({{"status": r.status, "checkpoint": r.summary["checkpoint"]}}))
"""


def test_mlflow_tracker_logs_spec_metrics_and_checkpoint_to_a_real_server(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient
    spec = write_spec(tmp_path, name="tracked")
    res = run_python(CODE.format(path=str(spec), uri=mlflow_server), devices=1, timeout=300,
                     env={"AWS_SECRET_ACCESS_KEY": "envsecret999", "MLFLOW_TRACKING_URI": ""})
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")][-1][6:])
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("engine-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    params = run.data.params
    assert params["train.steps"] == "4" and params["model.backbones.video.width"] == "32"
    assert params["data.sources.0.urls.0"] == "s3://bucket/shard-{000..009}.tar"
    blob = json.dumps(params) + json.dumps(run.data.tags)
    for secret in ("hunter2", "AKIAKEY", "sig123", "envsecret999"):
        assert secret not in blob
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 4]  # the first step, then every log_every
    for name in ("loss/nce_va", "loss/mil_nce_vt", "lr", "grad_norm", "clips_per_s", "mfu", "skipped/corrupt"):
        assert name in run.data.metrics, name
    assert run.data.tags["final_checkpoint"] == out["checkpoint"]
    assert run.data.tags["last_checkpoint"] == out["checkpoint"]
    spec_yaml = client.download_artifacts(run.info.run_id, "spec.yaml", str(tmp_path))
    text = open(spec_yaml).read()
    assert "width: 32" in text and "hunter2" not in text
