"""`vattfw eval SPEC --checkpoint PATH` as a user runs it (a subprocess), on the tiny model."""
import json

import pytest
import torch
import yaml

from conftest import SMALL_DATA, TINY_MODEL


def shard_urls(root, split):
    n = len(list((root / split).glob("shard-*.tar")))
    return [str(root / split / f"shard-{{000000..{n - 1:06d}}}.tar")]


@pytest.fixture
def eval_setup(eval_media, tmp_path):
    """(spec path, checkpoint folder) for a tiny model with two evaluators."""
    from vattfw import checkpoint as ckpt
    from vattfw.model import build_model
    root, vocab = eval_media
    spec = {
        "run": {"name": "tiny", "output_dir": str(tmp_path / "runs")},
        "model": TINY_MODEL,
        "data": {**SMALL_DATA, "text": {"vocabulary": str(vocab), "max_words": 4, "candidates": 2}},
        "eval": {"evaluators": [
            {"name": "zero_shot_retrieval", "data": [{"name": "webdataset", "urls": shard_urls(root, "test")}],
             "clips": 2},
            {"name": "linear_probe", "modality": "audio", "classifier": "svm", "clips": 2,
             "train": [{"name": "webdataset", "urls": shard_urls(root, "train")}],
             "test": [{"name": "webdataset", "urls": shard_urls(root, "test")}]},
        ]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    folder = ckpt.save(tmp_path / "runs" / "tiny" / "checkpoints", 7, {"model": model.state_dict()},
                       {"spec_hash": "x"}, keep_last=2)
    return path, folder, spec


@pytest.mark.slow
def test_eval_prints_a_table_and_logs_to_mlflow(eval_setup, cli, tmp_path):
    path, folder, _ = eval_setup
    out = tmp_path / "results.json"
    res = cli("eval", str(path), "--checkpoint", str(folder.parent), "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert "zero_shot_retrieval/R1" in res.stdout and "linear_probe/audio_svm/top1" in res.stdout
    assert "(step 7)" in res.stdout
    results = json.loads(out.read_text())
    assert results["step"] == 7 and results["results"]["zero_shot_retrieval/pool"] == 6
    from mlflow.tracking import MlflowClient
    run_dir = tmp_path / "runs" / "tiny"
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}")
    run = client.get_run((run_dir / "mlflow_run_id").read_text().strip())
    # named as the trainer names them (vattfw_eval_end: eval/<tag>/<metric>), next to the training's
    assert run.data.metrics["eval/zero_shot_retrieval/R10"] == 1.0
    assert run.data.metrics["eval/linear_probe/audio_svm/top1"] == pytest.approx(
        results["results"]["linear_probe/audio_svm/top1"])
    assert run.data.metrics["eval/seconds"] > 0


RECORDER = """
import json, os
import vattfw

@vattfw.hookimpl
def vattfw_eval_end(step, results):
    with open(os.environ["RECORD"], "a") as f:
        f.write(json.dumps({"step": step, "names": sorted(results)}) + "\\n")
"""


@pytest.mark.slow
def test_run_and_eval_send_the_same_metric_names_and_no_track_means_the_same(eval_setup, eval_media, cli,
                                                                            tmp_path):
    # a lifecycle plugin (not a tracker) sees vattfw_eval_end from both commands, with --no-track
    path, _, _ = eval_setup
    root, _ = eval_media
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "recorder_plugin.py").write_text(RECORDER)
    record = tmp_path / "record.jsonl"
    env = {"PYTHONPATH": str(tmp_path / "plug"), "RECORD": str(record)}
    name = ["--set", "run.name=trained"]
    train = ["--set", "train.steps=2", "--set", "train.global_batch_size=2", "--set", "checkpoint.every_steps=2",
             "--set", f"data.sources=[{{name: webdataset, urls: {shard_urls(root, 'train')}}}]"]
    res = cli("-p", "recorder_plugin", "run", str(path), *name, *train, "--resume", "never", "--no-track", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = tmp_path / "runs" / "trained"
    res = cli("-p", "recorder_plugin", "eval", str(path), *name, "--checkpoint", str(run_dir / "checkpoints"),
              "--no-track", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    during, after = [json.loads(line) for line in record.read_text().splitlines()]
    assert during == after and during["step"] == 2
    assert {"eval/seconds", "eval/zero_shot_retrieval/R10", "eval/linear_probe/audio_svm/top1"} <= set(during["names"])
    assert not (run_dir / "mlflow.db").exists()  # --no-track: the spec's mlflow tracker was left out, both times


def test_bad_checkpoints_say_what_is_wrong(eval_setup, tmp_path, capsys):
    from vattfw.cli import main
    from vattfw.model import build_model
    path, folder, spec = eval_setup

    def run(checkpoint):
        code = main(["eval", str(path), "--checkpoint", str(checkpoint), "--no-track"])
        return code, capsys.readouterr().err

    code, err = run(tmp_path / "missing")
    assert code == 2 and "checkpoint not found" in err

    other = {**TINY_MODEL, "heads": {"fac": {"name": "fac", "d_va": 24, "d_vt": 8}}}
    torch.save(build_model(other).state_dict(), tmp_path / "other.pt")
    code, err = run(tmp_path / "other.pt")
    assert code == 2 and "heads.fac.video_va.0.weight: model [16, 32] vs checkpoint [24, 32]" in err

    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "other.pt").read_bytes()[:3000])
    code, err = run(cut)
    assert code == 2 and "cannot be read (truncated" in err

    (folder / "model.pt").write_bytes((folder / "model.pt").read_bytes()[:1000])  # inside an engine checkpoint
    code, err = run(folder)
    assert code == 2 and "not a usable vattfw checkpoint: model.pt has 1,000 bytes" in err
