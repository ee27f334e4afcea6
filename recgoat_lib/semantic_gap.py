"""The semantic-gap experiment (notebook 12): when does aligning LM features with ID features help?

RecGOAT's motivation is that LM features live in a space unlike the collaborative (ID) one, so that
injecting them naively degrades recommendation, and alignment (CMCL, OAT) repairs it. On the toy
shop the opposite holds by construction: its image vector is a noisy linear function of topic,
colour and style (the factors that drive the interactions) and its text names them. Two dials move
the toy's item features between these regimes:

- **dilution** delta in [0, 1] (informativeness 1 - delta): the part of a modality that the preference
  factors (topic, colour, style) explain linearly is replaced, in a share delta, by a part of the same
  norm explained by content that users ignore (brand, material; `NUISANCE_FACTORS`);
- **gap** gamma in [0, 1] of one distortion kind, which moves the LM space away from the preference space:
  a rotation or an anisotropic scaling (linear and invertible: a learned projection can undo either,
  but a cosine kNN graph built from the raw features sees the scaling) or a nonlinear warp (a mix of
  the features with random Fourier features of them, which no linear map undoes).

Both dials post-process the feature matrices (the toy's image vector and the MiniLM encoding of the
item texts), with the same function for either view, so the views stay comparable and the text is
encoded once. The distortion of the text view is applied to the user LM features too (same map: they
are encoded by the same LM); dilution needs item factors and touches items only. A zero dial returns
the dataset unchanged. What each setting leaves is measured with notebook 06's estimators
(`estimators.linear_probe_accuracy`, `estimators.canonical_correlations`, `estimators.gaussian_mi`,
`estimators.sliced_w1`, `estimators.infonce_mi_bound`); every model is trained by `runner.run_lineup`.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .data import Dataset, available_datasets, load_dataset, shown_path
from .determinism import pin_threads
from .lm import as_encoder, encode_items, with_lm_features
from .runner import RESULTS_DIR, Lineup, run_lineup
from .estimators import (canonical_correlations, gaussian_mi, infonce_mi_bound, linear_probe_accuracy,
                         recgoat_views, sliced_w1)
from .toy import ToyConfig, make_toy
from .train import TrainConfig

PREFERENCE_FACTORS = ("item_topic", "item_color", "item_style")  # drive the toy's interactions
NUISANCE_FACTORS = ("item_brand", "item_material")  # item content the toy's users ignore
DISTORTIONS = ("rotation", "scaling", "warp")
LINEAR_DISTORTIONS = ("rotation", "scaling")
SCALE_SPREAD = 2.0  # scaling: per-dimension factors exp(gamma * SCALE_SPREAD * z), z ~ N(0, 1)
WARP_FREQUENCY = 3.0  # warp: frequency of the random Fourier features, in units of the features' std
N_COMPONENTS = 16  # principal components per view for CCA / Gaussian MI (keeps the estimate stable)
MI_BATCH = 128  # rows per InfoNCE batch (the toy sweeps have a few hundred items)
METRICS = ("recall@20", "ndcg@20")
VERDICT_K = 2.0  # a difference counts when it exceeds VERDICT_K pooled standard deviations over seeds

ID_ONLY = "LightGCN"
VARIANTS: dict[str, tuple[str, dict]] = {
    ID_ONLY: ("lightgcn", {}),
    "LM inject": ("lm_inject", {}),
    "FREEDOM": ("freedom", {}),
    "RecGOAT": ("recgoat", {}),
    "RecGOAT w/o CMCL": ("recgoat", {"cl_weight": 0.0}),
    "RecGOAT w/o OAT": ("recgoat", {"fusion": "sum"}),
}
COMPARISONS = {  # name: (variant, reference)
    "LM inject - LightGCN": ("LM inject", ID_ONLY),
    "RecGOAT - LightGCN": ("RecGOAT", ID_ONLY),
    "CMCL: RecGOAT - w/o CMCL": ("RecGOAT", "RecGOAT w/o CMCL"),
    "OAT: RecGOAT - w/o OAT": ("RecGOAT", "RecGOAT w/o OAT"),
}
SETTING = ["distortion", "gap", "dilution"]  # the columns that name a setting
ALIGNED_VARIANTS = ("RecGOAT", "RecGOAT w/o CMCL", "RecGOAT w/o OAT")  # whose ID/LM views are measured


@dataclass(frozen=True)
class Dials:
    """One setting of the two dials; `Dials()` is today's toy data."""

    dilution: float = 0.0
    gap: float = 0.0
    distortion: str = "warp"

    def __post_init__(self) -> None:
        if not (0.0 <= self.dilution <= 1.0 and 0.0 <= self.gap <= 1.0):
            raise ValueError(f"dilution and gap must lie in [0, 1], got {self.dilution} and {self.gap}")
        if self.distortion not in DISTORTIONS:
            raise ValueError(f"unknown distortion {self.distortion!r}; choose from {DISTORTIONS}")

    @property
    def kind(self) -> str:
        """The distortion's name, or "none" at gap 0 (every kind is then the identity)."""
        return self.distortion if self.gap > 0 else "none"

    def columns(self) -> dict[str, float | str]:
        return {"distortion": self.kind, "gap": self.gap, "dilution": self.dilution}


