"""The `Dataset` type and the pure helpers that build one: k-core filtering, MMRec's 8:1:1 split,
MMRec's item-text recipe. No files are read here.

This is the bottom of the data layer: `toy` (the generated dataset) and `data` (the MMRec reader
and `load_dataset`, which re-exports every name below) both build on it, so neither imports the
other's caller. Bad input raises `DataError` naming the file and the problem.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

SPLITS = ("train", "valid", "test")
FEATURE_FILES = {"text": "text_feat.npy", "image": "image_feat.npy"}
# Columns of MMRec's released feature files: 4096-d image CNN features, 384-d sentence-transformer text.
MMREC_FEATURE_DIMS = {"image": 4096, "text": 384}
# Users and items of MMRec's Amazon datasets as published (tests/test_data.py checks them against the
# files under the data root): the sizes at which paper-scale costs are estimated without the data.
MMREC_SIZES = {"baby": (19445, 7050), "sports": (35598, 18357), "clothing": (39387, 23033)}


class DataError(ValueError):
    """Malformed or inconsistent input data; the message names the file and the problem."""


@dataclass
class Dataset:
    """Interactions with a train/valid/test split, plus optional modality features and raw text.

    `interactions` holds one row per (user, item) with columns user, item, split
    (0 train, 1 valid, 2 test) and optionally timestamp. `item_features` maps a
    modality name to an [n_items, dim] float32 matrix; `user_features` likewise
    for user-side LM features. `latent` carries ground truth for synthetic data.
    """

    name: str
    n_users: int
    n_items: int
    interactions: pd.DataFrame
    item_features: dict[str, np.ndarray] = field(default_factory=dict)
    user_features: dict[str, np.ndarray] = field(default_factory=dict)
    item_text: list[str] | None = None
    item_meta: pd.DataFrame | None = None
    user_text: list[str] | None = None
    latent: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        validate(self)

    def split(self, name: str) -> pd.DataFrame:
        return self.interactions[self.interactions["split"] == SPLITS.index(name)]

    def split_pairs(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) arrays of one split, as int64."""
        df = self.split(name)
        return df["user"].to_numpy(np.int64), df["item"].to_numpy(np.int64)

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary user x item matrix of one split."""
        u, i = self.split_pairs(name)
        data = np.ones(len(u), dtype=np.float32)
        return sp.csr_matrix((data, (u, i)), shape=(self.n_users, self.n_items))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted(self.item_features))

    def require_features(self, names: tuple[str, ...] | list[str], who: str) -> None:
        """Raise a clear error when `who` needs item modalities this dataset lacks."""
        missing = [m for m in names if m not in self.item_features]
        if missing:
            raise DataError(
                f"{who} needs item features {missing} but dataset '{self.name}' has "
                f"{list(self.item_features) or 'none'}; put MMRec's "
                f"{[_expected(m, self.n_items) for m in missing]} next to {self.name}.inter "
                f"(or encode text with recgoat_lib.lm)."
            )

    def with_features(self, item: dict[str, np.ndarray] | None = None,
                      user: dict[str, np.ndarray] | None = None, suffix: str = "") -> Dataset:
        """A copy with some modality features replaced or added (validated again)."""
        return Dataset(
            name=self.name + suffix, n_users=self.n_users, n_items=self.n_items,
            interactions=self.interactions,
            item_features={**self.item_features, **(item or {})},
            user_features={**self.user_features, **(user or {})},
            item_text=self.item_text, item_meta=self.item_meta, user_text=self.user_text,
            latent=self.latent, source=self.source,
        )

    def checksum(self) -> str:
        """sha256 over interactions and features: identifies exactly what a run was trained on."""
        h = hashlib.sha256()
        cols = self.interactions[["user", "item", "split"]].to_numpy(np.int64)
        h.update(np.ascontiguousarray(cols).tobytes())
        for group in (self.item_features, self.user_features):
            for k in sorted(group):
                h.update(k.encode())
                h.update(np.ascontiguousarray(group[k]).tobytes())
        return h.hexdigest()[:16]

    def stats(self) -> dict[str, float]:
        n = len(self.interactions)
        out = {"users": self.n_users, "items": self.n_items, "interactions": n,
               "sparsity": 1.0 - n / (self.n_users * self.n_items)}
        for s in SPLITS:
            out[f"{s}_rows"] = int((self.interactions["split"] == SPLITS.index(s)).sum())
        return out

    def degrees(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Interactions per user and per item in one split."""
        u, i = self.split_pairs(split)
        return np.bincount(u, minlength=self.n_users), np.bincount(i, minlength=self.n_items)

    def split_checks(self) -> pd.DataFrame:
        """Leakage and coverage checks of the split, one row per check, with the count found."""
        df = self.interactions
        train_users = set(df.loc[df["split"] == 0, "user"])
        train_items = set(df.loc[df["split"] == 0, "item"])
        rows = [("(user, item) pairs in more than one split", int(df.duplicated(["user", "item"]).sum()), True)]
        for k, s in ((1, "valid"), (2, "test")):
            part = df[df["split"] == k]
            cold = int((~part["user"].isin(train_users)).sum())
            rows.append((f"{s} users without training interactions", cold, True))
            rows.append((f"{s} rows whose item never occurs in training (cold items)",
                         int((~part["item"].isin(train_items)).sum()), False))
        return pd.DataFrame(rows, columns=["check", "count", "must_be_zero"]).assign(
            ok=lambda t: ~t["must_be_zero"] | (t["count"] == 0))

    def __repr__(self) -> str:
        s = self.stats()
        return (f"Dataset({self.name!r}: {s['users']} users, {s['items']} items, "
                f"{s['interactions']} interactions, item features {list(self.item_features)}, "
                f"user features {list(self.user_features)})")


