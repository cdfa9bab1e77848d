"""The training objective: loss terms from the spec, plus the fine-tuning label helpers.

``build_objective(spec.losses)`` -> :class:`Objective`, an ``nn.Module`` (loss plugins may own
parameters) called as ``objective(outputs, batch) -> (total, terms)``, where
``x``/``y`` name a model output or, failing that, a batch field (``label``); ``mask`` a
batch field.  ``terms`` maps each term name (``nce_va``, ``mil_nce_vt``) to its unweighted value, for
logging.  ``total`` is Σ wᵢ·Lᵢ (the paper, ``combine: sum``) or Σ wᵢ·Lᵢ / Σ wᵢ (the
released code, ``combine: normalized``).

Fine-tuning helpers (plain functions on tensors; the caller decides where they run):
``label_smoothing`` (α = 0.1 in the paper), ``mixup`` (per-sample λ ~ Beta(5, 5), the
paper's audio fine-tuning), ``multilabel_balance_weights`` / ``balanced_sigmoid_bce``
(the A.3 data balancing).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .errors import Problem, UserError
from .spec.objective import LossesSection


class Objective(nn.Module):
    """The combined loss as a module: ``objective(outputs, batch) -> (total, terms)``.

    Loss plugins that are ``nn.Module``s are registered under ``terms.<term name>``, so a
    loss that owns parameters (a learnable temperature) or buffers is part of what the
    engine trains: moved to the device, replicated over the mesh, optimised, checkpointed
    (as ``losses`` in the checkpoint) and counted by ``vattfw summary``.  Plain callables
    are kept as they are (they own nothing)."""

    def __init__(self, losses: LossesSection, built: Mapping[str, Callable]):
        super().__init__()
        self.spec = losses
        self.terms = nn.ModuleDict({n: f for n, f in built.items() if isinstance(f, nn.Module)})
        self._plain = {n: f for n, f in built.items() if not isinstance(f, nn.Module)}
        self.weights = {name: term.weight for name, term in losses.terms.items()}
        self.scale = 1.0 if losses.combine == "sum" else 1.0 / sum(self.weights.values())

    def loss_fn(self, name: str) -> Callable:
        return self.terms[name] if name in self.terms else self._plain[name]

    def forward(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]):
        terms = {}
        for name, term in self.spec.terms.items():
            x = _field(outputs, batch, term.x, name, "x")
            y = _field(outputs, batch, term.y, name, "y")  # e.g. 'label' for fine-tuning
            mask = _field({}, batch, term.mask, name, "mask") if term.mask else None
            terms[name] = self.loss_fn(name)(x, y, mask)
        total = sum(self.weights[n] * value for n, value in terms.items()) * self.scale
        return total, terms


def build_objective(losses: LossesSection, host: Any = None) -> Objective:
    """Build every loss term of ``losses`` and return the combined objective."""
    from . import build
    for name in losses.terms:
        if "." in name or not name:  # a module name: ModuleDict (and checkpoint keys) split on dots
            raise UserError(Problem(f"loss term name {name!r}: use a name without '.', e.g. "
                                    f"{name.replace('.', '_') or 'nce_va'!r}", f"losses.terms.{name}"))
    return Objective(losses, {name: build("loss", term.loss, host) for name, term in losses.terms.items()})


def _field(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], key: str, term: str,
           role: str) -> torch.Tensor:
    """A model output of that name, else a batch field (masks: batch fields only)."""
    if key in outputs:
        return outputs[key]
    if key in batch:
        return batch[key]
    where = f"model outputs ({', '.join(sorted(outputs)) or 'none'}) or " if role != "mask" else ""
    raise UserError(Problem(f"loss term {term!r}: {role} = {key!r} is not among the {where}batch fields "
                            f"({', '.join(sorted(batch)) or 'none'})", f"losses.terms.{term}.{role}"))


# -- fine-tuning label helpers ----------------------------------------------------------
def label_smoothing(targets: torch.Tensor, alpha: float = 0.1, num_classes: int | None = None) -> torch.Tensor:
    """y·(1 − α) + α/C.  ``targets`` is one-hot/multi-hot [B, C], or class ids [B] with
    ``num_classes`` given (ids < 0, "no label", give an all-zero row before smoothing)."""
    if targets.dim() == 1:
        if num_classes is None:
            raise UserError(Problem("label_smoothing: class ids [B] need num_classes"))
        onehot = F.one_hot(targets.clamp(min=0), num_classes).to(torch.float32)
        targets = onehot * (targets >= 0).to(torch.float32)[:, None]
    c = targets.shape[-1]
    return targets * (1 - alpha) + alpha / c


def sample_beta(n: int, a: float, b: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws of Beta(a, b) as float32 on the CPU.  For integer a, b (VATT's Beta(5, 5))
    this uses the a-th smallest of a+b−1 uniforms, which is exactly Beta(a, b) and honours
    ``generator``; other values use torch.distributions (the global RNG)."""
    if float(a).is_integer() and float(b).is_integer() and a >= 1 and b >= 1:
        u = torch.rand(n, int(a + b - 1), generator=generator)
        return u.sort(dim=1).values[:, int(a) - 1]
    return torch.distributions.Beta(torch.tensor(float(a)), torch.tensor(float(b))).sample((n,))


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float = 5.0, beta: float = 5.0,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample λ ~ Beta(alpha, beta), partner = a random permutation of the batch:
    x ← λ·x + (1 − λ)·x[perm], y ← λ·y + (1 − λ)·y[perm] (λ broadcast over trailing dims).
    Label mass is kept: rows of y that sum to 1 still do.  Randomness is drawn on the CPU
    from ``generator`` (for reproducible, resumable runs) and moved to x's device."""
    n = x.shape[0]
    if y.shape[0] != n:
        raise UserError(Problem(f"mixup: x has shape {list(x.shape)} and y {list(y.shape)}; the batch sizes differ"))
    lam = sample_beta(n, alpha, beta, generator)
    perm = torch.randperm(n, generator=generator)
    lam_x = lam.to(x.device, x.dtype).view(n, *([1] * (x.dim() - 1)))
    lam_y = lam.to(y.device, y.dtype).view(n, *([1] * (y.dim() - 1)))
    perm_x, perm_y = perm.to(x.device), perm.to(y.device)
    return lam_x * x + (1 - lam_x) * x[perm_x], lam_y * y + (1 - lam_y) * y[perm_y]


def multilabel_balance_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-sample weight [B] for the A.3 balancing: the sample's loss is divided by the
    in-batch count of the labels it carries.  With several labels the inverse counts are
    averaged (the released code): w_b = Σ_c (y_bc / occ_c) / Σ_c y_bc with occ_c = Σ_b y_bc;
    a single-label sample gets exactly 1/occ.  Divisions by 0 give 0 (a label-less sample
    gets weight 0, as in the released code).  Soft (mixed) labels count fractionally."""
    labels = labels.to(torch.promote_types(labels.dtype, torch.float32))
    occ = labels.sum(dim=0)
    inv = torch.where(occ > 0, 1 / occ.clamp(min=1e-12), torch.zeros_like(occ))
    n_pos = labels.sum(dim=1)
    per = (labels * inv).sum(dim=1)
    return torch.where(n_pos > 0, per / n_pos.clamp(min=1e-12), torch.zeros_like(n_pos))


def balanced_sigmoid_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean_b(w_b · Σ_c BCE(logits_bc, y_bc)) with w from :func:`multilabel_balance_weights`
    (AudioSet fine-tuning).  The weights carry no gradient."""
    bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none").sum(dim=1)
    return (multilabel_balance_weights(labels).detach().to(bce.dtype) * bce).mean()
