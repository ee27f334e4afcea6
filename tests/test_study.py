"""The study table rebuilds from records alone, says what is missing and flags capped runs."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import real_data_or_skip

from recgoat_lib.ablations import ABLATIONS, released_model
from recgoat_lib.runner import RESULTS_DIR, load_records, record_path, run, run_many
from recgoat_lib.stats import PairedTest, compare_runs, p_text, seed_verdict
from recgoat_lib.study import (SPORTS_CONVERGED, Study, chosen_point, epoch_seconds, label_records, run_hardware,
                               latest_record, missing_runs, plot_curves, remaining_runs, study_records, study_table,
                               tuning_table, verdict)
from recgoat_lib.train import TrainConfig


def test_study_table_from_records_shows_missing_seeds_and_tests(toy, tmp_path):
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {}), "lightgcn": ("lightgcn", {}),
                                                  "recgoat": ("recgoat", {"knn_k": 5, "modalities": ("image",),
                                                                         "user_branch": False})},
                  seeds=(0, 1), train=TrainConfig(epochs=2, batch_size=1024, eval_every=1, patience=5, progress=False),
                  dim=16)
    empty = study_table(study, tmp_path)
    assert empty["recall@20"].tolist() == ["not run yet"] * 3 and empty["epoch cap hit"].tolist() == [""] * 3
    run_many(study.specs("bpr") + study.specs("lightgcn") + study.specs("recgoat")[:1], toy, results_dir=tmp_path)
    table = study_table(study, tmp_path).set_index("model")
    assert table.loc["bpr", "seeds"] == "2 of 2" and "±" in table.loc["bpr", "recall@20"]
    assert table.loc["recgoat", "recall@20"].startswith("incomplete (0: ")
    assert table.loc["lightgcn", "epoch cap hit"] == "0, 1"  # 2 epochs with patience 5: the cap stopped both
    assert (table["data"] == f"`{toy.checksum()[:8]}`").all()  # what the runs read: one dataset here
    tested = [c for c in table.columns if c.startswith("vs ")]
    assert len(tested) == 1
    best = tested[0].split(" ")[1]
    other = ({"bpr", "lightgcn"} - {best}).pop()
    column = table[tested[0]]
    assert column[best] == "(the best complete baseline)" and column["recgoat"] == ""  # incomplete: no test
    assert "(" in column[other] and column[other].startswith(("+", "-"))  # the non-best complete baseline only
    said = verdict(study, tmp_path)
    assert said.startswith("No verdict yet: 5 of 6 runs at the tuned points recorded") and "recgoat" in said
    found = study_records(study, load_records(tmp_path, study.dataset))
    assert set(found) == {"bpr", "lightgcn", "recgoat"}
    v = [r["test"]["recall@20"] for r in found["bpr"].values()]
    assert table.loc["bpr", "recall@20"] == f"{np.mean(v):.4f} ± {np.std(v, ddof=1):.4f}"
    # the best baseline is chosen on validation: give the one with the lower test mean the higher validation
    test_mean = {m: np.mean([r["test"]["recall@20"] for r in found[m].values()]) for m in ("bpr", "lightgcn")}
    worse = min(test_mean, key=test_mean.get)
    for r in found[worse].values():
        set_valid_recall(tmp_path, r, 0.99)
    assert f"vs {worse} (t / Wilcoxon p)" in study_table(study, tmp_path).columns


def set_valid_recall(results_dir, record: dict, value: float) -> None:
    """Rewrite a stored record's validation Recall@20 (its test figures untouched), so that validation
    and test disagree about which run is better."""
    path = record_path(results_dir, record["dataset"], record["key"])
    stored = json.loads(path.read_text())
    stored["valid"]["recall@20"] = value
    path.write_text(json.dumps(stored))


def test_verdict_is_provisional_while_a_baseline_lacks_seeds(toy, tmp_path):
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {}), "mf": ("bpr", {"reg": 1e-3}),
                                                  "recgoat": ("recgoat", {"knn_k": 5, "modalities": ("image",),
                                                                         "user_branch": False})},
                  seeds=(0, 1), train=TrainConfig(epochs=2, batch_size=1024, eval_every=1, patience=5, progress=False),
                  dim=16, contrasts=(("recgoat", "mf"),))
    run_many(study.specs("bpr") + study.specs("recgoat") + study.specs("mf")[:1], toy, results_dir=tmp_path)
    said = verdict(study, tmp_path)
    assert said.startswith("Provisional (baselines without all their seeds: mf): RecGOAT ")
    assert "the best complete baseline (bpr) on toy" in said
    assert said.endswith(". recgoat against mf: not yet (recgoat 2 of 2 seeds, mf 1 of 2 seeds).")
    run_many(study.specs("mf")[1:], toy, results_dir=tmp_path)
    assert verdict(study, tmp_path).startswith("RecGOAT ")
    records = load_records(tmp_path, "toy")
    a, b = ([latest_record(records, s) for s in study.specs(label)] for label in ("recgoat", "mf"))
    t = compare_runs(a, b, "recall@20", tmp_path)
    per_seed = [x["test"]["recall@20"] - y["test"]["recall@20"] for x, y in zip(a, b)]
    said = verdict(study, tmp_path).split(". recgoat is ", 1)[1]  # the contrast, after the headline
    assert f" mf: {t.mean_diff:+.4f} Recall@20 (per seed {per_seed[0]:+.4f}, " in said
    assert said.endswith(f"paired t p {p_text(t.t_p)}, seed rule: {seed_verdict(per_seed)}.")


def test_without_all_seeds_there_is_no_verdict_but_two_shared_seeds_get_a_provisional_call(toy, tmp_path):
    from recgoat_lib.study import judged
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {}), "mf": ("bpr", {"reg": 1e-3}),
                                                  "recgoat": ("recgoat", {"knn_k": 5, "modalities": ("image",),
                                                                         "user_branch": False})},
                  seeds=(0, 1, 2), dim=16, contrasts=(("recgoat", "mf"),),
                  train=TrainConfig(epochs=2, batch_size=1024, eval_every=1, patience=5, progress=False))
    run_many(study.specs("bpr") + study.specs("recgoat")[:1] + study.specs("mf")[:1], toy, results_dir=tmp_path)
    said = verdict(study, tmp_path)  # one RecGOAT seed: nothing provisional either
    assert said.startswith("No verdict yet: ") and "Provisional" not in said and "provisional" not in said
    run_many(study.specs("recgoat")[1:2], toy, results_dir=tmp_path)
    records = load_records(tmp_path, "toy")
    runs = {label: [latest_record(records, s) for s in study.specs(label)[:2]] for label in study.models}
    _, numbers = judged(runs["recgoat"], runs["bpr"], tmp_path)  # the same rule, on seeds 0 and 1
    headline, contrast = verdict(study, tmp_path).split(". recgoat against ", 1)
    assert headline.startswith("No verdict yet: 6 of 9 runs at the tuned points recorded")
    assert "Provisional, on the 2 seeds recorded so far (0, 1): RecGOAT " in headline
    assert headline.endswith(f" the best complete baseline (bpr): {numbers}")
    assert contrast == "mf: not yet (recgoat 2 of 3 seeds, mf 1 of 3 seeds)."  # one shared seed
    run_many(study.specs("mf")[1:2], toy, results_dir=tmp_path)
    records = load_records(tmp_path, "toy")
    mf = [latest_record(records, s) for s in study.specs("mf")[:2]]
    _, numbers = judged(runs["recgoat"], mf, tmp_path)
    contrast = verdict(study, tmp_path).split(". recgoat against ", 1)[1]
    assert contrast.startswith("mf: not yet (recgoat 2 of 3 seeds, mf 2 of 3 seeds); "
                               "provisional, on the shared seeds 0, 1, recgoat is ")
    assert contrast.endswith(f": {numbers}.")


def test_a_difference_is_called_only_when_the_user_test_and_the_seed_rule_agree(tmp_path, monkeypatch):
    """`judged`: the paired t test over users sees no seed noise, so a tiny p alone does not decide."""
    from recgoat_lib import study as st
    def runs(*values):
        return [{"test": {"recall@20": v}} for v in values]

    def users(p):
        test = PairedTest(n=1000, mean_diff=0.01, t_stat=1.0, t_p=p, wilcoxon_stat=1.0, wilcoxon_p=p)
        return lambda *args: test

    monkeypatch.setattr(st, "compare_runs", users(1e-9))
    assert st.judged(runs(0.11, 0.11, 0.11), runs(0.10, 0.10, 0.10), tmp_path)[0] == "above"
    assert st.judged(runs(0.13, 0.09, 0.11), runs(0.10, 0.10, 0.10), tmp_path)[0] == "level"  # seeds disagree
    assert st.judged(runs(0.09, 0.09, 0.09), runs(0.10, 0.10, 0.10), tmp_path)[0] == "below"
    monkeypatch.setattr(st, "compare_runs", users(0.2))
    assert st.judged(runs(0.11, 0.11, 0.11), runs(0.10, 0.10, 0.10), tmp_path)[0] == "level"  # users disagree


def test_sports_study_trains_every_model_the_issue_names_to_convergence():
    assert {"bpr", "lightgcn", "vbpr", "freedom", "bm3", "lgmrec", "lm_inject", "dprec*", "recgoat",
            "recgoat released", "recgoat ID-only"} <= set(SPORTS_CONVERGED.models)
    assert {len(SPORTS_CONVERGED.points(label)) for label in SPORTS_CONVERGED.models} == {2}  # equal tuning
    assert SPORTS_CONVERGED.train.patience == 20 and SPORTS_CONVERGED.train.eval_every == 1
    assert len(SPORTS_CONVERGED.seeds) >= 3
    assert all(len(SPORTS_CONVERGED.specs(label)) == 3 for label in SPORTS_CONVERGED.models)  # every config is valid


def test_which_runs_read_features():
    from recgoat_lib.study import uses_features
    s = SPORTS_CONVERGED
    assert not uses_features(s.specs("lightgcn")[0]) and not uses_features(s.specs("recgoat ID-only")[0])
    assert uses_features(s.specs("recgoat")[0]) and uses_features(s.specs("freedom")[0])


def test_each_model_is_tuned_on_validation_with_the_first_seed_then_runs_every_seed(toy, tmp_path):
    budget = TrainConfig(epochs=2, batch_size=1024, eval_every=1, patience=5, progress=False)
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {})}, seeds=(0, 1), train=budget, dim=16,
                  grids={"bpr": {"reg": (1e-4, 10.0)}})  # reg 10 pins the embeddings near 0: the worse point
    assert [s.model_config.reg for _, s in missing_runs(study, results_dir=tmp_path)] == [1e-4, 10.0]
    assert study_table(study, tmp_path).loc[0, "tuned"] == "tuning: 0 of 2 points run"
    run_many([s for _, s in missing_runs(study, results_dir=tmp_path)], toy, results_dir=tmp_path)
    records = load_records(tmp_path, "toy")
    assert chosen_point(study, "bpr", records) == {"reg": 1e-4}
    assert [(s.seed, s.model_config.reg) for _, s in missing_runs(study, results_dir=tmp_path)] == [(1, 1e-4)]
    tuning = tuning_table(study, tmp_path)
    assert tuning["chosen"].tolist() == [True, False] and "not run yet" not in tuning.iloc[:, 2].tolist()
    row = study_table(study, tmp_path).iloc[0]
    assert row["tuned"] == "reg=0.0001" and row["recall@20"].startswith("incomplete (0: ")
    worse = latest_record(records, study.tuning_specs("bpr")[1])  # reg 10: worse on test, now best on validation
    assert worse["model_config"]["reg"] == 10.0
    set_valid_recall(tmp_path, worse, 0.99)
    assert chosen_point(study, "bpr", load_records(tmp_path, "toy")) == {"reg": 10.0}



def test_curves_show_every_run_per_model_chosen_seeds_solid_other_points_dashed(toy, tmp_path):
    budget = TrainConfig(epochs=3, batch_size=1024, eval_every=1, patience=5, progress=False)
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {}), "mf": ("bpr", {"reg": 1e-3})},
                  seeds=(0, 1), train=budget, dim=16, grids={"bpr": {"reg": (1e-4, 10.0)}})
    assert plot_curves(study, tmp_path) is None
    run_many(study.tuning_specs("bpr"), toy, results_dir=tmp_path)
    run_many(study.specs("bpr", {"reg": 1e-4})[1:], toy, results_dir=tmp_path)
    fig = plot_curves(study, tmp_path)
    bpr, mf = fig.axes[:2]
    curves = {line.get_label(): line for line in bpr.get_lines() if not line.get_label().startswith("_")}
    assert set(curves) == {"seed 0", "seed 1", "reg=10.0, not chosen"}
    assert curves["reg=10.0, not chosen"].get_linestyle() == "--" and curves["seed 1"].get_linestyle() == "-"
    assert list(curves["seed 0"].get_xdata()) == [1, 2, 3]  # one point per evaluated epoch
    assert [t.get_text() for t in mf.texts] == ["not run yet"] and not mf.get_lines()


def test_released_recgoat_carries_every_released_model_behaviour():
    released = released_model()
    for a in ABLATIONS.values():
        if a.released:
            assert a.model.items() <= released.items()
    assert released["cl_sign"] == "released" and released["sinkhorn"] == "released"
    cfg = SPORTS_CONVERGED.specs("recgoat released")[0].model_config
    assert cfg.cl_sign == "released" and cfg.user_branch is False and cfg.modalities == ("text",)


def test_remaining_runs_count_untried_points_and_the_other_seeds(toy, tmp_path):
    budget = TrainConfig(epochs=1, batch_size=1024, eval_every=1, patience=5, progress=False)
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {}), "mf": ("bpr", {"reg": 1e-3})},
                  seeds=(0, 1, 2), train=budget, dim=16, grids={"bpr": {"reg": (1e-4, 10.0)}})
    assert remaining_runs(study, tmp_path) == {"bpr": 2 + 2, "mf": 3}
    run_many(study.tuning_specs("bpr") + study.specs("mf")[:1], toy, results_dir=tmp_path)
    assert remaining_runs(study, tmp_path) == {"bpr": 2, "mf": 2}
    assert len(label_records(study, "bpr", load_records(tmp_path, study.dataset))) == 2


@pytest.mark.real_data
def test_study_plan_times_every_model_on_the_timing_only_copy():
    real_data_or_skip("sports")
    from recgoat_lib import dry_run
    study = Study(name="t", dataset="sports", models={"bpr": ("bpr", {}), "lightgcn": ("lightgcn", {})},
                  seeds=(0, 1), train=TrainConfig(epochs=1000, batch_size=2048, eval_every=1, patience=20), dim=16)
    plan = dry_run.study_plan(study, max_batches=2)
    assert plan["model"].tolist() == ["bpr", "lightgcn"] and (plan["s/epoch"] > 0).all()
    assert plan["epochs from"].tolist() == ["the cap"] * 2 and plan["runs left"].tolist() == [2, 2]


def test_plan_from_timings_counts_the_runs_left_and_their_epochs(toy, tmp_path):
    from recgoat_lib import dry_run
    budget = TrainConfig(epochs=3, batch_size=1024, eval_every=1, patience=5, progress=False)
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {}), "mf": ("bpr", {"reg": 1e-3})},
                  seeds=(0, 1), train=budget, dim=16)
    timings = {"bpr": (10.0, 2.0), "mf": (20.0, 4.0)}
    plan = dry_run.plan_from_timings(study, timings, tmp_path).set_index("model")
    assert plan["epochs from"].tolist() == ["the cap"] * 2
    assert plan.loc["mf", "hours left"] == pytest.approx(2 * 3 * 24 / 3600)  # 2 runs x 3 epochs x (20 + 4) s
    run_many(study.specs("bpr")[:1], toy, results_dir=tmp_path)
    plan = dry_run.plan_from_timings(study, timings, tmp_path).set_index("model")
    assert plan["epochs from"].tolist() == ["its one record", "the study's records"]
    assert plan["epochs per run"].tolist() == [plan.loc["bpr", "epochs per run"]] * 2  # mf: the study's one run
    rec = label_records(study, "bpr", load_records(tmp_path, study.dataset))[0]
    # its one record sets the seconds per epoch (as it ran); mf has none and keeps the timed ones
    assert plan["times from"].tolist() == ["its records", "timed alone"]
    assert plan.loc["bpr", "s/epoch as run (with eval)"] == pytest.approx(epoch_seconds(rec))
    assert plan.loc["bpr", "runs left"] == 1
    assert plan.loc["bpr", "hours left"] == pytest.approx(rec["epochs_run"] * epoch_seconds(rec) / 3600)
    run_many(study.specs("bpr")[1:], toy, results_dir=tmp_path)
    plan = dry_run.plan_from_timings(study, timings, tmp_path).set_index("model")
    assert plan.loc["bpr", "epochs from"] == "its records" and plan.loc["bpr", "hours left"] == 0
    ran = np.mean([r["epochs_run"] for r in label_records(study, "bpr", load_records(tmp_path, study.dataset))])
    assert plan.loc["mf", "hours left"] == pytest.approx(2 * ran * 24 / 3600)
    csv = tmp_path / "plan.csv"
    plan.reset_index().to_csv(csv, index=False)
    assert dry_run.timings_from_plan(csv) == timings
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a study plan table"):
        dry_run.timings_from_plan(tmp_path / "other.csv")

def test_plan_counts_only_the_chosen_points_records_once_a_point_is_chosen(toy, tmp_path):
    from recgoat_lib import dry_run
    budget = TrainConfig(epochs=3, batch_size=1024, eval_every=1, patience=1, progress=False)
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {})}, seeds=(0, 1, 2), train=budget, dim=16,
                  grids={"bpr": {"reg": (1e-4, 10.0)}})  # reg 10 is the losing point
    run_many(study.tuning_specs("bpr"), toy, results_dir=tmp_path)
    plan = dry_run.plan_from_timings(study, {"bpr": (10.0, 2.0)}, tmp_path).set_index("model")
    at_point = [r["epochs_run"] for r in study_records(study, load_records(tmp_path, study.dataset))["bpr"].values()]
    assert plan.loc["bpr", "epochs from"] == "its one record"  # at the chosen point; the losing one not counted
    assert plan.loc["bpr", "epochs per run"] == at_point[0]
    run_many(study.specs("bpr", {"reg": 1e-4})[1:2], toy, results_dir=tmp_path)
    plan = dry_run.plan_from_timings(study, {"bpr": (10.0, 2.0)}, tmp_path).set_index("model")
    at_point = [r["epochs_run"] for r in study_records(study, load_records(tmp_path, study.dataset))["bpr"].values()]
    assert plan.loc["bpr", "epochs from"] == "its records" and plan.loc["bpr", "epochs per run"] == np.mean(at_point)


def test_the_cpu_plan_takes_no_epoch_times_from_runs_made_on_a_gpu(toy, tmp_path):
    from recgoat_lib import dry_run
    budget = TrainConfig(epochs=3, batch_size=1024, eval_every=1, patience=5, progress=False)
    study = Study(name="t", dataset="toy", models={"bpr": ("bpr", {})}, seeds=(0, 1), train=budget, dim=16)
    run_many(study.specs("bpr")[:1], toy, results_dir=tmp_path)
    assert dry_run.plan_from_timings(study, {"bpr": (10.0, 2.0)}, tmp_path).loc[0, "times from"] == "its records"
    path = record_path(tmp_path, "toy", load_records(tmp_path, "toy")[0]["key"])
    path.write_text(json.dumps({**json.loads(path.read_text()), "device": "cuda:0"}))
    plan = dry_run.plan_from_timings(study, {"bpr": (10.0, 2.0)}, tmp_path)
    assert plan.loc[0, "times from"] == "timed alone" and plan.loc[0, "hours left"] == pytest.approx(3 * 12 / 3600)


def test_committed_real_data_records_stay_within_their_size_budget():
    """Real-data records are committed (JSON + compressed per-user arrays) under a 20 MB budget in all."""
    from recgoat_lib.data import REPO_ROOT
    runs = REPO_ROOT / "results" / "runs"
    files = [f for f in runs.rglob("*") if f.is_file() and "toy" not in f.relative_to(runs).parts
             and f.suffix in (".json", ".npz", ".csv")]
    assert files and sum(f.stat().st_size for f in files) < 20e6


@pytest.mark.real_data
def test_a_committed_sports_record_still_comes_out_of_this_code(tmp_path):
    """The committed converged LightGCN run (chosen point, seed 2025), retrained here for its first two
    epochs, gives the losses and validation Recall@20 its record holds (to float rounding: the record
    may come from older code that sums in another order). A change to the split, the negative sampler,
    the model or the evaluator that moves the real-data numbers fails here, so the committed table
    cannot silently stop describing the code."""
    real_data_or_skip("sports")
    from recgoat_lib.data import load_dataset
    records = load_records(RESULTS_DIR, "sports")
    point = chosen_point(SPORTS_CONVERGED, "lightgcn", records)
    committed = latest_record(records, SPORTS_CONVERGED.spec("lightgcn", 2025, point))
    assert committed is not None, "the committed LightGCN record of seed 2025 is missing"
    s = SPORTS_CONVERGED.spec("lightgcn", 2025, point)
    short = dataclasses.replace(s, train=dataclasses.replace(s.train, epochs=2, progress=False))
    again = run(short, load_dataset("sports"), cache=False, results_dir=tmp_path, threads=1)
    for was, now in zip(committed["history"][:2], again["history"], strict=True):
        assert now["loss"] == pytest.approx(was["loss"], rel=1e-5)
        assert now["select_score"] == pytest.approx(was["select_score"], abs=2e-4)  # a few near-tie flips


def test_tables_name_the_cpus_instruction_set_where_a_record_has_it():
    assert run_hardware({"device": "cpu", "cpu_capability": "AVX2"}) == "cpu AVX2"
    assert run_hardware({"device": "cpu"}) == "cpu"  # recorded before runs kept it
    assert run_hardware({"device": "cuda:0", "cpu_capability": "AVX512"}) == "cuda"
    xeon = {"device": "cpu", "cpu_capability": "AVX512", "cpu_model": "Intel(R) Xeon(R) Processor"}
    assert run_hardware(xeon) == "cpu AVX512 Intel Xeon"
    assert run_hardware({**xeon, "cpu_model": "AMD EPYC 9R14 96-Core Processor"}) == "cpu AVX512 AMD EPYC"
    assert run_hardware({**xeon, "threads": 1}) == "cpu AVX512 Intel Xeon"  # the study's usual count goes unsaid
    assert run_hardware({**xeon, "threads": 2}) == "cpu AVX512 Intel Xeon, 2 threads"
    resumed = {"device": "cpu", "cpu_capability": "AVX512", "threads": 1, "epochs_run": 180, "execution_segments": [
        {"from_epoch": 0, "device": "cpu", "cpu_capability": "AVX512", "threads": 2},
        {"from_epoch": 2, "device": "cpu", "cpu_capability": "AVX512", "threads": 1}]}
    assert run_hardware(resumed) == "epochs 1-2: cpu AVX512, 2 threads; epochs 3-180: cpu AVX512, 1 thread"
