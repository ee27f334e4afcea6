"""Sequential recommendation on the same data: the protocol DMESR (the sequential neighbour) is judged by.

- `leave_one_out(ds)`: per user in time order, last item test, second last valid, the rest
  train (any dataset with timestamps; a clear error otherwise);
- `SequenceData`: left-padded item-id sequences (ids shifted by one, 0 = padding) for
  next-item training and for valid/test prediction, plus frozen LM item views;
- `SequentialRecommender`: the small interface every sequential model implements;
- `evaluate_sequential`: HR/NDCG@K by full ranking over all items minus the user's history,
  and the (optimistic, older) 100-sampled-negatives variant, labelled `sampled100_`;
- `train_sequential` / `run_sequential`: next-item training with validation early stopping,
  reusing `TrainConfig` and `TrainResult` from the general top-K trainer.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import SPLITS, DataError, Dataset
from .evaluate import EvalResult, rank_metrics
from .train import TrainConfig, TrainResult, resolve_device, seed_everything

PAD = 0
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


def _pad_left(rows: list[np.ndarray], length: int) -> Tensor:
    out = np.full((len(rows), length), PAD, dtype=np.int64)
    for r, seq in enumerate(rows):
        seq = seq[-length:]
        if len(seq):
            out[r, length - len(seq):] = seq
    return torch.from_numpy(out)


@dataclass
class EvalExamples:
    """One evaluation split: the users, their left-padded input sequences, the target item
    (0-based) and each user's full history before the target (masked at ranking time)."""

    users: np.ndarray
    inputs: Tensor
    targets: Tensor
    history: list[np.ndarray]


class SequenceData:
    """Next-item views of a leave-one-out `Dataset` (see `leave_one_out`), with frozen LM item views.

    Sequences hold item ids + 1 (0 is padding) and are cut to the last `max_len` items.
    """

    def __init__(self, ds: Dataset, max_len: int = 20, views: dict[str, np.ndarray] | None = None):
        if max_len < 2:
            raise ValueError(f"max_len must be at least 2, got {max_len}")
        views = views or {}
        self._cache: dict[tuple, Any] = {}
        for k, v in views.items():
            if v.ndim != 2 or v.shape[0] != ds.n_items or not np.isfinite(v).all():
                raise DataError(f"view '{k}' must be a finite [{ds.n_items}, dim] matrix, got shape {v.shape}")
        df = ds.interactions
        if "timestamp" not in df.columns:
            raise DataError(f"dataset '{ds.name}' has no timestamps; build it with leave_one_out(ds)")
        df = df.sort_values(["user", "timestamp"], kind="stable")
        self.name, self.n_users, self.n_items, self.max_len = ds.name, ds.n_users, ds.n_items, max_len
        self.views = {k: v.astype(np.float32) for k, v in views.items()}
        groups = dict(tuple(df.groupby("user")))
        self.items = [groups[u]["item"].to_numpy(np.int64) if u in groups else np.zeros(0, np.int64)
                      for u in range(ds.n_users)]
        self.labels = [groups[u]["split"].to_numpy(np.int64) if u in groups else np.zeros(0, np.int64)
                       for u in range(ds.n_users)]
        for u, lab in enumerate(self.labels):
            if len(lab) and np.any(np.diff(lab) < 0):
                raise DataError(f"dataset '{ds.name}': user {u}'s split labels are not in time order "
                                f"(train before valid before test); build it with leave_one_out(ds)")

    def train_examples(self) -> tuple[Tensor, Tensor]:
        """(inputs, targets) [n, max_len]: each training sequence shifted by one position."""
        seqs = [it[lab == 0] + 1 for it, lab in zip(self.items, self.labels)]
        seqs = [s for s in seqs if len(s) >= 2]
        return _pad_left([s[:-1] for s in seqs], self.max_len), _pad_left([s[1:] for s in seqs], self.max_len)

    def eval_examples(self, split: str) -> EvalExamples:
        """Users with a `split` target; the input is everything before it in time (built once)."""
        if ("eval", split) not in self._cache:
            self._cache["eval", split] = self._eval_examples(split)
        return self._cache["eval", split]

    def _eval_examples(self, split: str) -> EvalExamples:
        if split not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        code = SPLITS.index(split)
        users, prefixes, targets = [], [], []
        for u, (it, lab) in enumerate(zip(self.items, self.labels)):
            at = np.flatnonzero(lab == code)
            if len(at) != 1:
                continue
            users.append(u)
            prefixes.append(it[: at[0]])
            targets.append(it[at[0]])
        if not users:
            raise DataError(f"dataset '{self.name}': no user has a {split} target (need one per user)")
        return EvalExamples(np.array(users), _pad_left([p + 1 for p in prefixes], self.max_len),
                            torch.tensor(targets), prefixes)

    def sampled_negatives(self, split: str, n: int, seed: int) -> Tensor:
        """[users of `split`, n] distinct items drawn uniformly from those outside the user's
        history and target; fixed by `seed` (and drawn once) so every model is ranked
        against the same ones."""
        if ("negatives", split, n, seed) not in self._cache:
            self._cache["negatives", split, n, seed] = self._sample(self.eval_examples(split), n, seed)
        return self._cache["negatives", split, n, seed]

    def _sample(self, ex: EvalExamples, n: int, seed: int) -> Tensor:
        rng = np.random.default_rng(seed)
        out = np.empty((len(ex.users), n), dtype=np.int64)
        for r, (hist, target) in enumerate(zip(ex.history, ex.targets.numpy())):
            allowed = np.setdiff1d(np.arange(self.n_items), np.append(hist, target))
            if len(allowed) < n:
                raise DataError(f"user {ex.users[r]} has only {len(allowed)} unseen items, fewer than "
                                f"the {n} sampled negatives asked for")
            out[r] = rng.choice(allowed, size=n, replace=False)
        return torch.from_numpy(out)


