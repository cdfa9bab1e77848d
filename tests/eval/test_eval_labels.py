"""A linear probe maps test labels onto the training ids by class name: two separate builds
(`vattfw data build`, the test set missing a class) number their classes differently."""
import json
import logging

import pytest

import vattfw
from vattfw import UserError

from fixtures.clips import clip as _clip

COLOURS = [("red", 0xD02020), ("green", 0x20C040), ("blue", 0x3030E0)]


@pytest.fixture(scope="module")
def colour_builds(tmp_path_factory, cli_module):
    """train: red/green/blue x 3 clips; test: green/blue x 2 (built on its own: ids 0, 1);
    odd: green + a purple clip.  Built with the CLI, class from the folder name."""
    root = tmp_path_factory.mktemp("colours")
    plan = {"train": (COLOURS, 3), "test": (COLOURS[1:], 2), "odd": (COLOURS[1:2] + [("purple", 0x9020C0)], 2)}
    for split, (colours, n) in plan.items():
        for k, (name, rgb) in enumerate(colours):
            (root / "media" / split / name).mkdir(parents=True)
            for j in range(n):
                _clip(root / "media" / split / name / f"{name}{j}.mp4", rgb + 0x050505 * j, 300 + 40 * j)
        r = cli_module("data", "build", str(root / "media" / split), str(root / split), "--label-from-folder",
                       "--workers", "1")
        assert r.returncode == 0, r.stderr
    return root


@pytest.fixture(scope="module")
def cli_module():
    from fixtures.processes import run_cli
    return run_cli


def probe(root, test: str, classifier="svm"):
    src = lambda split: [{"name": "webdataset", "urls": [str(root / split / "shard-000000.tar")]}]
    return vattfw.build("evaluator", {"name": "linear_probe", "classifier": classifier, "clips": 1,
                                      "train": src("train"), "test": src(test)})


def test_a_test_build_missing_a_class_is_scored_by_name(colour_builds, eval_spec, tiny_model, caplog):
    spec, _ = eval_spec
    assert json.loads((colour_builds / "test" / "classes.json").read_text()) == ["blue", "green"]  # shifted ids
    out = probe(colour_builds, "test").run(tiny_model, spec)
    assert out["linear_probe/video_svm/top1"] == 1.0  # by id it would be 0.5 at best (blue 0 -> red)
    assert "predicts one class" not in caplog.text


def test_a_test_class_the_training_split_lacks_is_named(colour_builds, eval_spec, tiny_model):
    spec, _ = eval_spec
    with pytest.raises(UserError, match=r"test split has classes the training split lacks: purple \(training "
                                        r"classes: blue, green, red\)"):
        probe(colour_builds, "odd").run(tiny_model, spec)


def test_a_classifier_predicting_one_class_is_reported(colour_builds, eval_spec, tiny_model, caplog):
    spec, _ = eval_spec
    one_step = {"name": "lrc", "steps": 1, "lr": 1e-9, "standardize": False}  # cannot learn anything
    with caplog.at_level(logging.WARNING, logger="vattfw.eval"):
        probe(colour_builds, "test", one_step).run(tiny_model, spec)
    assert "the classifier predicts one class" in caplog.text and "for all 4 test samples of 2 classes" in caplog.text