# --- the dials ---------------------------------------------------------------------------------

def factor_one_hots(ds: Dataset, factors: tuple[str, ...]) -> np.ndarray:
    """Centred one-hot columns of the named item factors of `ds.latent`, side by side."""
    missing = [f for f in factors if f not in ds.latent]
    if missing:
        raise ValueError(f"dataset {ds.name!r} has no ground truth {missing} (latent: {sorted(ds.latent) or 'none'})")
    cols = [np.eye(int(ds.latent[f].max()) + 1)[ds.latent[f]] for f in factors]
    x = np.concatenate(cols, axis=1)
    return x - x.mean(0)


def dilute(x: np.ndarray, preference: np.ndarray, nuisance: np.ndarray, strength: float,
           rng: np.random.Generator) -> np.ndarray:
    """Replace a share `strength` of what the preference factors explain of `x` (least squares on
    their centred one-hots) by a random linear function of the nuisance factors with the same norm."""
    if strength == 0:
        return x
    explained = preference @ np.linalg.lstsq(preference, x - x.mean(0), rcond=None)[0]
    inject = nuisance @ rng.normal(size=(nuisance.shape[1], x.shape[1]))
    inject *= np.linalg.norm(explained) / np.linalg.norm(inject)
    return x + strength * (inject - explained)


@dataclass(frozen=True)
class Distortion:
    """A map of the LM space drawn once per view and applied to its item (and user) rows.

    rotation: x R with R the orthogonal polar factor of (1 - gamma) I + gamma Q, Q a random rotation;
    scaling: x diag(exp(gamma SCALE_SPREAD z)); warp: c + (1 - gamma)(x - c) + gamma sqrt(2) s cos(WARP_FREQUENCY
    (x - c) W / s + b), with c and s the mean and std of the view's item features, W ~ N(0, 1/dim),
    b ~ U(0, 2 pi): random Fourier features of the same per-entry scale as the features.
    """

    dials: Dials
    matrix: np.ndarray
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: float = 1.0

    @classmethod
    def draw(cls, dials: Dials, reference: np.ndarray, rng: np.random.Generator) -> Distortion:
        dim = reference.shape[1]
        if dials.distortion == "rotation":
            q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
            u, _, vt = np.linalg.svd((1 - dials.gap) * np.eye(dim) + dials.gap * q * np.sign(np.diag(r)))
            return cls(dials, u @ vt)
        if dials.distortion == "scaling":
            return cls(dials, np.exp(dials.gap * SCALE_SPREAD * rng.normal(size=dim)))
        return cls(dials, rng.normal(size=(dim, dim)) / np.sqrt(dim), rng.uniform(0, 2 * np.pi, size=dim),
                   reference.mean(0), float(reference.std()))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.dials.gap == 0:
            return x
        if self.dials.distortion == "rotation":
            return x @ self.matrix
        if self.dials.distortion == "scaling":
            return x * self.matrix
        z = (x - self.center) / self.scale
        warped = np.sqrt(2.0) * self.scale * np.cos(WARP_FREQUENCY * z @ self.matrix + self.offset)
        return self.center + (1 - self.dials.gap) * (x - self.center) + self.dials.gap * warped


