"""Evaluation metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from ml.api import accuracy, hit_at_k, macro_f1, mrr_at_k, ndcg_at_k, recall_at_k


def test_accuracy_is_the_share_of_exact_matches():
    assert accuracy(["a", "b", "c", "a"], ["a", "b", "a", "a"]) == 0.75
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="differ in length"):
        accuracy(["a"], ["a", "b"])


def test_macro_f1_averages_per_class_f1_without_weights():
    # a: tp 1, fp 0, fn 1 -> F1 2/3; b: tp 2, fp 1, fn 0 -> F1 4/5
    y_true, y_pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 4 / 5) / 2)
    # a class named in `labels` but never seen nor predicted counts as F1 0
    assert macro_f1(y_true, y_pred, ["a", "b", "c"]) == pytest.approx((2 / 3 + 4 / 5) / 3)
    assert macro_f1(["a", "b"], ["a", "b"]) == 1.0
    assert macro_f1([], []) == 0.0


def test_hit_at_k_counts_queries_with_a_relevant_item_in_the_top_k():
    ranked = [["x", "y", "z"], ["p", "q", "r"]]
    relevant = [{"y"}, {"s"}]
    assert hit_at_k(ranked, relevant, 1) == 0.0
    assert hit_at_k(ranked, relevant, 2) == 0.5
    assert hit_at_k(ranked, relevant, 3) == 0.5
    assert hit_at_k([], [], 5) == 0.0


def test_mrr_at_k_uses_the_first_relevant_rank_within_k():
    ranked = [["x", "y", "z"], ["p", "q", "r"], ["m", "n", "o"]]
    relevant = [{"y", "z"}, {"p"}, {"o"}]
    assert mrr_at_k(ranked, relevant, 3) == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert mrr_at_k(ranked, relevant, 2) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert mrr_at_k([], [], 3) == 0.0


def test_recall_at_k_is_the_share_of_relevant_items_found_and_skips_queries_without_any():
    ranked = [["a", "b", "c", "d"], ["x"]]
    relevant = [{"a", "c", "e"}, set()]
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    assert recall_at_k([["x"]], [set()], 1) == 0.0


def test_ndcg_at_k_discounts_by_log_rank_against_the_ideal_order():
    # relevant at ranks 2 and 3: DCG = 1/log2(3) + 1/log2(4); ideal = 1/log2(2) + 1/log2(3)
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([["a", "b", "c"]], [{"b", "c"}], 3) == pytest.approx(expected)
    assert ndcg_at_k([["b", "c", "a"]], [{"b", "c"}], 3) == pytest.approx(1.0)
    # k caps both the ranking and the ideal: one relevant of two at rank 1 is perfect at k=1
    assert ndcg_at_k([["b", "a"]], [{"b", "c"}], 1) == pytest.approx(1.0)
    assert ndcg_at_k([["a", "b"]], [{"b"}], 1) == 0.0


def test_ranking_metrics_refuse_lists_of_different_lengths():
    with pytest.raises(ValueError):
        hit_at_k([["a"], ["b"]], [{"a"}], 1)
