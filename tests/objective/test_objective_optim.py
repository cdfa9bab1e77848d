"""Optimizers (group-restricted clipping, per-step float lr), the warmup_cosine schedule at
known steps, and the fine-tuning label helpers (label smoothing, mixup, balancing)."""
from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch

import vattfw
from vattfw.objective import (balanced_sigmoid_bce, label_smoothing, mixup, multilabel_balance_weights,
                              sample_beta)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(backbone=torch.nn.Linear(4, 4), classifier=torch.nn.Linear(4, 3)))


def backward(model: torch.nn.Module, scale: float = 10.0) -> dict[str, torch.Tensor]:
    model.zero_grad()
    (scale * model(torch.ones(2, 4)).square().sum()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


# -- optimizers ---------------------------------------------------------------------
def test_sgd_clips_only_the_named_group_by_its_own_global_norm():
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = vattfw.build("optimizer", {"name": "sgd", "lr": 1.0, "momentum": 0.0, "clip_grad_norm": 0.75,
                                     "clip_params": "backbone"}, params=model.named_parameters())
    grads = backward(model)
    opt.step()
    norm = math.sqrt(sum(g.square().sum().item() for n, g in grads.items() if n.startswith("backbone")))
    assert norm > 0.75  # the clip is active
    for name, p in model.named_parameters():
        step = before[name] - p.detach()
        want = grads[name] * (0.75 / norm if name.startswith("backbone") else 1.0)
        torch.testing.assert_close(step, want, rtol=1e-4, atol=1e-6)


def test_clip_everything_with_plain_parameters():
    model = tiny_model()
    opt = vattfw.build("optimizer", {"name": "sgd", "lr": 1.0, "momentum": 0.0, "clip_grad_norm": 0.5},
                       params=model.parameters())
    backward(model)
    opt.step()  # clip happens inside step(): afterwards the stored gradients have norm 0.5
    total = math.sqrt(sum(p.grad.square().sum().item() for p in model.parameters()))
    assert total == pytest.approx(0.5, rel=1e-4)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_matches_torch_and_follows_a_float_lr_changed_every_step(name):
    cfg = {"adam": {"betas": [0.8, 0.99], "eps": 1e-7}, "adamw": {"weight_decay": 0.1}, "sgd": {"momentum": 0.9}}[name]
    torch_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    ours, theirs = tiny_model(), tiny_model()
    opt = vattfw.build("optimizer", {"name": name, "lr": 0.1, **cfg}, params=ours.named_parameters())
    ref = torch_cls(theirs.parameters(), lr=0.1, **{k: tuple(v) if k == "betas" else v for k, v in cfg.items()})
    for step, lr in enumerate([0.0, 0.03, 0.1, 0.07]):
        for o in (opt, ref):
            for group in o.param_groups:
                group["lr"] = lr
        backward(ours, 1.0)
        backward(theirs, 1.0)
        opt.step()
        ref.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b)
    assert isinstance(opt, torch.optim.Optimizer)
    opt.load_state_dict(opt.state_dict())  # checkpointable as any torch optimizer


def test_defaults_follow_the_paper():
    adam = vattfw.build("optimizer", {"name": "adam"}, params=tiny_model().named_parameters())
    group = adam.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (1e-4, (0.9, 0.999), 1e-8, 0.0)
    sgd = vattfw.build("optimizer", {"name": "sgd"}, params=tiny_model().named_parameters())
    assert (sgd.param_groups[0]["lr"], sgd.param_groups[0]["momentum"], sgd.param_groups[0]["nesterov"]) == (0.005, 0.9, False)


def test_param_groups_with_named_pairs():
    model = tiny_model()
    groups = [{"params": list(model.backbone.named_parameters(prefix="backbone")), "lr": 0.5},
              {"params": list(model.classifier.named_parameters(prefix="classifier"))}]
    opt = vattfw.build("optimizer", {"name": "sgd", "lr": 0.1, "clip_grad_norm": 1.0, "clip_params": "back"},
                       params=groups)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    assert len(opt._clip_params) == 2


def test_clip_params_errors():
    with pytest.raises(vattfw.UserError, match="needs named parameters"):
        vattfw.build("optimizer", {"name": "adam", "clip_grad_norm": 1.0, "clip_params": "backbone"},
                     params=tiny_model().parameters())
    with pytest.raises(vattfw.UserError, match="matches no parameter name.*backbone.weight"):
        vattfw.build("optimizer", {"name": "adam", "clip_grad_norm": 1.0, "clip_params": "encoder"},
                     params=tiny_model().named_parameters())
    with pytest.raises(vattfw.UserError, match="needs clip_grad_norm"):
        vattfw.build("optimizer", {"name": "sgd", "clip_params": "backbone"}, params=[])
    with pytest.raises(vattfw.UserError, match="regular expression"):
        vattfw.build("optimizer", {"name": "sgd", "clip_grad_norm": 1.0, "clip_params": "back(bone"}, params=[])
    with pytest.raises(vattfw.UserError, match="greater than 0"):
        vattfw.build("optimizer", {"name": "adamw", "clip_grad_norm": 0.0}, params=[])