def dial_dataset(ds: Dataset, dials: Dials, seed: int = 0) -> Dataset:
    """`ds` with every item modality diluted and distorted by `dials` (text: user LM features too).

    Each view draws its own nuisance map and distortion from (`seed`, view index, dial), so a
    setting is reproducible and the dilution's draw does not depend on the distortion's. A zero
    dial returns `ds` itself, so its arrays and checksum are today's."""
    if dials.dilution == 0 and dials.gap == 0:
        return ds
    preference = factor_one_hots(ds, PREFERENCE_FACTORS)
    nuisance = factor_one_hots(ds, NUISANCE_FACTORS)
    items, users = {}, {}
    for k, m in enumerate(sorted(ds.item_features)):
        x = dilute(ds.item_features[m].astype(np.float64), preference, nuisance, dials.dilution,
                   np.random.default_rng([seed, k, 0]))
        distortion = Distortion.draw(dials, x, np.random.default_rng([seed, k, 1]))
        items[m] = distortion(x).astype(np.float32)
        if m in ds.user_features:
            users[m] = distortion(ds.user_features[m].astype(np.float64)).astype(np.float32)
    return dataclasses.replace(ds, item_features={**ds.item_features, **items},
                               user_features={**ds.user_features, **users})


def toy_with_text(seed: int, config: ToyConfig) -> Dataset:
    """The toy shop of `config` with its MiniLM item and user text features (cached encodings)."""
    return with_lm_features(make_toy(seed, config), progress=False)


# --- measurements ------------------------------------------------------------------------------

def principal_components(x: np.ndarray | torch.Tensor, k: int = N_COMPONENTS) -> np.ndarray:
    """The first `k` principal-component scores of the rows of `x` (centred)."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :k] * s[:k]


def factor_probes(ds: Dataset, factors: tuple[str, ...] = PREFERENCE_FACTORS + NUISANCE_FACTORS,
                  seed: int = 0) -> pd.DataFrame:
    """Held-out linear-probe accuracy of each latent item factor from each item modality."""
    rows = []
    for m in sorted(ds.item_features):
        for f in factors:
            labels = ds.latent[f]
            rows.append({"modality": m, "factor": f.removeprefix("item_"),
                         "accuracy": linear_probe_accuracy(ds.item_features[m], labels, seed=seed),
                         "majority": np.bincount(labels).max() / len(labels)})
    return pd.DataFrame(rows)


def factor_mi(ds: Dataset, k: int = N_COMPONENTS) -> dict[str, float]:
    """Gaussian (CCA) mutual information, in nats, between each modality (its first `k` principal
    components) and the preference factors, and the nuisance factors (their centred one-hots)."""
    out = {}
    for name, factors in (("preference", PREFERENCE_FACTORS), ("nuisance", NUISANCE_FACTORS)):
        onehots = factor_one_hots(ds, factors)
        for m in sorted(ds.item_features):
            out[f"MI {m}-{name}"] = gaussian_mi(principal_components(ds.item_features[m], k), onehots)
    return out


def canonical_excess(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, k: int = N_COMPONENTS,
                     seed: int = 0) -> float:
    """Mean canonical correlation of two paired views (first `k` principal components each) minus
    the same with the rows of `b` shuffled: how much more than chance the views share linearly.
    Scale-free and comparable across datasets of different sizes (the shuffle removes the
    in-sample bias of about sqrt(k / rows))."""
    pa, pb = principal_components(a, k), principal_components(b, k)
    shuffled = pb[np.random.default_rng(seed).permutation(len(pb))]
    return float(canonical_correlations(pa, pb).mean() - canonical_correlations(pa, shuffled).mean())


def alignment_stats(model: torch.nn.Module, modality: str = "text", seed: int = 0) -> dict[str, float]:
    """Sliced W1 between a RecGOAT model's ID view and its LM view (after the GAT branch, and after
    OAT), and the InfoNCE lower bound on their mutual information (nats)."""
    _, views, _ = recgoat_views(model)
    idv, lm = views["id"], views[modality]
    return {"W1 before OAT": sliced_w1(idv, lm, seed=seed),
            "W1 after OAT": sliced_w1(idv, views[f"{modality}_aligned"], seed=seed),
            "InfoNCE bound": infonce_mi_bound(idv, lm, batch_size=MI_BATCH, seed=seed)}


def item_embeddings(model: torch.nn.Module) -> torch.Tensor:
    """A trained model's final item vectors (eval mode)."""
    with torch.no_grad():
        return model.eval_forward().item.detach().cpu()


