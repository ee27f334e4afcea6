"""VBPR, FREEDOM and naive LM injection: shapes, gradients, feature checks, learning on toy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recgoat_lib.data import DataError
from recgoat_lib.evaluate import evaluate
from recgoat_lib.models import build_model
from recgoat_lib.models.freedom import modality_weights
from recgoat_lib.train import TrainConfig, seed_everything, train

FEATURE_MODELS = ("vbpr", "freedom", "lm_inject")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def toy2(toy):
    """Toy with a second (synthetic, 16-d) modality named text, to exercise multimodal paths."""
    rng = np.random.default_rng(0)
    return toy.with_features(item={"text": rng.normal(size=(toy.n_items, 16)).astype(np.float32)}, suffix="+text")


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_shapes_and_scores(toy2, name):
    seed_everything(0)
    model = build_model(name, toy2, {"dim": 16})
    model.eval()
    emb = model()
    assert emb.user.shape[0] == toy2.n_users and emb.item.shape[0] == toy2.n_items
    assert emb.user.shape[1] == emb.item.shape[1]
    scores = model.score(emb, torch.tensor([0, 5, 7]))
    assert scores.shape == (3, toy2.n_items) and torch.isfinite(scores).all()


@pytest.mark.parametrize("name,overrides", [("vbpr", {}), ("freedom", {"reg": 0.1}), ("lm_inject", {}),
                                            ("lm_inject", {"mode": "replace"})])
def test_gradients_reach_every_parameter(toy2, name, overrides):
    seed_everything(0)
    model = build_model(name, toy2, {"dim": 16, **overrides})
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
    model = build_model("freedom", toy, {"dim": 8, "modalities": ("image",)})
    model.eval()
    torch.testing.assert_close(model().item, model().item)
    model.train()
    assert not torch.allclose(model().user, model().user)


def test_freedom_modality_weights():
    assert modality_weights(("text",), 0.1) == {"text": 1.0}
    w = modality_weights(("image", "text"), 0.1)
    assert w == pytest.approx({"image": 0.1, "text": 0.9})
    with pytest.raises(ValueError, match="edge_dropout"):
        build_model("freedom", None, {"edge_dropout": 1.0})
