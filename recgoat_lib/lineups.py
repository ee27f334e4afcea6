"""The setup the method notebooks share (03 GAT, 04 CMCL, 05 OAT): one dataset with its LM features,
RecGOAT's settings on it under one profile, a lineup of LightGCN and RecGOAT variants trained over the
profile's seeds, and the per-seed plot of their test metrics.

Each notebook varies one part of RecGOAT against the same base configuration, so the base and the
training budget are built here once instead of in every notebook."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .data import Dataset, load_dataset
from .lm import with_lm_features
from .models import make_config
from .presets import ModelSettings, Profile, get_profile
from .runner import Lineup, run_lineup


@dataclass(frozen=True)
class MethodSetup:
    """A dataset under a profile, with RecGOAT's per-dataset settings there (the paper's released ones
    under `paper`, none under `quick`) and the kNN k its graphs use."""

    profile: Profile
    dataset: Dataset
    recgoat: ModelSettings
    knn_k: int

    @property
    def base(self) -> dict[str, Any]:
        """RecGOAT's config overrides: the profile's dim, its per-dataset settings, this k."""
        return {"dim": self.profile.dim, **self.recgoat.model, "knn_k": self.knn_k}

    def lineup(self, variants: dict[str, tuple[str, dict[str, Any]]], keep_seed: int | None = None) -> Lineup:
        """Train (or read from the cache) each variant over the profile's seeds; RecGOAT variants get
        RecGOAT's per-dataset training settings, other models the profile's."""
        p = self.profile
        return run_lineup(self.dataset, variants, p.train, p.seeds, cache=p.use_cache, keep_seed=keep_seed,
                          variant_train={name: self.recgoat.train for name, (model, _) in variants.items()
                                         if model == "recgoat"})


def method_setup(profile: str, dataset: str, epochs: int | None = None, knn_k: int | None = None) -> MethodSetup:
    """The named profile (its epoch cap set to `epochs` when given) on `dataset`, loaded with its LM
    item and user features; `knn_k` None takes RecGOAT's k on that dataset under the profile."""
    if knn_k is not None and knn_k < 1:
        raise ValueError(f"method_setup: knn_k must be >= 1 neighbours (None takes RecGOAT's k), got {knn_k}")
    p = get_profile(profile, **({"epochs": epochs} if epochs is not None else {}))
    print(f"training budget: at most {p.train.epochs} epochs, validation every {p.train.eval_every}, "
          f"patience {p.train.patience}, seeds {p.seeds}")
    settings = p.model_settings("recgoat", dataset)
    ds = load_dataset(dataset)
    if "text" not in ds.user_features:
        ds = with_lm_features(ds, progress=False)
    return MethodSetup(p, ds, settings, make_config("recgoat", **settings.model).knn_k if knn_k is None else knn_k)


def plot_seed_metrics(runs: pd.DataFrame, metrics: tuple[str, ...] = ("recall@20", "ndcg@20"),
                      label: str = "variant", rotation: float = 0) -> plt.Figure:
    """One panel per metric: each variant's mean and standard deviation over seeds, with every seed's
    value as a dot (a `Lineup.frame()`)."""
    n_seeds = runs["seed"].nunique()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.barplot(runs, x=label, y=metric, ax=ax, errorbar="sd", capsize=0.1)
        sns.stripplot(runs, x=label, y=metric, ax=ax, color="k", size=4)
        ax.set(xlabel="", title=f"test {metric} ({n_seeds} seeds, mean and sd)")
        ax.tick_params(axis="x", rotation=rotation)
    return fig
