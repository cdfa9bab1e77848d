"""Metric functions and retrieval on hand-computed cases."""
import math

import pytest
import torch

from vattfw import UserError
from vattfw.eval import metrics, retrieval


def test_topk_accuracy_hand_case():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 0, 2])
    assert metrics.topk_accuracy(scores, labels, 1) == pytest.approx(1 / 4)  # only row 0
    assert metrics.topk_accuracy(scores, labels, 2) == pytest.approx(2 / 4)  # rows 0, 1
    assert metrics.topk_accuracy(scores, labels, 3) == pytest.approx(1.0)
    assert metrics.topk_accuracy(scores, labels, 5) == pytest.approx(1.0)  # k capped at C


def test_label_out_of_range_names_the_sample():
    with pytest.raises(UserError, match=r"sample 2 has label 7, expected 0\.\.2"):
        metrics.topk_accuracy(torch.rand(4, 3), torch.tensor([0, 1, 7, -1]), 1)


def test_retrieval_metrics_hand_case():
    # query 0: gt item 0 is best (rank 0); query 1: gt item 2 is third (rank 2);
    # query 2: gt item 1 is last of four (rank 3); query 3: gt item 3 ties with one other (rank 0.5).
    sim = torch.tensor([[0.9, 0.1, 0.2, 0.3],
                        [0.8, 0.7, 0.6, 0.1],
                        [0.5, 0.0, 0.4, 0.3],
                        [0.2, 0.9, 0.1, 0.9]])
    gt = torch.tensor([0, 2, 1, 3])
    assert metrics.gt_ranks(sim, gt).tolist() == [0, 2, 3, 0.5]
    out = metrics.retrieval_metrics(sim, gt, ks=(1, 3))
    assert out["R1"] == pytest.approx(2 / 4)
    assert out["R3"] == pytest.approx(3 / 4)
    assert out["MedianR"] == pytest.approx((0.5 + 2) / 2 + 1)  # median of 0, .5, 2, 3 is 1.25


def test_collapsed_similarities_rank_at_chance():
    ranks = metrics.gt_ranks(torch.ones(3, 5), torch.tensor([0, 1, 4]))
    assert ranks.tolist() == [2.0, 2.0, 2.0]


def test_d_prime_and_multilabel_hand_case():
    assert metrics.d_prime(0.5) == pytest.approx(0.0, abs=1e-12)
    assert metrics.d_prime(0.76025) == pytest.approx(math.sqrt(2) * 0.7075, abs=1e-3)
    # class 0: scores for positives {0.9, 0.4}, negatives {0.5, 0.1}: AUC = 3/4 pairs ordered;
    # AP = mean(precision at each positive) = (1/1 + 2/3) / 2.
    # class 1: perfectly separated: AUC = AP = 1.  class 2 has no negatives: skipped.
    scores = torch.tensor([[0.9, 0.8, 0.5], [0.5, 0.1, 0.5], [0.4, 0.7, 0.5], [0.1, 0.2, 0.5]])
    targets = torch.tensor([[1, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.float32)
    out = metrics.multilabel_metrics(scores, targets)
    assert out["AUC"] == pytest.approx((0.75 + 1.0) / 2)
    assert out["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert out["d_prime"] == pytest.approx(math.sqrt(2) * 1.1503494, abs=1e-5)  # Phi^-1(0.875)


def test_similarity_variants_hand_case():
    text = torch.tensor([[1.0, 0.0]])
    # one video seen through two clips: (1, 0) and (0, 1)
    video = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    # embd: mean clip (0.5, 1) normalised -> cos = 0.5 / sqrt(1.25)
    assert retrieval.similarity(text, video, "embd").item() == pytest.approx(0.5 / math.sqrt(1.25))
    # cosine: mean(1, 0) = 0.5
    assert retrieval.similarity(text, video, "cosine").item() == pytest.approx(0.5)


def test_identical_embeddings_give_perfect_recall():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(50, 16, generator=gen)
    video = emb[:, None].repeat(1, 4, 1)
    for variant, out in retrieval.text_to_video(emb, video).items():
        assert out["R1"] == 1.0 and out["R10"] == 1.0 and out["MedianR"] == 1.0, variant


def test_retrieval_is_invariant_to_a_permutation_of_the_pool():
    gen = torch.Generator().manual_seed(1)
    text, video = torch.randn(40, 8, generator=gen), torch.randn(40, 4, 8, generator=gen)
    base = retrieval.text_to_video(text, video)
    perm = torch.randperm(40, generator=gen)
    inv = torch.argsort(perm)  # the permuted pool holds video i at position inv[i]
    assert retrieval.text_to_video(text, video[perm], gt=inv) == base
    # and permuting queries together with their ground truth changes nothing either
    assert retrieval.text_to_video(text[perm], video, gt=perm) == base
