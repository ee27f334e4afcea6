"""Evaluation of next-item models: the protocol DMESR (the sequential neighbour) is judged by.

`evaluate_sequential`: HR/NDCG@K by full ranking over all items minus the user's history, and
the (optimistic, older) 100-sampled-negatives variant, labelled `sampled100_`. Ties count
against the model, as in the full-ranking `evaluate` (`target_ranks`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..evaluate import EvalResult, rank_metrics
from ..models.base import evaluating
from .data import SequenceData
from .models import SequentialRecommender

SAMPLED_PREFIX = "sampled{n}_"


def target_ranks(scores: Tensor, targets: Tensor, masked: Tensor | None = None) -> Tensor:
    """0-based rank of each row's target among its candidates; ties count against the target
    (every candidate scoring at least as high ranks ahead: the tie policy of `evaluate.ranked_hits`,
    exact and independent of item order), `masked` (bool, same shape) candidates are left out."""
    target_scores = scores.gather(1, targets[:, None])
    ahead = scores >= target_scores
    ahead.scatter_(1, targets[:, None], False)
    if masked is not None:
        ahead &= ~masked
    return ahead.sum(1)


def rank_metrics_single(ranks: Tensor, ks: tuple[int, ...]) -> dict[str, Tensor]:
    """Per-user HR (= hit = recall), NDCG, ... at each K for one relevant item at `ranks`."""
    hits = torch.arange(max(ks), device=ranks.device)[None, :] == ranks[:, None]
    return rank_metrics(hits, torch.ones_like(ranks), ks)


@torch.no_grad()
def evaluate_sequential(model: SequentialRecommender, data: SequenceData, split: str = "valid",
                        ks: tuple[int, ...] = (10, 20), n_sampled: int = 100, seed: int = 0,
                        batch_size: int = 1024) -> EvalResult:
    """Full ranking over all items minus the user's history (metric names as in `evaluate`:
    hit@K is HR@K, recall@K equals it with one target) plus the `n_sampled`-negatives variant
    under names prefixed `sampled<n>_` (n_sampled=0 skips it). Tied scores count against the
    model in both (see `target_ranks`), as in `evaluate`. The negatives depend on `seed`
    only, not on the model or its training seed, so per-user values pair up across runs."""
    ex = data.eval_examples(split)
    negatives = data.sampled_negatives(split, n_sampled, seed) if n_sampled else None
    prefix = SAMPLED_PREFIX.format(n=n_sampled)
    per_user: dict[str, list[Tensor]] = {}
    with evaluating(model):
        for start in range(0, len(ex.users), batch_size):
            sl = slice(start, start + batch_size)
            scores = model.scores(ex.inputs[sl].to(model.device)).cpu()
            targets = ex.targets[sl]
            seen = torch.zeros_like(scores, dtype=torch.bool)
            for r, hist in enumerate(ex.history[sl]):
                seen[r, torch.tensor(hist)] = True
            parts = rank_metrics_single(target_ranks(scores, targets, seen), ks)
            if negatives is not None:
                cand = torch.cat([targets[:, None], negatives[sl]], 1)
                ranks = target_ranks(scores.gather(1, cand), torch.zeros_like(targets))
                parts.update({prefix + k: v for k, v in rank_metrics_single(ranks, ks).items()})
            for k, v in parts.items():
                per_user.setdefault(k, []).append(v)
    pu = {k: torch.cat(v).numpy() for k, v in per_user.items()}
    return EvalResult({k: float(v.mean()) for k, v in pu.items()}, pu, ex.users)
