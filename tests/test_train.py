"""Trainer: negative sampling, determinism, early stopping, resuming, released-code switches, result cache."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recgoat_lib.models import build_model, make_config
from recgoat_lib.train import NegativeSampler, TrainConfig, adam, seed_everything, train, train_step

FAST = TrainConfig(epochs=4, batch_size=4096, lr=2e-2, eval_every=2, patience=3, progress=False)


def test_negatives_exclude_training_positives(toy):
    s = NegativeSampler(toy, exclude_positives=True)
    u, p, n = s.epoch(np.random.default_rng(0))
    assert len(u) == toy.stats()["train_rows"]
    train = toy.csr("train")
    assert not np.asarray(train[u, n]).any()
    assert np.asarray(train[u, p]).all()


def test_released_negatives_can_hit_positives(tiny):
    s = NegativeSampler(tiny, exclude_positives=False)
    u, _, n = s.epoch(np.random.default_rng(0))
    hits = sum(s._is_positive(*s.epoch(np.random.default_rng(k))[::2]).sum() for k in range(50))
    assert hits > 0


def test_fused_adam_takes_the_steps_of_plain_adam(toy):
    """`train.adam` (fused) against torch's default Adam: the same parameters after 10 LightGCN steps."""
    seed_everything(0)
    nets = [build_model("lightgcn", toy, make_config("lightgcn", dim=16)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    optimizers = [adam(nets[0], 1e-2), torch.optim.Adam(nets[1].parameters(), lr=1e-2)]
    assert optimizers[0].defaults["fused"] and not optimizers[1].defaults["fused"]
    u, p, n = (torch.from_numpy(a[:512]) for a in NegativeSampler(toy).epoch(np.random.default_rng(0)))
    start = nets[0].embedding.weight.detach().clone()
    for _ in range(10):
        for net, opt in zip(nets, optimizers):
            train_step(net, opt, u, p, n)
    assert (nets[0].embedding.weight - start).abs().max() > 1e-3  # the steps did move the parameters
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["bpr", "lightgcn"])
def test_models_learn_and_runs_are_deterministic(toy, name):
    recs = []
    for _ in range(2):
        seed_everything(3)
        recs.append(train(build_model(name, toy), toy, FAST, seed=3))
    assert recs[0].test == recs[1].test
    assert recs[0].test["recall@20"] > 3 * 20 / toy.n_items  # far above random ranking
    assert recs[0].best_epoch in (2, 4)
    assert recs[0].history[-1]["train_s"] > 0


def test_early_stopping_respects_patience(toy):
    cfg = replace(FAST, epochs=50, lr=0.5, eval_every=1, patience=2)
    res = train(build_model("bpr", toy), toy, cfg, seed=0)
    assert res.epochs_run < 50
    assert res.epochs_run - res.best_epoch == 2


def test_resume_from_checkpoint_gives_the_same_result(toy, tmp_path):
    cfg = replace(FAST, epochs=6)
    seed_everything(5)
    full = train(build_model("lightgcn", toy), toy, cfg, seed=5)
    ckpt = tmp_path / "run.pt"
    seed_everything(5)
    model = build_model("lightgcn", toy)
    train(model, toy, replace(cfg, epochs=4), seed=5, checkpoint=ckpt)
    resumed = train(model, toy, cfg, seed=5, checkpoint=ckpt)
    assert resumed.epochs_run == 6
    assert resumed.test["recall@20"] == pytest.approx(full.test["recall@20"], abs=1e-6)


def test_a_checkpoint_resumed_under_another_context_is_listed_in_two_parts(toy, tmp_path, monkeypatch, capsys):
    cfg = replace(FAST, epochs=4)
    ckpt = tmp_path / "run.pt"
    first = train(build_model("bpr", toy), toy, replace(cfg, epochs=2), seed=5, checkpoint=ckpt)
    assert [part["from_epoch"] for part in first.segments] == [0] and first.segments[0]["threads"] >= 1
    same = tmp_path / "same.pt"
    train(build_model("bpr", toy), toy, replace(cfg, epochs=2), seed=5, checkpoint=same)
    assert len(train(build_model("bpr", toy), toy, cfg, seed=5, checkpoint=same).segments) == 1
    assert "resuming" not in capsys.readouterr().out
    other = {**first.segments[0], "threads": first.segments[0]["threads"] + 1}
    monkeypatch.setattr("recgoat_lib.train.execution_context", lambda device: other)
    resumed = train(build_model("bpr", toy), toy, cfg, seed=5, checkpoint=ckpt)
    assert resumed.segments == [first.segments[0], {"from_epoch": 2, **other}]
    assert "resuming after epoch 2" in capsys.readouterr().out


def test_a_checkpoint_from_before_contexts_were_kept_resumes_with_its_part_unknown(toy, tmp_path):
    ckpt = tmp_path / "run.pt"
    train(build_model("bpr", toy), toy, replace(FAST, epochs=2), seed=5, checkpoint=ckpt)
    saved = torch.load(ckpt, weights_only=False)
    del saved["state"]["segments"]
    torch.save(saved, ckpt)
    resumed = train(build_model("bpr", toy), toy, FAST, seed=5, checkpoint=ckpt)
    assert resumed.segments[0] == {"from_epoch": 0, "device": "unknown"} and resumed.segments[1]["from_epoch"] == 2


def test_released_selection_reports_best_test_ndcg_at_10(toy):
    res = train(build_model("bpr", toy), toy, replace(FAST, selection="released"), seed=0)
    assert res.valid == {}
    best = max(r["select_score"] for r in res.history if "select_score" in r)
    assert res.test["ndcg@10"] == pytest.approx(best)


def test_bad_train_config():
    with pytest.raises(ValueError, match="selection"):
        TrainConfig(selection="test")
    with pytest.raises(ValueError, match="ks must include 10"):
        TrainConfig(selection="released", ks=(20,))
    with pytest.raises(TypeError, match="unknown config keys"):
        make_config("bpr", width=3)




def test_selected_valid_and_test_metrics_are_those_of_separate_evaluations(toy):
    """train.train evaluates valid and test in one pass (evaluate_splits); with one evaluation, at the
    last epoch, its metrics must equal separate `evaluate` calls on the final model."""
    from recgoat_lib.evaluate import evaluate

    seed_everything(0)
    net = build_model("lightgcn", toy, {"dim": 16})
    result = train(net, toy, TrainConfig(epochs=2, eval_every=2, batch_size=1024, progress=False), seed=0)
    assert result.best_epoch == 2
    assert result.valid == evaluate(net, toy, "valid").metrics
    assert result.test == evaluate(net, toy, "test").metrics
