"""Feature extraction over eval views and checkpoint loading, with the real (tiny) model."""
import pytest
import torch

from vattfw import UserError
from vattfw.eval import features, load_weights


def test_rows_are_regrouped_per_sample_and_padding_dropped(tiny_model):
    gen = torch.Generator().manual_seed(0)
    # 3 samples x 2 views as the loader lays them out: consecutive rows; the last sample is padding
    video = torch.rand(6, 4, 16, 16, 3, generator=gen) * 2 - 1
    text = torch.randint(1, 100, (6, 2, 4), generator=gen)
    batch = {"video": video, "text": text, "text_mask": torch.ones(6), "video_mask": torch.ones(6),
             "label": torch.tensor([0, 0, 2, 2, -1, -1]), "sample": torch.tensor([5, 5, 6, 6, -1, -1]),
             "valid": torch.tensor([1.0, 1, 1, 1, 0, 0])}
    got = features.collect(tiny_model, [batch], {"video": ["video_pooled", "video_vt"], "text": ["text_vt"]},
                           2, "test")
    assert got["video_pooled"].shape == (2, 2, 32) and got["video_vt"].shape == (2, 2, 8)
    assert got["text_vt"].shape == (2, 2, 8)  # per sample: L candidates x d
    assert got["label"].tolist() == [0, 2] and got["sample"].tolist() == [5, 6]
    with torch.no_grad():
        one = tiny_model({"video": video[3:4]})["video_pooled"][0]
        txt = tiny_model({"text": text[2:3]})["text_vt"][0]
    torch.testing.assert_close(got["video_pooled"][1, 1], one, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got["text_vt"][1], txt, rtol=1e-4, atol=1e-5)


def test_missing_modality_is_named(tiny_model):
    with pytest.raises(UserError, match="eval data has no 'audio'"):
        features.collect(tiny_model, [{"video": torch.zeros(1, 4, 16, 16, 3)}], {"audio": ["audio_pooled"]}, 1, "ev")
    batch = {"text": torch.ones(2, 1, 4, dtype=torch.long), "text_mask": torch.zeros(2)}
    with pytest.raises(UserError, match="eval data has no text"):
        features.collect(tiny_model, [batch], {"text": ["text_vt"]}, 1, "ev")
    with pytest.raises(UserError, match="model gives no 'logits'"):
        features.collect(tiny_model, [{"video": torch.zeros(1, 4, 16, 16, 3)}], {"video": ["logits"]}, 1, "ev")


def test_checkpoint_errors_list_names_and_shapes(tiny_model, tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": tiny_model.state_dict()}, good)
    load_weights(tiny_model, good)  # round trip

    with pytest.raises(UserError, match="checkpoint not found"):
        load_weights(tiny_model, tmp_path / "nope.pt")

    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot be read"):
        load_weights(tiny_model, cut)

    other = dict(tiny_model.state_dict())
    other.pop("heads.fac.text_vt.weight")
    other["heads.fac.video_vt.1.weight"] = torch.zeros(9, 16)
    other["backbones.video.extra"] = torch.zeros(2)
    with pytest.raises(UserError) as err:
        load_weights(tiny_model, other)
    text = str(err.value)
    assert "heads.fac.text_vt.weight [8, 32]" in text
    assert "backbones.video.extra [2]" in text
    assert "heads.fac.video_vt.1.weight: model [8, 16] vs checkpoint [9, 16]" in text


def test_positional_tables_of_another_grid_load(tiny_model):
    state = dict(tiny_model.state_dict())
    state["tokenizers.video.pos.axis1"] = torch.randn(5, 32)  # another bucket count: resampled
    load_weights(tiny_model, state)
    assert tiny_model.tokenizers.video.pos.axis1.shape == (2, 32)
