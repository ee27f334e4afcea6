"""Ablations and sweeps: each variant is the same model with exactly the intended switches changed;
tables and sweep choices computed from (synthetic) run records."""
from dataclasses import asdict, fields, replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.nn import GATConv

from conftest import random_dataset

from recgoat_lib.ablations import (
    ABLATIONS,
    REAL_TEXT_VARIANTS,
    REFERENCE,
    AblationResult,
    ablation_table,
    plot_sweeps,
    run_ablations,
    run_budget_ablations,
    run_sweeps,
    sweep_choice,
)
from recgoat_lib.protocol import ENTRIES, Benchmark, run_budget
from recgoat_lib.data import Dataset
from recgoat_lib.departures import DEPARTURES
from recgoat_lib.models import build_model, make_config
from recgoat_lib.models.recgoat import RecGOAT, RecGOATConfig
from recgoat_lib.presets import SWEEPS, Budget, Profile, get_profile
from recgoat_lib.stats import paired_test
from recgoat_lib.train import TrainConfig, seed_everything

DIM = 16


def small_dataset() -> Dataset:
    """30 users x 24 items with image, item text and user text: ablation runs train in a second."""
    return random_dataset(seed=1, n_users=30, n_items=24, name="small")


def bench_for(ds: Dataset, tmp_path, seeds=(0, 1)) -> Benchmark:
    profile = Profile(name="quick", datasets=(ds.name,), seeds=seeds, dim=DIM, use_cache=True,
                      train=TrainConfig(epochs=2, batch_size=64, eval_every=1, patience=2, progress=False))
    return Benchmark(ds, profile, results_dir=tmp_path)


def differing(a, b) -> set[str]:
    return {f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name)}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_is_the_same_model_with_only_its_switches_changed(toy_text, name):
    ab = ABLATIONS[name]
    default = RecGOATConfig(dim=DIM)
    cfg = make_config("recgoat", dim=DIM, **ab.entry().fixed)
    assert differing(cfg, default) == set(ab.model)
    assert differing(replace(TrainConfig(), **ab.train), TrainConfig()) == set(ab.train)
    assert (name == REFERENCE) == (not ab.model and not ab.train)

    seed_everything(0)
    model = build_model("recgoat", toy_text, cfg)
    assert isinstance(model, RecGOAT)
    assert set(model.branches) == set(cfg.modalities)
    assert (model.user_lm is not None) == cfg.user_branch
    n_gat = sum(isinstance(m, GATConv) for m in model.modules())
    assert n_gat == cfg.gat_layers * (len(cfg.modalities) + cfg.user_branch)
    assert hasattr(model, "concat") == (cfg.fusion == "concat") and hasattr(model, "delta") == (cfg.fusion == "oat")
    g = torch.Generator().manual_seed(0)
    n_rows = (toy_text.n_users, toy_text.n_items, toy_text.n_items)
    users, pos, neg = (torch.randint(n, (256,), generator=g) for n in n_rows)
    parts = model.loss(users, pos, neg)
    parts["loss"].backward()
    assert torch.isfinite(parts["loss"])
    # without CMCL, a user LM branch that is only aligned (not scored) takes no part in the loss
    idle = cfg.cl_weight == 0 and cfg.user_branch and cfg.user_fusion == "align"
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.grad is None} == ({"user_lm"} if idle else set())


def test_base_config_is_kept_under_the_ablation():
    entry = ABLATIONS["w/o CMCL"].entry({"cl_weight": 0.005, "reg": 1e-3})
    assert entry.fixed == {"cl_weight": 0.0, "reg": 1e-3} and entry.model == "recgoat"


def test_variants_that_need_absent_features_are_reported(tmp_path):
    ds = small_dataset()
    text_only = Dataset(name="textonly", n_users=ds.n_users, n_items=ds.n_items, interactions=ds.interactions,
                        item_features={"text": ds.item_features["text"]})
    text_bench = bench_for(text_only, tmp_path)  # the benchmark's check serves its models and the variants
    assert text_bench.missing_features(ABLATIONS["image only"].entry()) == "needs features: image — absent"
    assert text_bench.missing_features(ABLATIONS["w/o user LM branch"].entry()) is None
    assert text_bench.missing_features(ABLATIONS[REFERENCE].entry()) == "needs features: user text — absent"
    assert text_bench.missing_features(ENTRIES["recgoat"]) == "needs features: user text — absent"
    bench = bench_for(ds, tmp_path)  # a variant's own modalities win over the dataset's
    assert bench.overrides(ABLATIONS["image only"].entry(), {})["modalities"] == ("image",)
    assert bench.overrides(ABLATIONS["ID only"].entry(), {})["modalities"] == ()
    assert bench.overrides(ABLATIONS[REFERENCE].entry(), {})["modalities"] == ("image", "text")
    with pytest.raises(ValueError, match="full model cannot run"):
        run_ablations(bench_for(text_only, tmp_path), [REFERENCE, "image only"])
    with pytest.raises(KeyError, match="unknown ablations"):
        run_ablations(bench_for(ds, tmp_path), [REFERENCE, "w/o magic"])