# --- the sweep ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GapPreset:
    """A sweep's size: toy shop, training budget, seeds and dial grid (gaps of `distortion` x dilutions,
    plus each of `linear_checks` at full gap and no dilution), and the finer `placement` grid on which
    only the text view's canonical excess is measured (no training; see `placement_map`)."""

    toy: ToyConfig
    train: TrainConfig
    seeds: tuple[int, ...]
    gaps: tuple[float, ...]
    dilutions: tuple[float, ...]
    linear_checks: tuple[str, ...] = LINEAR_DISTORTIONS
    distortion: str = "warp"
    placement: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)  # gaps = dilutions of the untrained map

    def settings(self) -> list[Dials]:
        grid = [Dials(d, g, self.distortion) for d in self.dilutions for g in self.gaps]
        return grid + [Dials(0.0, 1.0, kind) for kind in self.linear_checks]


PRESETS = {
    "quick": GapPreset(
        toy=ToyConfig(n_users=600, n_items=400),
        train=TrainConfig(epochs=6, batch_size=1024, lr=1e-2, eval_every=2, patience=2, progress=False),
        seeds=(2025, 2026, 2027), gaps=(0.0, 0.5, 1.0), dilutions=(0.0, 1.0)),
    "paper": GapPreset(
        toy=ToyConfig(),
        train=TrainConfig(epochs=40, batch_size=2048, lr=1e-3, eval_every=2, patience=5, progress=False),
        seeds=(2025, 2026, 2027, 2028, 2029), gaps=(0.0, 0.25, 0.5, 0.75, 1.0), dilutions=(0.0, 0.5, 1.0)),
}


@dataclass
class Sweep:
    """The sweep's measurements: per-seed test metrics, per-setting statistics, probe accuracies, and
    the placement map (canonical excess on the finer grid)."""

    runs: pd.DataFrame
    stats: pd.DataFrame
    probes: pd.DataFrame
    placement: pd.DataFrame


