"""Fine-tuning losses (imported lazily by their builders: they need torch)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vattfw import Problem, UserError


def _valid_mean(per_row: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # Divide-no-NaN: a batch without any labelled row gives 0 and zero gradients.
    return (per_row * valid).sum() / valid.sum().clamp(min=1)


def _check(plugin: str, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, ids_ok: bool) -> None:
    forms = "class ids [B] or targets [B, C]" if ids_ok else "targets [B, C]"
    ok = x.dim() == 2 and y.shape[0] == x.shape[0] and (
        (ids_ok and y.dim() == 1) or (y.dim() == 2 and y.shape[1] == x.shape[1]))
    if not ok:
        raise UserError(Problem(f"loss {plugin!r}: x has shape {list(x.shape)} and y has shape {list(y.shape)}; "
                                f"expected x logits [B, C] and y {forms} with the same B and C"))
    if mask is not None and (mask.dim() != 1 or mask.shape[0] != x.shape[0]):
        raise UserError(Problem(f"loss {plugin!r}: mask has shape {list(mask.shape)}; expected [B] = [{x.shape[0]}] "
                                f"(x has shape {list(x.shape)}, y has shape {list(y.shape)})"))


class CrossEntropy(nn.Module):
    """Softmax cross-entropy against smoothed targets y·(1 − α) + α/C; y is class ids [B]
    (−1 = no label: the row is dropped) or target rows [B, C]."""

    def __init__(self, label_smoothing: float):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check("cross_entropy", x, y, mask, ids_ok=True)
        logp = F.log_softmax(x.float(), dim=-1)
        if y.dim() == 1:
            valid = (y >= 0).to(logp.dtype)
            target = F.one_hot(y.clamp(min=0).long(), x.shape[1]).to(logp.dtype)
        else:
            valid = torch.ones(x.shape[0], dtype=logp.dtype, device=x.device)
            target = y.to(logp.dtype)
        if mask is not None:
            valid = valid * mask.to(logp.dtype)
        target = target * (1 - self.label_smoothing) + self.label_smoothing / x.shape[1]
        return _valid_mean(-(target * logp).sum(-1), valid)


class BalancedBCE(nn.Module):
    """Per-class sigmoid cross-entropy summed over classes; with ``balance`` each sample is
    weighted by the inverse in-batch count of its labels (paper A.3, released code's form)."""

    def __init__(self, balance: bool):
        super().__init__()
        self.balance = balance

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        from vattfw.objective import multilabel_balance_weights
        _check("balanced_bce", x, y, mask, ids_ok=False)
        y = y.to(torch.float32)
        per_row = F.binary_cross_entropy_with_logits(x.float(), y, reduction="none").sum(-1)
        valid = torch.ones_like(per_row) if mask is None else mask.to(per_row.dtype)
        if not self.balance:
            return _valid_mean(per_row, valid)
        # Weights already make the batch sum small; the released code then takes the plain mean.
        weights = multilabel_balance_weights(y * valid[:, None]).detach()
        return (weights * per_row * valid).mean()