def fake_records(tmp_path, name: str, per_user: list[np.ndarray], metric="recall@20"):
    """Run records whose per-user test metric is given (one array per seed), saved as the store does."""
    (tmp_path / "runs" / "fake").mkdir(parents=True, exist_ok=True)
    recs = []
    for seed, values in enumerate(per_user):
        key = f"{name.replace(' ', '_').replace('/', '')}_{seed}"
        np.savez_compressed(tmp_path / "runs" / "fake" / f"{key}.npz", users=np.arange(len(values)), **{metric: values})
        recs.append({"key": key, "dataset": "fake", "seed": seed, "test": {metric: float(values.mean())}})
    return recs


def test_ablation_table_means_differences_and_paired_test(tmp_path):
    rng = np.random.default_rng(0)
    full = [rng.uniform(0.2, 0.6, 50) for _ in range(3)]
    worse = [v - rng.uniform(0.0, 0.2, 50) for v in full]
    result = AblationResult(
        records={REFERENCE: fake_records(tmp_path, REFERENCE, full), "w/o CMCL": fake_records(tmp_path, "cmcl", worse)},
        missing={"image only": "needs features: image — absent"})
    table = ablation_table(result, metrics=("recall@20",), results_dir=tmp_path).set_index("variant")
    assert list(table.index) == [REFERENCE, "w/o CMCL", "image only"]  # in ABLATIONS order, absent rows left out
    seed_means = np.array([v.mean() for v in worse])
    row = table.loc["w/o CMCL"]
    assert row["recall@20 mean"] == pytest.approx(seed_means.mean())
    assert row["recall@20 std"] == pytest.approx(seed_means.std(ddof=1))
    assert row["recall@20 diff"] == pytest.approx(seed_means.mean() - np.mean([v.mean() for v in full]))
    expected = paired_test(np.mean(worse, axis=0), np.mean(full, axis=0))
    assert row["p t-test (recall@20)"] == pytest.approx(expected.t_p) and expected.t_p < 1e-6
    assert row["p Wilcoxon (recall@20)"] == pytest.approx(expected.wilcoxon_p)
    assert table.loc[REFERENCE, "recall@20 diff"] == 0 and np.isnan(table.loc[REFERENCE, "p t-test (recall@20)"])
    assert table.loc["image only", "seeds"] == 0 and "image" in table.loc["image only", "note"]
    assert table.loc["w/o CMCL", "change"] == "cl_weight=0.0" and not table.loc["w/o CMCL", "released"]
    assert table.loc["w/o CMCL", "verdict"] == "lower"  # every seed lower, by more than twice the spread
    one_seed = AblationResult({REFERENCE: result.records[REFERENCE][:1],
                               "w/o CMCL": result.records["w/o CMCL"][:1]}, {})
    single = ablation_table(one_seed, metrics=("recall@20",), results_dir=tmp_path).set_index("variant")
    assert single["recall@20 std"].isna().all()  # one seed has no spread to report, not a spread of 0
    assert single.loc["w/o CMCL", "recall@20 diff"] == pytest.approx(worse[0].mean() - full[0].mean())
    assert single.loc["w/o CMCL", "verdict"] == "not distinguishable at this budget"  # one seed has no spread


def test_sweep_choice_selects_on_validation_and_reports_test_there():
    frame = pd.DataFrame({
        "parameter": ["knn_k"] * 4, "value": [5, 5, 20, 20], "default": [False, False, True, True], "seed": [0, 1] * 2,
        "valid recall@20": [0.30, 0.32, 0.20, 0.22], "valid ndcg@20": [0.1] * 4,
        "test recall@20": [0.10, 0.14, 0.50, 0.50], "test ndcg@20": [0.05, 0.07, 0.3, 0.3]})
    row = sweep_choice(frame).iloc[0]
    assert row["chosen"] == 5 and row["default"] == 20  # the better test value at k=20 is never looked at
    assert row["valid recall@20 at chosen"] == pytest.approx(0.31)
    assert row["valid recall@20 at default"] == pytest.approx(0.21)
    assert row["test recall@20 mean"] == pytest.approx(0.12)
    assert row["test recall@20 std"] == pytest.approx(np.std([0.1, 0.14], ddof=1))


