"""Learned positional tables (one per grid axis), their interpolation, and DropToken.

Shared by the ``voxel``, ``waveform`` and ``spectrogram`` tokenizers (and the text
tokenizer's optional 16-bucket table).  Parameters are named ``axis0``, ``axis1``, ...
(video: temporal, vertical, horizontal), plus ``norm`` for the LayerNorm on their sum.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch import nn

import vattfw

from ._configs import DropTokenConfig, Interp, PositionConfig  # noqa: F401 (re-exported)



def spline_matrix(n_src: int, n_tgt: int) -> np.ndarray:
    """[n_tgt, n_src] matrix M with M @ table = a polyharmonic (r^3 + linear term) spline
    through (i/n_src, table[i]) evaluated at j/n_tgt, for every channel at once."""
    return _spline_matrix(n_src, n_tgt).copy()


@lru_cache(maxsize=64)
def _spline_matrix(n_src: int, n_tgt: int) -> np.ndarray:
    # In 1-D the polyharmonic spline sum_i w_i |x - x_i|^3 + a + b x (exact fit, side conditions
    # sum w = sum w x = 0) is the natural cubic spline, linear beyond the end knots.  Building it
    # from the tridiagonal natural-spline system keeps 1200 buckets well conditioned, where the
    # dense |x_i - x_k|^3 system loses about four digits.
    from scipy.interpolate import CubicSpline
    x = np.arange(n_src, dtype=np.float64) / n_src
    q = np.arange(n_tgt, dtype=np.float64) / n_tgt
    if n_src == 1:
        return np.ones((n_tgt, 1))
    if n_src == 2:  # a line through two points
        return np.stack([1 - q * n_src, q * n_src], axis=1)
    spline = CubicSpline(x, np.eye(n_src), bc_type="natural", axis=0)
    out = spline(np.clip(q, x[0], x[-1]))
    beyond = q > x[-1]
    out[beyond] += (q[beyond] - x[-1])[:, None] * spline(x[-1], 1)[None, :]
    return out


@lru_cache(maxsize=64)
def _bicubic_matrix(n_src: int, n_tgt: int) -> np.ndarray:
    basis = torch.eye(n_src, dtype=torch.float64).reshape(n_src, 1, n_src, 1)
    out = nn.functional.interpolate(basis, size=(n_tgt, 1), mode="bicubic", align_corners=False)
    return out[:, 0, :, 0].T.numpy()


def resize_table(table: torch.Tensor, n_tgt: int, method: Interp) -> torch.Tensor:
    """Resample a [n, d] table to [n_tgt, d] (differentiable: a fixed matrix product)."""
    n_src = table.shape[0]
    if n_src == n_tgt:
        return table
    mat = (_spline_matrix if method == "spline" else _bicubic_matrix)(n_src, n_tgt)
    return torch.as_tensor(mat, dtype=table.dtype, device=table.device) @ table


class GridPositions(nn.Module):
    """pos(t, h, w) = E0[t] + E1[h] + E2[w]; out = Dropout(x + LN(pos)).  Tables are
    TruncatedNormal(std = d^-0.5) as the released code; a grid that differs from the
    tables is served by resampling them at run time."""

    def __init__(self, buckets: Sequence[int], dim: int, cfg: PositionConfig):
        super().__init__()
        self.buckets = tuple(int(b) for b in buckets)
        self.method = cfg.interpolation
        for i, n in enumerate(self.buckets):
            table = nn.Parameter(torch.empty(n, dim))
            nn.init.trunc_normal_(table, std=dim ** -0.5, a=-2 * dim ** -0.5, b=2 * dim ** -0.5)
            self.register_parameter(f"axis{i}", table)
        self.norm = nn.LayerNorm(dim, eps=cfg.eps)
        self.drop = nn.Dropout(cfg.dropout)

    def tables(self) -> list[torch.Tensor]:
        return [getattr(self, f"axis{i}") for i in range(len(self.buckets))]

    def encoding(self, grid: Sequence[int]) -> torch.Tensor:
        """The [prod(grid), d] position sum (before the LayerNorm), row-major over ``grid``."""
        tables = [resize_table(t, n, self.method) for t, n in zip(self.tables(), grid)]
        total = None
        for axis, table in enumerate(tables):
            shape = [1] * len(tables) + [table.shape[-1]]
            shape[axis] = table.shape[0]
            term = table.reshape(shape)
            total = term if total is None else total + term
        return total.reshape(-1, total.shape[-1])

    def forward(self, x: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
        return self.drop(x + self.norm(self.encoding(grid)))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint made with another bucket count (14 -> 20 at 320x320) is resampled
        # with the configured method, as the released restore code does.
        for i, n in enumerate(self.buckets):
            key = f"{prefix}axis{i}"
            if key in state_dict and state_dict[key].shape[0] != n:
                state_dict[key] = resize_table(state_dict[key].double(), n, self.method).float()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class DropToken(nn.Module):
    """Keeps a random fixed-size subset of ``keep`` tokens in training mode.  Indices come
    from sorting uniform noise drawn on the tokens' device (a fixed-size gather, no boolean
    masks), so it compiles under XLA."""

    def __init__(self, cfg: DropTokenConfig, configured_tokens: int, owner: str):
        super().__init__()
        self.enabled = cfg.enabled
        self.mode = cfg.mode
        self.keep = int(cfg.rate * configured_tokens)
        self.owner = owner

    def extra_repr(self) -> str:
        return f"enabled={self.enabled}, keep={self.keep}, mode={self.mode}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.enabled):
            return x
        batch, length, dim = x.shape
        if length < self.keep:
            raise vattfw.UserError(vattfw.Problem(
                f"tokenizer {self.owner!r}: DropToken keeps {self.keep} tokens but the input gives only "
                f"{length}; expected at least {self.keep} tokens (a longer input or a lower drop_token.rate)"))
        if self.mode == "shared":
            idx = torch.argsort(torch.rand(length, device=x.device))[: self.keep]
            return x.index_select(1, idx)
        idx = torch.argsort(torch.rand(batch, length, device=x.device), dim=1)[:, : self.keep]
        return torch.gather(x, 1, idx.unsqueeze(-1).expand(batch, self.keep, dim))


_WARNED: set[tuple] = set()


def warn_length_once(owner: str, got: int, got_tokens: int, configured: int, buckets: int, hint: str) -> None:
    """An input of another length than the tokenizer was configured for gives another token count,
    served by resampling the positional table: legal (fine-tuning at 320x320 does it on purpose)
    but, for audio, usually a data sample rate or clip length that does not match the model's."""
    key = (owner, got, configured)
    if got == configured or key in _WARNED:
        return
    _WARNED.add(key)
    import logging
    logging.getLogger("vattfw.model").warning(
        "tokenizer %r: the input has %d samples per clip -> %d tokens, but the tokenizer was configured for "
        "%d samples -> %d tokens; its %d positional buckets are resampled to %d. %s",
        owner, got, got_tokens, configured, buckets, buckets, got_tokens, hint)


def bad_shape(owner: str, expected: str, actual: Sequence[int], why: str = "") -> vattfw.UserError:
    why = f" ({why})" if why else ""
    return vattfw.UserError(vattfw.Problem(
        f"tokenizer {owner!r}: expected input of shape {expected}{why}, got {list(actual)}"))


def prod(values: Sequence[int]) -> int:
    return int(math.prod(values))
