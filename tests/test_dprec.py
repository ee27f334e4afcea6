"""DPRec (reconstruction): shapes, gradients, what each perspective may see, the hypergraph,
the multi-level alignment, every ablation switch, and a short training run on toy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recgoat_lib.data import DataError
from recgoat_lib.graphs import knn_graph
from recgoat_lib.models import build_model
from recgoat_lib.models.base import info_nce
from recgoat_lib.models.dprec import DPRec, DPRecConfig
from recgoat_lib.train import TrainConfig, train

DIM = 16
ABLATIONS = {
    "full": {},
    "memory only": {"perspectives": ("memory",)},
    "expansion only": {"perspectives": ("expansion",)},
    "no hypergraph": {"hypergraph": False},
    "no alignment": {"alignment": False},
}


def make(ds, **overrides) -> DPRec:
    torch.manual_seed(0)
    return DPRec(ds, DPRecConfig(dim=DIM, hyperedges=4, **overrides))


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_shapes_and_gradients(toy_text, name):
    model = make(toy_text, **ABLATIONS[name])
    emb = model()
    assert emb.user.shape == (toy_text.n_users, DIM) and emb.item.shape == (toy_text.n_items, DIM)
    assert ("image_hyper_user" in emb.extras) == (name != "no hypergraph")
    users, pos, neg = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10, 11, 12])
    parts = model.loss(users, pos, neg)
    assert torch.isfinite(parts["loss"]) and ("align" in parts) == (name != "no alignment")
    parts["loss"].backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
    assert model.embedding.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in model.modalities["text"].project.parameters())


def test_ablations_remove_their_parts(toy_text):
    names = {k: {n for n, _ in make(toy_text, **v).named_parameters()} for k, v in ABLATIONS.items()}
    assert any("gate" in n for n in names["full"])
    assert not any("gate" in n for n in names["memory only"] | names["expansion only"])
    assert not any("user_memory" in n for n in names["expansion only"])
    assert not any("assign" in n for n in names["no hypergraph"])
    assert names["no alignment"] == names["full"]


def modality_items(model: DPRec, features: np.ndarray, modality: str = "image") -> torch.Tensor:
    enc = model.modalities[modality]
    enc.features.copy_(torch.from_numpy(features))
    with torch.no_grad():
        return model.forward().extras[f"{modality}_item"]


def test_memory_is_item_local_and_expansion_reaches_knn_neighbours(toy_text):
    x = toy_text.item_features["image"].copy()
    j = 17
    moved = x.copy()
    moved[j] += 5.0
    neighbours = knn_graph(x, 10)[j].indices
    for perspectives, spreads in ((("memory",), False), (("expansion",), True)):
        model = make(toy_text, perspectives=perspectives, hypergraph=False)
        diff = (modality_items(model, moved) - modality_items(model, x)).abs().sum(1)
        others = np.setdiff1d(np.arange(toy_text.n_items), [j])
        assert diff[j] > 0
        assert bool((diff[neighbours] > 1e-6).all()) == spreads
        assert bool((diff[others] > 1e-6).any()) == spreads


def test_hypergraph_edges_are_membership_weighted_item_means(toy_text):
    """Each hyperedge is the membership-weighted mean of the LightGCN item vectors; an item's hypergraph
    vector mixes the edges by its memberships, a user's by its items' memberships weighted as its
    normalised interactions r_ui / sqrt(d_u d_i) (loops over edges, items and users here)."""
    model = make(toy_text)
    enc = model.modalities["image"]
    with torch.no_grad():
        item_cf = model.propagate(model.embedding.weight)[toy_text.n_users:]
        out = enc(item_cf)
        h = torch.softmax(enc.assign(out["item"] - out["hyper_item"]), dim=1)  # memberships of the items
    edges = [(h[:, e:e + 1] * item_cf).sum(0) / h[:, e].sum() for e in range(h.shape[1])]
    for i in (0, 7, 100):
        torch.testing.assert_close(out["hyper_item"][i], sum(h[i, e] * edge for e, edge in enumerate(edges)),
                                   atol=1e-5, rtol=1e-4)
    r = toy_text.csr("train")
    d_user, d_item = np.asarray(r.sum(1)).ravel(), np.asarray(r.sum(0)).ravel()
    for u in (0, 5, 42):
        items = r[u].indices
        weight = torch.tensor(1 / np.sqrt(d_user[u] * d_item[items]), dtype=torch.float32)
        membership = (weight[:, None] * h[items]).sum(0)
        torch.testing.assert_close(out["hyper_user"][u], sum(membership[e] * edge for e, edge in enumerate(edges)),
                                   atol=1e-5, rtol=1e-4)


def test_alignment_is_mean_infonce_over_levels(toy_text):
    model = make(toy_text, align_weight=1.0)
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    parts = model.loss(users, pos, neg)
    with torch.no_grad():
        e = model().extras
        ref = torch.stack([info_nce(e[f"image_{lvl}"][idx], e[f"text_{lvl}"][idx], 0.2)
                           for lvl, idx in (("item", pos), ("user", users), ("hyper_user", users))]).mean()
    assert torch.allclose(parts["align"], ref, atol=1e-5)
    assert torch.allclose(parts["loss"], parts["bpr"] + parts["reg"] + parts["align"], atol=1e-5)


def test_info_nce_prefers_matched_pairs():
    torch.manual_seed(0)
    a = torch.randn(32, 8)
    assert info_nce(a, a, 0.2) < info_nce(a, torch.randn(32, 8), 0.2)
    assert torch.isclose(info_nce(a, a.flip(0), 0.2), info_nce(a.flip(0), a, 0.2))


def test_config_and_feature_errors(toy):
    with pytest.raises(ValueError, match="two modalities"):
        DPRecConfig(modalities=("image",))
    with pytest.raises(ValueError, match="perspectives"):
        DPRecConfig(perspectives=("memory", "recall"))
    with pytest.raises(ValueError, match="hyperedges"):
        DPRecConfig(hyperedges=1)
    with pytest.raises(DataError, match="text"):
        build_model("dprec", toy)
    model = build_model("dprec", toy, {"modalities": ("image",), "alignment": False, "dim": DIM})
    assert model().item.shape == (toy.n_items, DIM)


def test_training_improves_validation(toy_text):
    model = make(toy_text)
    cfg = TrainConfig(epochs=4, batch_size=4096, lr=5e-3, eval_every=1, patience=4, progress=False)
    res = train(model, toy_text, cfg, seed=0)
    scores = [row["select_score"] for row in res.history]
    assert all(np.isfinite(row["loss"]) for row in res.history)
    assert max(scores[1:]) > scores[0]
    assert res.test["recall@20"] > 20 / toy_text.n_items
