"""Sequential protocol and models: leave-one-out split (leakage-free), sequence batches,
full vs sampled ranking against a brute-force reference, SASRec/GRU4Rec/DMESR shapes,
gradients and causality, and a short end-to-end run."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from recgoat_lib.data import DataError, Dataset
from recgoat_lib.evaluate import ranked_hits
from recgoat_lib.runner import per_user, run, spec
from recgoat_lib.sequential.data import PAD, SequenceData, leave_one_out
from recgoat_lib.sequential.evaluate import evaluate_sequential, rank_metrics_single, target_ranks
from recgoat_lib.sequential.models import DMESR, SASRec, DMESRConfig, SASRecConfig, SequentialRecommender, embed
from recgoat_lib.train import TrainConfig


def timed(rows: list[tuple[int, int, float]], n_users: int, n_items: int) -> Dataset:
    """A dataset with timestamps whose stored split is NOT the time order (leave_one_out must redo it)."""
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    pos = df.groupby("user").cumcount().to_numpy()
    big = (df.groupby("user")["item"].transform("size") >= 3).to_numpy()
    df["split"] = np.where(big & (pos == 0), 1, np.where(big & (pos == 1), 2, 0))
    df[["user", "item", "split"]] = df[["user", "item", "split"]].astype(np.int64)
    return Dataset(name="timed", n_users=n_users, n_items=n_items, interactions=df)


@pytest.fixture
def small() -> Dataset:
    """4 users, 8 items; rows deliberately not in time order; user 3 has only two interactions."""
    rows = [(0, 3, 5.0), (0, 1, 1.0), (0, 2, 3.0), (0, 0, 2.0),
            (1, 4, 9.0), (1, 5, 7.0), (1, 6, 8.0),
            (2, 7, 1.0), (2, 1, 4.0), (2, 2, 2.0), (2, 3, 3.0), (2, 5, 6.0),
            (3, 6, 2.0), (3, 0, 1.0)]
    return timed(rows, 4, 8)


def random_views(n_items: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"mllm": rng.normal(size=(n_items, 12)).astype(np.float32),
            "text": rng.normal(size=(n_items, 20)).astype(np.float32)}


def test_leave_one_out_orders_by_time(small):
    loo = leave_one_out(small)
    split = {(u, i): s for u, i, s in loo.interactions[["user", "item", "split"]].itertuples(index=False)}
    assert split[(0, 3)] == 2 and split[(0, 2)] == 1 and split[(0, 1)] == 0 and split[(0, 0)] == 0
    assert split[(1, 4)] == 2 and split[(1, 6)] == 1 and split[(1, 5)] == 0
    assert split[(2, 5)] == 2 and split[(2, 1)] == 1
    assert split[(3, 6)] == 0 and split[(3, 0)] == 0  # fewer than three: train only


def test_leave_one_out_needs_timestamps(tiny):
    with pytest.raises(DataError, match="no timestamp"):
        leave_one_out(tiny)
    with pytest.raises(DataError, match="no timestamps"):
        SequenceData(tiny)


def test_sequences_refuse_a_split_that_is_not_in_time_order(toy, small):
    for ds in (toy, small):  # toy's stored split is MMRec's random 8:1:1
        with pytest.raises(DataError, match="not in time order"):
            SequenceData(ds)


def test_split_is_leakage_free_on_toy(toy):
    loo = leave_one_out(toy)
    df = loo.interactions
    last = df.groupby(["user", "split"])["timestamp"].agg(["min", "max"]).unstack()
    assert (last[("max", 0)] <= last[("min", 1)]).all() and (last[("max", 1)] <= last[("min", 2)]).all()
    assert (df[df.split > 0].groupby(["user", "split"]).size() == 1).all()
    data = SequenceData(loo, max_len=8)
    inputs, targets = data.train_examples()
    held_out = set(map(tuple, df.loc[df.split > 0, ["user", "item"]].to_numpy()))
    train_items = {u: set(g) for u, g in df[df.split == 0].groupby("user")["item"]}
    # every id a training batch shows belongs to that user's training part (users are not
    # kept with the tensor, so check through the per-user training sets)
    users_with_train = [u for u in range(loo.n_users) if len(train_items.get(u, ())) >= 2]
    assert len(users_with_train) == len(inputs)
    for u, x, y in zip(users_with_train, inputs, targets):
        shown = {int(v) - 1 for v in torch.cat([x, y]) if v != PAD}
        assert shown <= train_items[u] and not {(u, i) for i in shown} & held_out
    valid, test = data.eval_examples("valid"), data.eval_examples("test")
    for ex, split in ((valid, 1), (test, 2)):
        for u, hist, target in zip(ex.users, ex.history, ex.targets.numpy()):
            ts = df[df.user == u].set_index("item")["timestamp"]
            assert (ts[hist] <= ts[target]).all() and target not in hist
    u = test.users[0]
    assert int(test.inputs[0, -1]) - 1 == int(valid.targets[list(valid.users).index(u)])


def test_sequence_padding_and_truncation(small):
    data = SequenceData(leave_one_out(small), max_len=2)
    inputs, targets = data.train_examples()
    assert inputs.tolist() == [[PAD, 2], [8, 3], [PAD, 1]]  # users 0, 2, 3 (ids + 1, cut to 2)
    assert targets.tolist() == [[PAD, 1], [3, 4], [PAD, 7]]
    test = data.eval_examples("test")
    assert test.users.tolist() == [0, 1, 2] and test.targets.tolist() == [3, 4, 5]
    assert test.inputs.tolist() == [[1, 3], [6, 7], [4, 2]]
    assert test.history[0].tolist() == [1, 0, 2]


class MeanHistoryScorer(SequentialRecommender):
    """States = mean of the (random, fixed) embeddings seen so far: a deterministic scorer."""

    def __init__(self, n_items: int, dim: int = 4, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(n_items, dim, generator=g))

    def item_table(self) -> Tensor:
        return self.table

    def encode(self, seqs: Tensor) -> Tensor:
        x = embed(self.table, seqs)
        return x.cumsum(1) / (seqs != PAD).cumsum(1).clamp(min=1)[..., None]


def brute_force(model, data, split, ks, n_sampled, seed):
    """Per-user HR/NDCG from python loops over explicit candidate lists."""
    ex = data.eval_examples(split)
    negatives = data.sampled_negatives(split, n_sampled, seed).numpy()
    out = {f"{p}{m}@{k}": [] for p in ("", f"sampled{n_sampled}_") for m in ("hit", "ndcg") for k in ks}
    with torch.no_grad():
        all_scores = model.scores(ex.inputs).numpy()
    for r, (hist, target) in enumerate(zip(ex.history, ex.targets.numpy())):
        s = all_scores[r]
        full = [i for i in range(data.n_items) if i not in set(hist) and i != target]
        for prefix, cands in (("", full), (f"sampled{n_sampled}_", list(negatives[r]))):
            rank = sum(s[c] >= s[target] for c in cands)
            for k in ks:
                out[f"{prefix}hit@{k}"].append(float(rank < k))
                out[f"{prefix}ndcg@{k}"].append(1 / np.log2(rank + 2) if rank < k else 0.0)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("split", ["valid", "test"])
def test_full_and_sampled_ranking_match_brute_force(split):
    rng = np.random.default_rng(1)
    rows = [(u, int(i), float(t)) for u in range(30)
            for t, i in enumerate(rng.choice(150, size=int(rng.integers(3, 12)), replace=False))]
    data = SequenceData(leave_one_out(timed(rows, 30, 150)), max_len=5)
    model = MeanHistoryScorer(150)
    ks = (1, 5, 10)
    res = evaluate_sequential(model, data, split, ks, n_sampled=20, seed=3)
    ref = brute_force(model, data, split, ks, 20, 3)
    for key, values in ref.items():
        np.testing.assert_allclose(res.per_user[key], values, atol=1e-6, err_msg=key)
    assert np.all(res.per_user["sampled20_hit@5"] >= res.per_user["hit@5"])  # sampling is optimistic
    assert res.metrics["sampled20_hit@10"] > res.metrics["hit@10"]


def test_ties_count_against_the_target():
    rows = [(u, i, float(t)) for u in range(3) for t, i in enumerate(range(u, u + 4))]
    data = SequenceData(leave_one_out(timed(rows, 3, 12)), max_len=4)
    model = MeanHistoryScorer(12)
    with torch.no_grad():
        model.table.zero_()  # every item scores 0: the target must come last, not first
    res = evaluate_sequential(model, data, "test", (1, 5), n_sampled=5, seed=0)
    assert res.metrics["hit@5"] == 0.0 and res.metrics["sampled5_hit@1"] == 0.0


def test_ties_at_the_k_boundary_and_the_full_ranking_policy_agree():
    """The target tied with items around rank k: the sequential ranks follow the policy of the
    full-ranking evaluator (`ranked_hits`, ties against the model), case by case."""
    scores = torch.tensor([[5.0, 4, 4, 4, 1, 0, 0],    # target 2 tied with 1 and 3: rank 3
                           [5.0, 4, 4, 4, 1, 0, 0],    # target 0 alone on top: rank 0
                           [0.0, 0, 0, 0, 0, 0, 0],    # all equal: last among the 7
                           [2.0, 2, 9, 2, 2, 2, 2]])   # target 6 tied with 5 others below item 2: rank 6
    targets = torch.tensor([2, 0, 3, 6])
    ranks = target_ranks(scores, targets)
    assert ranks.tolist() == [3, 0, 6, 6]
    relevant = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, targets[:, None], True)
    for k in (1, 3, 4, 7):
        expected = torch.arange(k)[None, :] == ranks[:, None]
        assert torch.equal(ranked_hits(scores, relevant, k), expected), k
    hr = rank_metrics_single(ranks, (3, 4))
    assert hr["hit@3"].tolist() == [0, 1, 0, 0] and hr["hit@4"].tolist() == [1, 1, 0, 0]
    assert hr["ndcg@4"][0].item() == pytest.approx(1 / np.log2(5))


def test_sampled_negatives_avoid_history_and_target(toy):
    data = SequenceData(leave_one_out(toy), max_len=10)
    ex = data.eval_examples("test")
    neg = data.sampled_negatives("test", 100, seed=0).numpy()
    for r in range(0, len(ex.users), 50):
        assert len(set(neg[r])) == 100
        assert not set(neg[r]) & (set(ex.history[r]) | {int(ex.targets[r])})
    assert not np.array_equal(neg, data.sampled_negatives("test", 100, seed=1).numpy())
    assert np.array_equal(neg, SequenceData(leave_one_out(toy), max_len=10).sampled_negatives("test", 100, 0).numpy())


MODELS = [
    (SASRec, SASRecConfig(item_input="id", dim=16), 16),
    (SASRec, SASRecConfig(item_input="lm", dim=16), 16),
    (DMESR, DMESRConfig(dim=16), 32),
    (DMESR, DMESRConfig(dim=16, backbone="gru4rec"), 32),
    (DMESR, DMESRConfig(dim=16, alignment=False, fusion=False), 32),
]


@pytest.mark.parametrize("cls, config, width", MODELS)
def test_shapes_gradients_and_causality(small, cls, config, width):
    torch.manual_seed(0)
    data = SequenceData(leave_one_out(small), max_len=4, views=random_views(small.n_items))
    model = cls(data, config)
    inputs, targets = data.train_examples()
    states = model.encode(inputs)
    assert states.shape == (len(inputs), 4, width) and model.item_table().shape == (8, width)
    assert model.scores(inputs).shape == (len(inputs), 8)
    parts = model.loss(inputs, targets)
    assert torch.isfinite(parts["loss"]) and ("align" in parts) == (cls is DMESR and config.alignment)
    parts["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.eval()
    seqs = torch.tensor([[PAD, 1, 2, 3], [4, 5, 6, 7]])
    changed = seqs.clone()
    changed[:, -1] = 8
    with torch.no_grad():
        a, b = model.encode(seqs), model.encode(changed)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-5), "a state depends on a later item"
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_alignment_loss_is_the_symmetric_infonce(small):
    data = SequenceData(leave_one_out(small), max_len=4, views=random_views(small.n_items))
    torch.manual_seed(0)
    model = DMESR(data, DMESRConfig(dim=16, dropout=0.0, align_weight=1.0))
    model.eval()
    inputs, targets = data.train_examples()
    parts = model.loss(inputs, targets)
    items = targets[targets != PAD].unique() - 1
    v = model.views()
    a = nn.functional.normalize(v["mllm"][items], dim=1)
    b = nn.functional.normalize(v["text"][items], dim=1)
    logits = a @ b.T / 0.2
    ref = -(torch.log_softmax(logits, 1).diag().mean() + torch.log_softmax(logits, 0).diag().mean()) / 2
    assert torch.allclose(parts["align"], ref, atol=1e-5)
    assert torch.allclose(parts["loss"], parts["ce"] + parts["align"], atol=1e-5)


def test_models_need_their_views(small):
    data = SequenceData(leave_one_out(small), max_len=4)
    with pytest.raises(ValueError, match="LM item views"):
        DMESR(data)
    with pytest.raises(ValueError, match="backbone"):
        DMESRConfig(backbone="bert")
    with pytest.raises(DataError, match="view 'text'"):
        SequenceData(leave_one_out(small), views={"text": np.zeros((3, 2), np.float32)})


def test_training_learns_the_toy_sequences(toy, tmp_path):
    data = SequenceData(leave_one_out(toy), max_len=10, views=random_views(toy.n_items))
    quick = TrainConfig(epochs=3, batch_size=256, lr=3e-3, eval_every=1, patience=5,
                        select_metric="ndcg@10", progress=False)
    rec = run(spec("toy", "sasrec", quick, 0, dim=32, layers=1), data, results_dir=tmp_path)
    assert rec["epochs_run"] == 3 and 1 <= rec["best_epoch"] <= 3
    assert {"hit@10", "ndcg@20", "sampled100_hit@10", "sampled100_ndcg@20"} <= set(rec["test"])
    arrays = per_user(rec, tmp_path)
    assert len(arrays["ndcg@10"]) == len(arrays["users"])
    # a popularity-free random ranker has HR@10 ~ 10 / n_items; the trained model must beat it clearly
    assert rec["test"]["hit@10"] > 3 * 10 / toy.n_items
    with pytest.raises(KeyError, match="unknown model 'bert4rec'.*sasrec"):
        spec("toy", "bert4rec", quick, 0)
    with pytest.raises(ValueError, match="validation only"):
        run(spec("toy", "sasrec", replace(quick, selection="released"), 0), data, results_dir=tmp_path)
