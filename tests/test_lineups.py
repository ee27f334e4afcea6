"""The method notebooks' shared setup: RecGOAT's settings and k from the profile, per-variant training
settings, and the per-seed metric plot."""
from __future__ import annotations

import pandas as pd
import pytest

from recgoat_lib import lineups
from recgoat_lib.presets import PAPER_RECGOAT


def test_method_setup_takes_recgoats_settings_and_k_from_the_profile(monkeypatch, toy_text):
    monkeypatch.setattr(lineups, "load_dataset", lambda name: toy_text)  # has user text: no encoding
    paper = lineups.method_setup("paper", "baby", epochs=3)
    assert paper.profile.train.epochs == 3 and paper.dataset is toy_text
    assert paper.recgoat == PAPER_RECGOAT["baby"] and paper.knn_k == PAPER_RECGOAT["baby"].model["knn_k"]
    assert paper.base == {"dim": paper.profile.dim, **PAPER_RECGOAT["baby"].model}
    quick = lineups.method_setup("quick", "toy", knn_k=7)
    assert quick.profile.train.epochs == 40 and quick.knn_k == 7 and quick.base["knn_k"] == 7
    assert quick.base["dim"] == quick.profile.dim
    with pytest.raises(ValueError, match="knn_k must be >= 1"):  # not silently RecGOAT's default k
        lineups.method_setup("quick", "toy", knn_k=0)


def test_lineup_gives_recgoat_variants_recgoats_training_settings_only(monkeypatch, toy_text):
    monkeypatch.setattr(lineups, "load_dataset", lambda name: toy_text)
    setup = lineups.method_setup("paper", "sports")
    calls = []
    monkeypatch.setattr(lineups, "run_lineup", lambda *args, **kwargs: calls.append((args, kwargs)))
    variants = {"LightGCN": ("lightgcn", {"dim": 64}), "RecGOAT": ("recgoat", setup.base),
                "RecGOAT w/o OAT": ("recgoat", {**setup.base, "fusion": "sum"})}
    setup.lineup(variants, keep_seed=2025)
    (args, kwargs), = calls
    assert args == (toy_text, variants, setup.profile.train, setup.profile.seeds)
    assert kwargs["variant_train"] == {"RecGOAT": PAPER_RECGOAT["sports"].train,
                                       "RecGOAT w/o OAT": PAPER_RECGOAT["sports"].train}
    assert kwargs["keep_seed"] == 2025 and kwargs["cache"] == setup.profile.use_cache


def test_plot_seed_metrics_draws_one_panel_per_metric_with_every_seed():
    runs = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [1, 2, 1, 2],
                         "recall@20": [0.1, 0.2, 0.3, 0.4], "ndcg@20": [0.05, 0.06, 0.07, 0.08]})
    fig = lineups.plot_seed_metrics(runs)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["test recall@20 (2 seeds, mean and sd)",
                                               "test ndcg@20 (2 seeds, mean and sd)"]
    dots = [pt for coll in axes[0].collections for pt in coll.get_offsets()[:, 1]]
    assert sorted(dots) == [0.1, 0.2, 0.3, 0.4]
