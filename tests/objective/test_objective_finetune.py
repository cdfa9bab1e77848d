"""Fine-tuning losses (cross_entropy with label smoothing, balanced_bce) against plain
formulas, and an objective that takes its target from the batch."""
from __future__ import annotations

import math

import pytest
import torch

import vattfw
from vattfw.objective import build_objective
from vattfw.spec.objective import LossesSection


def smoothed_ce_reference(logits, labels, alpha):
    rows = []
    for z, label in zip(logits, labels):
        if label < 0:
            continue
        top = max(z)
        log_norm = top + math.log(sum(math.exp(v - top) for v in z))
        c = len(z)
        rows.append(-sum(((1 - alpha) * (k == label) + alpha / c) * (v - log_norm) for k, v in enumerate(z)))
    return sum(rows) / len(rows) if rows else 0.0


def test_cross_entropy_with_label_smoothing_and_unlabelled_rows():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.tensor([0, 3, -1, 4, 4, 1])
    loss = vattfw.build("loss", {"name": "cross_entropy"})  # alpha 0.1 by default (paper)
    got = loss(logits, labels)
    assert got.item() == pytest.approx(smoothed_ce_reference(logits.tolist(), labels.tolist(), 0.1), rel=1e-6)
    plain = vattfw.build("loss", {"name": "cross_entropy", "label_smoothing": 0.0})
    keep = labels >= 0
    torch.testing.assert_close(plain(logits, labels).double(),
                               torch.nn.functional.cross_entropy(logits[keep], labels[keep]), rtol=1e-6, atol=1e-7)
    none = loss(logits, torch.full((6,), -1))
    assert none.item() == 0.0


def test_cross_entropy_accepts_soft_targets_from_mixup():
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    soft = torch.tensor([[0.7, 0.3, 0.0], [0, 0, 1.0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    got = vattfw.build("loss", {"name": "cross_entropy", "label_smoothing": 0.0})(logits, soft)
    want = -(soft * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(got, want)


def test_balanced_bce_matches_formula():
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 0, 1.]])
    logits = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(-1)
    weights = torch.tensor([1 / 3, (1 / 3 + 1) / 2, (1 / 3 + 1) / 2])
    got = vattfw.build("loss", {"name": "balanced_bce"})(logits, labels)
    torch.testing.assert_close(got, (weights * bce).mean())
    plain = vattfw.build("loss", {"name": "balanced_bce", "balance": False})(logits, labels)
    torch.testing.assert_close(plain, bce.mean())


@pytest.mark.parametrize("name,y_shape", [("cross_entropy", (4, 2)), ("cross_entropy", (3,)),
                                          ("balanced_bce", (4,)), ("balanced_bce", (4, 6))])
def test_classification_shape_errors(name, y_shape):
    with pytest.raises(vattfw.UserError) as err:
        vattfw.build("loss", {"name": name})(torch.randn(4, 5), torch.zeros(y_shape))
    assert f"loss {name!r}" in str(err.value) and str(list(y_shape)) in str(err.value) and "[4, 5]" in str(err.value)


def test_objective_takes_the_target_from_the_batch():
    terms = {"classification": {"loss": {"name": "cross_entropy"}, "x": "logits", "y": "label"}}
    objective = build_objective(LossesSection(terms=terms))
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    total, parts = objective({"logits": logits}, {"label": torch.tensor([0, 2, 1, -1])})
    assert total.item() == pytest.approx(smoothed_ce_reference(logits.tolist(), [0, 2, 1, -1], 0.1), rel=1e-5)
    assert set(parts) == {"classification"}
