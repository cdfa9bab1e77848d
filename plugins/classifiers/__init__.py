"""Built-in classifier components: `lrc` (low-rank classifier) and `svm` (linear SVM).

A built classifier has ``fit(features [N, d], labels [N]) -> self`` and
``scores(features [M, d]) -> Tensor [M, num_classes]`` (higher = more likely);
``build("classifier", cfg, num_classes=C)`` fixes the number of classes (else max label + 1).
"""
from vattfw import Component, hookimpl

from . import lrc, svm


@hookimpl
def vattfw_components() -> list[Component]:
    return [Component("classifier", "lrc", lrc.Config, lrc.build),
            Component("classifier", "svm", svm.Config, svm.build)]
