"""Generic estimators on point clouds of embeddings: distances, dependence, target error, probes.

Reusable measurements, with no claim attached: notebook 06's theory checks (`theory`) and the
semantic-gap study (`semantic_gap`) both read embeddings through them.

- 1-Wasserstein distances: sliced (exact 1-D W1 of random projections, POT's quantile
  formula, so clouds may differ in size) and exact on a subsample (POT's network simplex);
- mutual information: the InfoNCE lower bound log N - L_NCE, and the Gaussian (CCA) estimate;
- target error with fixed users: test BPR loss and Recall/NDCG of each item view;
- linear probes: how well a view recovers known ground-truth labels;
- `recgoat_views`: the users, item views and fusion weights of a RecGOAT model, to measure.

Inputs are NumPy arrays or tensors of shape [points, dim]; computations run in float64.
"""
from __future__ import annotations

import math

import numpy as np
import ot
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F

from .data import Dataset
from .evaluate import evaluate
from .models.base import Embeddings, Recommender, bpr_loss, info_nce
from .models.recgoat import item_views

Array = np.ndarray | Tensor


def as_points(x: Array, name: str) -> Tensor:
    """A detached float64 CPU tensor of shape [points, dim]; clear errors for bad input."""
    t = torch.as_tensor(x.detach() if isinstance(x, Tensor) else np.asarray(x)).cpu().to(torch.float64)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty [points, dim] array, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN/inf")
    return t


def point_clouds(x: Array, y: Array) -> tuple[Tensor, Tensor]:
    """Two point clouds (`as_points`) of the same dimension; their sizes may differ."""
    x, y = as_points(x, "x"), as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    return x, y


# --- Wasserstein distances -------------------------------------------------------------

def random_directions(dim: int, n: int, seed: int = 0) -> Tensor:
    """`n` unit vectors drawn uniformly on the sphere in R^dim, as the columns of [dim, n]."""
    if dim < 1 or n < 1:
        raise ValueError(f"need dim >= 1 and n >= 1, got dim={dim}, n={n}")
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(dim, n, generator=g, dtype=torch.float64)
    return d / d.norm(dim=0, keepdim=True)


def projected_w1(x: Array, y: Array, directions: Tensor) -> Tensor:
    """Exact 1-D W1 between the projections of x and y on each direction (column), shape [n].

    Equal sizes: the mean absolute difference of the sorted projections (the monotone
    coupling is optimal in 1-D). Unequal sizes: POT's quantile-function formula.
    """
    x, y = point_clouds(x, y)
    directions = as_points(directions, "directions")
    if directions.shape[0] != x.shape[1]:
        raise ValueError(f"directions have dimension {directions.shape[0]}, points {x.shape[1]}")
    px, py = x @ directions, y @ directions
    if px.shape[0] == py.shape[0]:
        return (px.sort(0).values - py.sort(0).values).abs().mean(0)
    return ot.wasserstein_1d(px, py, p=1)


