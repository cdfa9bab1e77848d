"""A tiny real VATT model (1-layer encoders) for the evaluator tests."""
import pytest

TINY_MODEL = {
    "tokenizers": {
        "video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [2, 2, 2]},
        "audio": {"name": "waveform", "patch": 32, "samples": 512},
        "text": {"name": "word_embedding", "vocab_size": 100, "dim": 16, "max_words": 4},
    },
    "backbones": {m: {"name": "transformer", "layers": 1, "width": 32, "mlp_dim": 64, "heads": 2,
                      "agg_token": m != "text"}  # the text tokenizer adds its own
                  for m in ("video", "audio", "text")},
    "heads": {"fac": {"name": "fac", "d_va": 16, "d_vt": 8}},
}


@pytest.fixture
def tiny_model():
    import torch
    from vattfw.model import build_model
    torch.manual_seed(0)
    return build_model(TINY_MODEL).eval()
