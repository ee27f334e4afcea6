"""Numerical checks of the standard results behind RecGOAT's theory, and their verdicts (notebook 06).

The paper (v2) argues that the fused representation has lower target error than any
single-modality one, with the gap bounded by a Wasserstein term and an InfoNCE term.
Its theorems were not available, so each standard result the argument rests on is
turned into a measurement on point clouds of embeddings, made with the generic
`estimators` (W1, InfoNCE bound, Gaussian MI, target error, linear probes) and checked here:

- Kantorovich-Rubinstein: for a linear scorer s, |mean s(x) - mean s(y)| <= ||s|| W1;
  a violation means a bug upstream and raises `TheoryViolation`;
- sliced W1 never exceeds exact W1 (`w1_crosscheck`);
- Jensen's inequality for a convex combination of views (softplus is convex);
- `TheoryRecorder` measures all of it over training; `verdicts` turns the records into
  notebook 06's claims table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F

from .data import Dataset
from .estimators import (Array, as_points, evaluation_triples, exact_w1, gaussian_mi, infonce_mi_bound,
                         linear_probe_accuracy, point_clouds, projected_w1, random_directions, recgoat_views,
                         sliced_w1, view_target_error)
from .models.base import Recommender, bpr_loss
from .stats import FAILS, HOLDS, SPREAD_FACTOR, UNDECIDED, seed_verdict, spread_text


class TheoryViolation(AssertionError):
    """A mathematical inequality failed on measured data: the inputs or the code are wrong."""


# --- Kantorovich-Rubinstein ------------------------------------------------------------

def kr_slack(x: Array, y: Array, scorers: Array, w1: float | None = None, tol: float = 1e-9) -> pd.DataFrame:
    """Check |mean s(x) - mean s(y)| <= ||s|| * W1 for linear scorers s(z) = <s, z> (rows of `scorers`).

    A linear scorer is ||s||-Lipschitz. With `w1=None` the bound uses the exact 1-D W1 of
    the projections on s/||s||, itself a lower bound of W1(x, y), so this is the tightest
    form of the inequality; with `w1` given (e.g. `exact_w1(x, y, max_points=None)`) it uses
    that value. Returns one row per scorer (lipschitz, gap, w1, bound, slack = bound - gap)
    and raises `TheoryViolation` when a slack is below -tol * max(1, bound).
    """
    x, y = point_clouds(x, y)
    s = as_points(scorers, "scorers")
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


# --- Jensen's inequality ---------------------------------------------------------------

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


# --- Measuring a RecGOAT model over training -------------------------------------------

PROBE_LABEL = "item_topic"
PROBE_TEST_FRAC = 0.3  # share of items held out by the semantic-consistency probe


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
    held_out = int(round(PROBE_TEST_FRAC * len(labels)))
    return pd.DataFrame([{"view": k, "accuracy": linear_probe_accuracy(v, labels, PROBE_TEST_FRAC, seed=seed),
                          "majority_class": chance, "held_out": held_out} for k, v in inputs.items()])


def accuracy_difference_floor(p: float, n: int, k: float = SPREAD_FACTOR) -> float:
    """`k` binomial standard errors of a difference of two accuracies near `p` on `n` held-out items:
    the smallest probe difference that is more than the probe's own sampling noise."""
    return k * float(np.sqrt(2 * p * (1 - p) / n))


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
        acc = [t.set_index("view")["accuracy"] for t in probes]
        diff = [float(a["fused"] - a["id"]) for a in acc]
        floor = accuracy_difference_floor(float(np.mean([(a["fused"] + a["id"]) / 2 for a in acc])),
                                          int(probes[0]["held_out"].iloc[0]))
        add(claim, f"linear-probe accuracy fused minus ID: {spread_text(diff, '+.3f')} on "
            f"{int(probes[0]['held_out'].iloc[0])} held-out items (probe noise floor {floor:.3f}; majority class "
            f"{probes[0]['majority_class'].iloc[0]:.3f})", seed_verdict(diff, floor=floor))
    return pd.DataFrame(rows)