def test_runs_share_the_full_models_runs_and_plot(tmp_path):
    bench = bench_for(small_dataset(), tmp_path)
    result = run_ablations(bench, [REFERENCE, "w/o CMCL"])
    assert [len(r) for r in result.records.values()] == [2, 2] and not result.missing
    assert result.records["w/o CMCL"][0]["model_config"]["cl_weight"] == 0.0
    n_done = len(list(tmp_path.rglob("runs/*/*.json")))
    frame = run_sweeps(bench, {"knn_k": (4,), "gat_layers": (0, 1)}, n_seeds=2)
    assert sorted(frame.groupby("parameter")["value"].unique().map(list).sum()) == [0, 1, 4, 20]
    assert frame["default"].sum() == 4  # knn_k = 20 and gat_layers = 1, two seeds each
    assert len(list(tmp_path.rglob("runs/*/*.json"))) == n_done + 4  # the default points: the full model's runs
    full = frame[frame["default"] & (frame["seed"] == 0)].iloc[0]
    assert full["test recall@20"] == result.records[REFERENCE][0]["test"]["recall@20"]
    fig = plot_sweeps(frame)
    assert sum(ax.get_visible() for ax in fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="n_seeds"):
        run_sweeps(bench, {"knn_k": (4,)}, n_seeds=3)


def test_real_text_variants_all_run_on_a_text_only_dataset(tmp_path):
    ds = small_dataset()
    bench = bench_for(replace(ds, item_features={"text": ds.item_features["text"]}), tmp_path)
    assert {n for n in ABLATIONS if bench.missing_features(ABLATIONS[n].entry())} == {"image only"}
    assert "image only" not in REAL_TEXT_VARIANTS and "text only" not in REAL_TEXT_VARIANTS
    assert REFERENCE in REAL_TEXT_VARIANTS


def test_budget_ablations_train_under_the_budget_and_share_the_benchmarks_runs(tmp_path):
    ds = small_dataset()
    budget = Budget(dataset=ds.name, labels=("recgoat",), seeds=(0, 1, 2),
                    train={"epochs": 1, "batch_size": 64, "eval_every": 1, "patience": 1}, tune=False)
    result = run_budget_ablations(budget, (REFERENCE, "w/o CMCL"), seeds=(1,), ds=ds, results_dir=tmp_path)
    assert [[r["seed"] for r in recs] for recs in result.records.values()] == [[1], [1]]
    for recs in result.records.values():
        assert recs[0]["train"]["epochs"] == 1 and recs[0]["train"]["batch_size"] == 64
        assert recs[0]["model_config"]["dim"] == get_profile("paper").dim
    stored = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / ds.name).glob("*.json")}
    assert len(stored) == 2
    check = run_budget(replace(budget, seeds=(1,)), ds, get_profile("paper"), tmp_path)
    assert check.records["recgoat"][0]["key"] == result.records[REFERENCE][0]["key"]
    again = run_budget_ablations(budget, (REFERENCE, "w/o CMCL"), seeds=(1,), ds=ds, results_dir=tmp_path)
    now = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs" / ds.name).glob("*.json")}
    assert now == stored  # served from the cache: no record added or rewritten
    assert again.records["w/o CMCL"][0]["test"] == result.records["w/o CMCL"][0]["test"]


def test_sweep_grids_cover_the_issue_parameters_and_are_valid():
    wanted = {"knn_k", "cl_weight", "cl_temperature", "dim", "ot_eps", "ot_scale", "gat_layers"}
    for profile, grid in SWEEPS.items():
        assert set(grid) == wanted, profile
        for param, values in grid.items():
            for v in values:
                make_config("recgoat", **{param: v})
    assert all(len(v) <= 3 for v in SWEEPS["quick"].values())
    assert asdict(make_config("recgoat"))["gat_layers"] == 1


def test_every_departure_names_an_ablation_variant_or_says_why_not():
    for d in DEPARTURES:
        assert (d.variant in ABLATIONS) if d.variant is not None else d.note, d.what
    released = {d.variant for d in DEPARTURES if d.variant is not None}
    assert {n for n, a in ABLATIONS.items() if a.released} <= released
