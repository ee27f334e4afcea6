"""Numerical checks of the standard results behind RecGOAT's theory (notebook 06).

The paper (v2) argues that the fused representation has lower target error than any
single-modality one, with the gap bounded by a Wasserstein term and an InfoNCE term.
Its theorems were not available, so each standard result the argument rests on is
turned into a measurement on point clouds of embeddings:

- 1-Wasserstein distances: sliced (exact 1-D W1 of random projections, POT's quantile
  formula, so clouds may differ in size) and exact on a subsample (POT's network simplex);
- Kantorovich-Rubinstein: for a linear scorer s, |mean s(x) - mean s(y)| <= ||s|| W1;
  a violation means a bug upstream and raises `TheoryViolation`;
- InfoNCE: log N - L_NCE lower-bounds I(a; b); compared with the Gaussian (CCA) estimate;
- target error with fixed users: test BPR loss and Recall/NDCG of each item view, and
  Jensen's inequality for a convex combination of views (softplus is convex);
- linear probes: how well a view recovers known ground-truth labels.

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
from .stats import FAILS, HOLDS, UNDECIDED, seed_verdict, spread_text

Array = np.ndarray | Tensor


class TheoryViolation(AssertionError):
    """A mathematical inequality failed on measured data: the inputs or the code are wrong."""


def _f64(x: Array, name: str) -> Tensor:
    """A detached float64 CPU tensor of shape [points, dim]; clear errors for bad input."""
    t = torch.as_tensor(x.detach() if isinstance(x, Tensor) else np.asarray(x)).cpu().to(torch.float64)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty [points, dim] array, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: contains NaN/inf")
    return t


def _pair(x: Array, y: Array) -> tuple[Tensor, Tensor]:
    x, y = _f64(x, "x"), _f64(y, "y")
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
    x, y = _pair(x, y)
    directions = _f64(directions, "directions")
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
    x, y = _pair(x, y)
    return float(projected_w1(x, y, random_directions(x.shape[1], n_directions, seed)).mean())


def subsample(x: Array, max_points: int, seed: int = 0) -> Tensor:
    """At most `max_points` rows of x, drawn without replacement (all rows, in order, if fewer)."""
    x = _f64(x, "x")
    if x.shape[0] <= max_points:
        return x
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(x.shape[0], generator=g)[:max_points]]


def exact_w1(x: Array, y: Array, max_points: int | None = 1000, seed: int = 0) -> float:
    """Exact W1 (Euclidean ground cost, uniform weights) by POT's `ot.emd2`.

    With `max_points`, each cloud is first subsampled to that many rows (the LP is
    cubic in the number of points), so the value is W1 of the subsamples.
    """
    x, y = _pair(x, y)
    if max_points is not None:
        x, y = subsample(x, max_points, seed), subsample(y, max_points, seed + 1)
    cost = ot.dist(x, y, metric="euclidean")
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=torch.float64)
    return float(ot.emd2(a, b, cost, numItermax=1_000_000))


# --- Kantorovich-Rubinstein ------------------------------------------------------------

def kr_slack(x: Array, y: Array, scorers: Array, w1: float | None = None, tol: float = 1e-9) -> pd.DataFrame:
    """Check |mean s(x) - mean s(y)| <= ||s|| * W1 for linear scorers s(z) = <s, z> (rows of `scorers`).

    A linear scorer is ||s||-Lipschitz. With `w1=None` the bound uses the exact 1-D W1 of
    the projections on s/||s||, itself a lower bound of W1(x, y), so this is the tightest
    form of the inequality; with `w1` given (e.g. `exact_w1(x, y, max_points=None)`) it uses
    that value. Returns one row per scorer (lipschitz, gap, w1, bound, slack = bound - gap)
    and raises `TheoryViolation` when a slack is below -tol * max(1, bound).
    """
    x, y = _pair(x, y)
    s = _f64(scorers, "scorers")
    if s.shape[1] != x.shape[1]:
        raise ValueError(f"scorers have dimension {s.shape[1]}, points {x.shape[1]}")
    lip = s.norm(dim=1)
    if (lip == 0).any():
        raise ValueError("a scorer is the zero vector")
    gap = (x.mean(0) @ s.T - y.mean(0) @ s.T).abs()
    dist = projected_w1(x, y, (s / lip[:, None]).T) if w1 is None else torch.full_like(lip, float(w1))
    bound = lip * dist
    out = pd.DataFrame({"lipschitz": lip.numpy(), "gap": gap.numpy(), "w1": dist.numpy(),
                        "bound": bound.numpy(), "slack": (bound - gap).numpy()})
    bad = np.flatnonzero(~kr_holds(out, tol).to_numpy())
    if len(bad):
        r = out.iloc[bad[0]]
        raise TheoryViolation(f"Kantorovich-Rubinstein violated for scorer {bad[0]}: gap of means "
                              f"{r.gap:.6g} > L * W1 = {r.lipschitz:.6g} * {r.w1:.6g} = {r.bound:.6g}")
    return out


# --- Mutual information ----------------------------------------------------------------

def infonce_mi_bound(a: Array, b: Array, temperature: float = 0.2, batch_size: int = 256,
                     seed: int = 0) -> float:
    """The InfoNCE lower bound I(a; b) >= log N - L_NCE, averaged over shuffled batches of N rows.

    Row i of `a` and row i of `b` are two views of one item; L_NCE is the models' own
    symmetric `info_nce` (cosine similarity / temperature, in-batch negatives). Each
    direction's log N - L is a bound, so their average is one too. The last incomplete
    batch is dropped so that every batch has the same N.
    """
    a, b = _pair(a, b)
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
    a, b = _f64(a, "a"), _f64(b, "b")
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


def jensen_check(user: Tensor, views: dict[str, Tensor], weights: dict[str, float],
                 triples: tuple[Tensor, Tensor, Tensor], tol: float = 1e-6) -> dict[str, float]:
    """Jensen's inequality for a convex fusion: BPR(sum_k w_k V_k) <= sum_k w_k BPR(V_k).

    For fixed users, BPR's per-pair loss softplus(u.v_neg - u.v_pos) is convex in the item
    vectors, so the loss of a convex combination of views is at most the same combination
    of their losses. Views are used as given (no normalisation). Returns the fused loss,
    the bound, the best single-view loss and the slack; raises `ValueError` for weights that
    are not convex and `TheoryViolation` if the inequality fails.
    """
    if set(weights) != set(views):
        raise ValueError(f"weights {sorted(weights)} and views {sorted(views)} must name the same views")
    w = {k: float(v) for k, v in weights.items()}
    if min(w.values()) < 0 or abs(sum(w.values()) - 1.0) > 1e-9:
        raise ValueError(f"fusion weights must be >= 0 and sum to 1, got {w}")
    users, pos, neg = triples
    u = user.detach().to(torch.float64).cpu()[users]
    single = {k: float(bpr_loss(u, v.detach().to(torch.float64).cpu()[pos], v.detach().to(torch.float64).cpu()[neg]))
              for k, v in views.items()}
    fused = sum(w[k] * views[k].detach().to(torch.float64).cpu() for k in views)
    lhs = float(bpr_loss(u, fused[pos], fused[neg]))
    rhs = sum(w[k] * single[k] for k in views)
    if lhs > rhs + tol * max(1.0, abs(rhs)):
        raise TheoryViolation(f"Jensen violated: BPR of the convex fusion {lhs:.6g} > combination of losses {rhs:.6g}")
    return {"fused_bpr": lhs, "bound": rhs, "best_single_bpr": min(single.values()), "slack": rhs - lhs}


# --- Linear probes ---------------------------------------------------------------------

def linear_probe_accuracy(x: Array, labels: Array, test_frac: float = 0.3, weight_decay: float = 1e-3,
                          seed: int = 0) -> float:
    """Held-out accuracy of a softmax regression predicting `labels` from the rows of `x`.

    Features are standardised with training-split statistics; the L2-regularised
    cross-entropy is convex and is minimised to convergence with full-batch L-BFGS.
    """
    x = _f64(x, "x")
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


# --- Measuring a RecGOAT model over training -------------------------------------------

PROBE_LABEL = "item_topic"


@torch.no_grad()
def recgoat_views(model: Recommender) -> tuple[Tensor, dict[str, Tensor], dict[str, float]]:
    """Users, item views and fusion weights of one eval-mode forward pass of a RecGOAT model.

    Views: "id" (LightGCN item vectors), "<m>" (a modality after its GAT branch, before
    fusion), "<m>_aligned" (after OAT; the unaligned view when the model fuses without OAT)
    and "fused" (the final item vectors). Weights: the fusion's coefficients of "id" and
    each "<m>_aligned" (1 - sum a_m and a_m).
    """
    if not hasattr(getattr(model, "config", None), "modalities"):
        raise TypeError(f"{type(model).__name__} is not a RecGOAT model (needs config.modalities and extras)")
    emb = model.eval_forward()
    x = emb.extras
    views = {"id": x["item_cf"]}
    weights = {}
    for m in model.config.modalities:
        views[m] = x[f"item_{m}"]
        views[f"{m}_aligned"] = x.get(f"item_{m}_aligned", x[f"item_{m}"])
        if f"fusion_{m}" in x:
            weights[f"{m}_aligned"] = float(x[f"fusion_{m}"])
    if weights:
        weights["id"] = 1.0 - sum(weights.values())
    views["fused"] = emb.item
    return emb.user, {k: v.detach().cpu() for k, v in views.items()}, weights


def _unit(x: Tensor) -> Tensor:
    return F.normalize(x.to(torch.float64), dim=1)


class TheoryRecorder:
    """`on_eval` callback for `train()`: measures the theory quantities of a RecGOAT model.

    Each call appends one row to `rows` (sliced W1 between the ID view and each modality
    before and after OAT, raw and row-normalised; InfoNCE bound and Gaussian MI for
    CMCL's view pairs; target error of every view; Jensen's check of the fusion) and the
    Kantorovich-Rubinstein slacks of random directions and of `kr_users` trained users to `kr`.
    Call it with epoch 0 before training to record the initialisation.
    """

    def __init__(self, ds: Dataset, label: str = "", n_directions: int = 128, mi_batch: int = 256,
                 kr_users: int = 512, temperature: float = 0.2, split: str = "test",
                 ks: tuple[int, ...] = (20,), seed: int = 0):
        self.ds, self.label, self.split, self.ks, self.seed = ds, label, split, ks, seed
        self.n_directions, self.mi_batch, self.temperature = n_directions, mi_batch, temperature
        self.triples = evaluation_triples(ds, split, seed)
        # a fixed random subset of users serves as the KR scorers at every snapshot
        self.kr_users = torch.randperm(ds.n_users, generator=torch.Generator().manual_seed(seed))[:kr_users]
        self.rows: list[dict[str, float]] = []
        self.kr: list[pd.DataFrame] = []

    def __call__(self, epoch: int, model: Recommender) -> None:
        user, views, weights = recgoat_views(model)
        modalities = model.config.modalities
        row: dict[str, float] = {"run": self.label, "epoch": epoch, "mi_batch": self.mi_batch,
                                 **{f"weight_{k}": w for k, w in weights.items()}}
        directions = random_directions(views["id"].shape[1], self.n_directions, self.seed)
        for m in modalities:
            for stage, view in (("before", views[m]), ("after", views[f"{m}_aligned"])):
                row[f"w1_{m}_{stage}"] = sliced_w1(views["id"], view, self.n_directions, self.seed)
                row[f"w1n_{m}_{stage}"] = sliced_w1(_unit(views["id"]), _unit(view), self.n_directions, self.seed)
                for kind, scorers in (("direction", directions.T), ("user", user[self.kr_users])):
                    kr = kr_slack(views["id"], view, scorers)
                    self.kr.append(kr.assign(run=self.label, epoch=epoch, pair=f"id-{m}", stage=stage, scorer=kind))
        names = ["id", *modalities]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                row[f"nce_{a}_{b}"] = infonce_mi_bound(views[a], views[b], self.temperature, self.mi_batch, self.seed)
                row[f"cca_{a}_{b}"] = gaussian_mi(views[a], views[b])
        errors = view_target_error(user, views, self.ds, self.split, self.ks, self.seed)
        for _, r in errors.iterrows():
            row.update({f"{r['view']}_{k}": r[k] for k in errors.columns if k != "view"})
        convex = bool(weights) and min(weights.values()) >= 0
        jensen = (jensen_check(user, {k: views[k] for k in weights}, weights, self.triples)
                  if convex else {"fused_bpr": np.nan, "bound": np.nan, "best_single_bpr": np.nan, "slack": np.nan})
        row.update({f"jensen_{k}": v for k, v in jensen.items()})
        self.rows.append(row)

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    @property
    def kr_frame(self) -> pd.DataFrame:
        return pd.concat(self.kr, ignore_index=True)


def w1_crosscheck(model: Recommender, max_points: int = 400, n_directions: int = 256, seed: int = 0) -> pd.DataFrame:
    """Sliced vs exact (POT `emd2`) W1 between the ID view and each modality view, before and
    after OAT, on the same random subsample of items; raises `TheoryViolation` if the sliced
    value exceeds the exact one (it cannot: each projection is 1-Lipschitz)."""
    _, views, _ = recgoat_views(model)
    idx = torch.randperm(views["id"].shape[0], generator=torch.Generator().manual_seed(seed))[:max_points]
    rows = []
    for m in model.config.modalities:
        for stage, key in (("before", m), ("after", f"{m}_aligned")):
            x, y = views["id"][idx], views[key][idx]
            sliced, exact = sliced_w1(x, y, n_directions, seed), exact_w1(x, y, max_points=None)
            if sliced > exact * (1 + 1e-9):
                raise TheoryViolation(f"sliced W1 {sliced:.6g} > exact W1 {exact:.6g} for id-{m} ({stage})")
            rows.append({"pair": f"id-{m}", "stage": stage, "points": len(idx), "sliced_w1": sliced,
                         "exact_w1": exact, "sliced_full": sliced_w1(views["id"], views[key], n_directions, seed)})
    return pd.DataFrame(rows)


def probe_table(model: Recommender, ds: Dataset, label: str = PROBE_LABEL, seed: int = 0) -> pd.DataFrame:
    """Linear-probe accuracy of every item view (and of the raw modality features) for a
    ground-truth item label of the dataset (`ds.latent[label]`, known for the toy data)."""
    if label not in ds.latent:
        raise ValueError(f"dataset {ds.name!r} has no ground truth {label!r} (latent: {sorted(ds.latent) or 'none'})")
    labels = ds.latent[label]
    _, views, _ = recgoat_views(model)
    inputs = {f"raw {m}": torch.from_numpy(ds.item_features[m]) for m in model.config.modalities}
    inputs.update(views)
    chance = np.bincount(labels).max() / len(labels)
    return pd.DataFrame([{"view": k, "accuracy": linear_probe_accuracy(v, labels, seed=seed), "majority_class": chance}
                         for k, v in inputs.items()])


# --- Verdicts --------------------------------------------------------------------------

NOT_APPLICABLE = "not applicable"
SINGLE_METRICS = {"bpr": "lower", "recall@20": "higher", "ndcg@20": "higher"}


def gap_terms(frame: pd.DataFrame, modalities: tuple[str, ...], metric: str = "bpr") -> pd.DataFrame:
    """Long table of the observed target-error gap err(aligned m) - err(fused) next to the two
    bound terms of the paper's argument: sliced W1(ID, aligned m) and the InfoNCE loss
    L_NCE(ID, m) = log N - (InfoNCE MI bound), one row per snapshot and modality."""
    sign = 1.0 if SINGLE_METRICS[metric] == "lower" else -1.0
    parts = [pd.DataFrame({"run": frame["run"], "epoch": frame["epoch"], "modality": m,
                           "gap": sign * (frame[f"{m}_aligned_{metric}"] - frame[f"fused_{metric}"]),
                           "w1_term": frame[f"w1_{m}_after"],
                           "nce_term": np.log(frame["mi_batch"]) - frame[f"nce_id_{m}"]})
             for m in modalities]
    return pd.concat(parts, ignore_index=True)


def kr_holds(kr: pd.DataFrame, tol: float = 1e-9) -> pd.Series:
    """Which rows of a `kr_slack` table satisfy the inequality up to float rounding (as `kr_slack` checks)."""
    return kr["slack"] >= -tol * np.maximum(1.0, kr["bound"])


def verdicts(paper: list[pd.DataFrame], released: list[pd.DataFrame], kr: pd.DataFrame, crosscheck: pd.DataFrame,
             probes: list[pd.DataFrame] | None, modalities: tuple[str, ...], dataset: str) -> pd.DataFrame:
    """One row per claim: what was measured over the seeds, and whether it holds on this data.

    `paper` / `released` hold one `TheoryRecorder.frame` per seed for runs with the paper's and the
    released CMCL sign (first row = initialisation, last row = end of training), `probes` one
    `probe_table` per seed of the paper-sign model. Inequalities that must hold for every input
    (Kantorovich-Rubinstein, sliced <= exact W1, Jensen) are checked on every snapshot of every
    seed. Every other claim is an effect measured once per seed and judged by `stats.seed_verdict`:
    "holds" only when it has the claimed sign in every seed and its mean exceeds twice its standard
    deviation over seeds, "does not hold" when the same is true of the opposite sign, otherwise "not
    distinguishable at this budget".
    """
    rows = []
    n = len(paper)

    def add(claim: str, measured: str, verdict: str) -> None:
        rows.append({"claim": claim, "measured": measured, "verdict": verdict, "dataset": dataset, "seeds": n})

    def ok(flag: bool) -> str:
        return HOLDS if flag else FAILS

    add("Kantorovich-Rubinstein: |E_P f - E_Q f| <= L W1(P, Q) for linear f",
        f"{len(kr)} checks (random directions L=1, trained users L=||u||; ID vs each modality, "
        f"before/after OAT, every snapshot of every seed); min slack {kr['slack'].min():.3g}",
        ok(bool(kr_holds(kr).all())))
    ratio = crosscheck["sliced_w1"] / crosscheck["exact_w1"]
    add("Sliced W1 <= exact W1 (POT emd2 on a subsample)",
        f"sliced/exact ratio {ratio.min():.3f}-{ratio.max():.3f} over {len(crosscheck)} pairs",
        ok(bool((ratio <= 1 + 1e-9).all())))

    last = [f.iloc[-1] for f in paper]
    for m in modalities:
        for key, what in (("w1", "raw"), ("w1n", "row-normalised")):
            drop = [r[f"{key}_{m}_before"] - r[f"{key}_{m}_after"] for r in last]
            add(f"OAT reduces W1 between ID and {m} ({what} vectors)",
                f"sliced W1 after training, before OAT minus after OAT: {spread_text(drop, '+.4g')}",
                seed_verdict(drop))

    names = ["id", *modalities]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            col = f"nce_{a}_{b}"
            up = [f[col].iloc[-1] - f[col].iloc[0] for f in paper]
            down = [f[col].iloc[-1] - f[col].iloc[0] for f in released]
            both = {seed_verdict(up), seed_verdict(np.negative(down))}
            verdict = HOLDS if both == {HOLDS} else FAILS if FAILS in both else UNDECIDED
            add(f"InfoNCE MI bound I({a}; {b}) rises under the paper's CMCL sign and falls under the released sign",
                f"bound change over training (nats): paper {spread_text(up, '+.3f')}, "
                f"released {spread_text(down, '+.3f')}", verdict)

    singles = ["id", *modalities, *(f"{m}_aligned" for m in modalities)]
    for metric, better in SINGLE_METRICS.items():
        sign = -1.0 if better == "lower" else 1.0
        margins, bests = [], []
        for r in last:
            values = {v: r[f"{v}_{metric}"] for v in singles}
            best = max(values, key=lambda v: sign * values[v])
            margins.append(sign * (r[f"fused_{metric}"] - values[best]))
            bests.append(best)
        add(f"Comprehensiveness: fused items have strictly better test {metric} than any single view (users fixed)",
            f"fused minus best single view ({', '.join(sorted(set(bests)))}), signed so that better is "
            f"positive: {spread_text(margins)}", seed_verdict(margins))

    frames = pd.concat([*paper, *released], ignore_index=True)
    checked = frames["jensen_slack"].dropna()
    add("Jensen: BPR of the convex fusion <= the same combination of single-view BPRs",
        f"{len(checked)} of {len(frames)} snapshots had convex fusion weights; min slack "
        f"{checked.min() if len(checked) else float('nan'):.3g}; pre-normalisation fused BPR below the best "
        f"single view in {int((frames['jensen_fused_bpr'] < frames['jensen_best_single_bpr']).sum())} of them",
        ok(bool((checked >= 0).all())) if len(checked) else NOT_APPLICABLE)

    for m in modalities:
        rho_w, rho_n = [], []
        for p, r in zip(paper, released):
            g = gap_terms(pd.concat([p, r], ignore_index=True), (m,))
            rho_w.append(g["gap"].corr(g["w1_term"], method="spearman"))
            rho_n.append(g["gap"].corr(g["nce_term"], method="spearman"))
        both = {seed_verdict(rho_w), seed_verdict(rho_n)}
        add(f"The BPR gap err({m} aligned) - err(fused) moves with the W1 and InfoNCE terms",
            f"Spearman rho over the snapshots of both signs, per seed: W1 term {spread_text(rho_w, '+.2f')}, "
            f"InfoNCE term {spread_text(rho_n, '+.2f')}",
            HOLDS if both == {HOLDS} else FAILS if FAILS in both else UNDECIDED)

    claim = "Semantic consistency: the fused view encodes ground-truth item topics better than the ID view"
    if probes is None:
        add(claim, "no ground truth on this dataset", NOT_APPLICABLE)
    else:
        diff = [float(t.set_index("view").loc["fused", "accuracy"] - t.set_index("view").loc["id", "accuracy"])
                for t in probes]
        add(claim, f"linear-probe accuracy fused minus ID: {spread_text(diff, '+.3f')} "
            f"(majority class {probes[0]['majority_class'].iloc[0]:.3f})", seed_verdict(diff))
    return pd.DataFrame(rows)
