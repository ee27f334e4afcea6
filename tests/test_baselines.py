"""VBPR, FREEDOM, BM3, LGMRec and naive LM injection: shapes, gradients, feature checks, learning on toy."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recgoat_lib.data import DataError
from recgoat_lib.evaluate import evaluate
from recgoat_lib.models import build_model
from recgoat_lib.models.bm3 import cosine_loss
from recgoat_lib.models.freedom import modality_weights
from recgoat_lib.models.lgmrec import cross_modal_nce
from recgoat_lib.train import TrainConfig, seed_everything, train

FEATURE_MODELS = ("vbpr", "freedom", "bm3", "lgmrec", "lm_inject")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_shapes_and_scores(toy_text, name):
    seed_everything(0)
    model = build_model(name, toy_text, {"dim": 16})
    model.eval()
    emb = model()
    assert emb.user.shape[0] == toy_text.n_users and emb.item.shape[0] == toy_text.n_items
    assert emb.user.shape[1] == emb.item.shape[1]
    scores = model.score(emb, torch.tensor([0, 5, 7]))
    assert scores.shape == (3, toy_text.n_items) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name,overrides", [("vbpr", {}), ("freedom", {"reg": 0.1}), ("bm3", {}),
                                            ("lgmrec", {}), ("lm_inject", {}),
                                            ("lm_inject", {"mode": "replace"})])
def test_gradients_reach_every_parameter(toy_text, name, overrides):
    seed_everything(0)
    model = build_model(name, toy_text, {"dim": 16, **overrides})
    model.train()
    u, p, n = (torch.tensor(x) for x in ([0, 1, 2, 3], [1, 2, 3, 4], [9, 8, 7, 6]))
    parts = model.loss(u, p, n)
    parts["loss"].backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_missing_modality_is_a_clear_error(toy, name):
    with pytest.raises(DataError, match="text"):
        build_model(name, toy, {"modalities": ("image", "text")})


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_single_modality_config_builds(toy, name):
    model = build_model(name, toy, {"dim": 16, "modalities": ("image",)})
    assert model.config.modalities == ("image",)


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_learns_on_toy_better_than_untrained(toy, name):
    cfg = TrainConfig(epochs=6, batch_size=1024, lr=5e-3, eval_every=3, patience=5, progress=False)
    seed_everything(1)
    model = build_model(name, toy, {"dim": 32, "modalities": ("image",)})
    before = evaluate(model, toy, "valid", (20,)).metrics["recall@20"]
    res = train(model, toy, cfg, seed=1)
    assert res.valid["recall@20"] > before + 0.03, (name, before, res.valid["recall@20"])
    assert res.valid["recall@20"] > 3 * 20 / toy.n_items


def test_lm_inject_modes(toy):
    concat = build_model("lm_inject", toy, {"dim": 16, "modalities": ("image",)})
    replace = build_model("lm_inject", toy, {"dim": 16, "modalities": ("image",), "mode": "replace"})
    assert concat.item_emb.weight.shape == (toy.n_items, 8) and concat.project.out_features == 8
    assert replace.item_emb is None and replace.project.out_features == 16
    with pytest.raises(ValueError, match="mode"):
        build_model("lm_inject", toy, {"mode": "add", "modalities": ("image",)})
    with pytest.raises(ValueError, match="odd"):
        build_model("lm_inject", toy, {"dim": 15, "modalities": ("image",)})


def test_vbpr_score_is_id_plus_content_term(toy):
    model = build_model("vbpr", toy, {"dim": 8, "modalities": ("image",)})
    emb = model()
    u = model.user_emb.weight
    expected = u[:, :8] @ model.item_emb.weight.T + u[:, 8:] @ model.project(model.features).T
    torch.testing.assert_close(model.score(emb, torch.arange(toy.n_users)), expected, rtol=1e-4, atol=1e-5)


def test_freedom_pruned_graph(toy):
    seed_everything(0)
    model = build_model("freedom", toy, {"dim": 8, "modalities": ("image",), "edge_dropout": 0.6})
    n_train = len(toy.split_pairs("train")[0])
    g = model.pruned_graph().to_dense()
    assert torch.equal(g, g.T)
    assert int((g > 0).sum()) == 2 * round(n_train * 0.4)
    # D^-1/2 A D^-1/2 of the kept edges: entry = 1/sqrt(deg_row deg_col)
    deg = (g > 0).sum(1).float()
    r, c = torch.nonzero(g, as_tuple=True)
    torch.testing.assert_close(g[r, c], (deg[r] * deg[c]).rsqrt())
    # low-degree edges are kept more often than high-degree ones
    counts = torch.zeros(n_train)
    for _ in range(20):
        kept = torch.multinomial(model.keep_weight, model.n_keep, replacement=False)
        counts[kept] += 1
    w = model.keep_weight
    assert counts[w > w.median()].mean() > counts[w <= w.median()].mean()


def test_freedom_eval_uses_the_full_graph(toy):
    """In eval mode the users are LightGCN's layer mean over the full normalised training graph (built
    here densely from the interactions); in training mode each forward draws a pruned graph."""
    model = build_model("freedom", toy, {"dim": 8, "modalities": ("image",)})
    model.eval()
    r = toy.csr("train").toarray()
    a = np.block([[np.zeros((toy.n_users, toy.n_users)), r], [r.T, np.zeros((toy.n_items, toy.n_items))]])
    d = a.sum(1) ** -0.5
    a_hat = torch.tensor(d[:, None] * a * d[None, :], dtype=torch.float32)
    h = e = model.embedding.weight.detach()
    for _ in range(model.config.ui_layers):
        h = a_hat @ h
        e = e + h
    torch.testing.assert_close(model().user, (e / (model.config.ui_layers + 1))[:toy.n_users], atol=1e-6, rtol=1e-4)
    model.train()
    assert not torch.allclose(model().user, model().user)


def test_freedom_modality_weights():
    assert modality_weights(("text",), 0.1) == {"text": 1.0}
    w = modality_weights(("image", "text"), 0.1)
    assert w == pytest.approx({"image": 0.1, "text": 0.9})
    with pytest.raises(ValueError, match="edge_dropout"):
        build_model("freedom", None, {"edge_dropout": 1.0})


def test_bm3_trains_on_positives_only_and_targets_get_no_gradient(toy_text):
    model = build_model("bm3", toy_text, {"dim": 16})
    u, p = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 4])
    losses = []
    for neg in ([9, 8, 7, 6], [5, 0, 11, 12]):
        torch.manual_seed(0)  # the same target dropout masks
        losses.append(model.loss(u, p, torch.tensor(neg))["loss"])
    torch.testing.assert_close(losses[0], losses[1])
    online, target = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    cosine_loss(online, target).backward()
    assert target.grad is None and online.grad is not None
    torch.testing.assert_close(cosine_loss(target, target), torch.tensor(0.0))


def test_bm3_scores_the_predicted_encoder_outputs(toy):
    model = build_model("bm3", toy, {"dim": 8, "modalities": ("image",), "layers": 2})
    emb = model.eval_forward()
    ego = model.embedding.weight
    out = model.propagate(ego)
    torch.testing.assert_close(emb.extras["encoded_item"], out[toy.n_users:] + ego[toy.n_users:])
    torch.testing.assert_close(emb.user, model.predictor(out[: toy.n_users]))
    torch.testing.assert_close(emb.item, model.predictor(emb.extras["encoded_item"]))


@pytest.mark.parametrize("name,bad,match", [("bm3", {"dropout": 1.0}, "dropout"),
                                            ("bm3", {"modalities": ()}, "modality"),
                                            ("lgmrec", {"keep_rate": 0.0}, "keep_rate"),
                                            ("lgmrec", {"hyper_num": 0}, "hyper_num"),
                                            ("lgmrec", {"modalities": ()}, "modality")])
def test_bm3_lgmrec_reject_bad_configs(name, bad, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, None, bad)


def test_lgmrec_hyperedges(toy):
    model = build_model("lgmrec", toy, {"dim": 8, "modalities": ("image",), "hyper_num": 3})
    model.eval()
    h_item, h_user = model.hyperedges("image")
    assert h_item.shape == (toy.n_items, 3) and h_user.shape == (toy.n_users, 3)
    torch.testing.assert_close(h_item.sum(1), torch.ones(toy.n_items))
    # a user's hyperedge logits are the sum of its training items' logits
    logits = model.hyper["image"](model.feat_image)
    expected = torch.softmax(torch.from_numpy(toy.csr("train").toarray()) @ logits / model.config.tau, dim=1)
    torch.testing.assert_close(h_user, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.hyperedges("image")[0], h_item)  # deterministic in eval mode
    model.train()
    assert not torch.allclose(model.hyperedges("image")[0], h_item)  # Gumbel noise and membership dropout


def test_lgmrec_fusion_and_user_means(toy_text):
    model = build_model("lgmrec", toy_text, {"dim": 8, "alpha": 0.5})
    mean = model.user_mean.to_dense()
    has_items = torch.from_numpy(toy_text.csr("train").getnnz(axis=1) > 0)
    torch.testing.assert_close(mean.sum(1)[has_items], torch.ones(int(has_items.sum())))
    emb = model.eval_forward()
    hyper = sum(torch.cat([emb.extras[f"hyper_user_{m}"], emb.extras[f"hyper_item_{m}"]]) for m in ("image", "text"))
    model.config = dataclasses.replace(model.config, alpha=0.0)
    local = model.eval_forward()
    diff = torch.cat([emb.user - local.user, emb.item - local.item])
    torch.testing.assert_close(diff, 0.5 * torch.nn.functional.normalize(hyper), rtol=1e-4, atol=1e-5)


def test_lgmrec_contrastive_loss(toy, toy_text):
    a, b = torch.randn(4, 6), torch.randn(10, 6)
    rows = torch.tensor([0, 3, 3, 9])
    na, nb = torch.nn.functional.normalize(a), torch.nn.functional.normalize(b)
    sim = na @ nb.T / 0.2
    expected = -torch.log(torch.exp((na * nb[rows]).sum(1) / 0.2) / torch.exp(sim).sum(1)).sum()
    torch.testing.assert_close(cross_modal_nce(a, b, rows, 0.2), expected)
    u, p, n = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3]), torch.tensor([7, 8, 9])
    one = build_model("lgmrec", toy, {"dim": 8, "modalities": ("image",)})
    two = build_model("lgmrec", toy_text, {"dim": 8})
    assert float(one.loss(u, p, n)["cl"]) == 0.0  # no second modality to contrast with
    assert float(two.loss(u, p, n)["cl"].detach()) > 0.0