def embed(table: Tensor, seqs: Tensor) -> Tensor:
    """Look up item vectors for padded id sequences (padding -> zero vector)."""
    return nn.functional.pad(table, (0, 0, 1, 0))[seqs]


class SequentialRecommender(nn.Module, ABC):
    """A next-item model: `encode` maps padded sequences to a state after every position,
    `item_table` gives the vectors states are scored against, and `loss` is full-softmax
    cross-entropy at every non-padding position (subclasses add terms)."""

    @abstractmethod
    def encode(self, seqs: Tensor) -> Tensor:
        """[B, L] padded ids -> [B, L, d] states."""

    @abstractmethod
    def item_table(self) -> Tensor:
        """[n_items, d] item vectors (row i is item i, no padding row)."""

    def scores(self, seqs: Tensor) -> Tensor:
        """[B, n_items] scores of the next item after each sequence."""
        return self.encode(seqs)[:, -1] @ self.item_table().T

    def loss(self, seqs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        keep = targets != PAD
        logits = self.encode(seqs)[keep] @ self.item_table().T
        ce = nn.functional.cross_entropy(logits, targets[keep] - 1)
        return {"loss": ce, "ce": ce}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


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


def run_sequential(model: str, data: SequenceData, train: TrainConfig, seed: int,
                   label: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Build a sequential model by name ("sasrec", "dmesr") with config `overrides`, train it
    from `seed` and return a record (config, test metrics, per-user test metrics, timings)."""
    from .models.dmesr import SEQUENTIAL_MODELS
    if model not in SEQUENTIAL_MODELS:
        raise KeyError(f"unknown sequential model {model!r}; known: {sorted(SEQUENTIAL_MODELS)}")
    cls = SEQUENTIAL_MODELS[model]
    config = cls.Config(**overrides)
    seed_everything(seed)
    net = cls(data, config)
    res = train_sequential(net, data, train, seed)
    return {"label": label or model, "model": model, "model_config": asdict(config), "seed": seed,
            "best_epoch": res.best_epoch, "epochs_run": res.epochs_run, "valid": res.valid, "test": res.test,
            "per_user": res.test_per_user, "users": res.test_users,
            "train_seconds_per_epoch": res.train_seconds_per_epoch,
            "n_parameters": sum(p.numel() for p in net.parameters())}


def records_frame(records: list[dict[str, Any]], metrics: tuple[str, ...]) -> pd.DataFrame:
    """One row per run: label, seed, the chosen test metrics, best epoch and seconds per epoch."""
    return pd.DataFrame([{"model": r["label"], "seed": r["seed"], **{m: r["test"][m] for m in metrics},
                          "best_epoch": r["best_epoch"], "s_per_epoch": r["train_seconds_per_epoch"]}
                         for r in records])


def mean_std(frame: pd.DataFrame, metrics: tuple[str, ...], by: str = "model") -> pd.DataFrame:
    """Mean and (sample) standard deviation over seeds of each metric, one row per `by` value,
    in the order the values first appear."""
    order = list(dict.fromkeys(frame[by]))
    agg = frame.groupby(by)[list(metrics)].agg(["mean", "std"]).loc[order]
    agg.columns = [f"{m} {s}" for m, s in agg.columns]
    return agg.reset_index().assign(seeds=frame.groupby(by).size().loc[order].to_numpy())


def seed_averaged(records: list[dict[str, Any]], label: str, metric: str) -> np.ndarray:
    """Per-user `metric` of the runs labelled `label`, averaged over their seeds (for paired tests)."""
    runs = [r for r in records if r["label"] == label]
    if not runs:
        raise KeyError(f"no runs labelled {label!r}; have {sorted({r['label'] for r in records})}")
    if any(not np.array_equal(r["users"], runs[0]["users"]) for r in runs):
        raise ValueError(f"runs of {label!r} were evaluated on different users")
    return np.mean([r["per_user"][metric] for r in runs], axis=0)