def sliced_w1(x: Array, y: Array, n_directions: int = 256, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance: mean exact 1-D W1 over random unit directions.

    Never exceeds W1(x, y), since every projection on a unit vector is 1-Lipschitz.
    """
    x, y = point_clouds(x, y)
    return float(projected_w1(x, y, random_directions(x.shape[1], n_directions, seed)).mean())


def subsample(x: Array, max_points: int, seed: int = 0) -> Tensor:
    """At most `max_points` rows of x, drawn without replacement (all rows, in order, if fewer)."""
    x = as_points(x, "x")
    if x.shape[0] <= max_points:
        return x
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(x.shape[0], generator=g)[:max_points]]


def exact_w1(x: Array, y: Array, max_points: int | None = 1000, seed: int = 0) -> float:
    """Exact W1 (Euclidean ground cost, uniform weights) by POT's `ot.emd2`.

    With `max_points`, each cloud is first subsampled to that many rows (the LP is
    cubic in the number of points), so the value is W1 of the subsamples.
    """
    x, y = point_clouds(x, y)
    if max_points is not None:
        x, y = subsample(x, max_points, seed), subsample(y, max_points, seed + 1)
    cost = ot.dist(x, y, metric="euclidean")
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=torch.float64)
    return float(ot.emd2(a, b, cost, numItermax=1_000_000))


# --- Mutual information ----------------------------------------------------------------

def infonce_mi_bound(a: Array, b: Array, temperature: float = 0.2, batch_size: int = 256,
                     seed: int = 0) -> float:
    """The InfoNCE lower bound I(a; b) >= log N - L_NCE, averaged over shuffled batches of N rows.

    Row i of `a` and row i of `b` are two views of one item; L_NCE is the models' own
    symmetric `info_nce` (cosine similarity / temperature, in-batch negatives). Each
    direction's log N - L is a bound, so their average is one too. The last incomplete
    batch is dropped so that every batch has the same N.
    """
    a, b = point_clouds(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired views need the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} rows, got {a.shape[0]}")
    order = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed))
    starts = range(0, a.shape[0] - batch_size + 1, batch_size)
    losses = [info_nce(a[order[s:s + batch_size]], b[order[s:s + batch_size]], temperature) for s in starts]
    return math.log(batch_size) - float(torch.stack(losses).mean())


def canonical_correlations(a: Array, b: Array, ridge: float = 1e-3) -> Tensor:
    """Canonical correlations between two views (sorted, descending).

    Each covariance gets `ridge` times its mean variance added to the diagonal, which
    keeps the whitening stable when a view is (nearly) rank deficient.
    """
    a, b = _pair_rows(a, b)
    a, b = a - a.mean(0), b - b.mean(0)
    n = a.shape[0] - 1

    def inv_sqrt(c: Tensor) -> Tensor:
        c = c + ridge * c.diagonal().mean() * torch.eye(c.shape[0], dtype=c.dtype)
        vals, vecs = torch.linalg.eigh(c)
        return vecs @ torch.diag(vals.clamp_min(1e-300).rsqrt()) @ vecs.T

    whitened = inv_sqrt(a.T @ a / n) @ (a.T @ b / n) @ inv_sqrt(b.T @ b / n)
    return torch.linalg.svdvals(whitened).clamp(0.0, 1.0 - 1e-12)


def gaussian_mi(a: Array, b: Array, ridge: float = 1e-3) -> float:
    """Mutual information (nats) of two views if they were jointly Gaussian: -1/2 sum log(1 - rho_k^2)."""
    rho = canonical_correlations(a, b, ridge)
    return float(-0.5 * torch.log1p(-rho.pow(2)).sum())


def _pair_rows(a: Array, b: Array) -> tuple[Tensor, Tensor]:
    a, b = as_points(a, "a"), as_points(b, "b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired views need the same number of rows, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[0] < 3:
        raise ValueError(f"need at least 3 paired rows, got {a.shape[0]}")
    return a, b


# --- Target error with fixed users -----------------------------------------------------

def evaluation_triples(ds: Dataset, split: str = "test", seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """(users, positives, negatives) for every pair of `split`, one uniform negative each that
    the user has not interacted with in any split; fixed by `seed` so all views share them."""
    users, pos = ds.split_pairs(split)
    if len(users) == 0:
        raise ValueError(f"split {split!r} of {ds.name} is empty")
    seen = np.sort(ds.interactions["user"].to_numpy(np.int64) * ds.n_items
                   + ds.interactions["item"].to_numpy(np.int64))
    rng = np.random.default_rng(seed)
    neg = rng.integers(ds.n_items, size=len(users))
    bad = np.flatnonzero(np.isin(users * ds.n_items + neg, seen))
    while len(bad):
        neg[bad] = rng.integers(ds.n_items, size=len(bad))
        bad = bad[np.isin(users[bad] * ds.n_items + neg[bad], seen)]
    return tuple(torch.tensor(a) for a in (users, pos, neg))


class FixedEmbeddings(Recommender):
    """A 'model' that always returns the given user and item vectors, so the standard
    full-ranking evaluator can score any item view against fixed trained users."""

    def __init__(self, user: Tensor, item: Tensor):
        super().__init__()
        self.register_buffer("user", user.detach().float())
        self.register_buffer("item", item.detach().float())

    def forward(self) -> Embeddings:
        return Embeddings(self.user, self.item)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        raise TypeError("FixedEmbeddings is for evaluation only; it has nothing to train")

    @property
    def device(self) -> torch.device:
        return self.user.device


def view_target_error(user: Tensor, views: dict[str, Tensor], ds: Dataset, split: str = "test",
                      ks: tuple[int, ...] = (20,), seed: int = 0) -> pd.DataFrame:
    """Target error of each item view with the users held fixed: BPR loss on `split` pairs
    (shared negatives) and full-ranking Recall/NDCG@k with training items masked.

    Every view is L2-normalised row-wise first, so views differ only in direction, not scale.
    """
    if not views:
        raise ValueError("no item views given")
    users, pos, neg = evaluation_triples(ds, split, seed)
    user = user.detach().float().cpu()
    rows = []
    for name, item in views.items():
        if item.shape != (ds.n_items, user.shape[1]):
            raise ValueError(f"view {name!r} has shape {tuple(item.shape)}, expected ({ds.n_items}, {user.shape[1]})")
        item = F.normalize(item.detach().float().cpu(), dim=1)
        metrics = evaluate(FixedEmbeddings(user, item), ds, split, ks).metrics
        bpr = float(bpr_loss(user[users], item[pos], item[neg]))
        rows.append({"view": name, "bpr": bpr,
                     **{f"{m}@{k}": metrics[f"{m}@{k}"] for k in ks for m in ("recall", "ndcg")}})
    return pd.DataFrame(rows)


# --- Linear probes ---------------------------------------------------------------------

def linear_probe_accuracy(x: Array, labels: Array, test_frac: float = 0.3, weight_decay: float = 1e-3,
                          seed: int = 0) -> float:
    """Held-out accuracy of a softmax regression predicting `labels` from the rows of `x`.

    Features are standardised with training-split statistics; the L2-regularised
    cross-entropy is convex and is minimised to convergence with full-batch L-BFGS.
    """
    x = as_points(x, "x")
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_frac * x.shape[0]))
    if n_test == 0 or n_test == x.shape[0]:
        raise ValueError(f"{x.shape[0]} rows are too few for a held-out split of {test_frac}")
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-12)
    z = (x - mean) / std
    n_classes = int(y.max()) + 1
    weight = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z[train] @ weight + bias, y[train]) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((z[test] @ weight + bias).argmax(1) == y[test]).double().mean())


# --- Views of a RecGOAT model --------------------------------------------------------

@torch.no_grad()
def recgoat_views(model: Recommender) -> tuple[Tensor, dict[str, Tensor], dict[str, float]]:
    """Users, item views (`models.recgoat.item_views`) and fusion weights of one eval-mode forward
    pass of a RecGOAT model. Weights: the fusion's coefficients of "id" and each "<m>_aligned"
    (1 - sum a_m and a_m)."""
    if not hasattr(getattr(model, "config", None), "modalities"):
        raise TypeError(f"{type(model).__name__} is not a RecGOAT model (needs config.modalities and extras)")
    emb = model.eval_forward()
    x = emb.extras
    weights = {f"{m}_aligned": float(x[f"fusion_{m}"]) for m in model.config.modalities if f"fusion_{m}" in x}
    if weights:
        weights["id"] = 1.0 - sum(weights.values())
    views = item_views(emb, model.config.modalities)
    return emb.user, {k: v.detach().cpu() for k, v in views.items()}, weights
