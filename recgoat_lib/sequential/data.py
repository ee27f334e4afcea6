"""The data of sequential recommendation: a leave-one-out split of a `Dataset` and its next-item sequences.

- `leave_one_out(ds)`: per user in time order, last item test, second last valid, the rest
  train (any dataset with timestamps; a clear error otherwise);
- `SequenceData`: left-padded item-id sequences (ids shifted by one, 0 = padding) for
  next-item training and for valid/test prediction, plus frozen LM item views;
- `lm_views(ds)`: DMESR's two frozen LM item views, through the project's cached text encoder.

The bottom of the sequential stack: `sequential.models`, `.evaluate` and `.train` build on it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data import SPLITS, DataError, Dataset

PAD = 0


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

    def checksum(self) -> str:
        """sha256 over the sequences, their split labels, `max_len` and the LM views: what a run saw."""
        h = hashlib.sha256(f"{self.name}:{self.n_users}:{self.n_items}:{self.max_len}".encode())
        for items, labels in zip(self.items, self.labels):
            h.update(items.tobytes())
            h.update(labels.tobytes())
        for k in sorted(self.views):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.views[k]).tobytes())
        return h.hexdigest()[:16]

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
    from ..feature_cache import encode_cached
    from ..lm import as_encoder
    if ds.item_meta is None or "image_description" not in ds.item_meta.columns or ds.item_text is None:
        raise DataError(f"dataset '{ds.name}' needs item_meta['image_description'] (the MLLM-written "
                        f"view) and item_text (the original view) for DMESR's LM views")
    enc = as_encoder(encoder)
    return {"mllm": encode_cached(enc, list(ds.item_meta["image_description"]))[0],
            "text": encode_cached(enc, list(ds.item_text))[0]}
