"""The fine-tuning evaluators: short real runs on the colour clips with the tiny model, trained by
the engine's Trainer."""
import pytest
import torch

import vattfw
from vattfw import UserError
from vattfw_plugins.evaluators import _finetune

from test_eval_evaluators import shards

pytestmark = pytest.mark.xla  # they train through the engine's Trainer (XLA on the CPU)


def finetune_cfg(name, root, **kw):
    return {"name": name, "train": shards(root, "train"), "test": shards(root, "test"), "num_classes": 3,
            "steps": 12, "train_batch_size": 6, "batch_size": 3, "video": {}, "clips": 2,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "schedule": {"name": "warmup_cosine", "warmup_steps": 3, "end_lr": 0.0, "period": "half"}, **kw}


def test_finetune_video_trains_and_reports_12_view_accuracy(eval_spec, tiny_model):
    spec, root = eval_spec
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    ev = vattfw.build("evaluator", finetune_cfg("finetune_video", root, crops=3))
    out = ev.run(tiny_model, spec)
    assert set(out) == {"finetune_video/top1", "finetune_video/top5", "finetune_video/train_loss"}
    assert 0.0 <= out["finetune_video/top1"] <= 1.0 and out["finetune_video/top5"] == 1.0
    assert torch.isfinite(torch.tensor(out["finetune_video/train_loss"]))
    for k, v in tiny_model.state_dict().items():  # the pretrained model is left as it was
        assert torch.equal(v, before[k]), k


def test_finetune_model_interpolates_positions_and_drops_no_tokens(eval_spec, tiny_model):
    spec, _ = eval_spec
    cfg = vattfw.build("evaluator", {"name": "finetune_video", "num_classes": 3,
                                     "video": {"size": 24, "frames": 4}}).config
    ev = vattfw.build("evaluator", cfg)
    grid = ev.grid(spec)
    assert grid == (2, 3, 3)  # 4 frames / 2, 24 px / 8
    ft = _finetune.build_finetune_model(tiny_model, spec, "video", cfg, grid=grid)
    tok = ft.tokenizers["video"]
    assert tok.pos.axis1.shape == (3, 32) and not tok.drop_token.enabled
    old = tiny_model.tokenizers["video"].pos.axis0
    torch.testing.assert_close(tok.pos.axis0, old)  # same bucket count: copied as is
    torch.testing.assert_close(ft.backbones["video"].encoder.norm.weight,
                               tiny_model.backbones["video"].encoder.norm.weight)
    assert set(ft.tokenizers) == {"video"} and ft.heads["classifier"].fc.out_features == 3


def test_finetune_audio_reports_map_auc_dprime(eval_spec, tiny_model):
    spec, root = eval_spec
    ev = vattfw.build("evaluator", finetune_cfg("finetune_audio", root))
    out = ev.run(tiny_model, spec)
    assert set(out) == {"finetune_audio/mAP", "finetune_audio/AUC", "finetune_audio/d_prime",
                        "finetune_audio/train_loss"}
    assert 0 < out["finetune_audio/mAP"] <= 1 and 0 <= out["finetune_audio/AUC"] <= 1


def test_finetune_training_labels_out_of_range_are_named(eval_spec, tiny_model):
    spec, root = eval_spec
    ev = vattfw.build("evaluator", finetune_cfg("finetune_video", root, num_classes=2))
    with pytest.raises(UserError, match=r"train split, batch 0\): sample \d has label 2, expected 0\.\.1"):
        ev.run(tiny_model, spec)