# -- schedules ----------------------------------------------------------------------
def schedule(base: float, total: int, **cfg):
    return vattfw.build("schedule", {"name": "warmup_cosine", **cfg}, base_lr=base, total_steps=total)


@pytest.mark.parametrize("period,mid", [("quarter", 5e-5 + 5e-5 * math.cos(math.pi / 4)), ("half", 7.5e-5)])
def test_pretraining_schedule_at_known_steps(period, mid):
    lr = schedule(1e-4, 500_000, warmup_steps=10_000, end_lr=5e-5, period=period)
    assert lr(0) == 0.0
    assert lr(5_000) == pytest.approx(5e-5)
    assert lr(10_000) == pytest.approx(1e-4)  # warmup end
    assert lr(255_000) == pytest.approx(mid)  # middle of the decay
    assert lr(500_000) == pytest.approx(5e-5)  # last step: the end rate, not NaN
    assert lr(600_000) == pytest.approx(5e-5)


def test_released_code_and_fine_tuning_schedules():
    code = schedule(1e-4, 500_000, warmup_steps=5_000, end_lr=5e-5, period="half")
    assert code(252_500) == pytest.approx(7.5e-5)
    assert code(2_500) == pytest.approx(5e-5)
    finetune = schedule(0.005, 100_000, warmup_steps=2_500, end_lr=0.0, period="half")
    assert finetune(1_250) == pytest.approx(0.0025)
    assert finetune(2_500) == pytest.approx(0.005)
    assert finetune(51_250) == pytest.approx(0.0025)
    assert finetune(100_000) == 0.0
    assert isinstance(finetune(7), float)


def test_schedule_defaults_are_the_papers_and_deps_are_required():
    lr = schedule(1e-4, 500_000)
    assert lr(10_000) == pytest.approx(1e-4) and lr(500_000) == pytest.approx(5e-5)
    assert lr(255_000) == pytest.approx(5e-5 + 5e-5 * math.cos(math.pi / 4))  # quarter period
    with pytest.raises(vattfw.UserError, match="base_lr= and total_steps="):
        vattfw.build("schedule", {"name": "warmup_cosine"})
    short = schedule(1.0, 10, warmup_steps=100)  # warmup longer than the run: only ramps
    assert short(5) == pytest.approx(0.05) and short(10) == pytest.approx(0.1)


# -- fine-tuning label helpers ---------------------------------------------------------
def test_label_smoothing():
    smoothed = label_smoothing(torch.tensor([2, 0, -1]), 0.1, num_classes=4)
    want = torch.tensor([[0.025, 0.025, 0.925, 0.025], [0.925, 0.025, 0.025, 0.025], [0.025] * 4])
    torch.testing.assert_close(smoothed, want)
    torch.testing.assert_close(label_smoothing(torch.eye(4)[[2, 0]], 0.1), want[:2])


def test_mixup_keeps_label_mass_and_mixes_inputs_and_labels_alike():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 100, generator=g)
    y = label_smoothing(torch.randint(0, 10, (64,), generator=g), 0.1, num_classes=10)
    mx, my = mixup(x, y, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(my.sum(dim=1), torch.ones(64))
    g2 = torch.Generator().manual_seed(1)  # the same draws, in mixup's order: λ, then the pairing
    lam, perm = sample_beta(64, 5, 5, g2), torch.randperm(64, generator=g2)
    torch.testing.assert_close(mx, lam[:, None] * x + (1 - lam[:, None]) * x[perm])
    torch.testing.assert_close(my, lam[:, None] * y + (1 - lam[:, None]) * y[perm])
    again = mixup(x, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], mx)  # reproducible from the generator


def test_beta_5_5_draws_have_the_right_moments():
    lam = sample_beta(20_000, 5, 5, torch.Generator().manual_seed(0)).double()
    assert lam.min() > 0 and lam.max() < 1
    assert lam.mean().item() == pytest.approx(0.5, abs=0.005)
    assert lam.var().item() == pytest.approx(25 / (100 * 11), rel=0.05)  # ab / ((a+b)^2 (a+b+1))


def test_multilabel_balance_weights_and_loss():
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0.]])
    # label counts: c0 = 3, c1 = 1, c2 = 1
    want = torch.tensor([1 / 3, (1 / 3 + 1) / 2, (1 / 3 + 1) / 2, 0.0])
    torch.testing.assert_close(multilabel_balance_weights(labels), want)
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(1)
    torch.testing.assert_close(balanced_sigmoid_bce(logits, labels), (want * bce).mean())
    balanced_sigmoid_bce(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()