def run_sweep(base: Dataset, preset: GapPreset, cache: bool = True, results_dir=RESULTS_DIR,
              seed: int = 0) -> Sweep:
    """Every variant of `VARIANTS` with every seed at every setting of `preset`, trained by the runner.

    The ID-only LightGCN sees no features, so it is trained once per seed (on `base` without
    features) and is the reference of every setting. The first seed's models are kept to measure
    the text view against the trained ID view and the views of the RecGOAT variants."""
    id_only = dataclasses.replace(base, item_features={}, user_features={})
    reference = run_lineup(id_only, {ID_ONLY: VARIANTS[ID_ONLY]}, preset.train, preset.seeds, cache, results_dir,
                           keep_seed=preset.seeds[0], progress=False)
    id_view = item_embeddings(reference.models[ID_ONLY])
    feature_variants = {k: v for k, v in VARIANTS.items() if k != ID_ONLY}
    runs, stats, probes = [], [], []
    for dials in preset.settings():
        ds = dial_dataset(base, dials, seed)
        lineup: Lineup = run_lineup(ds, feature_variants, preset.train, preset.seeds, cache, results_dir,
                                    keep_seed=preset.seeds[0], progress=False)
        runs.append(pd.concat([reference.frame(METRICS), lineup.frame(METRICS)]).assign(**dials.columns()))
        probes.append(factor_probes(ds, seed=seed).assign(**dials.columns()))
        row = {**dials.columns(), **factor_mi(ds),
               "text-ID canonical excess": canonical_excess(ds.item_features["text"], id_view, seed=seed)}
        for name in ALIGNED_VARIANTS:
            row.update({f"{name}: {k}": v for k, v in alignment_stats(lineup.models[name], seed=seed).items()})
        stats.append(row)
    return Sweep(pd.concat(runs, ignore_index=True), pd.DataFrame(stats), pd.concat(probes, ignore_index=True),
                 placement_map(base, id_view, preset.placement, preset.distortion, seed))


def placement_map(base: Dataset, id_view: torch.Tensor, values: tuple[float, ...], distortion: str = "warp",
                  seed: int = 0) -> pd.DataFrame:
    """The text view's canonical excess over a trained ID view at every (gap, dilution) in `values` x
    `values`. It needs no model trained per setting, so it is finer than the sweep; it is the map on
    which a real dataset's measured excess is placed (`on_axis`, `plot_placement`)."""
    rows = []
    for dilution in values:
        for gap in values:
            dials = Dials(dilution, gap, distortion)
            text = dial_dataset(base, dials, seed).item_features["text"]
            rows.append({**dials.columns(), "text-ID canonical excess": canonical_excess(text, id_view, seed=seed)})
    return pd.DataFrame(rows)


def summary(runs: pd.DataFrame, metric: str = "recall@20") -> pd.DataFrame:
    """Mean and std over seeds of `metric`, one row per setting and variant."""
    g = runs.groupby([*SETTING, "variant"], sort=False)[metric]
    return g.agg(["mean", "std", "count"]).reset_index()


def recall_table(runs: pd.DataFrame, metric: str = "recall@20") -> pd.DataFrame:
    """One row per setting, one "mean ± std" column per variant (`metric` over seeds)."""
    s = summary(runs, metric)
    s["cell"] = [f"{m:.4f} ± {d:.4f}" for m, d in zip(s["mean"], s["std"])]
    wide = s.pivot(index=SETTING, columns="variant", values="cell")[list(dict.fromkeys(s["variant"]))]
    return runs[SETTING].drop_duplicates().merge(wide.reset_index(), on=SETTING)


def statistics_table(sweep: Sweep) -> pd.DataFrame:
    """One row per setting: probe accuracy of every factor from every modality, the Gaussian MI
    with the preference and nuisance factors, and the text view's canonical excess over LightGCN's."""
    probes = sweep.probes.assign(column=sweep.probes["modality"] + " " + sweep.probes["factor"])
    wide = probes.pivot_table(index=SETTING, columns="column", values="accuracy", sort=False).reset_index()
    measured = sweep.stats[[c for c in sweep.stats.columns if c in SETTING or c.startswith(("MI ", "text-ID"))]]
    return wide.merge(measured, on=SETTING, sort=False)


