"""``model.init``: a fine-tuning model initialised from a pretraining checkpoint (engine format):
what is loaded, resampled, newly initialised and ignored, the values that arrive, include /
exclude / strict, and the errors; then through `vattfw run` on real labelled clips."""
import json

import pytest
import torch
import yaml

from vattfw import UserError
from vattfw import checkpoint as ckpt
from vattfw.engine.initialise import apply_init
from vattfw.model import build_model
from vattfw.spec.model import InitSection

BRANCH = {"tokenizers": {"video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [2, 2, 2],
                                    "drop_token": {"enabled": False}}},  # off in fine-tuning (A.2.5)
          "backbones": {"video": {"name": "transformer", "layers": 1, "width": 32, "mlp_dim": 64, "heads": 4}}}
PRETRAIN = {
    "tokenizers": {**BRANCH["tokenizers"], "audio": {"name": "waveform", "patch": 64, "samples": 1024}},
    "backbones": {**BRANCH["backbones"],
                  "audio": {"name": "transformer", "layers": 1, "width": 32, "mlp_dim": 64, "heads": 4}},
    "heads": {"proj": {"name": "linear", "modality": "audio", "num_classes": 5, "output": "audio_proj"}},
}


def finetune_model(buckets=(2, 3, 3), classes=3):
    section = {"tokenizers": {"video": {**BRANCH["tokenizers"]["video"], "buckets": list(buckets)}},
               "backbones": BRANCH["backbones"],
               "heads": {"classifier": {"name": "linear", "modality": "video", "num_classes": classes}}}
    torch.manual_seed(1)
    return build_model(section)


def save_run(folder, section, step=5):
    """A run folder with one engine checkpoint of a model built from ``section``; its state dict."""
    torch.manual_seed(0)
    state = build_model(section).state_dict()
    ckpt.save(folder / "checkpoints", step, {"model": state}, {"spec_hash": "another-spec"}, keep_last=1)
    return state


@pytest.fixture
def pretrained(tmp_path):
    return tmp_path / "pre", save_run(tmp_path / "pre", PRETRAIN)


def test_report_counts_values_and_resampled_tables(pretrained):
    folder, pre = pretrained
    model = finetune_model()
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("heads.")}
    report = apply_init(model, InitSection(checkpoint=str(folder)))
    counts = report.counts()
    # voxel: proj weight+bias, pos.axis0 (2 buckets: same shape), pos.norm weight+bias; axis1/2 2 -> 3 buckets
    assert counts["tokenizers.video"] == {"loaded": 5, "resampled": 2, "new": 0, "ignored": 0}
    assert counts["backbones.video"]["loaded"] == len([k for k in pre if k.startswith("backbones.video.")])
    assert counts["heads.classifier"] == {"loaded": 0, "resampled": 0, "new": 2, "ignored": 0}
    assert counts["heads.proj"]["ignored"] == 2 and counts["tokenizers.audio"]["ignored"] > 0
    assert counts["backbones.audio"]["ignored"] == counts["backbones.video"]["loaded"]
    assert "step 5" in report.source and "5 resampled" not in report.headline()
    state = model.state_dict()
    for k in report.names["loaded"]:
        assert torch.equal(state[k], pre[k]), k
    # 2 -> 3 buckets: knots at 0 and 1/2, queries at 0, 1/3, 2/3; the natural spline through two
    # points is their line (extended beyond the last knot)
    for axis in (1, 2):
        src = pre[f"tokenizers.video.pos.axis{axis}"].double()
        line = torch.stack([src[0] + (src[1] - src[0]) * (j / 3) / 0.5 for j in range(3)]).float()
        torch.testing.assert_close(state[f"tokenizers.video.pos.axis{axis}"], line)
    for k, v in head_before.items():
        assert torch.equal(state[k], v), f"{k} is a new head: it keeps its fresh initialisation"
    as_dict = report.as_dict()
    assert as_dict["totals"]["new"] == 2 and "heads.classifier.fc.weight" in as_dict["tensors"]["new"]
    json.dumps(as_dict)  # trackers store it as JSON


