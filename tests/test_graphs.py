"""kNN graph builder and graph summaries used by RecGOAT's attention branches."""
import numpy as np
import pytest
import scipy.sparse as sp

import torch

from torch_geometric.nn import GATConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import k_hop_subgraph

from recgoat_lib.graphs import (attended_neighbours, attention_summary, compact_indices, degree_stats,
                                in_neighbourhood, index_dtype, knn_graph, neighbour_agreement, spmm, sym_normalize,
                                to_torch_sparse, user_item_adjacency, with_self_loops)
from recgoat_lib.models.gat import SparseGATConv
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


def pyg_sym_normalize(edge_index: torch.Tensor, weight: torch.Tensor | None, n: int) -> sp.csr_matrix:
    """PyG's D^-1/2 A D^-1/2 (GCN's normalisation without self loops) as an n x n scipy matrix."""
    ei, w = gcn_norm(edge_index, weight, num_nodes=n, add_self_loops=False)
    return sp.csr_matrix((w.double().numpy(), (ei[0].numpy(), ei[1].numpy())), shape=(n, n))


def test_sym_normalize_matches_pyg_gcn_norm_with_an_isolated_node():
    """A weighted symmetric graph normalises as PyG's gcn_norm does; node 5, of degree 0, stays at zero with no
    inf or NaN, even through the weight-0 edges it keeps stored (where an unguarded deg ** -0.5 gives inf * 0)."""
    a = sp.random(30, 30, density=0.15, random_state=0, format="coo", dtype=np.float32)
    a = sp.coo_matrix(a + a.T)
    keep = (a.row != a.col) & (a.row != 5) & (a.col != 5)
    row, col, data = (np.concatenate([v[keep], extra]) for v, extra in
                      [(a.row, [5, 6]), (a.col, [6, 5]), (a.data, np.zeros(2, np.float32))])
    a = sp.csr_matrix((data, (row, col)), shape=(30, 30))
    degree = np.asarray(a.sum(axis=1)).ravel()
    assert a[5, 6] == 0 and a.getnnz(axis=1)[5] == 1 and degree[5] == 0 and (np.delete(degree, 5) > 0).all()
    out = sym_normalize(a)
    coo = a.tocoo()
    ref = pyg_sym_normalize(torch.tensor(np.vstack([coo.row, coo.col]), dtype=torch.long),
                            torch.from_numpy(coo.data), 30)
    assert out.shape == (30, 30) and np.isfinite(out.data).all() and abs(out[5]).sum() == abs(out[:, 5]).sum() == 0
    assert (out != 0).nnz == (ref != 0).nnz == (a != 0).nnz
    assert abs(out - ref).max() < 1e-6


def test_user_item_adjacency_matches_pyg_gcn_norm(toy):
    """LightGCN's graph: the user-item bipartite adjacency, built here from the training pairs, normalised by PyG."""
    users, items = toy.split_pairs("train")
    n = toy.n_users + toy.n_items
    edge_index = torch.from_numpy(np.vstack([np.concatenate([users, items + toy.n_users]),
                                             np.concatenate([items + toy.n_users, users])]))
    out = user_item_adjacency(toy)
    ref = pyg_sym_normalize(edge_index, None, n)
    assert out.shape == (n, n) and (out != 0).nnz == (ref != 0).nnz == 2 * len(users)
    assert abs(out - ref).max() < 1e-6


def random_directed_graph(n: int, seed: int, loops: bool = True) -> torch.Tensor:
    """edge_index [2, E] of a random directed graph, with a self loop per node (as the GAT uses) or none."""
    a = sp.random(n, n, density=0.04, random_state=seed, format="csr")
    if loops:
        return with_self_loops(a)
    a.setdiag(0)
    a.eliminate_zeros()
    coo = a.tocoo()
    return torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))


TARGETS = torch.tensor([7, 3, 3, 0, 39])  # a repeat, as a batch of users may hold


@pytest.mark.parametrize("loops", [True, False])
@pytest.mark.parametrize("hops", [1, 2])
def test_in_neighbourhood_matches_pyg_k_hop_subgraph(hops, loops):
    """Nodes: PyG's k-hop subset. Edges: exactly those into nodes within hops - 1 steps (k_hop_subgraph's
    directed=True edges, relabelled alike), a subset of the whole induced subgraph's."""
    n = 60
    edge_index = random_directed_graph(n, seed=1, loops=loops)
    nodes, local, rows = in_neighbourhood(edge_index, TARGETS, hops, n)
    subset, _, _, induced = k_hop_subgraph(TARGETS, hops, edge_index, relabel_nodes=False, num_nodes=n,
                                           flow="source_to_target")
    _, directed, mapping, needed = k_hop_subgraph(TARGETS, hops, edge_index, relabel_nodes=True, num_nodes=n,
                                                  flow="source_to_target", directed=True)
    assert len(nodes) < n  # a real subgraph, not the whole graph
    assert torch.equal(nodes, subset)
    assert torch.equal(rows, mapping) and torch.equal(nodes[rows], TARGETS)
    assert torch.equal(local, directed)
    assert torch.equal(nodes[local], edge_index[:, needed])
    assert not (needed & ~induced).any()


def mirror_branch(conv: type, hops: int, seed: int = 0):
    """GraphAttentionBranch.forward in eval mode: Linear projection of the rows, then `hops` GAT layers joined by
    LeakyReLU(0.2); `run(nodes, edge_index)` gives every row of that graph (nodes None: the whole graph)."""
    torch.manual_seed(seed)
    x = torch.randn(60, 24)
    proj = torch.nn.Linear(24, 16)
    gats = [conv(16, 4, heads=4, add_self_loops=False).eval() for _ in range(hops)]
    for gat in gats:
        torch.nn.init.normal_(gat.bias)

    def run(nodes: torch.Tensor | None, edge_index: torch.Tensor) -> torch.Tensor:
        h = proj(x if nodes is None else x[nodes])
        for gat in gats:
            h = torch.nn.functional.leaky_relu(gat(h, edge_index), 0.2)
        return h

    return run


@pytest.mark.parametrize("conv", [GATConv, SparseGATConv])
@pytest.mark.parametrize("hops", [1, 2])
def test_gat_layers_on_in_neighbourhood_give_the_full_graph_rows(hops, conv, one_thread):
    """What the neighbourhood is for: `hops` GAT layers run on it give the targets the full-graph rows."""
    n = 60
    edge_index = random_directed_graph(n, seed=1)
    run = mirror_branch(conv, hops)
    with torch.no_grad():
        full = run(None, edge_index)[TARGETS]
        nodes, local, rows = in_neighbourhood(edge_index, TARGETS, hops, n)
        torch.testing.assert_close(run(nodes, local)[rows], full, rtol=1e-5, atol=1e-6)
        if hops > 1:  # one hop fewer really changes the targets' rows, so the check above can fail
            nodes, local, rows = in_neighbourhood(edge_index, TARGETS, hops - 1, n)
            assert not torch.allclose(run(nodes, local)[rows], full, rtol=1e-3, atol=1e-4)
