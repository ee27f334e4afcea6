"""The issue #17 investigations (items 8-10): table and answer sentences built from toy run records."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recgoat_lib import investigations as inv
from recgoat_lib.runner import load_records, run, run_many, spec, valid_curve
from recgoat_lib.study import Study
from recgoat_lib.train import TrainConfig

EPOCHS = 2
SEEDS = (inv.SEED, inv.SEED + 1)


@pytest.fixture(scope="module")
def toy_study():
    return Study(name="toy_inv", dataset="toy", models={"lightgcn": ("lightgcn", {}),
                                                       inv.CONVERGED[8]: ("recgoat", inv.ID_ONLY)}, seeds=SEEDS,
                 train=TrainConfig(epochs=3, batch_size=2048, lr=1e-3, eval_every=1, patience=20), dim=16)


@pytest.fixture(scope="module")
def variants():
    keep = (inv.DEFAULT, "items unnormalised", "RecGOAT text, released Sinkhorn",
            "RecGOAT text + user LM, released Sinkhorn", "lm_inject text")
    return tuple(dataclasses.replace(v, epochs=EPOCHS, seeds=SEEDS if v.item != 9 else (inv.SEED,))
                 for v in inv.VARIANTS if v.label in keep)


@pytest.fixture(scope="module")
def results(tmp_path_factory, toy, toy_text, toy_study, variants):
    d = tmp_path_factory.mktemp("inv")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the first seed's reference is the study's converged run, the second's a run of the budget
        run_many([inv.reference_specs(toy_study, SEEDS[0])[0], inv.reference_specs(toy_study, SEEDS[1], EPOCHS)[1]],
                 toy, results_dir=d, progress=False)
        run_many(toy_study.specs(inv.CONVERGED[8]), toy, results_dir=d, progress=False)  # its converged runs
        for v in variants:
            data = toy_text if v.uses_text else toy
            if v.item == 9:
                logger = inv.PlanLogger()
                rec = run(v.spec(toy_study), data, results_dir=d, on_eval=logger)
                logger.save(inv.plan_log_path(rec, "toy", d))
            else:
                run_many([v.spec(toy_study, seed) for seed in v.seeds], data, results_dir=d, progress=False)
    finally:
        torch.set_num_threads(n)
    return d


def test_variants_change_one_thing_each():
    base = inv.VARIANTS[0]
    assert base.label == inv.DEFAULT and base.overrides == {"modalities": (), "user_branch": False}
    for v in inv.VARIANTS:
        if v.item == 8 and v.label != inv.DEFAULT:
            s, b = v.spec(), base.spec()
            diffs = [f.name for f in dataclasses.fields(s.model_config)
                     if getattr(s.model_config, f.name) != getattr(b.model_config, f.name)]
            diffs += [f.name for f in dataclasses.fields(s.train)
                      if getattr(s.train, f.name) != getattr(b.train, f.name)]
            assert len(diffs) == 1, (v.label, diffs)


def test_call_rule():
    assert inv.call(0.02, 0.01) == "above"
    assert inv.call(-0.02, 0.01) == "below"
    assert inv.call(0.005, 0.01) == "level with"


def test_table_from_records(results, toy_study, variants):
    table = inv.investigation_table(variants, toy_study, results).set_index(["variant", "seed"])
    found, refs = inv.investigation_records(variants, toy_study, load_records(results, toy_study.dataset))
    assert {label: set(runs) for label, runs in found.items()} == {v.label: set(v.seeds) for v in variants}
    assert refs[SEEDS[0]]["train"]["epochs"] == 3 and refs[SEEDS[1]]["train"]["epochs"] == EPOCHS
    for v in variants:
        for seed in v.seeds:
            row = table.loc[(v.label, seed)]
            curve, ref_curve = valid_curve(found[v.label][seed]), valid_curve(refs[seed])
            assert row["epochs"] == EPOCHS
            assert row["valid recall@20"] == pytest.approx(curve[EPOCHS])
            assert row["lightgcn valid at epoch"] == pytest.approx(ref_curve[EPOCHS])  # the same seed's
            assert row["diff vs lightgcn"] == pytest.approx(curve[EPOCHS] - ref_curve[EPOCHS])
    assert isinstance(table.loc[("RecGOAT text, released Sinkhorn", inv.SEED), "plan mass, epochs (min / max)"], str)
    assert [v.startswith("lightgcn") for v, _ in table.index[-2:]] == [True, True]


def test_answers_quote_the_records(results, toy, toy_study, variants):
    found, refs = inv.investigation_records(variants, toy_study, load_records(results, toy_study.dataset))
    text = inv.answers(variants, toy_study, results)
    curves = [valid_curve(found[inv.DEFAULT][seed]) for seed in SEEDS]
    base = [c[EPOCHS] for c in curves]
    assert f"{np.mean(base):.4f} ± {np.std(base, ddof=1):.4f} (2 seeds)" in text[8]
    assert f"seeds {SEEDS[0]}, {SEEDS[1]}; a difference is called when it has the same sign in every seed" in text[8]
    assert "items unnormalised" in text[8]
    assert f"{np.mean([c[EPOCHS] - c[1] for c in curves]):+.4f} over its last 1 epochs" in text[8]
    assert f"converged best, seed {inv.SEED}: {refs[inv.SEED]['valid']['recall@20']:.4f}" in text[8]
    # the study's converged runs: LightGCN's exists for the first seed only, so the sentence reads that seed
    converged = run(toy_study.spec(inv.CONVERGED[8], inv.SEED), toy, results_dir=results)["valid"]["recall@20"]
    ref = refs[inv.SEED]["valid"]["recall@20"]
    word = inv.call(converged - ref, inv.call_threshold(refs[inv.SEED], results))
    assert (f"seeds {inv.SEED}): validation Recall@20 at the best epoch {converged:.4f}, {word} "
            f"LightGCN's {ref:.4f}") in text[8]
    assert "Converged: the study's lm_inject runs at a chosen grid point are not recorded yet." in text[10]
    log = inv.read_plan_log(found["RecGOAT text, released Sinkhorn"][inv.SEED], results)
    assert list(log["epoch"]) == list(range(EPOCHS + 1))  # initialisation, then every epoch
    assert f"{log['mass'].iloc[0]:.5f} at initialisation" in text[9]
    with_users = inv.read_plan_log(found["RecGOAT text + user LM, released Sinkhorn"][inv.SEED], results)
    assert f"{with_users['mass'].iloc[-1]:.5f} after epoch {EPOCHS}" in text[9]
    assert "no user branch" in text[9] and "with the user LM branch" in text[9]
    inject = [valid_curve(found["lm_inject text"][seed])[EPOCHS] for seed in SEEDS]
    assert f"{np.mean(inject):.4f} ± {np.std(inject, ddof=1):.4f}" in text[10] and f"{np.mean(base):.4f}" in text[10]
    one_seed = tuple(dataclasses.replace(v, seeds=(inv.SEED,)) for v in variants)
    assert "[one seed (2025); a difference is called when it exceeds" in inv.answers(one_seed, toy_study, results)[10]


def test_judge_uses_the_seed_rule_from_two_seeds():
    assert inv.judge([0.02], 0.01) == "above"  # one seed: the resolution alone
    assert inv.judge([0.02, 0.021, 0.019], 0.01) == "above"
    assert inv.judge([-0.02, -0.021], 0.01, tie="level") == "below"
    assert inv.judge([0.03, -0.001], 0.01) == "level with"  # mixed signs
    assert inv.judge([0.005, 0.006], 0.01) == "level with"  # consistent, but within the resolution
    assert inv.judge([0.02, 0.08], 0.01) == "level with"  # the mean is within 2 sd over seeds


def test_missing_runs_are_said(results, toy_study, variants):
    extra = dataclasses.replace(variants[0], label="never run", overrides={**variants[0].overrides, "layers": 1})
    table = inv.investigation_table((*variants, extra), toy_study, results).set_index(["variant", "seed"])
    assert all(table.loc[("never run", seed), "epochs"].startswith("not run yet") for seed in SEEDS)
    other = dataclasses.replace(toy_study, models={"lightgcn": ("lightgcn", {"reg": 0.5})})  # no reference run
    with pytest.raises(FileNotFoundError, match="no LightGCN reference"):
        inv.investigation_table(variants, other, results)
    assert inv.answers(variants, other, results)[8].startswith("No answer: the LightGCN reference")
    assert inv.answers(variants[2:], toy_study, results)[8].startswith("No answer yet")
    unrun = dataclasses.replace(variants[3], overrides={**variants[3].overrides, "layers": 1})
    assert f"No answer yet for {unrun.label}" in inv.answers((*variants[:3], unrun), toy_study, results)[9]


def test_item_norm_switch(toy):
    from recgoat_lib.runner import _build

    cfg = dict(dim=16, modalities=(), user_branch=False)
    tc = TrainConfig(epochs=1)
    normed = _build(spec("toy", "recgoat", tc, 0, **cfg), toy).eval()
    raw = _build(spec("toy", "recgoat", tc, 0, item_norm="none", **cfg), toy).eval()
    with torch.no_grad():
        a, b = normed().item, raw()
    assert torch.allclose(a.norm(dim=1), torch.ones(len(a)), atol=1e-5)
    assert torch.allclose(b.item, b.extras["item_cf"])
    assert torch.isfinite(raw.loss(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 3]))["loss"])


def test_answers_markdown_lists_every_item():
    text = inv.answers_markdown({8: "a.", 9: "b.", 10: "c."})
    assert text.splitlines() == ["- **Item 8.** a.", "- **Item 9.** b.", "- **Item 10.** c."]
