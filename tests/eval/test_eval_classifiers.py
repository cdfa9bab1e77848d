"""The `lrc` and `svm` classifier plugins on synthetic features."""
import numpy as np
import pytest
import torch

import vattfw
from vattfw import UserError


def separable(n=600, d=32, c=5, seed=0):
    """Linearly separable classes: each class is a unit direction plus small noise."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(c, d, generator=gen), dim=1) * 3
    y = torch.randint(0, c, (n,), generator=gen)
    x = centres[y] + 0.3 * torch.randn(n, d, generator=gen)
    return x, y


def test_lrc_separates_linearly_separable_features_and_keeps_ten_percent():
    x, y = separable()
    clf = vattfw.build("classifier", {"name": "lrc", "steps": 250}, num_classes=5)
    clf.fit(x[:400], y[:400])
    acc = (clf.scores(x[400:]).argmax(1) == y[400:]).float().mean().item()
    assert acc >= 0.95
    # 250 steps x 64 rows x 128 components: the kept fraction's std is ~5e-4
    assert clf.kept_fraction == pytest.approx(0.10, abs=0.003)
    probs = clf.scores(x[:3])
    assert probs.shape == (3, 5) and torch.allclose(probs.sum(1), torch.ones(3))


def test_lrc_keep_mask_is_inverted_dropout():
    clf = vattfw.build("classifier", {"name": "lrc"})
    mask = clf.sample_keep(20_000, torch.Generator().manual_seed(0))
    kept = mask > 0
    assert kept.float().mean().item() == pytest.approx(0.10, abs=0.002)
    assert torch.all(mask[kept] == 10.0)
    assert mask.mean().item() == pytest.approx(1.0, abs=0.02)  # expectation preserved


def test_lrc_standardize_rescues_tiny_feature_spread():
    x, y = separable(n=300, c=3, seed=7)
    x = 5.0 + 1e-3 * x  # all information in a spread 1000x below the offset
    raw = vattfw.build("classifier", {"name": "lrc", "steps": 150, "standardize": False}).fit(x[:200], y[:200])
    std = vattfw.build("classifier", {"name": "lrc", "steps": 150}).fit(x[:200], y[:200])  # the default
    acc = lambda c: (c.scores(x[200:]).argmax(1) == y[200:]).float().mean().item()
    assert acc(std) >= 0.95 and acc(raw) < 0.7


def test_lrc_epochs_count_passes():
    x, y = separable(n=100)
    clf = vattfw.build("classifier", {"name": "lrc", "epochs": 3, "batch_size": 64})
    clf.fit(x, y)  # 3 epochs x 2 batches = 6 steps x (64 + 36) rows
    assert clf.net is not None


def test_lrc_rejects_labels_out_of_range():
    x, _ = separable(n=10)
    with pytest.raises(UserError, match="sample 3 has label 9"):
        vattfw.build("classifier", {"name": "lrc"}, num_classes=5).fit(x, torch.tensor([0, 1, 2, 9, 0, 1, 2, 3, 4, 0]))


def test_svm_equals_a_direct_linear_svc_fit():
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC
    x, y = separable(n=300, c=4, seed=3)
    x = x + 0.8 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9))  # not separable
    clf = vattfw.build("classifier", {"name": "svm", "C": 0.05}, num_classes=4).fit(x[:200], y[:200])
    xt, xv = x[:200].double().numpy(), x[200:].double().numpy()
    scaler = StandardScaler().fit(xt)
    direct = LinearSVC(C=0.05, max_iter=10_000, random_state=0).fit(scaler.transform(xt), y[:200].numpy())
    expected = direct.decision_function(scaler.transform(xv))
    np.testing.assert_allclose(clf.scores(x[200:]).numpy(), expected, rtol=1e-6, atol=1e-8)


def test_svm_grid_chooses_c_on_held_out_part():
    x, y = separable(n=300, c=4, seed=4)
    clf = vattfw.build("classifier", {"name": "svm", "c_grid": [1e-4, 1.0]}).fit(x, y)
    assert clf.C_ in (1e-4, 1.0)
    assert (clf.scores(x).argmax(1) == y).float().mean() > 0.9


def test_svm_binary_and_missing_class_scores():
    x, y = separable(n=200, c=2, seed=5)
    s = vattfw.build("classifier", {"name": "svm"}, num_classes=3).fit(x, y).scores(x)
    assert s.shape == (200, 3) and torch.all(s.argmax(1) != 2)
    assert (s.argmax(1) == y).float().mean() > 0.95
