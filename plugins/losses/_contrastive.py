"""The VATT contrastive objective (``AsymmetricNCE`` of the released code) on the global batch.

Imported lazily by the ``nce`` / ``mil_nce`` builders: it needs torch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vattfw import Problem, UserError

# A finite penalty (the released code's 1e9): with -inf an all-masked row would be
# logsumexp(-inf, ...) = -inf and its gradient NaN; a finite shift keeps every
# intermediate finite, so masked rows times 0 give exactly 0 and zero gradients.
MASKED = 1e9


def asymmetric_nce(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None,
                   temperature: float | torch.Tensor) -> torch.Tensor:
    """x [B, D] anchors, y [B, L, D] candidates (L per clip), mask [B] (1 = clip has y).

    Row b has ONE softmax over 2·B·L entries: x_b against every valid candidate of every
    clip, and every x against the candidates of clip b; its positives (the L candidates
    of clip b, which appear in both halves) are combined by logsumexp.  The result is the
    mean over valid rows.  B is whatever batch the tensors hold: under SPMD that is the
    global batch, so every device's clips are negatives without any collective here.
    ``temperature`` is a float or a 0-d tensor (a learnable one carries its gradient).
    """
    dtype = torch.promote_types(x.dtype, torch.float32)  # bf16 logits would lose the ranking
    b, n, d = y.shape
    valid = torch.ones(b, dtype=dtype, device=x.device) if mask is None else mask.to(dtype)
    # A text-less clip's y may be anything (even NaN from an all-padding caption): where(),
    # unlike a product, keeps it out of the values and out of the gradients.
    y = torch.where(valid[:, None, None] > 0, y.to(dtype), torch.zeros((), dtype=dtype, device=y.device))
    x = F.normalize(x.to(dtype), dim=-1)
    y = F.normalize(y, dim=-1)
    sim = (x @ y.reshape(b * n, d).t()).view(b, b, n) / temperature  # [x clip i, y clip j, candidate l]
    # Clips without y are no negatives: their candidates leave every row's first half.
    x_to_all = torch.logsumexp(sim - ((1 - valid) * MASKED)[None, :, None], dim=(1, 2))
    # The second half of row b only holds clip b's candidates; when clip b has none the
    # whole row is dropped below, so it needs no penalty.
    all_to_y = torch.logsumexp(sim, dim=(0, 2))
    # Recomputed rather than taken from sim's diagonal: torch_xla 2.9 lowers
    # logsumexp over a 3-D tensor's diagonal with the wrong shape.
    positives = torch.logsumexp((x[:, None, :] * y).sum(-1) / temperature, dim=1)
    rows = torch.logsumexp(torch.stack([x_to_all, all_to_y]), dim=0) - positives
    # Divide-no-NaN: an all-masked batch is 0 / 1 = 0 (and its gradients 0), never 0 / 0.
    return (rows * valid).sum() / valid.sum().clamp(min=1)


def check_shapes(plugin: str, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None,
                 y_form: str) -> None:
    """Raise one UserError naming the plugin and the shapes when they do not fit."""
    want_rank = 2 if y_form == "[B, D]" else 3
    ok = x.dim() == 2 and y.dim() == want_rank and y.shape[0] == x.shape[0] and y.shape[-1] == x.shape[-1]
    if not ok:
        raise UserError(Problem(
            f"loss {plugin!r}: x has shape {list(x.shape)} and y has shape {list(y.shape)}; "
            f"expected x [B, D] and y {y_form} with the same B and D"))
    if mask is not None and (mask.dim() != 1 or mask.shape[0] != x.shape[0]):
        raise UserError(Problem(
            f"loss {plugin!r}: mask has shape {list(mask.shape)}; expected [B] = [{x.shape[0]}] "
            f"(x has shape {list(x.shape)}, y has shape {list(y.shape)})"))


class NCELoss(nn.Module):
    """``loss(x, y, mask=None)`` -> scalar; y is [B, D] (nce) or [B, L, D] (mil_nce).

    With ``learnable`` the temperature is a parameter, stored as ``log_scale`` = log(1/tau)
    (CLIP's parameterisation: updates are relative, tau stays positive) and starting at
    ``temperature``; the scale is clamped at 1/``min_temperature`` (CLIP: 100) so the
    logits cannot blow up.  Otherwise tau is the fixed float of the paper."""

    def __init__(self, plugin: str, temperature: float, multiple: bool, learnable: bool = False,
                 min_temperature: float = 0.01):
        super().__init__()
        self.plugin, self.temperature, self.multiple = plugin, temperature, multiple
        self.min_temperature = min_temperature
        if learnable:
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def current_temperature(self) -> float | torch.Tensor:
        if not hasattr(self, "log_scale"):
            return self.temperature
        return 1.0 / self.log_scale.clamp(max=math.log(1.0 / self.min_temperature)).exp()

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_shapes(self.plugin, x, y, mask, "[B, L, D]" if self.multiple else "[B, D]")
        return asymmetric_nce(x, y if self.multiple else y.unsqueeze(1), mask, self.current_temperature())

    def extra_repr(self) -> str:
        kind = f"learnable from {self.temperature}" if hasattr(self, "log_scale") else str(self.temperature)
        return f"{self.plugin}, temperature={kind}"
