"""nce / mil_nce against an independent float64 loop implementation; masks; bad input;
the objective's combination of terms."""
from __future__ import annotations

import math

import pytest
import torch

import vattfw
from vattfw.objective import build_objective
from vattfw.spec.objective import LossesSection

def _normalize(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def reference_nce(x, y, mask, temperature: float) -> float:
    """x: B lists of D floats; y: B lists of L lists of D floats; mask: B ints or None."""
    b_size, l_size = len(x), len(y[0])
    mask = mask if mask is not None else [1] * b_size
    xn = [_normalize(v) for v in x]
    yn = [[_normalize(c) for c in cands] for cands in y]

    def sim(i: int, j: int, l: int) -> float:
        return sum(a * b for a, b in zip(xn[i], yn[j][l])) / temperature

    rows = []
    for b in range(b_size):
        if not mask[b]:
            continue
        entries = []
        for j in range(b_size):
            for l in range(l_size):
                if mask[j]:
                    entries.append(sim(b, j, l))  # x_b against clip j's candidates
                entries.append(sim(j, b, l))  # x_j against clip b's candidates
        positives = [sim(b, b, l) for l in range(l_size)]
        rows.append(_logsumexp(entries) - _logsumexp(positives))
    return sum(rows) / len(rows) if rows else 0.0


# -- helpers ------------------------------------------------------------------------
def make_case(b: int, l: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), torch.randn(b, l, d, generator=g, dtype=torch.float64)


def plugin_loss(x, y, mask, l_form):
    if l_form == "nce":
        return vattfw.build("loss", {"name": "nce", "temperature": 0.07})(x, y[:, 0], mask)
    return vattfw.build("loss", {"name": "mil_nce", "temperature": 0.07})(x, y, mask)


UNEVEN = [1, 0, 1, 1, 0, 0, 1]


# -- numerics -----------------------------------------------------------------------
@pytest.mark.parametrize("form,l", [("nce", 1), ("mil_nce", 1), ("mil_nce", 5)])
@pytest.mark.parametrize("mask", [None, [1] * 7, UNEVEN, [0, 0, 0, 0, 0, 0, 1]])
def test_loss_matches_loop_reference(form, l, mask):
    x, y = make_case(7, l, 6, seed=l)
    m = None if mask is None else torch.tensor(mask, dtype=torch.float64)
    got = plugin_loss(x, y, m, form)
    want = reference_nce(x.tolist(), y.tolist(), mask, 0.07)
    assert got.dim() == 0 and got.dtype == torch.float64
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_float32_inputs_match_reference():
    x, y = make_case(6, 5, 8, seed=3)
    got = plugin_loss(x.float(), y.float(), torch.tensor(UNEVEN[:6], dtype=torch.float32), "mil_nce")
    assert got.item() == pytest.approx(reference_nce(x.tolist(), y.tolist(), UNEVEN[:6], 0.07), rel=1e-5)


def test_temperature_scales_similarities():
    x, y = make_case(5, 3, 4, seed=4)
    loss = vattfw.build("loss", {"name": "mil_nce", "temperature": 0.5})
    assert loss(x, y).item() == pytest.approx(reference_nce(x.tolist(), y.tolist(), None, 0.5), rel=1e-10)


def test_masked_clip_text_is_ignored_but_its_video_stays_a_negative():
    x, y = make_case(7, 5, 6, seed=5)
    mask = torch.tensor(UNEVEN, dtype=torch.float64)
    base = plugin_loss(x, y, mask, "mil_nce")
    y2 = y.clone()
    y2[1] = torch.randn(5, 6, dtype=torch.float64) * 10  # clip 1 has no text
    assert plugin_loss(x, y2, mask, "mil_nce").item() == pytest.approx(base.item(), rel=1e-12)
    y2[1] = float("nan")  # e.g. an all-padding caption through a text model
    y2.requires_grad_(True)
    value = plugin_loss(x, y2, mask, "mil_nce")
    value.backward()
    assert value.item() == pytest.approx(base.item(), rel=1e-12) and torch.isfinite(y2.grad).all()
    x2 = x.clone()
    x2[1] = y[0, 0]  # clip 1's video now resembles clip 0's text: a harder negative
    assert plugin_loss(x2, y, mask, "mil_nce").item() > base.item() + 1e-3


def test_gradients_finite_with_masked_rows_and_match_finite_differences():
    x, y = make_case(5, 2, 3, seed=6)
    mask = torch.tensor([1, 0, 1, 0, 1], dtype=torch.float64)
    loss = vattfw.build("loss", {"name": "mil_nce", "temperature": 0.3})
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, mask), (x, y))
    loss(x, y, mask).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    assert y.grad[1].abs().max() == 0 and y.grad[3].abs().max() == 0  # masked texts are not used
    assert x.grad[1].abs().max() > 0  # masked clips' videos still get gradient as negatives


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_all_masked_batch_is_zero_with_zero_gradients(dtype):
    x, y = make_case(4, 5, 8, seed=7)
    x, y = x.to(dtype).requires_grad_(True), y.to(dtype).requires_grad_(True)
    value = plugin_loss(x, y, torch.zeros(4, dtype=dtype), "mil_nce")
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x)) and torch.equal(y.grad, torch.zeros_like(y))


