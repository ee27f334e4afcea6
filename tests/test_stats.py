"""Paired significance tests and the benchmark protocol (grids, tuning, tables) on tiny runs."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from recgoat_lib import protocol as bm
from recgoat_lib.presets import GRIDS, Budget, get_profile
from recgoat_lib.stats import compare_runs, p_text, paired_t, paired_test, seed_averaged_per_user, shown


pytestmark = pytest.mark.usefixtures("one_thread")


def test_paired_t_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 1.0, size=200)
    b = a - rng.normal(0.1, 0.5, size=200)
    t, p = paired_t(a, b)
    ref = sps.ttest_rel(a, b)
    assert t == pytest.approx(ref.statistic, rel=1e-10)
    assert p == pytest.approx(ref.pvalue, rel=1e-8)


def test_known_small_sample():
    # d = (1, 2, 3, 4, 5): all ranks positive, exact two-sided Wilcoxon p = 2 / 2^5
    a, b = np.array([2.0, 4, 6, 8, 10]), np.array([1.0, 2, 3, 4, 5])
    r = paired_test(a, b)
    assert r.n == 5 and r.mean_diff == pytest.approx(3.0)
    assert r.wilcoxon_p == pytest.approx(2 / 32)
    # t = mean / (sd / sqrt(n)) = 3 / (sqrt(2.5) / sqrt(5))
    assert r.t_stat == pytest.approx(3 / np.sqrt(2.5 / 5))
    assert r.t_p == pytest.approx(2 * sps.t.sf(r.t_stat, 4))


def test_identical_and_bad_inputs():
    x = np.array([0.1, 0.2, 0.3])
    r = paired_test(x, x)
    assert r.t_p == 1.0 and r.wilcoxon_p == 1.0 and r.mean_diff == 0.0
    with pytest.raises(ValueError, match="same length"):
        paired_test(x, x[:2])
    with pytest.raises(ValueError, match="at least 2"):
        paired_test(x[:1], x[:1])


def test_no_difference_is_not_significant_and_a_shift_is():
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    assert paired_test(a, a + rng.normal(0, 0.1, 500)).wilcoxon_p > 0.01
    assert paired_test(a + 0.05, a + rng.normal(0, 0.1, 500)).wilcoxon_p < 1e-6


def test_equal_tuning_budget_per_profile():
    for profile, grids in GRIDS.items():
        sizes = {label: len(bm.grid_points(profile, label)) for label, e in bm.ENTRIES.items() if e.tuned_as is None}
        assert len(set(sizes.values())) == 1, (profile, sizes)
        assert set(sizes) == set(grids), f"{profile}: entries without a grid {set(sizes) - set(grids)}"
    assert len(bm.grid_points("quick", "bpr")) == 2


def test_missing_features_give_a_row_not_a_number(tiny, tmp_path):
    profile = replace(get_profile("quick"), seeds=(1,))
    res = bm.Benchmark(tiny, profile, results_dir=tmp_path)(["vbpr", "freedom"])
    assert res.records == {}
    table = bm.results_table(res)
    assert list(table["model"]) == ["vbpr", "freedom"]
    assert (table["recall@20"] == "needs features: image, text — absent").all()


@pytest.fixture(scope="module")
def small_benchmark(toy, tmp_path_factory):
    profile = get_profile("quick", epochs=4, eval_every=2, patience=2)
    profile = replace(profile, seeds=(1, 2), dim=16)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    res = bm.Benchmark(toy, profile, results_dir=tmp_path_factory.mktemp("results"))(["bpr", "lightgcn", "vbpr"])
    torch.set_num_threads(n)
    return res


def test_benchmark_tunes_on_validation_and_runs_every_seed(small_benchmark):
    res = small_benchmark
    assert set(res.records) == {"bpr", "lightgcn", "vbpr"} and res.modalities == ("image",)
    for label, recs in res.records.items():
        assert [r["seed"] for r in recs] == [1, 2]
        log = res.tuning[res.tuning["model"] == label]
        assert len(log) == 2 and log["chosen"].sum() == 1
        best = log.loc[log["valid recall@20"].idxmax(), "config"]
        assert log.loc[log["chosen"], "config"].item() == best == bm.format_point(res.chosen[label])
        # the logged score is the validation metric of the tuning run (the first seed's run at that point)
        chosen_run = recs[0]
        assert log.loc[log["chosen"], "valid recall@20"].item() == pytest.approx(chosen_run["valid"]["recall@20"])
        assert chosen_run["valid"]["recall@20"] != chosen_run["test"]["recall@20"]
        assert all(r["model_config"][k] == v for r in recs for k, v in res.chosen[label].items())
    assert list(res.records["vbpr"][0]["model_config"]["modalities"]) == ["image"]


def test_tables_come_from_the_records(small_benchmark):
    res = small_benchmark
    s = bm.summary(res)
    vals = [r["test"]["ndcg@10"] for r in res.records["lightgcn"]]
    row = s[(s["model"] == "lightgcn") & (s["metric"] == "ndcg@10")].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(vals)) and row["std"] == pytest.approx(np.std(vals, ddof=1))
    table = bm.results_table(res)
    expected = f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}"
    assert table.loc[table["model"] == "lightgcn", "ndcg@10"].item() == expected
    eff = bm.efficiency(res)
    assert len(eff) == 6 and (eff["s/epoch"] > 0).all() and (eff["peak RSS MB"] > 0).all()
    assert eff["commit"].tolist() == [r["git_commit"] for recs in res.records.values() for r in recs]


def test_significance_against_best_validation_baseline(small_benchmark):
    res = small_benchmark
    base = bm.best_baseline(res, target="vbpr")
    valid = {k: np.mean([r["valid"]["recall@20"] for r in res.records[k]]) for k in ("bpr", "lightgcn")}
    assert base == max(valid, key=valid.get)
    sig = bm.significance(res, metrics=("recall@20",), target="vbpr")
    assert len(sig) == 1 and sig["vs"].item() == base
    users, a = seed_averaged_per_user(res.records["vbpr"], "recall@20", res.results_dir)
    _, b = seed_averaged_per_user(res.records[base], "recall@20", res.results_dir)
    ref = sps.wilcoxon(a, b)
    assert sig["p (Wilcoxon)"].item() == pytest.approx(ref.pvalue)
    assert sig["p (t-test)"].item() == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert compare_runs(res.records["vbpr"], res.records[base], "recall@20", res.results_dir).n == len(users)


def test_budget_extra_overrides_reach_the_model_and_the_table(toy, tmp_path):
    budget = Budget(dataset="toy", labels=("lightgcn",), seeds=(1,), train={"epochs": 1}, tune=False)
    base = replace(get_profile("quick"), dim=16)
    res = bm.run_budget(budget, toy, base, results_dir=tmp_path, extra={"lightgcn": {"reg": 0.5}})
    assert res.records["lightgcn"][0]["model_config"]["reg"] == 0.5
    assert bm.results_table(res).loc[0, "config"] == "reg=0.5"
    assert np.isnan(bm.summary(res)["std"]).all()  # one seed: no spread, rather than a spread of 0
    assert bm.results_table(res).loc[0, "recall@20"].endswith(" (one seed)")
    plain = bm.run_budget(budget, toy, base, results_dir=tmp_path)
    assert bm.results_table(plain).loc[0, "config"] == "defaults"


def test_seed_verdict_rule():
    from recgoat_lib.stats import FAILS, HOLDS, UNDECIDED, seed_verdict, spread_text
    assert seed_verdict([0.010, 0.012, 0.011]) == HOLDS            # mean 0.011 > 2 x 0.001
    assert seed_verdict([-0.010, -0.012, -0.011]) == FAILS
    assert seed_verdict([0.0003, -0.0001, 0.0002]) == UNDECIDED    # the comprehensiveness case: within noise
    assert seed_verdict([0.001, 0.02, 0.04]) == UNDECIDED          # all positive but mean < 2 sd
    assert seed_verdict([0.5]) == UNDECIDED                         # one seed has no spread
    # zero seed spread: without a floor any identical difference would hold; the floor is the measurement's noise
    assert seed_verdict([0.003, 0.003, 0.003]) == HOLDS
    assert seed_verdict([0.003, 0.003, 0.003], floor=0.0067) == UNDECIDED
    assert seed_verdict([0.01, 0.012, 0.011], floor=0.005) == HOLDS
    assert spread_text([0.01, 0.03]) == "+0.0200 ± 0.014 over 2 seeds"


def test_p_text_never_prints_an_underflowed_p_as_zero():
    big = paired_test(np.arange(20000) % 7 + 10.0, np.arange(20000) % 7 + 0.1 * (np.arange(20000) % 3))
    assert big.t_p == 0.0  # scipy's p underflows for a shift this large over 20k users
    assert p_text(big.t_p) == "<1e-300" and p_text(0.0312) == "0.031" and p_text(1.3e-153) == "1.3e-153"


def test_shown_keeps_small_p_values_readable_and_rounds_the_rest():
    table = pd.DataFrame({"metric": ["ndcg@10", "hit@10"], "mean_diff": [0.019123, 0.035149],
                          "t_p": [1.2e-13, 0.0], "wilcoxon_p": [0.0312, 0.5]})
    out = shown(table)
    assert out["t_p"].tolist() == ["1.2e-13", "<1e-300"] and out["wilcoxon_p"].tolist() == ["0.031", "0.5"]
    assert out["mean_diff"].tolist() == [0.0191, 0.0351] and out["metric"].tolist() == ["ndcg@10", "hit@10"]
    assert table["t_p"].tolist() == [1.2e-13, 0.0]  # the input is left as it was
