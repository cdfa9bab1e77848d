"""Bad inputs are clear errors naming the tokenizer, the expected and the actual shape."""
import numpy as np
import pytest
import torch

import vattfw


def message(exc) -> str:
    return str(exc.value)


def test_frames_not_divisible_by_patch_is_an_error_when_asked():
    tok = vattfw.build("tokenizer", {"name": "voxel", "remainder": "error"}, dim=4)
    with pytest.raises(vattfw.UserError) as exc:
        tok(torch.zeros(1, 30, 224, 224, 3))
    assert "'voxel'" in message(exc) and "[1, 30, 224, 224, 3]" in message(exc) and "T % 4" in message(exc)


def test_remainder_drop_equals_tokenizing_the_whole_voxels_only():
    # Table 9's 32x200x200 with 5x16x16 voxels: the first 30 frames and 192 rows/columns are used
    torch.manual_seed(0)
    cfg = {"name": "voxel", "patch": [5, 16, 16], "buckets": [6, 12, 12]}
    tok = vattfw.build("tokenizer", cfg, dim=8).eval()
    video = torch.rand(2, 32, 200, 200, 3) * 2 - 1
    tokens, _ = tok(video)
    cropped, _ = tok(video[:, :30, :192, :192].contiguous())
    assert tokens.shape == (2, 6 * 12 * 12, 8)
    torch.testing.assert_close(tokens, cropped)


def test_video_smaller_than_one_voxel():
    tok = vattfw.build("tokenizer", {"name": "voxel"}, dim=4)
    with pytest.raises(vattfw.UserError) as exc:
        tok(torch.zeros(1, 3, 224, 224, 3))
    assert "'voxel'" in message(exc) and "smaller than one 4x16x16 voxel" in message(exc)


def test_audio_too_short():
    tok = vattfw.build("tokenizer", {"name": "waveform"}, dim=4)
    with pytest.raises(vattfw.UserError) as exc:
        tok(torch.zeros(1, 100))
    assert "'waveform'" in message(exc) and "[1, 100]" in message(exc) and "too short" in message(exc)


def test_audio_shorter_than_droptoken_needs():
    tok = vattfw.build("tokenizer", {"name": "waveform"}, dim=4).train()
    with pytest.raises(vattfw.UserError) as exc:
        tok(torch.zeros(1, 128 * 100))
    assert "'waveform'" in message(exc) and "600" in message(exc) and "100" in message(exc)


def test_too_many_words():
    tok = vattfw.build("tokenizer", {"name": "word_embedding", "vocab_size": 50, "dim": 4}, dim=8)
    with pytest.raises(vattfw.UserError) as exc:
        tok(torch.ones(2, 20, dtype=torch.long))
    assert "'word_embedding'" in message(exc) and "W <= 16" in message(exc) and "[2, 20]" in message(exc)


def test_vectors_shape_mismatch_names_both_shapes(tmp_path):
    path = tmp_path / "glove.npy"
    np.save(path, np.zeros((1000, 50), np.float32))
    with pytest.raises(vattfw.UserError) as exc:
        vattfw.build("tokenizer", {"name": "word_embedding", "vectors": str(path), "vocab_size": 65536, "dim": 50}, dim=8)
    assert "[1000, 50]" in message(exc) and "[65536, 50]" in message(exc)


def test_vectors_loaded_and_frozen_by_default(tmp_path):
    path = tmp_path / "v.npy"
    table = np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32)
    np.save(path, table)
    tok = vattfw.build("tokenizer", {"name": "word_embedding", "vectors": str(path), "vocab_size": 30, "dim": 5}, dim=8)
    assert not tok.table.weight.requires_grad
    np.testing.assert_array_equal(tok.table.weight.detach().numpy(), table)
    trainable = vattfw.build("tokenizer", {"name": "word_embedding", "vectors": str(path), "vocab_size": 30,
                                           "dim": 5, "trainable": True}, dim=8)
    assert trainable.table.weight.requires_grad


def test_mismatched_aggregation_tokens_rejected():
    from vattfw.model import build_model
    with pytest.raises(vattfw.UserError) as exc:
        build_model({"tokenizers": {"text": {"name": "word_embedding", "vocab_size": 10, "dim": 4}},
                     "backbones": {"text": {"name": "transformer", "size": "small", "layers": 1}}})
    assert "aggregation token" in message(exc)
