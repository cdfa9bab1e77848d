"""`svm`: a linear SVM on frozen, standardised features (scikit-learn ``LinearSVC``), as in
VATT's Table 8 (A.4; the released code has no SVM pipeline).  C comes from the spec; with a
``c_grid`` the best C is chosen on a held-out part of the training split, then the SVM is refit
on the whole training split."""
from __future__ import annotations

from pydantic import Field

import vattfw
from vattfw import Problem, UserError


class Config(vattfw.PluginConfig):
    C: float = Field(1.0, gt=0, description="Inverse regularisation strength of LinearSVC.")
    c_grid: list[float] = Field(default_factory=list, description="Candidate C values chosen on a held-out part "
                                                                  "of the training split; empty = use C.")
    holdout: float = Field(0.2, gt=0, lt=1, description="Fraction of the training split held out to choose C.")
    standardize: bool = Field(True, description="Scale features to zero mean and unit variance (fit on training).")
    max_iter: int = Field(10_000, ge=1, description="LinearSVC iteration limit.")
    seed: int = Field(0, ge=0, description="random_state of LinearSVC and of the held-out split.")


class LinearSVM:
    """fit(features [N, d], labels [N]) then scores(features) -> decision values [N, c]."""

    def __init__(self, config: Config, num_classes: int | None = None):
        self.config = config
        self.num_classes = num_classes
        self.model = None
        self.C_ = config.C

    def _pipeline(self, c: float):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC
        svc = LinearSVC(C=c, max_iter=self.config.max_iter, random_state=self.config.seed)
        return make_pipeline(StandardScaler(), svc) if self.config.standardize else make_pipeline(svc)

    def _choose_c(self, x, y) -> float:
        import numpy as np
        from sklearn.model_selection import train_test_split
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 2 else None
        xa, xb, ya, yb = train_test_split(x, y, test_size=self.config.holdout, random_state=self.config.seed,
                                          stratify=stratify)
        acc = {c: self._pipeline(c).fit(xa, ya).score(xb, yb) for c in self.config.c_grid}
        return max(self.config.c_grid, key=lambda c: (acc[c], -c))  # ties: the stronger regulariser

    def fit(self, features, labels) -> "LinearSVM":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from vattfw.eval import check_labels
        x, y = features.detach().double().cpu().numpy(), labels.detach().long().cpu()
        if x.ndim != 2 or len(x) != len(y):
            raise UserError(Problem(f"classifier svm: expected features [N, d] and labels [N], got "
                                    f"{x.shape} and {tuple(y.shape)}"))
        self.num_classes = self.num_classes or int(y.max()) + 1
        check_labels(y, self.num_classes, "classifier svm (training labels)")
        y = y.numpy()
        if len(set(y.tolist())) < 2:
            raise UserError(Problem(f"classifier svm: the training labels hold one class only ({y[0]})"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.C_ = self._choose_c(x, y) if self.config.c_grid else self.config.C
            self.model = self._pipeline(self.C_).fit(x, y)
        return self

    def scores(self, features):
        import torch
        if self.model is None:
            raise RuntimeError("svm: call fit() before scores()")
        dec = torch.as_tensor(self.model.decision_function(features.detach().double().cpu().numpy()))
        classes = torch.as_tensor(self.model.classes_)
        if dec.dim() == 1:  # binary: sklearn returns the positive class's margin only
            dec = torch.stack([-dec, dec], 1)
        # Classes absent from training can never win.
        out = torch.full((len(dec), self.num_classes), float(dec.min()) - 1.0, dtype=dec.dtype)
        out[:, classes] = dec
        return out


def build(config: Config, num_classes: int | None = None, **_: object) -> LinearSVM:
    return LinearSVM(config, num_classes)
