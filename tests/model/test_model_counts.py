"""Parameter counts of the Kinetics-600 fine-tuning models (paper Table 7) and the summary command."""
import pytest
import torch

from vattfw.model import build_model, parameter_table


def video_classifier(size: str, classes: int = 600) -> dict:
    return {"tokenizers": {"video": {"name": "voxel"}},
            "backbones": {"video": {"name": "transformer", "size": size}},
            "heads": {"cls": {"name": "linear", "num_classes": classes}}}


def count(section: dict) -> int:
    with torch.device("meta"):
        model = build_model(section)
    return sum(t for _, t, _ in parameter_table(model))


def closed_form(d: int, layers: int, mlp: int, classes: int = 600) -> int:
    layer = 4 * (d * d + d) + 2 * d * mlp + mlp + d + 4 * d
    return (3072 * d + d) + 36 * d + 2 * d + d + layers * layer + 2 * d + d * classes + classes


@pytest.mark.parametrize("size,expected", [("base", 87_907_416), ("medium", 154_958_424), ("large", 306_113_112)])
def test_table7_counts_exact(size, expected):
    assert count(video_classifier(size)) == expected


def test_small_counts_what_the_rule_gives_not_table7():
    # Table 7 says 20.9 M for Small; the same rule gives 20,816,472 (rounds to 20.8 M).
    assert count(video_classifier("small")) == closed_form(512, 6, 2048) == 20_816_472


def test_summary_command_prints_per_component_and_total(cli):
    r = cli("summary", "specs/finetune/k600-base.yaml")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "total trainable parameters: 87907416"
    assert any(line.startswith("heads.classifier") and "461,400" in line for line in lines)


def test_frozen_word_table_reported_as_frozen(tmp_path):
    import numpy as np
    vectors = tmp_path / "v.npy"
    np.save(vectors, np.zeros((100, 8), np.float32))
    section = {"tokenizers": {"text": {"name": "word_embedding", "vectors": str(vectors), "vocab_size": 100, "dim": 8}},
               "backbones": {"text": {"name": "t5", "layers": 1}}}
    rows = dict((n, (t, f)) for n, t, f in parameter_table(build_model(section)))
    assert rows["tokenizers.text"][1] == 800
    assert rows["tokenizers.text"][0] == 8 + 8 * 512  # agg token + projection