def verdicts(runs: pd.DataFrame, metric: str = "recall@20", k: float = VERDICT_K) -> pd.DataFrame:
    """Each comparison of `COMPARISONS` at each setting: mean difference over seeds and the rule's
    verdict, "higher" / "lower" when |difference| > k * pooled std (sqrt of the mean of the two
    variances over seeds), else "tie"."""
    s = summary(runs, metric).set_index([*SETTING, "variant"]).sort_index()
    return pd.DataFrame([{**setting._asdict(), "comparison": name,
                          **_rule(s.loc[(*setting, a)], s.loc[(*setting, b)], k)}
                         for setting in runs[SETTING].drop_duplicates().itertuples(index=False)
                         for name, (a, b) in COMPARISONS.items()])


def _rule(a: pd.Series, b: pd.Series, k: float) -> dict[str, float | str]:
    """Difference of two means over seeds and its verdict under the k-pooled-std rule."""
    diff, pooled = a["mean"] - b["mean"], float(np.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2))
    verdict = "tie" if abs(diff) <= k * pooled else ("higher" if diff > 0 else "lower")
    return {"difference": diff, "pooled std": pooled, "threshold": k * pooled, "verdict": verdict}


def distortion_effects(runs: pd.DataFrame, metric: str = "recall@20", k: float = VERDICT_K) -> pd.DataFrame:
    """What each full-strength distortion (gap 1, no dilution) does to each feature-using variant,
    against the undistorted data: the measured answer to which distortions a model absorbs ("tie")."""
    s = summary(runs, metric).set_index([*SETTING, "variant"]).sort_index()
    ref = ("none", 0.0, 0.0)
    kinds = [d for d in DISTORTIONS if (d, 1.0, 0.0) in s.index.droplevel("variant")]
    variants = [v for v in s.loc[ref].index if v != ID_ONLY]
    return pd.DataFrame([{"distortion": d, "linear": d in LINEAR_DISTORTIONS, "variant": v,
                          **_rule(s.loc[(d, 1.0, 0.0, v)], s.loc[(*ref, v)], k)} for d in kinds for v in variants])


def where_injection_hurts(runs: pd.DataFrame, table: pd.DataFrame, metric: str = "recall@20") -> pd.DataFrame:
    """The settings at which naive LM injection is below LightGCN by the rule (the paper's motivating
    case, found on the dials), with the mean `metric` of injection, LightGCN and RecGOAT there and the
    verdicts of RecGOAT against LightGCN and of each alignment part (`verdicts`' table)."""
    inject = "LM inject - LightGCN"
    hurt = table[(table["comparison"] == inject) & (table["verdict"] == "lower")][SETTING]
    means = summary(runs, metric).pivot_table(index=SETTING, columns="variant", values="mean")
    rest = [c for c in COMPARISONS if c != inject]
    said = table[table["comparison"].isin(rest)].pivot(index=SETTING, columns="comparison", values="verdict")
    return (hurt.merge(means[["LM inject", ID_ONLY, "RecGOAT"]].reset_index(), on=SETTING)
            .merge(said[rest].reset_index(), on=SETTING))


def first_gap(table: pd.DataFrame, comparison: str, verdict: str, dilution: float,
              distortion: str = "warp") -> float | None:
    """The smallest gap (of `distortion`, gap 0 included) at `dilution` where `comparison` reaches
    `verdict`, or None when no setting of the sweep does."""
    t = table[(table["comparison"] == comparison) & (table["dilution"] == dilution)
              & table["distortion"].isin(["none", distortion]) & (table["verdict"] == verdict)]
    return float(t["gap"].min()) if len(t) else None


