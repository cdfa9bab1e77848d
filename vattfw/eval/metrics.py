"""Metric functions on host tensors: classification accuracy, retrieval ranks,
multi-label mAP / AUC / d'.  Definitions follow the released VATT evaluation code (facts §8)."""
from __future__ import annotations

import math

import torch

from ..errors import Problem, UserError


def check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
    """Raise a UserError naming the first sample whose label is outside [0, num_classes)."""
    bad = ((labels < 0) | (labels >= num_classes)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise UserError(Problem(f"{where}: sample {i} has label {int(labels[i])}, expected 0..{num_classes - 1} "
                                f"({len(bad)} sample(s) out of range)"))


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose label is among the k highest scores (torchmetrics, micro average)."""
    from torchmetrics.functional.classification import multiclass_accuracy
    num_classes = scores.shape[1]
    check_labels(labels, num_classes, "accuracy")
    k = min(k, num_classes)
    return float(multiclass_accuracy(scores.float(), labels.long(), num_classes=num_classes,
                                     top_k=k, average="micro"))


def gt_ranks(sim: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's ground-truth item in its similarity row (descending).

    Ties count half: rank = #(better) + #(equal, other items) / 2.  This keeps the rank
    independent of the pool's order and gives a collapsed model (all similarities equal)
    the chance-level rank instead of a perfect one.
    """
    target = sim.gather(1, gt.view(-1, 1))
    better = (sim > target).sum(1).double()
    equal = (sim == target).sum(1).double() - 1
    return better + equal / 2


def retrieval_metrics(sim: torch.Tensor, gt: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """RK (R@K) = fraction of queries whose ground truth ranks < K; MedianR = median(rank) + 1.
    Names avoid "@", which mlflow rejects in metric names."""
    ranks = gt_ranks(sim, gt)
    out = {f"R{k}": float((ranks < k).double().mean()) for k in ks}
    out["MedianR"] = float(ranks.quantile(0.5)) + 1.0  # numpy's median: the middle pair averaged
    return out


def d_prime(auc: float) -> float:
    """d' = sqrt(2) * Phi^-1(AUC): the separation of two unit Gaussians giving this AUC."""
    from scipy.stats import norm
    return float(math.sqrt(2.0) * norm.ppf(auc))


def multilabel_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Macro mAP and AUC over the classes that have both positives and negatives, and d'."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    y = (targets > 0.5).numpy()
    s = scores.double().numpy()
    keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
    if not keep.any():
        raise UserError(Problem("multi-label metrics: no class has both positive and negative samples "
                                f"in the {len(y)} test samples"))
    y, s = y[:, keep], s[:, keep]
    ap = average_precision_score(y, s, average="macro")
    auc = roc_auc_score(y, s, average="macro")
    return {"mAP": float(ap), "AUC": float(auc), "d_prime": d_prime(float(auc))}
