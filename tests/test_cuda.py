"""RecGOAT training and full evaluation on CUDA (skipped, with the reason, where no GPU is present).

Checks that the device is chosen once and everything follows it: parameters, the graphs and features
built in __init__ (buffers), the CSR patterns the GAT layers cache, the sampler's batches, the
evaluator's masks; and that CUDA ranks equal-scored items as the CPU does (ties against the model).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recgoat_lib.evaluate import evaluate, evaluate_splits
from recgoat_lib.models import build_model
from recgoat_lib.models.recgoat import RecGOATConfig
from recgoat_lib.train import NegativeSampler, TrainConfig, adam, seed_everything, train, train_step

from conftest import fixed_scores, random_dataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

CUDA = torch.device("cuda")
SMALL = RecGOATConfig(dim=16, knn_k=4)


def test_recgoat_training_step_runs_entirely_on_cuda():
    ds = random_dataset()
    seed_everything(0)
    net = build_model("recgoat", ds, SMALL).to(CUDA).train()
    assert all(t.device.type == "cuda" for t in [*net.parameters(), *net.buffers()])
    optimizer = adam(net, 1e-3)
    u, p, n = (torch.from_numpy(a[:64]).to(CUDA) for a in NegativeSampler(ds).epoch(np.random.default_rng(0)))
    parts = train_step(net, optimizer, u, p, n)
    assert all(v.device.type == "cuda" and torch.isfinite(v).all() for v in parts.values())
    assert all(q.grad is None or q.grad.device.type == "cuda" for q in net.parameters())


def test_full_evaluation_on_cuda_equals_cpu_on_exact_scores():
    ds = random_dataset()
    scores = np.random.default_rng(0).integers(0, 3, size=(ds.n_users, ds.n_items))
    cpu = evaluate_splits(fixed_scores(scores), ds, ("valid", "test"))
    gpu = evaluate_splits(fixed_scores(scores).to(CUDA), ds, ("valid", "test"))
    for split in ("valid", "test"):
        assert gpu[split].metrics == pytest.approx(cpu[split].metrics, abs=1e-6)
        np.testing.assert_array_equal(gpu[split].users, cpu[split].users)


def test_recgoat_trains_and_evaluates_through_train_on_cuda():
    ds = random_dataset()
    seed_everything(0)
    net = build_model("recgoat", ds, SMALL)
    result = train(net, ds, TrainConfig(epochs=2, batch_size=64, device="cuda", progress=False), seed=0)
    assert net.device.type == "cuda" and result.test and all(np.isfinite(list(result.test.values())))
    alone = evaluate(net, ds, "test")
    assert set(alone.metrics) == set(result.test)
