"""kNN graph builder and graph summaries used by RecGOAT's attention branches."""
import numpy as np
import pytest
import scipy.sparse as sp

import torch

from recgoat_lib.graphs import (attended_neighbours, attention_summary, compact_indices, degree_stats, index_dtype,
                                knn_graph, neighbour_agreement, spmm, to_torch_sparse, user_item_adjacency,
                                with_self_loops)
from recgoat_lib.toy import make_toy


def brute_force_knn(x: np.ndarray, k: int) -> sp.csr_matrix:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    a = np.zeros_like(s)
    for i in range(len(x)):
        top = np.argsort(-s[i])[:k]
        a[i, top] = s[i, top]
    return sp.csr_matrix(np.maximum(a, a.T))


def test_clusters_are_recovered_exactly():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 10
    x = np.repeat(centres, 5, axis=0) + 0.01 * rng.normal(size=(15, 16))
    a = knn_graph(x, k=4)
    labels = np.repeat(np.arange(3), 5)
    assert neighbour_agreement(a, labels) == 1.0
    assert np.all(np.diff(a.indptr) == 4)  # each node chose exactly its 4 cluster mates
    assert a.diagonal().sum() == 0


@pytest.mark.parametrize("chunk", [7, 4096])
def test_matches_brute_force_and_is_symmetric(chunk):
    x = np.random.default_rng(1).normal(size=(60, 8)).astype(np.float32)
    a = knn_graph(x, k=5, chunk_size=chunk)
    ref = brute_force_knn(x.astype(np.float64), 5)
    assert (a != 0).nnz == (ref != 0).nnz
    assert abs(a - ref).max() < 1e-5
    assert abs(a - a.T).max() == 0
    assert np.diff(a.indptr).min() >= 5


def test_bad_input_is_rejected():
    x = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="k must be"):
        knn_graph(x, k=5)
    with pytest.raises(ValueError, match="k must be"):
        knn_graph(x, k=0)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_graph(x, k=2)
    with pytest.raises(ValueError, match="2-D"):
        knn_graph(np.ones(5), k=2)


def test_self_loops_and_summaries():
    a = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32))
    ei = with_self_loops(a)
    assert ei.shape == (2, 4 + 3)
    assert {(i, i) for i in range(3)} <= set(map(tuple, ei.T.tolist()))
    st = degree_stats(a)
    assert (st["edges"], st["min"], st["max"], st["isolated"]) == (2, 1, 2, 0)
    assert neighbour_agreement(a, np.array([0, 0, 1])) == 0.5
    with pytest.raises(ValueError, match="labels"):
        neighbour_agreement(a, np.array([0, 1]))


def test_toy_graphs_are_informative():
    """On the toy data the image kNN graph links items of the same latent topic far above chance."""
    ds = make_toy(2025)
    a = knn_graph(ds.item_features["image"], k=10, chunk_size=256)
    topic = ds.latent["item_topic"]
    chance = float((np.bincount(topic) / len(topic)) @ (np.bincount(topic) / len(topic)))
    assert neighbour_agreement(a, topic) > 2 * chance
    ui = degree_stats(user_item_adjacency(ds))
    assert ui["nodes"] == ds.n_users + ds.n_items and ui["edges"] == len(ds.split("train"))


def test_attention_summary_and_neighbours():
    # node 0 attends to itself (0.5), node 1 (same label, 0.3) and node 2 (other label, 0.2)
    edge_index = torch.tensor([[0, 1, 2, 1, 2], [0, 0, 0, 1, 2]])
    weight = torch.tensor([0.5, 0.3, 0.2, 1.0, 1.0])
    s = attention_summary(edge_index, weight, np.array([0, 0, 1]))
    assert s["self"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert s["same_label"] == pytest.approx(0.3 / 3)
    assert s["same_label_if_uniform"] == pytest.approx((1 / 3) / 3)
    top = attended_neighbours(edge_index, weight, 0)
    assert top["neighbour"].tolist() == [0, 1, 2] and top["attention"].iloc[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no incoming"):
        attended_neighbours(edge_index, weight, 5)


def test_spmm_equals_torch_sparse_mm_whatever_the_fresh_memory_holds(monkeypatch):
    """The output is written, never read: memory full of NaN must not leak into the product."""
    rng = np.random.default_rng(0)
    adj = to_torch_sparse(sp.random(50, 40, density=0.1, random_state=0, format="csr"))
    x = torch.from_numpy(rng.standard_normal((40, 8), dtype=np.float32))
    monkeypatch.setattr(torch.Tensor, "new_empty", lambda self, *size: torch.full(size, float("nan")))
    out = spmm(adj, x)
    assert out.shape == (50, 8) and torch.equal(out, torch.sparse.mm(adj, x))


def _index_copies(fn) -> int:
    """How many tensor conversions (`aten::_to_copy`) one call of `fn` makes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="the index conversion is MKL's (x86 CPU builds)")
def test_graph_products_convert_no_indices():
    """MKL takes 32-bit indices: a graph from `to_torch_sparse` is multiplied as it is, where int64
    indices make torch convert both index arrays in every product (issue #16)."""
    m = sp.random(300, 200, density=0.05, random_state=0, format="csr")
    adj = to_torch_sparse(m)
    x = torch.randn(200, 16)
    wide = torch.sparse_csr_tensor(adj.crow_indices().long(), adj.col_indices().long(), adj.values(), adj.shape)
    assert _index_copies(lambda: spmm(wide, x)) >= 2  # the conversion this avoids is really there
    assert adj.crow_indices().dtype == adj.col_indices().dtype == torch.int32
    assert _index_copies(lambda: spmm(adj, x)) == 0
    assert torch.equal(spmm(adj, x), spmm(wide, x))
    assert torch.allclose(spmm(adj, x), torch.from_numpy((m @ x.double().numpy()).astype(np.float32)), atol=1e-5)


def test_index_type_widens_only_past_int32():
    assert index_dtype(10, 2**31 - 2) == torch.int32 and index_dtype(10, 2**31 - 1) == torch.int64
    coo = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.ones(2), (2, 2))
    csr = compact_indices(coo.to_sparse_csr())
    assert csr.col_indices().dtype == torch.int32 and torch.equal(csr.to_dense(), coo.to_dense())
