"""The evaluator plugins end to end: real shards, the real loader, the tiny real model."""
import pytest

import vattfw
from vattfw import UserError


def shards(root, split):
    n = len(list((root / split).glob("shard-*.tar")))
    return [{"name": "webdataset", "urls": [str(root / split / f"shard-{{000000..{n - 1:06d}}}.tar")]}]


@pytest.mark.parametrize("modality,classifier", [("video", {"name": "lrc", "steps": 300}), ("audio", "svm")])
def test_linear_probe_learns_the_colour_classes(eval_spec, tiny_model, modality, classifier):
    spec, root = eval_spec
    ev = vattfw.build("evaluator", {"name": "linear_probe", "modality": modality, "classifier": classifier,
                                    "train": shards(root, "train"), "test": shards(root, "test"), "clips": 2})
    out = ev.run(tiny_model, spec)
    name = classifier["name"] if isinstance(classifier, dict) else classifier
    assert set(out) == {f"linear_probe/{modality}_{name}/top1", f"linear_probe/{modality}_{name}/top5"}
    # 3 colour (and pitch) classes: a random network's features still separate them
    assert out[f"linear_probe/{modality}_{name}/top1"] >= 0.8
    assert out[f"linear_probe/{modality}_{name}/top5"] == 1.0


def test_zero_shot_retrieval_over_the_whole_split(eval_spec, tiny_model):
    spec, root = eval_spec
    ev = vattfw.build("evaluator", {"name": "zero_shot_retrieval", "data": shards(root, "test"),
                                    "batch_size": 4, "clips": 2})
    out = ev.run(tiny_model, spec)
    assert out["zero_shot_retrieval/pool"] == 6.0 and out["zero_shot_retrieval/queries"] == 6.0  # 6 = 4 + 2: no drop
    for key in ("R1", "R5", "R10", "MedianR", "cosine/R1", "cosine/MedianR"):
        assert f"zero_shot_retrieval/{key}" in out
    assert out["zero_shot_retrieval/R10"] == 1.0  # the pool is smaller than 10
    assert 1.0 <= out["zero_shot_retrieval/MedianR"] <= 6.0


def test_labels_out_of_range_name_the_sample(eval_spec, tiny_model):
    spec, root = eval_spec
    ev = vattfw.build("evaluator", {"name": "linear_probe", "classifier": "svm", "num_classes": 2,
                                    "train": shards(root, "train"), "test": shards(root, "test"), "clips": 1})
    with pytest.raises(UserError, match=r"train split\): sample 6 has label 2, expected 0\.\.1"):
        ev.run(tiny_model, spec)


def test_a_split_without_the_needed_modality_says_which(eval_spec, tiny_model):
    spec, root = eval_spec
    ev = vattfw.build("evaluator", {"name": "zero_shot_retrieval", "data": shards(root, "mute"), "clips": 1})
    with pytest.raises(UserError, match=r"eval data has no text \(text_mask is 0 for all 3 samples\)"):
        ev.run(tiny_model, spec)
    ev = vattfw.build("evaluator", {"name": "linear_probe", "modality": "audio", "classifier": "svm",
                                    "train": shards(root, "mute"), "test": shards(root, "mute"), "clips": 1})
    with pytest.raises(UserError, match=r"train split\): the eval data has no audio"):
        ev.run(tiny_model, spec)


def test_a_model_without_the_needed_branch_says_which(eval_spec, tiny_model):
    spec, root = eval_spec
    del tiny_model.heads["fac"]
    ev = vattfw.build("evaluator", {"name": "zero_shot_retrieval", "data": shards(root, "test"), "clips": 1})
    with pytest.raises(UserError, match="model gives no 'video_vt' for video input"):
        ev.run(tiny_model, spec)
