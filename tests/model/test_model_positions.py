"""Positional tables: interpolation (spline vs an independent implementation), run-time and
checkpoint-load resampling."""
import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

import vattfw
from vattfw_plugins.tokenizers._position import GridPositions, PositionConfig, resize_table, spline_matrix


def test_spline_returns_source_where_points_coincide():
    table = torch.randn(14, 6, dtype=torch.float64)
    out = resize_table(table, 28, "spline")
    assert out.shape == (28, 6)
    torch.testing.assert_close(out[::2], table, atol=1e-9, rtol=0)


@pytest.mark.parametrize("n_src,n_tgt,tol", [(14, 20, 1e-9), (8, 5, 1e-9), (20, 14, 1e-9), (2, 3, 1e-9),
                                            (1200, 1000, 5e-4)])
def test_spline_matches_scipy_polyharmonic(n_src, n_tgt, tol):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((n_src, 3))
    knots, queries = np.arange(n_src)[:, None] / n_src, np.arange(n_tgt)[:, None] / n_tgt
    # phi(r) = r^3 plus a degree-1 polynomial, exact fit: tfa's interpolate_spline(order=3).
    # (The dense r^3 system scipy solves is ill-conditioned at 1200 knots: hence the looser tol.)
    want = RBFInterpolator(knots, table, kernel="cubic", degree=1, smoothing=0.0)(queries)
    np.testing.assert_allclose(spline_matrix(n_src, n_tgt) @ table, want, atol=tol)


def test_bicubic_is_a_distinct_method_and_keeps_constants():
    const = torch.ones(14, 4)
    torch.testing.assert_close(resize_table(const, 20, "bicubic"), torch.ones(20, 4), atol=1e-6, rtol=0)
    ramp = torch.linspace(0, 1, 14)[:, None]
    assert not torch.allclose(resize_table(ramp, 20, "bicubic"), resize_table(ramp, 20, "spline"))


def test_position_encoding_is_sum_of_three_tables_then_layernorm():
    pos = GridPositions((8, 14, 14), 16, PositionConfig(dropout=0.0))
    enc = pos.encoding((8, 14, 14))
    t, h, w = 3, 5, 11
    want = pos.axis0[t] + pos.axis1[h] + pos.axis2[w]
    torch.testing.assert_close(enc[t * 196 + h * 14 + w], want)
    x = torch.zeros(1, 1568, 16)
    ln = torch.nn.functional.layer_norm(want, (16,), pos.norm.weight, pos.norm.bias, 1e-6)
    torch.testing.assert_close(pos(x, (8, 14, 14))[0, t * 196 + h * 14 + w], ln)


def test_runtime_grid_320_uses_resampled_tables():
    tok = vattfw.build("tokenizer", {"name": "voxel", "drop_token": {"enabled": False}, "position": {"dropout": 0}}, dim=8)
    tok.eval()
    tokens, _ = tok(torch.zeros(1, 8, 320, 320, 3))
    assert tokens.shape == (1, 2 * 20 * 20, 8)
    expected = tok.pos.norm(tok.pos.encoding((2, 20, 20)))
    torch.testing.assert_close(tokens[0], expected + tok.proj.bias)


def test_checkpoint_with_14_buckets_loads_into_20_buckets():
    src = vattfw.build("tokenizer", {"name": "voxel"}, dim=8)
    dst = vattfw.build("tokenizer", {"name": "voxel", "buckets": [8, 20, 20]}, dim=8)
    dst.load_state_dict(src.state_dict())
    assert dst.pos.axis1.shape == (20, 8)
    want = torch.as_tensor(spline_matrix(14, 20)) @ src.pos.axis1.detach().double()
    torch.testing.assert_close(dst.pos.axis1.detach(), want.float())
    torch.testing.assert_close(dst.pos.axis0, src.pos.axis0)
