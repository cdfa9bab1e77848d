"""The VATT model assembled from ``spec.model`` by ``vattfw.build`` calls, so third-party
tokenizers, backbones and heads slot in by name.

``build_model(model_section, host=None)`` -> :class:`VATTModel`; ``model(batch)`` returns, for each
configured modality present in the batch, ``<modality>_pooled`` ([B, d]; text [B, L, d]) plus every
head's outputs (FAC: ``video_va``, ``audio_va``, ``video_vt``, ``text_vt``; linear: ``logits``).
Build order per modality: backbone (gives ``width``), then tokenizer with ``dim=width``; heads get
``dims={modality: pooled width}``.  ``.train()/.eval()`` switch DropToken, dropout and BatchNorm.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .errors import Problem, UserError
from .spec.model import ModelSection


class VATTModel(nn.Module):
    def __init__(self, tokenizers: dict[str, nn.Module], backbones: dict[str, nn.Module],
                 heads: dict[str, nn.Module]):
        super().__init__()
        self.tokenizers = nn.ModuleDict(tokenizers)
        self.backbones = nn.ModuleDict(backbones)
        self.heads = nn.ModuleDict(heads)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Pooled feature of one modality; text ``[B, L, W]`` gives ``[B, L, d]``."""
        lead = x.shape[:-1] if modality == "text" else x.shape[:1]
        if modality == "text":
            x = x.reshape(-1, x.shape[-1])
        tokens, mask = self.tokenizers[modality](x)
        pooled, _ = self.backbones[modality](tokens, mask)
        return pooled.reshape(*lead, pooled.shape[-1])

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.project(self.features(batch))

    def features(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The per-clip part: ``<modality>_pooled`` of each modality in the batch.  Every row
        depends on its own clip only, so micro-batches of it concatenate to the batch's."""
        return {f"{m}_pooled": self.encode(m, batch[m]) for m in self.tokenizers if m in batch}

    def project(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The heads on ``features``' output (the FAC head's BatchNorm mixes the batch's rows)."""
        out = dict(feats)
        for head in self.heads.values():
            out.update(head(out))
        return out


LOSSES_PREFIX = "losses."  # state-dict names of the training losses attached by attach_losses


def attach_losses(model: nn.Module, objective: nn.Module) -> nn.Module:
    """Register the training objective as ``model.losses``, so a loss that owns parameters
    (``losses.terms.<term>.<name>``) is moved, distributed, optimised and checkpointed with
    the model; returns ``objective``.  Losses without parameters add no state-dict entry,
    so checkpoints keep their names.  The forward pass never calls it."""
    if "losses" in dict(model.named_children()) or hasattr(type(model), "losses"):
        raise UserError(Problem(f"the model ({type(model).__name__}) already has an attribute 'losses'; "
                                f"the engine registers the training losses under that name", "model"))
    model.add_module("losses", objective)
    return objective


def model_weights(state: dict) -> dict:
    """``state`` without the training losses' entries: what a model built from the spec holds."""
    return {k: v for k, v in state.items() if not k.startswith(LOSSES_PREFIX)}


def build_model(model_section: ModelSection | dict, host=None) -> VATTModel:
    from . import build
    if not isinstance(model_section, ModelSection):
        model_section = ModelSection.model_validate(model_section)
    tok_specs, bb_specs = model_section.tokenizers, model_section.backbones
    if set(tok_specs) != set(bb_specs):
        raise UserError(Problem(f"every modality needs both a tokenizer and a backbone; tokenizers: "
                                f"{sorted(tok_specs)}, backbones: {sorted(bb_specs)}", "model"))
    shared: dict = {}
    tokenizers, backbones = {}, {}
    for m in tok_specs:
        backbones[m] = build("backbone", bb_specs[m], host, shared=shared, modality=m)
        width = getattr(backbones[m], "width", backbones[m].dim)
        tokenizers[m] = build("tokenizer", tok_specs[m], host, dim=width)
        _check_agg(m, tokenizers[m], backbones[m])
    dims = {m: bb.dim for m, bb in backbones.items()}
    heads = {name: build("head", spec, host, dims=dims) for name, spec in model_section.heads.items()}
    return VATTModel(tokenizers, backbones, heads)


def _check_agg(modality: str, tokenizer: nn.Module, backbone: nn.Module) -> None:
    tok, bb = bool(getattr(tokenizer, "provides_agg", False)), bool(getattr(backbone, "has_agg", True))
    if tok == bb:
        where = "both the tokenizer and the backbone add" if tok else "neither the tokenizer nor the backbone adds"
        raise UserError(Problem(f"{where} an aggregation token for {modality}; set agg_token on exactly one",
                                f"model.backbones.{modality}.agg_token"))


def parameter_table(model: nn.Module) -> list[tuple[str, int, int]]:
    """(component, trainable, frozen) per top-level component (``tokenizers.video`` ...; with
    :func:`attach_losses`, ``losses.<term>`` for each loss term); a module shared by several
    components (VATT-MA's encoder) is counted once, under the first."""
    seen: set[int] = set()
    rows = []
    groups = [(g, getattr(model, g)) for g in ("tokenizers", "backbones", "heads")]
    if isinstance(getattr(model, "losses", None), nn.Module) and hasattr(model.losses, "terms"):
        groups.append(("losses", model.losses.terms))
    for group, modules in groups:
        for name, module in modules.items():
            if group == "losses" and not any(True for _ in module.parameters()):
                continue  # (a loss without parameters is no component worth a row)
            trainable = frozen = 0
            for p in module.parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                if p.requires_grad:
                    trainable += p.numel()
                else:
                    frozen += p.numel()
            rows.append((f"{group}.{name}", trainable, frozen))
    return rows