def test_include_and_exclude_prefixes(pretrained):
    folder, pre = pretrained
    report = apply_init(finetune_model(), InitSection(checkpoint=str(folder), include=["backbones.video"],
                                                      strict=False))
    counts = report.counts()
    # left out by include: fresh in the model, and their checkpoint copies ignored
    assert counts["tokenizers.video"] == {"loaded": 0, "resampled": 0, "new": 7, "ignored": 7}
    assert counts["backbones.video"]["new"] == 0 and counts["backbones.video"]["loaded"] > 0
    assert len(report.names["ignored"]) == len(pre) - counts["backbones.video"]["loaded"]
    report = apply_init(finetune_model(), InitSection(checkpoint=str(folder), exclude=["tokenizers.video.pos"]))
    tok = report.counts()["tokenizers.video"]
    # the five pos tensors stay fresh and their checkpoint copies are ignored; the projection loads
    assert tok == {"loaded": 2, "resampled": 0, "new": 5, "ignored": 5}
    # a prefix names whole components: "backbones.vid" is not "backbones.video"
    with pytest.raises(UserError, match="shares no tensor"):
        apply_init(finetune_model(), InitSection(checkpoint=str(folder), include=["backbones.vid"], strict=False))


def test_strict_names_the_first_mismatch_and_non_strict_keeps_it_fresh(tmp_path):
    folder = tmp_path / "ft4"
    save_run(folder, {**BRANCH, "heads": {"classifier": {"name": "linear", "modality": "video", "num_classes": 4}}})
    with pytest.raises(UserError) as err:
        apply_init(finetune_model(classes=3), InitSection(checkpoint=str(folder)))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("model.init.checkpoint: ")
    assert "heads.classifier.fc.weight has shape [3, 32] in the model but [4, 32] in checkpoint" in msg
    report = apply_init(finetune_model(classes=3), InitSection(checkpoint=str(folder), strict=False))
    assert report.counts()["heads.classifier"] == {"loaded": 0, "resampled": 0, "new": 2, "ignored": 2}
    # strict: a model tensor under an explicit include that the checkpoint lacks
    save_run(tmp_path / "pre", PRETRAIN)
    with pytest.raises(UserError, match=r"heads.classifier.fc.weight \[3, 32\] is under include"):
        apply_init(finetune_model(), InitSection(checkpoint=str(tmp_path / "pre"),
                                                 include=["backbones.video", "heads.classifier"]))


def test_missing_or_foreign_checkpoints(tmp_path):
    with pytest.raises(UserError, match="model.init.checkpoint: checkpoint not found"):
        apply_init(finetune_model(), InitSection(checkpoint=str(tmp_path / "nowhere")))
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="shares no tensor with the spec's model"):
        apply_init(finetune_model(), InitSection(checkpoint=str(tmp_path / "other.pt")))


def test_init_does_not_enter_the_resume_digest():
    import vattfw
    from vattfw.engine.checkpointer import spec_hash
    plain = vattfw.Spec.model_validate({"model": BRANCH})
    with_init = vattfw.Spec.model_validate({"model": {**BRANCH, "init": {"checkpoint": "runs/pre"}}})
    assert spec_hash(plain) == spec_hash(with_init)


