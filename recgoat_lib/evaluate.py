"""Full-ranking evaluation (MMRec protocol): score every item, mask the user's training items, rank with topk.

Tie policy (shared with `sequential.evaluate.evaluate_sequential`): **ties count against the model**.
Among items with equal scores, the non-relevant ones rank first, so a tie never earns credit
and the metrics depend only on the scores, not on the order `torch.topk` happens to return
equal values in (undocumented, and different on CPU and CUDA). A constant scorer gets zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .data import Dataset
from .models.base import Recommender, evaluating

METRICS = ("recall", "ndcg", "precision", "map", "hit")


@dataclass
class EvalResult:
    """Mean metrics ("recall@20" -> value) and per-user values for paired significance tests."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray


def rank_metrics(hits: Tensor, n_relevant: Tensor, ks: tuple[int, ...]) -> dict[str, Tensor]:
    """Per-user Recall, NDCG, Precision, MAP and HitRate at each K.

    `hits[b, r]` is 1 where the item ranked r for user b is relevant; `n_relevant[b]` is the
    size of the user's ground truth. MAP@K divides by min(|relevant|, K).
    """
    hits = hits.float()
    n_rel = n_relevant.float()
    ranks = torch.arange(1, hits.shape[1] + 1, dtype=torch.float32, device=hits.device)
    discount = 1.0 / torch.log2(ranks + 1.0)
    cum_hits = hits.cumsum(1)
    out = {}
    for k in ks:
        h, denom = hits[:, :k], torch.clamp(n_rel, max=k)
        out[f"recall@{k}"] = cum_hits[:, k - 1] / n_rel
        out[f"precision@{k}"] = cum_hits[:, k - 1] / k
        out[f"hit@{k}"] = (cum_hits[:, k - 1] > 0).float()
        ideal = torch.cumsum(discount[:k], 0)[denom.long() - 1]
        out[f"ndcg@{k}"] = (h * discount[:k]).sum(1) / ideal
        out[f"map@{k}"] = (h * cum_hits[:, :k] / ranks[:k]).sum(1) / denom
    return out


def ranked_hits(scores: Tensor, relevant: Tensor, k: int, top: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """[B, k] bool: is the item at each of the top-k ranks relevant, with ties against the model.

    The order is that of sorting by (score descending, relevant last), whatever order `topk`
    returns tied values in. Only the top k+1 values are sorted: runs of equal values inside the
    top k are re-ordered non-relevant first, and only in rows whose boundary run continues past
    rank k (seen from the (k+1)-th value; rare with real-valued scores) are the tied items
    counted over all items, so that the top k gets as few relevant ones as the ties allow.
    `top` is `torch.topk(scores, min(k + 1, n_items), dim=1)` when the caller already has it (several
    ground truths ranked on one score matrix share it); the result does not depend on its tie order.
    """
    values, top = top if top is not None else torch.topk(scores, min(k + 1, scores.shape[1]), dim=1)
    crosses = values[:, k] == values[:, k - 1] if values.shape[1] > k else torch.zeros_like(relevant[:, 0])
    values, hits = values[:, :k], torch.gather(relevant, 1, top[:, :k])
    run = torch.cat([torch.zeros_like(values[:, :1], dtype=torch.long),
                     (values[:, 1:] != values[:, :-1]).long().cumsum(1)], 1)
    hits = torch.gather(hits, 1, torch.sort(run * 2 + hits.long(), dim=1, stable=True).indices)
    rows = crosses.nonzero()[:, 0]
    if len(rows):
        at_boundary = run[rows] == run[rows, -1:]
        tied = scores[rows] == values[rows, -1:]
        tied_irrelevant = (tied & ~relevant[rows]).sum(1, keepdim=True)
        relevant_in_run = (at_boundary.sum(1, keepdim=True) - tied_irrelevant).clamp(min=0)
        last_ranks = torch.arange(k, device=scores.device)[None, :] >= k - relevant_in_run
        hits[rows] = torch.where(at_boundary, last_ranks, hits[rows])
    return hits


def evaluate(model: Recommender, ds: Dataset, split: str = "valid", ks: tuple[int, ...] = (10, 20),
             batch_size: int = 4096, eval_mode: bool = True) -> EvalResult:
    """Rank all items for every user with ground truth in `split`, training items masked
    (ties against the model, see `ranked_hits`).

    `eval_mode=False` keeps dropout on, as the released RecGOAT code evaluates.
    """
    return evaluate_splits(model, ds, (split,), ks, batch_size, eval_mode)[split]


@torch.no_grad()
def evaluate_splits(model: Recommender, ds: Dataset, splits: tuple[str, ...] = ("valid", "test"),
                    ks: tuple[int, ...] = (10, 20), batch_size: int = 4096,
                    eval_mode: bool = True) -> dict[str, EvalResult]:
    """`evaluate` for several splits at once, with the metrics each would give alone.

    Every split masks the same training items, so one forward pass, one score matrix per batch
    of users (those with ground truth in any split) and one top-k serve them all; only the
    gather of each split's relevant items and the tie handling (`ranked_hits`) are per split.
    Valid + test this way cost one scoring pass instead of two (train.train, benchmarks).
    """
    if len(set(splits)) != len(splits) or not splits:
        raise ValueError(f"splits must be distinct and non-empty, got {splits}")
    with evaluating(model, eval_mode):
        device = model.device
        emb = model.ranking_forward()
        train = ds.csr("train")
        truths = {s: ds.csr(s) for s in splits}
        counts = {s: np.diff(t.indptr) for s, t in truths.items()}
        users = np.flatnonzero(np.logical_or.reduce([c > 0 for c in counts.values()]))
        k_max = max(ks)
        per_user: dict[str, dict[str, list[Tensor]]] = {s: {} for s in splits}
        for start in range(0, len(users), batch_size):
            batch = users[start:start + batch_size]
            scores = model.score(emb, torch.from_numpy(batch).to(device))
            seen = _batch_coo(train, batch, device)
            scores[seen[0], seen[1]] = -torch.inf
            top = torch.topk(scores, min(k_max + 1, scores.shape[1]), dim=1)
            for split, truth in truths.items():
                gt = torch.zeros_like(scores, dtype=torch.bool)
                rel = _batch_coo(truth, batch, device)
                gt[rel[0], rel[1]] = True
                rows = torch.from_numpy(np.flatnonzero(counts[split][batch] > 0)).to(device)
                hits = ranked_hits(scores, gt, k_max, top)[rows]
                n_rel = torch.from_numpy(counts[split][batch]).to(device)[rows]
                for name, v in rank_metrics(hits, n_rel, ks).items():
                    per_user[split].setdefault(name, []).append(v.cpu())
    out = {}
    for split in splits:
        pu = {k: torch.cat(v).numpy() for k, v in per_user[split].items()}
        out[split] = EvalResult({k: float(v.mean()) for k, v in pu.items()}, pu, np.flatnonzero(counts[split] > 0))
    return out


def _batch_coo(m, rows: np.ndarray, device) -> Tensor:
    """(row-in-batch, column) index pairs of the non-zeros of `m[rows]`."""
    sub = m[rows].tocoo()
    return torch.from_numpy(np.vstack([sub.row, sub.col]).astype(np.int64)).to(device)
