"""Full-ranking evaluation against a brute-force per-user reference and hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import fixed_scores

from recgoat_lib.evaluate import evaluate, evaluate_splits, rank_metrics, ranked_hits


def brute_force(scores, train, truth, k):
    """Per-user loops over items, written independently of the vectorised code; ties are broken
    against the model (relevant items after non-relevant ones with the same score)."""
    out = {m: [] for m in ("recall", "ndcg", "precision", "map", "hit")}
    for u in range(scores.shape[0]):
        rel = set(np.flatnonzero(truth[u]))
        if not rel:
            continue
        s = scores[u].copy()
        s[train[u] > 0] = -np.inf
        ranked = list(np.lexsort((truth[u] > 0, -s))[:k])
        hits = [1.0 if i in rel else 0.0 for i in ranked]
        dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / np.log2(r + 2) for r in range(min(len(rel), k)))
        ap = sum(sum(hits[:r + 1]) / (r + 1) for r, h in enumerate(hits) if h) / min(len(rel), k)
        out["recall"].append(sum(hits) / len(rel))
        out["ndcg"].append(dcg / idcg)
        out["precision"].append(sum(hits) / k)
        out["map"].append(ap)
        out["hit"].append(float(sum(hits) > 0))
    return {f"{m}@{k}": float(np.mean(v)) for m, v in out.items()}


def test_matches_brute_force_on_random_data(tiny):
    rng = np.random.default_rng(0)
    for split in ("valid", "test"):
        scores = rng.normal(size=(tiny.n_users, tiny.n_items))
        got = evaluate(fixed_scores(scores), tiny, split, ks=(1, 2, 3)).metrics
        train, truth = tiny.csr("train").toarray(), tiny.csr(split).toarray()
        for k in (1, 2, 3):
            want = brute_force(scores, train, truth, k)
            for name, v in want.items():
                assert got[name] == pytest.approx(v, abs=1e-6), (split, name)


def test_matches_brute_force_on_toy_with_batching(toy):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(toy.n_users, toy.n_items)).astype(np.float32)
    res = evaluate(fixed_scores(scores), toy, "test", ks=(10, 20), batch_size=333)
    want = brute_force(scores, toy.csr("train").toarray(), toy.csr("test").toarray(), 20)
    for name, v in want.items():
        assert res.metrics[name] == pytest.approx(v, abs=1e-6)
    assert len(res.users) == len(np.unique(toy.split_pairs("test")[0]))
    assert res.per_user["recall@20"].shape == res.users.shape


def test_hand_made_ranking():
    # relevant items at ranks 1 and 3 of 4 retrieved; 3 relevant in total
    hits = torch.tensor([[1, 0, 1, 0]])
    m = rank_metrics(hits, torch.tensor([3]), ks=(4,))
    assert m["recall@4"].item() == pytest.approx(2 / 3)
    assert m["precision@4"].item() == pytest.approx(0.5)
    assert m["hit@4"].item() == 1.0
    ndcg = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3) + 1 / np.log2(4))
    assert m["ndcg@4"].item() == pytest.approx(ndcg)
    assert m["map@4"].item() == pytest.approx((1 + 2 / 3) / 3)


def test_training_items_are_never_recommended(toy):
    """Scoring training items above the held-out ones above the rest ranks like scoring the held-out
    ones alone only when training items are masked out (unmasked, they would fill the top 5 of every
    user with more than 5 of them)."""
    train, valid = toy.csr("train").toarray(), toy.csr("valid").toarray()
    assert (train.sum(1) > 5).mean() > 0.5
    res = evaluate(fixed_scores(train * 100.0 + valid * 50.0), toy, "valid", ks=(5,))
    held_out_only = evaluate(fixed_scores(valid * 50.0), toy, "valid", ks=(5,))
    assert held_out_only.metrics["recall@5"] > 0.5
    assert res.metrics["recall@5"] == pytest.approx(held_out_only.metrics["recall@5"])


@pytest.mark.parametrize("split", ["valid", "test"])
def test_heavily_tied_scores_match_brute_force(toy, split):
    """Scores from {0, 1, 2}: hundreds of ties per user, inside the top-k and across its boundary."""
    scores = np.random.default_rng(2).integers(0, 3, size=(toy.n_users, toy.n_items)).astype(np.float32)
    res = evaluate(fixed_scores(scores), toy, split, ks=(5, 20), batch_size=700)
    for k in (5, 20):
        for name, v in brute_force(scores, toy.csr("train").toarray(), toy.csr(split).toarray(), k).items():
            assert res.metrics[name] == pytest.approx(v, abs=1e-6), name


@pytest.mark.parametrize("tied", [False, True])
def test_splits_evaluated_together_equal_each_alone_and_brute_force(toy, tied):
    """One scoring pass and one top-k for valid + test: per-user metrics identical to separate runs
    (whose users differ, so the batches do too), and to the brute force, with and without ties."""
    rng = np.random.default_rng(3)
    scores = (rng.integers(0, 3, size=(toy.n_users, toy.n_items)) if tied
              else rng.normal(size=(toy.n_users, toy.n_items))).astype(np.float32)
    model = fixed_scores(scores)
    both = evaluate_splits(model, toy, ("valid", "test"), ks=(5, 20), batch_size=500)
    for split in ("valid", "test"):
        alone = evaluate(model, toy, split, ks=(5, 20), batch_size=700)
        np.testing.assert_array_equal(both[split].users, alone.users)
        assert both[split].metrics == alone.metrics
        for name, v in alone.per_user.items():
            np.testing.assert_array_equal(both[split].per_user[name], v)
        want = brute_force(scores, toy.csr("train").toarray(), toy.csr(split).toarray(), 20)
        for name, v in want.items():
            assert both[split].metrics[name] == pytest.approx(v, abs=1e-6), (split, name)


def test_evaluate_splits_rejects_repeated_splits(toy):
    with pytest.raises(ValueError, match="distinct"):
        evaluate_splits(fixed_scores(np.zeros((toy.n_users, toy.n_items))), toy, ("test", "test"))


def test_all_equal_scores_earn_nothing(toy):
    res = evaluate(fixed_scores(np.zeros((toy.n_users, toy.n_items))), toy, "test", ks=(10, 20))
    assert all(v == 0.0 for v in res.metrics.values())


def test_ties_at_the_k_boundary_by_hand():
    # ranks: item 0 (score 3), then items 1..4 tied at 2, then item 5 (score 1); k = 3 cuts the tie.
    scores = torch.tensor([[3.0, 2, 2, 2, 2, 1]] * 3)
    relevant = torch.tensor([[0, 1, 0, 0, 0, 0],    # 1 relevant among 4 tied: fits outside the top 3
                             [0, 1, 1, 1, 0, 0],    # 3 relevant, 1 irrelevant tied: 2 slots -> 1 relevant, last
                             [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    assert ranked_hits(scores, relevant, 3).int().tolist() == [[0, 0, 0], [0, 0, 1], [1, 1, 1]]
    # a tie inside the top k is ordered non-relevant first
    inside = torch.tensor([[1, 0, 1, 0, 0, 0]], dtype=torch.bool)
    assert ranked_hits(torch.tensor([[3.0, 3, 3, 1, 0, 0]]), inside, 4).int().tolist() == [[0, 1, 1, 0]]


def test_ranking_does_not_depend_on_item_order():
    """Permuting item ids (which changes the order `topk` returns ties in) leaves the hits unchanged."""
    rng = np.random.default_rng(3)
    scores = torch.from_numpy(rng.integers(0, 4, size=(50, 40)).astype(np.float32))
    relevant = torch.from_numpy(rng.random((50, 40)) < 0.2)
    perm = torch.from_numpy(rng.permutation(40))
    for k in (1, 7, 40):
        assert torch.equal(ranked_hits(scores, relevant, k), ranked_hits(scores[:, perm], relevant[:, perm], k))
