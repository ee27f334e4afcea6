"""Sequential recommendation on the same data: the protocol DMESR (the sequential neighbour) is judged by.

- `leave_one_out(ds)`: per user in time order, last item test, second last valid, the rest
  train (any dataset with timestamps; a clear error otherwise);
- `SequenceData`: left-padded item-id sequences (ids shifted by one, 0 = padding) for
  next-item training and for valid/test prediction, plus frozen LM item views;
- `SequentialRecommender`: the small interface every sequential model implements;
- `evaluate_sequential`: HR/NDCG@K by full ranking over all items minus the user's history,
  and the (optimistic, older) 100-sampled-negatives variant, labelled `sampled100_`;
- `train_sequential`: next-item training with validation early stopping, reusing `TrainConfig`
  and `TrainResult` from the general top-K trainer; `runner.run` calls it for a sequential spec.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .data import DataError, Dataset
from .evaluate import EvalResult, rank_metrics
from .sequence_data import PAD, EvalExamples, SequenceData, SequentialRecommender, embed
from .train import TrainConfig, TrainResult, resolve_device

__all__ = ["PAD", "EvalExamples", "SequenceData", "SequentialRecommender", "embed", "SAMPLED_PREFIX",
           "leave_one_out", "lm_views", "target_ranks", "rank_metrics_single", "evaluate_sequential",
           "train_sequential"]

SAMPLED_PREFIX = "sampled{n}_"


def leave_one_out(ds: Dataset) -> Dataset:
    """A copy of `ds` re-split by time: per user the last interaction is test, the second last
    valid, the rest train (ties in timestamp keep file order). Users with fewer than three
    interactions keep all of them in train and are not evaluated."""
    df = ds.interactions
    if "timestamp" not in df.columns:
        raise DataError(f"dataset '{ds.name}' has no timestamp column: a leave-one-out sequential "
                        f"split needs the time order of each user's interactions")
    if df["timestamp"].isna().any():
        r = df.index[df["timestamp"].isna()][0]
        raise DataError(f"dataset '{ds.name}': timestamp missing at row {r}")
    df = df.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
    size = df.groupby("user")["item"].transform("size").to_numpy()
    split = np.where(from_end == 0, 2, np.where(from_end == 1, 1, 0))
    df["split"] = np.where(size >= 3, split, 0).astype(np.int64)
    return replace(ds, interactions=df, source=f"{ds.source or ds.name} [leave-one-out]")


def lm_views(ds: Dataset, encoder: Any = None) -> dict[str, np.ndarray]:
    """DMESR's two frozen item views, encoded by the project's (cached) text encoder:
    "mllm" = the MLLM-written image description, "text" = the original title/attribute text."""
    from .lm import as_encoder, encode_cached
    if ds.item_meta is None or "image_description" not in ds.item_meta.columns or ds.item_text is None:
        raise DataError(f"dataset '{ds.name}' needs item_meta['image_description'] (the MLLM-written "
                        f"view) and item_text (the original view) for DMESR's LM views")
    enc = as_encoder(encoder)
    return {"mllm": encode_cached(enc, list(ds.item_meta["image_description"]))[0],
            "text": encode_cached(enc, list(ds.item_text))[0]}


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
    was_training = model.training
    model.eval()
    ex = data.eval_examples(split)
    negatives = data.sampled_negatives(split, n_sampled, seed) if n_sampled else None
    prefix = SAMPLED_PREFIX.format(n=n_sampled)
    per_user: dict[str, list[Tensor]] = {}
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
    model.train(was_training)
    pu = {k: torch.cat(v).numpy() for k, v in per_user.items()}
    return EvalResult({k: float(v.mean()) for k, v in pu.items()}, pu, ex.users)


def train_sequential(model: SequentialRecommender, data: SequenceData, config: TrainConfig,
                     seed: int) -> TrainResult:
    """Next-item training (Adam, shuffled user sequences); validation every `eval_every`
    epochs on `config.select_metric`; stop after `patience` evaluations without improvement;
    test metrics (full and sampled) at the best-validation epoch. Runs with the pinned torch
    thread count (`determinism.pin_threads`), on which the metrics depend."""
    from .determinism import pin_threads
    pin_threads()
    if config.selection != "valid":
        raise ValueError("sequential models are selected on validation only (selection='valid')")
    device = resolve_device(config.device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(seed)
    inputs, targets = data.train_examples()
    best, best_epoch, bad, best_eval, history = -np.inf, 0, 0, None, []
    train_times, eval_times = [], []
    epoch = 0
    for epoch in tqdm(range(1, config.epochs + 1), desc=type(model).__name__, disable=not config.progress, leave=False):
        model.train()
        t0 = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(inputs)))
        sums: dict[str, float] = {}
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            parts = model.loss(inputs[idx].to(device), targets[idx].to(device))
            optimizer.zero_grad()
            parts["loss"].backward()
            optimizer.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        train_times.append(time.perf_counter() - t0)
        n_batches = -(-len(order) // config.batch_size)
        row = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()}, "train_s": train_times[-1]}
        if not np.isfinite(row["loss"]):
            raise FloatingPointError(f"{type(model).__name__}: loss became {row['loss']} at epoch {epoch}")
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            t1 = time.perf_counter()
            valid = evaluate_sequential(model, data, "valid", config.ks)
            eval_times.append(time.perf_counter() - t1)
            score = valid.metrics[config.select_metric]
            row.update(select_score=score, eval_s=eval_times[-1])
            if score > best:
                best, best_epoch, bad = score, epoch, 0
                best_eval = (valid, evaluate_sequential(model, data, "test", config.ks))
            else:
                bad += 1
        history.append(row)
        if bad >= config.patience:
            break
    valid, test = best_eval
    return TrainResult(best_epoch=best_epoch, valid=valid.metrics, test=test.metrics,
                       test_per_user=test.per_user, test_users=test.users, history=history,
                       train_seconds_per_epoch=float(np.mean(train_times)),
                       eval_seconds=float(np.mean(eval_times)), epochs_run=epoch)
