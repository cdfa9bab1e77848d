"""Class ids that mean the same class in every split.

`vattfw data build` numbers a build's classes by sorting that build's names, so two builds that
do not hold the same classes (a test split missing one) disagree on the ids.  Each sample's
metadata also carries its ``label_name``: :func:`split_label_names` reads those (in the eval
loader's sample order) and :func:`align_labels` re-numbers the test labels by name onto the
training split's ids.  A test class the training split lacks cannot be predicted: an error that
names it.  Splits without names (numeric labels only) keep their ids.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import torch

from ..errors import Problem, UserError


def split_label_names(sources: Sequence[Any], host: Any = None, threads: int = 8) -> list[str | None]:
    """``label_name`` of every sample of ``sources`` (datasource specs), in the order of the eval
    loader's ``sample`` index; None where a sample has none."""
    import vattfw
    from ..data import tarindex, urls
    from ..data.loader import resolve
    refs = []
    for ref in sources:
        shards = resolve(vattfw.build("datasource", ref, host))
        refs += [(u, r) for u, samples in zip(shards.urls, shards.samples) for r in samples]

    def name(item) -> str | None:
        url, ref = item
        if "json" not in ref.members:
            return None
        off, size = ref.members["json"]
        try:
            meta = json.loads(urls.read_range(url, off, off + size))
        except (ValueError, urls.StorageError):
            return None  # an unreadable sample is skipped by the loader too: its name is never asked for
        got = meta.get("label_name") if isinstance(meta, dict) else None
        return got if isinstance(got, str) else None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(name, refs))


def _names_of(labels: torch.Tensor, sample: torch.Tensor, names: list[str | None]) -> list[str | None]:
    return [names[int(s)] if 0 <= int(s) < len(names) else None for s in sample]


def align_labels(y_train: torch.Tensor, s_train: torch.Tensor, train_names: list[str | None],
                 y_test: torch.Tensor, s_test: torch.Tensor, test_names: list[str | None],
                 where: str) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    """(train ids, test ids, class names by id) with the test ids re-numbered by ``label_name`` onto
    the training split's; unchanged (and no names) when either split's samples lack names."""
    a, b = _names_of(y_train, s_train, train_names), _names_of(y_test, s_test, test_names)
    if any(n is None for n in a) or any(n is None for n in b):
        return y_train, y_test, None
    by_name: dict[str, int] = {}
    for name, i in zip(a, y_train.tolist()):
        if by_name.setdefault(name, int(i)) != int(i):
            raise UserError(Problem(f"{where}: the training split gives class {name!r} two ids "
                                    f"({by_name[name]} and {int(i)}); rebuild it with one class list"))
    unknown = sorted(set(b) - set(by_name))
    if unknown:
        raise UserError(Problem(f"{where}: the test split has classes the training split lacks: "
                                f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''} "
                                f"(training classes: {', '.join(sorted(by_name)[:20])}"
                                f"{' ...' if len(by_name) > 20 else ''}); build both with the same "
                                f"--classes FILE and give the test split only the training classes"))
    classes: list[str] = [""] * (max(by_name.values()) + 1 if by_name else 0)
    for name, i in by_name.items():
        classes[i] = name
    y_test = torch.tensor([by_name[n] for n in b], dtype=torch.int64)
    return y_train, y_test, classes


def warn_one_class(scores: torch.Tensor, labels: torch.Tensor, where: str) -> bool:
    """Log a warning when a classifier gives every test sample the same class although the test
    labels hold several: its accuracy is then one class's share, not a measure of the features."""
    import logging
    predicted = scores.argmax(1)
    if len(predicted) < 2 or len(labels.unique()) < 2 or len(predicted.unique()) > 1:
        return False
    logging.getLogger("vattfw.eval").warning(
        "%s: the classifier predicts one class (%d) for all %d test samples of %d classes: its accuracy is that "
        "class's share, not a measure of the features. Features that hardly vary across inputs do this; "
        "standardise them (lrc/svm: standardize: true) or check the model.",
        where, int(predicted[0]), len(predicted), len(labels.unique()))
    return True