def finetune_spec(tmp_path, data):
    """A video fine-tuning spec on the real clip shards (label = colour), periodic evaluation."""
    urls = [str(data / "train" / "shard-{000000..000001}.tar")]
    source = {"name": "webdataset", "require": ["video"], "urls": urls}
    spec = {
        "run": {"name": "ft", "output_dir": str(tmp_path / "runs"), "seed": 7, "compile": "fast"},
        "mesh": {"data": -1},
        "data": {"sources": [source], "num_workers": 0, "video": {"frames": 4, "fps": 4, "size": 16},
                 "augment": {"enabled": False}},
        "model": {"tokenizers": {"video": {**BRANCH["tokenizers"]["video"], "buckets": [2, 3, 3]}},
                  "backbones": BRANCH["backbones"],
                  "heads": {"classifier": {"name": "linear", "modality": "video", "num_classes": 3}}},
        "losses": {"terms": {"classification": {"loss": {"name": "cross_entropy"}, "x": "logits", "y": "label"}}},
        "optimizer": {"name": "sgd", "lr": 1.0e-6},  # small: the weights after 2 steps stay the pretrained ones
        "schedule": {"name": "warmup_cosine", "warmup_steps": 0, "end_lr": 0.0},
        "train": {"global_batch_size": 4, "steps": 2, "log_every": 1},
        "eval": {"every_steps": 1, "evaluators": [{"name": "classification", "clips": 1, "crops": 1,
                                                   "batch_size": 6, "test": [source]}]},
    }
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.xla
@pytest.mark.slow
def test_vattfw_run_initialises_once_evaluates_and_resumes_without_init(tmp_path, cli):
    from fixtures.clips import write_clip_shards
    pre = save_run(tmp_path / "pre", PRETRAIN)
    (tmp_path / "clips").mkdir()
    path = finetune_spec(tmp_path, write_clip_shards(tmp_path / "clips"))
    res = cli("run", str(path), "--set", f"model.init.checkpoint={tmp_path / 'pre'}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "model.init from" in res.stderr and "2 resampled, 2 newly initialised" in res.stderr
    assert "step 1 eval: classification/top1" in res.stderr  # eval.every_steps with the run's own classifier
    run_dir = tmp_path / "runs" / "ft"
    state = torch.load(run_dir / "checkpoints" / "step_000000002" / "model.pt")
    # (run.seed 7's own initialisation is far from these seed-0 weights)
    for k, v in state.items():
        if k.startswith("backbones.video."):
            torch.testing.assert_close(v, pre[k], atol=1e-4, rtol=0)
    report = json.loads(next(run_dir.glob("mlartifacts/**/init_report.json")).read_text())
    assert report["totals"]["new"] == 2 and report["components"]["tokenizers.video"]["resampled"] == 2

    # resuming loads the run's own checkpoint: init is neither read (the path is gone) nor part
    # of the digest that a resumed run must match
    res = cli("run", str(path), "--set", "train.steps=3", "--set", "model.init.checkpoint=/gone", "--no-track")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "model.init" not in res.stderr
    assert (run_dir / "checkpoints" / "step_000000003").is_dir()


@pytest.mark.xla
def test_a_mismatch_is_one_line_from_the_cli(tmp_path, cli):
    save_run(tmp_path / "ft4", {**BRANCH, "heads": {"classifier": {"name": "linear", "modality": "video",
                                                                   "num_classes": 4}}})
    path = finetune_spec(tmp_path, tmp_path / "no-data-needed")
    res = cli("run", str(path), "--no-track", "--set", f"model.init.checkpoint={tmp_path / 'ft4'}")
    assert res.returncode == 2, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "model.init.checkpoint" in lines[0] and "heads.classifier.fc.weight" in lines[0]
    assert "[3, 32] in the model but [4, 32]" in lines[0]


@pytest.mark.xla
@pytest.mark.slow
def test_a_fine_tune_killed_after_a_checkpoint_resumes_to_the_uninterrupted_losses(tmp_path):
    """Fine-tuning from a pretraining checkpoint, SIGKILLed in step 3 (after the step-2
    checkpoint), resumed by the same command: steps 3-4 have the uninterrupted run's losses
    exactly (the init is not applied again; the run's own checkpoint holds the weights)."""
    import os
    from fixtures.clips import write_clip_shards
    from fixtures.processes import REPO, run_cli
    save_run(tmp_path / "pre", PRETRAIN)
    (tmp_path / "clips").mkdir()
    path = finetune_spec(tmp_path, write_clip_shards(tmp_path / "clips"))
    path.write_text(path.read_text().replace("lr: 1.0e-06", "lr: 0.05"))  # the weights move: resume must carry them

    def run(name, kill=""):
        log = tmp_path / f"{name}.steps"
        env = {"VATTFW_STEPLOG": str(log), "VATTFW_KILL_AT": kill,
               "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "engine"), os.environ.get("PYTHONPATH", "")])}
        res = run_cli("-p", "steplog", "run", str(path), "--no-track", "--set", f"run.name={name}",
                      "--set", f"model.init.checkpoint={tmp_path / 'pre'}", "--set", "train.steps=4",
                      "--set", "checkpoint.every_steps=2", "--set", "eval.evaluators=[]", env=env, timeout=600)
        lines = log.with_name(log.name + ".0").read_text().splitlines() if log.with_name(log.name + ".0").exists() else []
        return res, {json.loads(ln)["step"]: json.loads(ln)["loss"] for ln in lines}

    res, straight = run("straight")
    assert res.returncode == 0 and sorted(straight) == [1, 2, 3, 4], res.stderr[-3000:]
    res, _ = run("killed", kill="0:3")
    assert res.returncode == -9 or res.returncode == 137, (res.returncode, res.stderr[-3000:])
    res, resumed = run("killed")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "model.init" not in res.stderr  # resumed from its own step-2 checkpoint
    assert {s: resumed[s] for s in (3, 4)} == {s: straight[s] for s in (3, 4)}, (resumed, straight)