# -- bad input ----------------------------------------------------------------------
@pytest.mark.parametrize("name,x_shape,y_shape,mask_shape,needle", [
    ("nce", (4, 8), (4, 6), None, "[4, 6]"),            # D differs
    ("nce", (4, 8), (3, 8), None, "[3, 8]"),            # B differs
    ("nce", (4, 8), (4, 5, 8), None, "[4, 5, 8]"),      # nce takes one candidate
    ("mil_nce", (4, 8), (4, 8), None, "[B, L, D]"),     # y not [B, L, D]
    ("mil_nce", (4, 8), (4, 5, 7), None, "[4, 5, 7]"),
    ("mil_nce", (4, 8), (4, 5, 8), (4, 1), "[4, 1]"),   # mask not [B]
    ("nce", (4, 8), (4, 8), (3,), "[3]"),
])
def test_shape_mismatch_names_plugin_and_shapes(name, x_shape, y_shape, mask_shape, needle):
    loss = vattfw.build("loss", {"name": name})
    mask = None if mask_shape is None else torch.ones(mask_shape)
    with pytest.raises(vattfw.UserError) as err:
        loss(torch.randn(x_shape), torch.randn(y_shape), mask)
    text = str(err.value)
    assert f"loss {name!r}" in text and needle in text
    assert str(list(x_shape)) in text and str(list(y_shape)) in text


@pytest.mark.parametrize("temperature", [0, -0.07])
def test_nonpositive_temperature_is_a_spec_error(tmp_path, temperature):
    with pytest.raises(vattfw.UserError) as err:
        vattfw.build("loss", {"name": "mil_nce", "temperature": temperature})
    assert "greater than 0" in str(err.value)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"losses:\n  terms:\n    nce_va:\n      x: video_va\n      y: audio_va\n"
                    f"      loss: {{name: nce, temperature: {temperature}}}\n")
    with pytest.raises(vattfw.UserError) as err:
        vattfw.load_spec(spec)
    hits = [p for p in err.value.problems if p.path == "losses.terms.nce_va.loss.temperature"]
    assert hits and hits[0].line == 6 and "greater than 0" in hits[0].message


# -- the objective ------------------------------------------------------------------
def outputs_and_batch(seed: int = 8):
    x, y = make_case(6, 5, 4, seed)
    va, _ = make_case(6, 1, 4, seed + 1)
    outputs = {"video_vt": x, "text_vt": y, "video_va": va, "audio_va": y[:, 0]}
    batch = {"text_mask": torch.tensor([1, 0, 1, 1, 0, 1.0], dtype=torch.float64),
             "audio_mask": torch.ones(6, dtype=torch.float64)}
    return outputs, batch


@pytest.mark.parametrize("combine", ["sum", "normalized"])
def test_objective_combines_weighted_terms(combine):
    terms = {"nce_va": {"loss": {"name": "nce"}, "weight": 1.0, "x": "video_va", "y": "audio_va", "mask": "audio_mask"},
             "mil_nce_vt": {"loss": {"name": "mil_nce", "temperature": 0.1}, "weight": 3.0,
                            "x": "video_vt", "y": "text_vt", "mask": "text_mask"}}
    objective = build_objective(LossesSection(terms=terms, combine=combine))
    outputs, batch = outputs_and_batch()
    total, parts = objective(outputs, batch)
    va = reference_nce(outputs["video_va"].tolist(), outputs["audio_va"][:, None].tolist(), None, 0.07)
    vt = reference_nce(outputs["video_vt"].tolist(), outputs["text_vt"].tolist(),
                       batch["text_mask"].int().tolist(), 0.1)
    assert set(parts) == {"nce_va", "mil_nce_vt"}
    assert parts["nce_va"].item() == pytest.approx(va, rel=1e-10)
    assert parts["mil_nce_vt"].item() == pytest.approx(vt, rel=1e-10)
    want = (va + 3 * vt) / (4 if combine == "normalized" else 1)
    assert total.item() == pytest.approx(want, rel=1e-10)


def test_default_objective_is_the_papers_sum_with_masks():
    losses = LossesSection()
    assert losses.combine == "sum" and set(losses.terms) == {"nce_va", "mil_nce_vt"}
    assert losses.terms["mil_nce_vt"].mask == "text_mask" and losses.terms["nce_va"].mask == "audio_mask"
    outputs, batch = outputs_and_batch()
    total, parts = build_objective(losses)(outputs, batch)
    assert total.item() == pytest.approx(parts["nce_va"].item() + parts["mil_nce_vt"].item(), rel=1e-12)


