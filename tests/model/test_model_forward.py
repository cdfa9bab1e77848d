"""Full-model shapes at paper input sizes, the T5 text path, VATT-MA sharing, FAC BatchNorm."""
import math

import pytest
import torch

import vattfw
from vattfw.model import build_model
from vattfw_plugins.backbones._t5 import relative_bucket


def paper_batch(b: int = 2, candidates: int = 5) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"video": torch.rand(b, 32, 224, 224, 3, generator=g) * 2 - 1,
            "audio": torch.rand(b, 153_600, generator=g) * 2 - 1,
            "text": torch.randint(1, 500, (b, candidates, 16), generator=g)}


def tiny_bbs(layers: int = 1) -> dict:
    return {"tokenizers": {"video": {"name": "voxel"}, "audio": {"name": "waveform"},
                           "text": {"name": "word_embedding", "vocab_size": 500, "dim": 32}},
            "backbones": {"video": {"name": "transformer", "size": "base", "layers": layers},
                          "audio": {"name": "transformer", "size": "base", "layers": layers},
                          "text": {"name": "t5", "size": "small", "layers": layers}},
            "heads": {"fac": {"name": "fac", "d_va": 512, "d_vt": 256}}}


def test_paper_input_shapes_train_and_eval():
    model = build_model(tiny_bbs())
    batch = paper_batch()
    for mode in (model.train, model.eval):
        mode()
        out = model(batch)
        assert out["video_pooled"].shape == (2, 768) and out["audio_pooled"].shape == (2, 768)
        assert out["text_pooled"].shape == (2, 5, 512)
        assert out["video_va"].shape == (2, 512) and out["audio_va"].shape == (2, 512)
        assert out["video_vt"].shape == (2, 256) and out["text_vt"].shape == (2, 5, 256)
    out["video_vt"].sum().backward()


def test_missing_modality_is_skipped():
    model = build_model(tiny_bbs()).eval()
    out = model({"video": paper_batch(1)["video"]})
    assert set(out) == {"video_pooled", "video_va", "video_vt"}


def test_eval_is_deterministic_and_train_is_not():
    torch.manual_seed(0)
    section = tiny_bbs()
    section["tokenizers"]["video"]["buckets"] = [2, 14, 14]
    model = build_model(section)
    batch = {"video": paper_batch(2)["video"][:, :8]}
    model.eval()
    a, b = model(batch)["video_pooled"], model(batch)["video_pooled"]
    torch.testing.assert_close(a, b)
    model.train()
    assert not torch.allclose(model(batch)["video_pooled"], model(batch)["video_pooled"])


def test_t5_relative_buckets_match_formula():
    def bucket(n):  # the released code's rule, written out
        offset = 16 if n < 0 else 0
        m = abs(n)
        return offset + (m if m < 8 else min(15, 8 + math.floor(math.log(m / 8) / math.log(64 / 8) * 8)))
    ns = torch.arange(-100, 101)
    assert relative_bucket(ns, 32, 64).tolist() == [bucket(int(n)) for n in ns]


def test_text_padding_does_not_change_pooled_text():
    model = build_model({"tokenizers": {"text": {"name": "word_embedding", "vocab_size": 50, "dim": 8}},
                         "backbones": {"text": {"name": "t5", "layers": 2}}}).eval()
    ids = torch.tensor([[[5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]])
    short = model({"text": ids[..., :3]})["text_pooled"]
    torch.testing.assert_close(model({"text": ids})["text_pooled"], short, atol=1e-5, rtol=1e-5)


def test_modality_agnostic_shares_exactly_one_encoder():
    section = {"tokenizers": {"video": {"name": "voxel"}, "audio": {"name": "waveform"},
                              "text": {"name": "word_embedding", "vocab_size": 50, "dim": 8, "agg_token": False,
                                       "position": "learned"}},
               "backbones": {m: {"name": "shared", "size": "small", "layers": 1, **extra} for m, extra in
                             [("video", {}), ("audio", {}), ("text", {"pre_projection": False})]},
               "heads": {"fac": {"name": "fac"}}}
    model = build_model(section)
    encoders = {id(bb.encoder) for bb in model.backbones.values()}
    assert len(encoders) == 1
    enc_ids = {id(p) for p in model.backbones["video"].encoder.parameters()}
    model_ids = [id(p) for p in model.parameters()]
    assert enc_ids <= set(model_ids) and len(model_ids) == len(set(model_ids))
    # Everything else is modality-specific: each backbone's non-encoder parameters are its own.
    own = [{id(p) for p in bb.parameters()} - enc_ids for bb in model.backbones.values()]
    assert all(own) and not (own[0] & own[1]) and not (own[1] & own[2])
    out = model.eval()({"video": paper_batch(1)["video"][:, :8], "audio": paper_batch(1)["audio"],
                        "text": torch.randint(0, 50, (1, 2, 16))})
    assert out["video_pooled"].shape == (1, 1024) and out["text_pooled"].shape == (1, 2, 1024)
    assert out["text_vt"].shape == (1, 2, 256)


def test_modality_agnostic_rejects_different_encoder_settings():
    with pytest.raises(vattfw.UserError, match="one shared encoder"):
        build_model({"tokenizers": {"video": {"name": "voxel"}, "audio": {"name": "waveform"}},
                     "backbones": {"video": {"name": "shared", "size": "small"},
                                   "audio": {"name": "shared", "size": "base"}}})


def test_fac_batchnorm_uses_statistics_of_the_whole_batch_tensor():
    """Under SPMD the global batch is one tensor, so BatchNorm's statistics are the global
    batch's (the released code's cross-replica BN) with no extra code: checked here against a
    plain formula over all rows of the batch."""
    head = vattfw.build("head", {"name": "fac"}, dims={"video": 16}).train()
    x = torch.randn(6, 16)
    lin1 = head.video_va[0].weight
    h = x @ lin1.T
    want = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(head.video_va[1](h), want, atol=1e-5, rtol=1e-5)
    out = head({"video_pooled": x})
    assert out["video_va"].shape == (6, 512) and out["video_vt"].shape == (6, 256)


def test_fac_audio_proj_mlp_is_the_video_sides_shape_and_linear_stays_the_default():
    """audio_proj: linear (default) keeps the paper's single Linear (and its checkpoint names);
    mlp gives audio the video side's Linear -> BN -> ReLU -> Linear -> BN."""
    dims = {"video": 16, "audio": 12}
    linear = vattfw.build("head", {"name": "fac", "d_va": 8, "d_vt": 4}, dims=dims)
    assert isinstance(linear.audio_va, torch.nn.Linear) and linear.audio_va.weight.shape == (8, 12)
    mlp = vattfw.build("head", {"name": "fac", "d_va": 8, "d_vt": 4, "audio_proj": "mlp"}, dims=dims).train()
    names = {k for k in mlp.state_dict() if k.startswith("audio_va.")}
    assert {"audio_va.0.weight", "audio_va.1.running_mean", "audio_va.3.weight", "audio_va.4.weight"} <= names
    out = mlp({"video_pooled": torch.randn(6, 16), "audio_pooled": torch.randn(6, 12)})
    assert out["audio_va"].shape == (6, 8)
    # the last BN standardises each S_va dimension over the batch, as on the video side
    torch.testing.assert_close(out["audio_va"].mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    with pytest.raises(Exception, match="audio_proj"):
        vattfw.build("head", {"name": "fac", "audio_proj": "deep"}, dims=dims)