def _expected(modality: str, n_items: int) -> str:
    """How an item feature file should look, e.g. "image_feat.npy [7050, 4096]"."""
    dim = MMREC_FEATURE_DIMS.get(modality, "dim")
    return f"{FEATURE_FILES.get(modality, modality)} [{n_items}, {dim}]"


def validate(ds: Dataset) -> None:
    """Check ids, split labels, duplicates, empty splits and feature shapes; raise DataError naming
    the dataset's source (or name)."""
    where = ds.source or ds.name
    df = ds.interactions
    for col in ("user", "item", "split"):
        if col not in df.columns:
            raise DataError(f"{where}: missing column '{col}' (have {list(df.columns)})")
        if not pd.api.types.is_integer_dtype(df[col]):
            raise DataError(f"{where}: column '{col}' must hold integers, got {df[col].dtype}")
    for col, n in (("user", ds.n_users), ("item", ds.n_items)):
        bad = df.index[(df[col] < 0) | (df[col] >= n)]
        if len(bad):
            raise DataError(f"{where}: {len(bad)} {col} ids outside [0, {n}); first at row "
                            f"{bad[0]} ({col}={df[col].loc[bad[0]]})")
    bad = df.index[~df["split"].isin((0, 1, 2))]
    if len(bad):
        raise DataError(f"{where}: split label must be 0/1/2 (train/valid/test); row {bad[0]} has "
                        f"{df['split'].loc[bad[0]]}")
    dup = df.duplicated(["user", "item"], keep="first")
    if dup.any():
        r = df.index[dup][0]
        raise DataError(f"{where}: {int(dup.sum())} duplicate (user, item) rows, first at row {r} "
                        f"(user={df['user'].loc[r]}, item={df['item'].loc[r]})")
    for k, s in enumerate(SPLITS):
        if not (df["split"] == k).any():
            raise DataError(f"{where}: the {s} split is empty")
    train_users = np.unique(df.loc[df["split"] == 0, "user"].to_numpy())
    eval_users = np.unique(df.loc[df["split"] > 0, "user"].to_numpy())
    orphans = np.setdiff1d(eval_users, train_users)
    if len(orphans):
        raise DataError(f"{where}: {len(orphans)} users have valid/test but no training "
                        f"interaction (first: user {orphans[0]})")
    for kind, feats, n in (("item", ds.item_features, ds.n_items), ("user", ds.user_features, ds.n_users)):
        for name, x in feats.items():
            if x.ndim != 2 or x.shape[0] != n:
                raise DataError(f"{where}: {kind} feature '{name}' has shape {x.shape}, expected ({n}, dim)")
            if not np.isfinite(x).all():
                r = int(np.argwhere(~np.isfinite(x))[0, 0])
                raise DataError(f"{where}: {kind} feature '{name}' has NaN/inf (first in row {r})")
            if x.dtype != np.float32:
                feats[name] = x.astype(np.float32)



TEXT_FIELDS = ("title", "brand", "categories", "description")


def item_texts(meta: pd.DataFrame) -> list[str]:
    """MMRec's item text recipe: title, brand, categories, description, whitespace-normalised.

    Fields absent from `meta` are skipped; an item with no text at all gets "" (the LM
    layer applies and reports its missing-text policy).
    """
    cols = [c for c in TEXT_FIELDS if c in meta.columns]
    joined = meta[cols].fillna("").astype(str).agg(" ".join, axis=1)
    return [" ".join(t.split()) for t in joined]


def kcore(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the interactions that survive iterative k-core filtering of users and items."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=users.max() + 1)
        ic = np.bincount(items[keep], minlength=items.max() + 1)
        new = keep & (uc[users] >= k) & (ic[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


VALID_SHARE = TEST_SHARE = 0.1  # MMRec's 8:1:1 split per user: training keeps the rest


def mmrec_split(users: np.ndarray, seed: int) -> np.ndarray:
    """Per-user random 8:1:1 split labels (0/1/2). Users with fewer than 10 interactions
    get exactly one valid and one test item (when they have at least 3)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(users), dtype=np.int64)
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for rows in np.split(order, bounds):
        n = len(rows)
        rows = rng.permutation(rows)
        if n < 3:
            continue
        if n < 10:
            n_valid = n_test = 1
        else:
            n_valid = int(round(n * VALID_SHARE))
            n_test = int(round(n * TEST_SHARE))
        labels[rows[n - n_valid - n_test:n - n_test]] = 1
        labels[rows[n - n_test:]] = 2
    return labels


def prepare_interactions(users: np.ndarray, items: np.ndarray, seed: int, k: int = 5,
                         timestamps: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """k-core filter raw (user, item) pairs, re-index ids densely and split them MMRec-style.

    Returns the interaction frame and the raw user and item ids behind the new dense ids,
    so callers can carry per-user and per-item side information along.
    """
    pairs = pd.DataFrame({"user": np.asarray(users, np.int64), "item": np.asarray(items, np.int64)})
    if timestamps is not None:
        pairs["timestamp"] = np.asarray(timestamps, np.float64)
    pairs = pairs.drop_duplicates(["user", "item"], keep="first")
    pairs = pairs[kcore(pairs["user"].to_numpy(), pairs["item"].to_numpy(), k)]
    uid, u = np.unique(pairs["user"].to_numpy(), return_inverse=True)
    iid, i = np.unique(pairs["item"].to_numpy(), return_inverse=True)
    df = pd.DataFrame({"user": u.astype(np.int64), "item": i.astype(np.int64)})
    if timestamps is not None:
        df["timestamp"] = pairs["timestamp"].to_numpy()
    df["split"] = mmrec_split(df["user"].to_numpy(), seed)
    return df, uid, iid
