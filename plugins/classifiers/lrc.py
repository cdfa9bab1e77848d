"""`lrc`: the low-rank linear classifier of VATT's linear evaluation (A.3.2, facts §8).

The weight is factorised as C = U·V (U: d x n, V: n x c, n = 128).  While training, each
example keeps a random 10 % of the n components (inverted dropout of rate 0.9: kept
components are scaled by 10); at test time all components are used.  Adam 5e-4, batch 64,
cross-entropy plus an L2 penalty on V.  The paper trains 50k steps (the default); the
released code trains 1000 epochs (set ``epochs: 1000``).

Features are standardised first (zero mean, unit variance per dimension, statistics of the
training features) by default.  Neither the paper nor the released code says so, but at a fixed
Adam learning rate, step count and L2 penalty the classifier is not invariant to the feature
scale: pooled features after the final LayerNorm that vary by ~0.1 % across inputs gave logits
that hardly moved, and the raw classifier predicted one class for every test clip (chance).
Standardising is an affine map of the inputs, so the model class (a rank-n linear classifier)
is the paper's; ``standardize: false`` gives the raw released behaviour.
"""
from __future__ import annotations

import math

from pydantic import Field

import vattfw
from vattfw import Problem, UserError


class Config(vattfw.PluginConfig):
    components: int = Field(128, ge=1, description="n, the rank of the factorised weight C = U·V.")
    keep: float = Field(0.1, gt=0, le=1, description="Fraction of the n components each training example keeps "
                                                      "(inverted dropout of rate 1 - keep; the paper's 10 %).")
    lr: float = Field(5e-4, gt=0, description="Adam learning rate.")
    batch_size: int = Field(64, ge=1, description="Examples per Adam step.")
    steps: int = Field(50_000, ge=1, description="Adam steps (the paper: 50k); ignored when epochs is set.")
    epochs: int | None = Field(None, ge=1, description="Train for this many passes over the data instead of `steps` "
                                                       "(the released code: 1000).")
    l2: float = Field(0.1, ge=0, description="L2 penalty l2·ΣV² on the second factor V (the released code's 0.1; "
                                             "the paper does not give one).")
    seed: int = Field(1, ge=0, description="Seed for initialisation, shuffling and component sampling.")
    standardize: bool = Field(True, description="Scale features to zero mean and unit variance (statistics of "
                                                "the training features) first. The paper and released code feed "
                                                "raw features (false), on which a near-constant feature set "
                                                "collapses to one predicted class.")


class LowRankClassifier:
    """fit(features [N, d], labels [N]) then scores(features) -> softmax probabilities [N, c]."""

    def __init__(self, config: Config, num_classes: int | None = None):
        self.config = config
        self.num_classes = num_classes
        self.net = None
        self.shift, self.scale = 0.0, 1.0
        self.kept_fraction = float("nan")  # mean fraction of components kept while training

    def _make(self, dim: int, num_classes: int, gen):
        import torch
        u, v = torch.nn.Linear(dim, self.config.components), torch.nn.Linear(self.config.components, num_classes)
        for layer in (u, v):  # glorot-normal kernels, zero biases, as the released head
            std = math.sqrt(2.0 / sum(layer.weight.shape))
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * std)
                layer.bias.zero_()
        return torch.nn.ModuleDict({"u": u, "v": v})

    def sample_keep(self, rows: int, gen):
        """The inverted-dropout multiplier: 1/keep on a random keep-fraction of components, else 0."""
        import torch
        keep = self.config.keep
        return (torch.rand(rows, self.config.components, generator=gen) < keep).float() / keep

    def fit(self, features, labels) -> "LowRankClassifier":
        import torch
        from vattfw.eval import check_labels
        x, y = features.detach().float().cpu(), labels.detach().long().cpu()
        if x.dim() != 2 or len(x) != len(y):
            raise UserError(Problem(f"classifier lrc: expected features [N, d] and labels [N], got "
                                    f"{tuple(x.shape)} and {tuple(y.shape)}"))
        c = self.num_classes or int(y.max()) + 1
        check_labels(y, c, "classifier lrc (training labels)")
        self.num_classes = c
        if self.config.standardize:
            self.shift, self.scale = x.mean(0), x.std(0).clamp(min=1e-12)
            x = (x - self.shift) / self.scale
        gen = torch.Generator().manual_seed(self.config.seed)
        self.net = self._make(x.shape[1], c, gen)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        bs = min(self.config.batch_size, len(x))
        per_epoch = math.ceil(len(x) / bs)
        steps = self.config.epochs * per_epoch if self.config.epochs else self.config.steps
        self.net.train()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matmuls: thread hand-offs cost 10x the arithmetic
        try:
            kept, rows = self._train(x, y, bs, steps, opt, gen)
        finally:
            torch.set_num_threads(threads)
        self.kept_fraction = kept / rows
        self.net.eval()
        return self

    def _train(self, x, y, bs: int, steps: int, opt, gen) -> tuple[float, int]:
        import torch
        kept, rows, step = 0.0, 0, 0
        while step < steps:
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), bs):
                if step == steps:
                    break
                idx = order[start:start + bs]
                mask = self.sample_keep(len(idx), gen)
                kept += float((mask > 0).sum())
                rows += mask.numel()
                logits = self.net["v"](self.net["u"](x[idx]) * mask)
                loss = torch.nn.functional.cross_entropy(logits, y[idx])
                loss = loss + self.config.l2 * self.net["v"].weight.square().sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        return kept, rows

    def scores(self, features):
        import torch
        if self.net is None:
            raise RuntimeError("lrc: call fit() before scores()")
        x = (features.detach().float().cpu() - self.shift) / self.scale
        with torch.no_grad():
            return torch.softmax(self.net["v"](self.net["u"](x)), -1)


def build(config: Config, num_classes: int | None = None, **_: object) -> LowRankClassifier:
    return LowRankClassifier(config, num_classes)