def on_axis(stats: pd.DataFrame, value: float, column: str = "text-ID canonical excess",
            distortion: str = "warp") -> pd.DataFrame:
    """Where a dataset with statistic `value` sits on the sweep's gap axis: per dilution, the gap at
    which the sweep's (`distortion`) curve of `column` crosses `value`, by linear interpolation; NaN,
    and a position "below" / "above" the curve's range, when the value lies outside it."""
    rows = []
    for dilution, g in stats[stats["distortion"].isin(["none", distortion])].groupby("dilution"):
        g = g.sort_values("gap")
        y, x = g[column].to_numpy(), g["gap"].to_numpy()
        order = np.argsort(y)
        position = "below" if value < y.min() else "above" if value > y.max() else "inside"
        rows.append({"dilution": dilution, "position": position,
                     "gap": float(np.interp(value, y[order], x[order])) if position == "inside" else np.nan,
                     f"{column} min": y.min(), f"{column} max": y.max()})
    return pd.DataFrame(rows)


def plot_recall(runs: pd.DataFrame, metric: str = "recall@20", distortion: str = "warp") -> plt.Figure:
    """Test `metric` against the gap, one panel per dilution; bands: one std over seeds."""
    curve = summary(runs[runs["distortion"].isin(["none", distortion])], metric)
    dilutions = sorted(curve["dilution"].unique())
    fig, axes = plt.subplots(1, len(dilutions), figsize=(4.5 * len(dilutions), 3.6), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], dilutions):
        for variant, g in curve[curve["dilution"] == d].groupby("variant", sort=False):
            g = g.sort_values("gap")
            ax.plot(g["gap"], g["mean"], marker="o", label=variant, ls="--" if variant == ID_ONLY else "-")
            ax.fill_between(g["gap"], g["mean"] - g["std"], g["mean"] + g["std"], alpha=0.15)
        ax.set(title=f"dilution {d:g} (informativeness {1 - d:g})", xlabel=f"gap ({distortion} strength)")
    axes[0, 0].set_ylabel(f"test {metric}")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_alignment(stats: pd.DataFrame, distortion: str = "warp") -> plt.Figure:
    """Sliced W1 (ID view vs text view before / after OAT) and the InfoNCE bound of each RecGOAT
    variant (first seed) against the gap, one line style per dilution."""
    s = stats[stats["distortion"].isin(["none", distortion])].sort_values("gap")
    panels = {"W1 before OAT": "sliced W1 (ID, text)", "W1 after OAT": "sliced W1 (ID, aligned text)",
              "InfoNCE bound": "I(ID; text) bound (nats)"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, (what, ylabel) in zip(axes, panels.items()):
        for (d, g), ls in zip(s.groupby("dilution"), ("-", "--", ":", "-.")):
            for i, name in enumerate(ALIGNED_VARIANTS):
                ax.plot(g["gap"], g[f"{name}: {what}"], ls=ls, marker="o", color=f"C{i}",
                        label=f"{name}, dilution {d:g}")
        ax.set(title=f"ID vs text view: {what}", xlabel=f"gap ({distortion} strength)", ylabel=ylabel)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_placement(placement: pd.DataFrame, value: float | None = None, label: str = "Sports",
                   column: str = "text-ID canonical excess") -> plt.Figure:
    """The placement map: `column` over (gap, dilution), filled contours, with the level set of a real
    dataset's measured `value` drawn on it (the settings at which the toy's text view shares as much
    with its ID view as the real one does)."""
    grid = placement.assign(gap=placement["gap"].astype(float)).pivot_table(index="dilution", columns="gap",
                                                                           values=column)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    filled = ax.contourf(grid.columns, grid.index, grid.to_numpy(), levels=12, cmap="viridis")
    fig.colorbar(filled, ax=ax, label=column)
    if value is not None and grid.to_numpy().min() <= value <= grid.to_numpy().max():
        line = ax.contour(grid.columns, grid.index, grid.to_numpy(), levels=[value], colors="red", linewidths=2)
        ax.clabel(line, fmt={value: f"{label} {value:.3f}"}, fontsize=8)
        ax.set_title(f"toy settings whose text-ID excess equals {label}'s (red)", fontsize=9)
    elif value is not None:
        ax.set_title(f"{label} ({value:.3f}) lies outside the map", fontsize=9)
    ax.set(xlabel="gap (warp strength)", ylabel="dilution (1 - informativeness)")
    fig.tight_layout()
    return fig


# --- real data ---------------------------------------------------------------------------------

SPORTS_TRAIN = TrainConfig(epochs=4, batch_size=4096, lr=5e-3, eval_every=2, patience=1, progress=False)
SPORTS_SEED = 2025


def real_statistics(name: str = "sports", train: TrainConfig = SPORTS_TRAIN, seed: int = SPORTS_SEED,
                    cache: bool = True, results_dir=RESULTS_DIR) -> pd.DataFrame:
    """The sweep's measurable statistics on a real dataset's text view: its canonical excess over a
    trained LightGCN's item vectors (a short run, `train`, through the runner) and the Gaussian MI
    between the two (first N_COMPONENTS principal components each). Probe accuracies need item labels,
    which Sports lacks (its item_text.tsv has titles only); the table says so."""
    ds = load_dataset(name)
    text = ds.item_features.get("text")
    if text is None:
        text = encode_items(ds, as_encoder(None))[0]
    lineup = run_lineup(dataclasses.replace(ds, item_features={}, user_features={}), {ID_ONLY: VARIANTS[ID_ONLY]},
                        train, (seed,), cache, results_dir, keep_seed=seed)
    rec = lineup.records[ID_ONLY][0]
    id_view = item_embeddings(lineup.models[ID_ONLY])
    categories = ds.item_meta is not None and (ds.item_meta.get("categories", pd.Series(dtype=str)) != "").any()
    return pd.DataFrame([{
        "dataset": name, "items": ds.n_items, "text dim": text.shape[1],
        "LightGCN epochs": rec["epochs_run"], "LightGCN test recall@20": rec["test"]["recall@20"],
        "text-ID canonical excess": canonical_excess(text, id_view, seed=0),
        "MI text-ID (nats)": gaussian_mi(principal_components(text), principal_components(id_view)),
        "probe": "no item labels to probe (item_text.tsv has no categories)" if not categories
                 else "categories present: a category probe is not implemented yet",
    }])


def save_statistics(name: str) -> pd.DataFrame:
    """Measure a real dataset's text view (`real_statistics`, minutes) and save it as
    results/tables/<name>_semantic_gap.{csv,md,tex}, the table notebook 12 reads."""
    from .tables import save_table

    table = real_statistics(name)
    print("wrote", save_table(table, _statistics_stem(name), None))
    return table


def _statistics_stem(name: str) -> str:
    return f"{name}_semantic_gap"


def stored_or_recomputed_statistics(recompute: bool, name: str = "sports") -> pd.DataFrame | None:
    """A real dataset's text-view statistics for notebook 12: recomputed and saved (`save_statistics`)
    when `recompute` and the dataset is under the data root, else the stored table; None, saying why,
    when neither exists."""
    from .tables import TABLES_DIR

    if recompute and name in available_datasets():
        save_statistics(name)
    elif recompute:
        print(f"{name} is not under the data root (set RECGOAT_DATA_ROOT): recomputation skipped")
    stored = TABLES_DIR / f"{_statistics_stem(name)}.csv"
    if not stored.exists():
        print(f"no stored {name} statistics ({shown_path(stored)}): run `python -m recgoat_lib.semantic_gap`")
        return None
    return pd.read_csv(stored)


def main(argv: list[str] | None = None) -> None:
    """`python -m recgoat_lib.semantic_gap`: measure a real dataset's text view (default Sports) and
    write results/tables/<dataset>_semantic_gap.{csv,md,tex} for notebook 12 (`save_statistics`)."""
    p = argparse.ArgumentParser(prog="python -m recgoat_lib.semantic_gap", description=main.__doc__)
    p.add_argument("--dataset", default="sports")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    pin_threads(a.threads)
    print(save_statistics(a.dataset).to_markdown(index=False))


if __name__ == "__main__":
    main()