def test_objective_missing_output_is_a_clear_error():
    outputs, batch = outputs_and_batch()
    del outputs["text_vt"]
    with pytest.raises(vattfw.UserError) as err:
        build_objective(LossesSection())(outputs, batch)
    assert "'mil_nce_vt'" in str(err.value) and "'text_vt'" in str(err.value) and "video_vt" in str(err.value)


def test_losses_section_rejects_unusable_combinations():
    with pytest.raises(ValueError, match="at least one"):
        LossesSection(terms={})
    zero = {"a": {"loss": {"name": "nce"}, "weight": 0.0, "x": "video_va", "y": "audio_va"}}
    with pytest.raises(ValueError, match="sum of the term weights"):
        LossesSection(terms=zero, combine="normalized")


def test_objective_from_a_spec_file(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("losses:\n  combine: normalized\n  terms:\n"
                         "    nce_va: {loss: {name: nce, temperature: 0.2}, x: video_va, y: audio_va, weight: 2}\n"
                         "    mil_nce_vt: {loss: mil_nce, x: video_vt, y: text_vt, mask: text_mask}\n")
    spec = vattfw.load_spec(spec_file)
    outputs, batch = outputs_and_batch()
    total, parts = build_objective(spec.losses)(outputs, batch)
    va = reference_nce(outputs["video_va"].tolist(), outputs["audio_va"][:, None].tolist(), None, 0.2)
    assert parts["nce_va"].item() == pytest.approx(va, rel=1e-10)
    assert total.item() == pytest.approx((2 * va + parts["mil_nce_vt"].item()) / 3, rel=1e-12)


# -- learnable temperature ----------------------------------------------------------
@pytest.mark.parametrize("form,l", [("nce", 1), ("mil_nce", 3)])
def test_learnable_temperature_starts_at_its_value_and_its_gradient_matches_finite_differences(form, l):
    x, y = make_case(6, l, 5, seed=11)
    mask = [1, 0, 1, 1, 1, 0]
    m = torch.tensor(mask, dtype=torch.float64)
    loss = vattfw.build("loss", {"name": form, "temperature": 0.3, "learnable_temperature": True})
    params = dict(loss.named_parameters())
    assert list(params) == ["log_scale"] and params["log_scale"].item() == pytest.approx(math.log(1 / 0.3))
    value = loss(x, y[:, 0] if form == "nce" else y, m)
    assert value.item() == pytest.approx(reference_nce(x.tolist(), y.tolist(), mask, 0.3), rel=1e-6)
    value.backward()
    s, h = math.log(1 / 0.3), 1e-4  # tau = exp(-s)
    numeric = (reference_nce(x.tolist(), y.tolist(), mask, math.exp(-(s + h)))
               - reference_nce(x.tolist(), y.tolist(), mask, math.exp(-(s - h)))) / (2 * h)
    assert params["log_scale"].grad.item() == pytest.approx(numeric, rel=1e-3)


def test_learnable_temperature_is_clamped_at_min_temperature():
    x, y = make_case(4, 1, 5, seed=12)
    loss = vattfw.build("loss", {"name": "nce", "learnable_temperature": True, "min_temperature": 0.02})
    with torch.no_grad():
        loss.log_scale.fill_(math.log(1 / 0.001))  # trained past the floor
    value = loss(x, y[:, 0])
    value.backward()
    assert value.item() == pytest.approx(reference_nce(x.tolist(), y.tolist(), None, 0.02), rel=1e-6)
    assert loss.log_scale.grad.item() == 0.0  # as CLIP's clamp: no push further


def test_fixed_temperature_owns_no_parameters_and_objective_registers_learnable_ones():
    assert not list(vattfw.build("loss", {"name": "mil_nce"}).parameters())
    terms = {"va": {"loss": {"name": "nce", "learnable_temperature": True}, "x": "a", "y": "b"},
             "vt": {"loss": {"name": "mil_nce"}, "x": "a", "y": "c"}}
    objective = build_objective(LossesSection(terms=terms))
    assert [n for n, _ in objective.named_parameters()] == ["terms.va.log_scale"]


def test_learnable_temperature_below_its_floor_is_a_spec_error(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("losses: {terms: {va: {loss: {name: nce, temperature: 0.005, learnable_temperature: true}, "
                    "x: video_va, y: audio_va}}}\n")
    with pytest.raises(vattfw.UserError) as err:
        vattfw.load_spec(path)
    assert "min_temperature" in str(err.value) and "losses.terms.va.loss" in str(err.value)
