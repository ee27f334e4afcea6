"""The issue #17 investigations (items 8-10): table and answer sentences built from toy run records."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recgoat_lib import investigations as inv
from recgoat_lib.runner import run, run_many, spec
from recgoat_lib.study import Study
from recgoat_lib.train import TrainConfig

EPOCHS = 2


@pytest.fixture(scope="module")
def toy_text(toy):
    rng = np.random.default_rng(0)
    return dataclasses.replace(toy, item_features={**toy.item_features,
                                                   "text": rng.standard_normal((toy.n_items, 16)).astype(np.float32)},
                               user_features={**toy.user_features,
                                              "text": rng.standard_normal((toy.n_users, 16)).astype(np.float32)})


@pytest.fixture(scope="module")
def toy_study():
    return Study(name="toy_inv", dataset="toy", models={"lightgcn": ("lightgcn", {})}, seeds=(inv.SEED,),
                 train=TrainConfig(epochs=3, batch_size=2048, lr=1e-3, eval_every=1, patience=20), dim=16)


@pytest.fixture(scope="module")
def variants():
    keep = (inv.DEFAULT, "items unnormalised", "RecGOAT text, released Sinkhorn",
            "RecGOAT text + user LM, released Sinkhorn", "lm_inject text")
    return tuple(dataclasses.replace(v, epochs=EPOCHS) for v in inv.VARIANTS if v.label in keep)


@pytest.fixture(scope="module")
def results(tmp_path_factory, toy, toy_text, toy_study, variants):
    d = tmp_path_factory.mktemp("inv")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_many([inv.reference_spec(toy_study)], toy, results_dir=d, progress=False)
        for v in variants:
            data = toy_text if v.uses_text else toy
            if v.item == 9:
                logger = inv.PlanLogger()
                rec = run(v.spec(toy_study), data, results_dir=d, on_eval=logger)
                logger.save(inv.plan_log_path(rec, "toy", d))
            else:
                run_many([v.spec(toy_study)], data, results_dir=d, progress=False)
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
    table = inv.investigation_table(variants, toy_study, results).set_index("variant")
    found, ref = inv.investigation_records(variants, toy_study, results)
    assert set(found) == {v.label for v in variants}
    ref_curve = inv.valid_curve(ref)
    for v in variants:
        row = table.loc[v.label]
        curve = inv.valid_curve(found[v.label])
        assert row["epochs"] == EPOCHS
        assert row["valid recall@20"] == pytest.approx(curve[EPOCHS])
        assert row["lightgcn valid at epoch"] == pytest.approx(ref_curve[EPOCHS])
        assert row["diff vs lightgcn"] == pytest.approx(curve[EPOCHS] - ref_curve[EPOCHS])
    assert isinstance(table.loc["RecGOAT text, released Sinkhorn", "plan mass, epochs (min / max)"], str)
    assert table.index[-1].startswith("lightgcn")


def test_answers_quote_the_records(results, toy_study, variants):
    found, ref = inv.investigation_records(variants, toy_study, results)
    text = inv.answers(variants, toy_study, results)
    base = inv.valid_curve(found[inv.DEFAULT])[EPOCHS]
    assert f"{base:.4f}" in text[8] and "one seed" in text[8] and "items unnormalised" in text[8]
    first = inv.valid_curve(found[inv.DEFAULT])[1]
    assert f"{base - first:+.4f} over its last 1 epochs" in text[8]
    assert f"converged best: {ref['valid']['recall@20']:.4f}" in text[8]
    log = inv.read_plan_log(found["RecGOAT text, released Sinkhorn"], results)
    assert list(log["epoch"]) == list(range(EPOCHS + 1))  # initialisation, then every epoch
    assert f"{log['mass'].iloc[0]:.5f} at initialisation" in text[9]
    with_users = inv.read_plan_log(found["RecGOAT text + user LM, released Sinkhorn"], results)
    assert f"{with_users['mass'].iloc[-1]:.5f} after epoch {EPOCHS}" in text[9]
    assert "no user branch" in text[9] and "with the user LM branch" in text[9]
    inject = inv.valid_curve(found["lm_inject text"])[EPOCHS]
    assert f"{inject:.4f}" in text[10] and f"{base:.4f}" in text[10]


def test_missing_runs_are_said(results, toy_study, variants):
    extra = dataclasses.replace(variants[0], label="never run", overrides={**variants[0].overrides, "layers": 1})
    table = inv.investigation_table((*variants, extra), toy_study, results).set_index("variant")
    assert table.loc["never run", "epochs"].startswith("not run yet")
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
