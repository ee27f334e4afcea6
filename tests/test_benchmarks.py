"""Helpers of the speed/memory benchmark (benchmarks/): exponent fits, synthetic scaled graphs,
timing-only features and the target table. No timing assertions."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from recgoat_lib.data import REPO_ROOT, load_dataset

sys.path.insert(0, str(REPO_ROOT))  # benchmarks/ is a top-level package run from the repo root, not installed
from benchmarks.measure import extrapolate_power, growth_exponent, machine, scaled_dataset, timing_features  # noqa: E402
from benchmarks.run import SCALES, TARGETS, check_targets, oat_points  # noqa: E402
from benchmarks import step_profile  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy")


def test_growth_exponent_recovers_power_law():
    x = np.array([1.0, 4.0, 16.0, 64.0])
    assert growth_exponent(x, 3.0 * x**1.5) == pytest.approx(1.5)
    assert growth_exponent(x, np.full(4, 7.0)) == pytest.approx(0.0, abs=1e-12)
    noisy = 2.0 * x * np.array([1.05, 0.95, 1.02, 0.98])
    assert growth_exponent(x, noisy) == pytest.approx(1.0, abs=0.05)


def test_growth_exponent_rejects_bad_input():
    with pytest.raises(ValueError, match="distinct"):
        growth_exponent([2.0, 2.0], [1.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        growth_exponent([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="equal length"):
        growth_exponent([1.0, 2.0, 3.0], [1.0, 2.0])


def test_extrapolate_power_matches_the_law():
    x = np.array([32.0, 64.0, 128.0])
    assert extrapolate_power(x, 0.5 * x, 7050) == pytest.approx(0.5 * 7050)
    assert extrapolate_power(x, x**2, 1000) == pytest.approx(1e6)


def test_scaled_dataset_keeps_degree_distributions(toy):
    big = scaled_dataset(toy, 4, seed=1)
    assert (big.n_users, big.n_items) == (4 * toy.n_users, 4 * toy.n_items)
    assert "synthetic" in big.source and "x4" in big.name
    # duplicates are dropped, so slightly fewer than 4x the interactions
    assert 0.97 * 4 * len(toy.interactions) <= len(big.interactions) <= 4 * len(toy.interactions)
    real_u = np.bincount(toy.interactions["user"], minlength=toy.n_users)
    real_i = np.bincount(toy.interactions["item"], minlength=toy.n_items)
    big_u = np.bincount(big.interactions["user"], minlength=big.n_users)
    big_i = np.bincount(big.interactions["item"], minlength=big.n_items)
    qs = [0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
    np.testing.assert_allclose(np.quantile(big_u, qs), np.quantile(real_u, qs), rtol=0.15, atol=1)
    np.testing.assert_allclose(np.quantile(big_i, qs), np.quantile(real_i, qs), rtol=0.15, atol=1)
    # split proportions carried over, and the result is a valid Dataset (every eval user has training rows)
    share = big.interactions["split"].value_counts(normalize=True).sort_index()
    real = toy.interactions["split"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(share.to_numpy(), real.to_numpy(), atol=0.01)


def test_scaled_dataset_is_seeded_and_rewires(toy):
    a, b = scaled_dataset(toy, 2, seed=3), scaled_dataset(toy, 2, seed=3)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    one = scaled_dataset(toy, 1, seed=3)
    same = one.interactions.merge(toy.interactions, on=["user", "item"])
    assert len(same) < 0.2 * len(toy.interactions)  # a rewired graph, not a copy
    with pytest.raises(ValueError, match="factor"):
        scaled_dataset(toy, 0)


def test_timing_features_fill_only_what_is_missing(toy):
    ds = timing_features(toy, {"image": 4096, "text": 24}, {"text": 12}, seed=0)
    assert ds.item_features["image"] is toy.item_features["image"]  # the toy's own image feature is kept
    assert ds.item_features["text"].shape == (toy.n_items, 24)
    assert ds.user_features["text"].shape == (toy.n_users, 12)
    assert ds.name.endswith("+random-features")
    assert timing_features(toy, {"image": 8}, {}) is toy


def test_oat_points_never_allocate_the_naive_cost_over_budget():
    scale = SCALES["baby"]
    points = oat_points(scale, n_items=7050)
    for p in points:
        if p["method"] == "naive":
            assert p["items"] * p["dim"] ** 2 * 4 / 2**20 <= scale.naive_budget_mb
    naive_800 = [p["items"] for p in points if p["method"] == "naive" and p["dim"] == 800]
    assert 7050 not in naive_800 and len(naive_800) >= 2  # measured small, extrapolated to 7050
    assert {"method": "identity", "dim": 800, "items": 7050} in points


def test_check_targets_reads_the_right_rows():
    models = pd.DataFrame([{"model": "lightgcn", "dim": 64, "batch_over_spmm_floor": 1.5, "eval_ratio": 2.0,
                            "epoch_s": 1.0, "peak_rss_mb": 500.0}])
    dims = pd.DataFrame([{"model": "lightgcn", "dim": 64, "epoch_s": 1.0, "peak_rss_mb": 500.0},
                         {"model": "recgoat", "dim": 64, "epoch_s": 2.5, "peak_rss_mb": 900.0},
                         {"model": "recgoat", "dim": 800, "epoch_s": 30.0, "peak_rss_mb": 5120.0}])
    growth = pd.DataFrame([{"model": "lightgcn", "grows_with": "interactions (synthetic)", "exponent_batch_s": 1.05},
                           {"model": "recgoat", "grows_with": "dim", "exponent_batch_s": 1.8}])
    t = check_targets({"models": models, "dims": dims, "growth": growth})
    assert len(t) == len(TARGETS)
    got = dict(zip(t["target"], zip(t["measured"], t["met"])))
    assert got["LightGCN training batch / chained propagation floor"] == (1.5, True)
    assert got["full-ranking evaluation (LightGCN) / matmul + top-k floor"] == (2.0, False)
    assert "RecGOAT epoch / LightGCN epoch, d = 64" not in got  # replaced by benchmarks/floor.py's step / floor
    assert got["RecGOAT d = 800 peak RSS (GB)"] == (5.0, False)
    # the d-growth row is not an interaction-growth row
    assert got["largest growth exponent, batch time vs interactions"] == (1.05, True)


def test_recgoat_parts_cover_every_term_of_the_step():
    from benchmarks.tasks import recgoat_parts_task
    data = {"name": "toy", "item_dims": {"image": 16, "text": 16}, "user_dims": {"text": 16}}
    rows = pd.DataFrame(recgoat_parts_task(data, dim=16, calls=1, batch_size=256))
    assert rows["part"].iloc[0] == "whole step" and rows["share"].iloc[0] == 1.0
    assert (rows["seconds"] > 0).all()
    names = " | ".join(rows["part"])
    for part in ("LightGCN propagation", "GAT branch: image", "GAT branch: text", "GAT branch: user LM",
                 "OT cost", "user-item InfoNCE (256 rows)", "view-pair InfoNCE", "user-pair InfoNCE"):
        assert part in names
    assert rows.set_index("part").filter(like="view-pair", axis=0)["count"].item() == 3  # (id, image, text) pairs


def test_synthetic_dataset_has_the_shape_asked_for():
    from benchmarks.measure import synthetic_dataset
    ds = synthetic_dataset(400, 3000, 2400, seed=1)
    df = ds.interactions
    assert (ds.n_users, ds.n_items) == (400, 3000) and not df.duplicated(["user", "item"]).any()
    assert 0.9 * 2400 <= (df["split"] == 0).sum() <= 1.1 * 2400
    per_user = df.groupby("user")["split"].agg(lambda s: sorted(s)[-2:])
    assert all(last == [1, 2] for last in per_user)  # one valid and one test row per user
    assert "synthetic" in ds.source and "timing only" in ds.source


def test_recgoat_floor_names_every_unavoidable_product():
    from benchmarks.tasks import recgoat_floor_task
    data = {"shape": [300, 120, 1500], "item_dims": {"image": 24, "text": 16}, "user_dims": {"text": 16}}
    row = recgoat_floor_task(data, dim=16, calls=1, batch_size=256)
    parts = " | ".join(row["floor_parts"])
    for part in ("InfoNCE user-item", "InfoNCE view pairs", "InfoNCE user pair", "projection item image",
                 "projection item text", "projection user LM", "GAT item image layer 1 aggregation",
                 "GAT user LM layer 1 linear", "OAT cost + alignment", "LightGCN propagation"):
        assert part in parts
    assert row["floor_s"] == pytest.approx(sum(row["floor_parts"].values()))
    assert row["step_over_floor"] == pytest.approx(row["step_s"] / row["floor_s"])
    text_only = recgoat_floor_task({**data, "item_dims": {"text": 16}}, dim=16, calls=1, batch_size=256)
    assert not any("image" in k for k in text_only["floor_parts"])


def test_floor_summary_compares_versions_and_losses():
    from benchmarks.floor import summarise
    versus = {"batch_s": 1.0, "epoch_s": 10.0, "eval_valid_test_s": 2.0, "eval_floor_s": 1.0}
    raw = [{"group": "versus", "version": "before", "task": {}, "result": {**versus, "losses": [1.0, 2.0]}},
           {"group": "versus", "version": "after", "task": {},
            "result": {**versus, "epoch_s": 4.0, "eval_valid_test_s": 1.2, "losses": [1.0, 2.0 * (1 + 1e-7)]}},
           {"group": "versus", "version": "after", "task": {},
            "result": {**versus, "epoch_s": 5.0, "eval_valid_test_s": 1.5, "losses": [1.0, 2.0]}}]
    tables = summarise(raw)
    got = tables["targets"].set_index("target")["measured"]
    assert got["Sports epoch, before / after"] == pytest.approx(2.5)  # fastest run of each version
    assert got["valid + test evaluation / matmul + top-k floor (after)"] == pytest.approx(1.2)
    assert tables["versus"]["max_rel_loss_diff_vs_before"].iloc[0] == pytest.approx(0.0, abs=1e-12)


def test_allocator_summary_compares_each_settings_best_round():
    from benchmarks.allocator import summarise
    row = {"dim": 64, "batch_size": 2048, "batch_s": 1.0, "minor_faults_per_batch": 0.0, "peak_rss_mb": 100.0}
    raw = [{"model": "lightgcn", "shape": "baby", "setting": setting, "result": {**row, **result}}
           for setting, result in (("kept", {"batch_mean_s": 2.0}), ("glibc default", {"batch_mean_s": 3.0}),
                                   ("kept", {"batch_mean_s": 1.5, "batch_s": 0.5}),
                                   ("glibc default", {"batch_mean_s": 4.0, "minor_faults_per_batch": 9.0}))]
    got = summarise(raw).iloc[0]
    assert got["mean speedup"] == pytest.approx(2.0)  # 3.0 / 1.5: each setting's round with the lowest mean
    assert got["fastest batch speedup"] == pytest.approx(2.0) and got["faults per batch, glibc default"] == 0.0
    with pytest.raises(SystemExit, match="failed"):
        summarise(raw + [{"model": "lightgcn", "shape": "baby", "setting": "kept", "error": "boom"}])


def test_model_task_reports_mean_and_fastest_batch_and_page_faults():
    from benchmarks.tasks import model_task
    row = model_task("lightgcn", {"shape": [300, 120, 1500]}, dim=16, batches=3, batch_size=256)
    assert 0 < row["batch_s"] <= row["batch_mean_s"] and row["minor_faults_per_batch"] >= 0


def test_model_task_profiles_under_the_batches_allocator_setting(monkeypatch):
    """The operator profile explains the timed batches, so it runs inside the same `_kept_blocks`."""
    import contextlib

    import benchmarks.tasks as tasks

    inside = []

    @contextlib.contextmanager
    def flagged():
        inside.append(True)
        yield
        inside.pop()

    monkeypatch.setattr(tasks, "_kept_blocks", flagged)
    monkeypatch.setattr(tasks, "_top_operators", lambda fn: [{"inside_kept_blocks": bool(inside)}])
    row = tasks.model_task("lightgcn", {"shape": [300, 120, 1500]}, dim=16, batches=2, batch_size=256, profile=True)
    assert row["profile"] == [{"inside_kept_blocks": True}]


def test_recgoat_precision_task_times_both_precisions_on_one_batch():
    from benchmarks.tasks import recgoat_precision_task
    data = {"shape": [300, 120, 1500], "item_dims": {"text": 16}, "user_dims": {"text": 16}}
    row = recgoat_precision_task(data, dim=16, calls=1, batch_size=256)
    assert row["fp32_step_s"] > 0 and row["bf16_step_s"] > 0
    assert row["bf16_speedup"] == pytest.approx(row["fp32_step_s"] / row["bf16_step_s"])
    assert np.isfinite(row["bf16_loss"]) and row["bf16_rel_loss_diff"] < 0.02


def test_gpu_lease_checks_phase_runs_and_packs_its_results(tmp_path):
    """benchmarks/gpu_lease.sh, the script a short GPU lease runs, works end to end in its first phase
    (here on the CPU, where the CUDA tests skip), stages the data root it carried for a later call and
    leaves what a lease sends back; a wrong phase is refused; a study call whose feature parts did not
    all arrive stops before training."""
    stage, data, out = tmp_path / "stage", tmp_path / "data", tmp_path / "out"
    (data / "sports").mkdir(parents=True)
    np.save(data / "sports" / "user_text_feat.part0of2.npy", np.ones((2, 3), np.float32))
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "STAGE": str(stage)}
    script = str(REPO_ROOT / "benchmarks" / "gpu_lease.sh")
    done = subprocess.run(["bash", script, "checks", str(out), str(data)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "cuda tests rc=0" in (out / "checks_steps.txt").read_text()
    assert {"checks_results.tgz", "checks_logs.tgz"} <= {p.name for p in out.iterdir()}
    assert (stage / "sports" / "user_text_feat.part0of2.npy").exists()
    later = tmp_path / "later"  # the next call's own data root, without the second part
    later.mkdir()
    stopped = subprocess.run(["bash", script, "study", str(out), str(later), "60", "bpr"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 1 and "parts [0] found" in stopped.stdout
    assert "feature parts missing" in (out / "study_steps.txt").read_text()
    wrong = subprocess.run(["bash", script, "train", str(out), str(data)], cwd=REPO_ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "unknown phase" in wrong.stderr


def test_feature_parts_split_and_join_give_back_the_same_array(tmp_path):
    """Parts of at most the size asked for, joined bit for bit; a whole file already there is kept."""
    from benchmarks.feature_parts import join, split
    x = np.random.default_rng(0).standard_normal((1001, 384)).astype(np.float32)
    path = tmp_path / "sports" / "user_text_feat.npy"
    path.parent.mkdir()
    np.save(path, x)
    parts = split(path, max_mb=0.5)
    assert len(parts) == 4 and all(p.stat().st_size <= 0.5e6 + 200 for p in parts)  # 200: the .npy header
    path.unlink()
    assert join(tmp_path) == [path]
    np.testing.assert_array_equal(np.load(path), x)
    assert join(tmp_path) == []  # kept, not rewritten
    parts[1].unlink()
    path.unlink()
    with pytest.raises(ValueError, match=r"parts \[0, 2, 3\] found"):
        join(tmp_path)


def test_propagation_floor_chains_its_products(monkeypatch):
    """The floor's 2L products: forward and backward, each product fed the previous one's output (as a
    propagation must be); the one-input variant feeds X to every product."""
    import torch

    import recgoat_lib.graphs as graphs
    from benchmarks.tasks import _chained_spmm

    inputs = []
    monkeypatch.setattr(graphs, "spmm", lambda adj, x: inputs.append(x) or torch.full_like(x, len(inputs)))
    x = torch.zeros(3, 2)
    _chained_spmm(torch.eye(3).to_sparse_csr(), x, layers=3)
    assert len(inputs) == 6
    assert [int(h[0, 0]) for h in inputs] == [0, 1, 2, 0, 4, 5]  # chained within each direction
    inputs.clear()
    _chained_spmm(torch.eye(3).to_sparse_csr(), x, layers=3, chained=False)
    assert len(inputs) == 6 and all(h is x for h in inputs)


def test_step_profile_records_the_top_operators_per_thread_count(tmp_path):
    tiny = {"shape": [60, 40, 400], "item_dims": {"text": 8}, "user_dims": {"text": 8}}
    path = step_profile.main(["--threads", "1", "--out", str(tmp_path), "--data", json.dumps(tiny)])
    record = json.loads(path.read_text())
    assert record["errors"] == {} and record["task"]["data"] == tiny
    table = pd.read_csv(tmp_path / f"{record['label']}.csv")
    assert set(table["threads"]) == {1} and len(table) > 3 and (table["step_s"] > 0).all()
    assert table["share"].is_monotonic_decreasing and 0 < table["share"].sum() <= 1
    assert {"operator", "calls", "self_s"} <= set(table.columns)


def test_machine_names_what_the_numbers_were_measured_on():
    m = machine()
    assert m["device"] in ("cpu", "cuda") and m["cpu_cores"] >= 1 and len(m["load_average"]) == 3
    assert m["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # AVX2 and AVX512 differ in the last bits
