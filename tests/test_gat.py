"""SparseGATConv (recgoat_lib/models/gat.py) against PyG's GATConv: same outputs, attention and gradients."""
import numpy as np
import pytest
import torch
from torch_geometric.nn import GATConv

from recgoat_lib.graphs import in_neighbourhood, knn_graph, with_self_loops
from recgoat_lib.models.gat import AttentionSpmm, EdgePattern, SparseGATConv

TOL = dict(rtol=1e-4, atol=1e-5)


def random_graph(n: int, e: int, seed: int) -> torch.Tensor:
    """Directed random edges (asymmetric, unsorted, some duplicates) plus one self loop per node."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randint(0, n, (2, e), generator=g), torch.arange(n).repeat(2, 1)], dim=1)


def knn_edges(n: int, seed: int) -> torch.Tensor:
    return with_self_loops(knn_graph(np.random.default_rng(seed).normal(size=(n, 24)), k=5))


def pair(dim: int = 32, heads: int = 4, dropout: float = 0.0, seed: int = 0) -> tuple[GATConv, SparseGATConv]:
    """PyG's layer (with a non-zero bias, so that it is checked too) and ours with its state_dict."""
    torch.manual_seed(seed)
    ref = GATConv(dim, dim // heads, heads=heads, concat=True, negative_slope=0.2, dropout=dropout,
                  add_self_loops=False)
    torch.nn.init.normal_(ref.bias)
    ours = SparseGATConv(dim, dim // heads, heads=heads, concat=True, negative_slope=0.2, dropout=dropout,
                         add_self_loops=False)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("graph", ["random", "knn", "neighbourhood"])
def test_matches_pyg_in_eval_mode(graph, one_thread):
    n = 120
    edge_index = {"random": lambda: random_graph(n, 900, seed=1), "knn": lambda: knn_edges(n, seed=2),
                  "neighbourhood": lambda: in_neighbourhood(knn_edges(n, seed=3), torch.arange(5), 1, n)[1]}[graph]()
    n_nodes = int(edge_index.max()) + 1
    ref, ours = pair()
    ref.eval(), ours.eval()
    x = torch.randn(n_nodes, 32, generator=torch.Generator().manual_seed(4), requires_grad=True)
    weight = torch.randn(n_nodes, 32)
    results = []
    for conv in (ref, ours):
        out, (ei, alpha) = conv(x, edge_index, return_attention_weights=True)
        grads = torch.autograd.grad((out * weight).sum(), [x, *conv.parameters()])
        results.append((out, ei, alpha, grads))
    (out_r, ei_r, alpha_r, grads_r), (out_o, ei_o, alpha_o, grads_o) = results
    torch.testing.assert_close(out_o, out_r, **TOL)
    assert torch.equal(ei_o, ei_r) and alpha_o.shape == (edge_index.shape[1], 4)
    torch.testing.assert_close(alpha_o, alpha_r, **TOL)
    per_target = torch.zeros(n_nodes, 4).index_add_(0, edge_index[1], alpha_o)
    has_edges = torch.bincount(edge_index[1], minlength=n_nodes) > 0
    torch.testing.assert_close(per_target[has_edges], torch.ones(int(has_edges.sum()), 4))
    names = ["x"] + [name for name, _ in ours.named_parameters()]
    assert len(grads_o) == len(grads_r) == len(names)
    for name, g_o, g_r in zip(names, grads_o, grads_r):
        assert g_r.abs().max() > 0, name
        torch.testing.assert_close(g_o, g_r, **TOL, msg=lambda m: f"gradient wrt {name}: {m}")


def test_same_parameters_and_initialisation_as_pyg():
    torch.manual_seed(5)
    ref = GATConv(16, 4, heads=4, add_self_loops=False)
    torch.manual_seed(5)
    ours = SparseGATConv(16, 4, heads=4)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)


def test_dropout_in_training_mode_is_seeded_and_matches_pyg(one_thread):
    edge_index = knn_edges(80, seed=6)
    ref, ours = pair(dropout=0.5)
    x = torch.randn(80, 32, generator=torch.Generator().manual_seed(7))

    def run(conv, seed):
        torch.manual_seed(seed)
        return conv(x, edge_index)

    out = run(ours, 0)
    assert out.shape == (80, 32)
    assert torch.equal(out, run(ours, 0))
    assert not torch.allclose(out, run(ours, 1))
    with torch.no_grad():
        assert not torch.allclose(out, ours.eval()(x, edge_index))
    ours.train()
    # the attention (and its dropout mask) is PyG's own code, so the same seed drops the same edges
    torch.testing.assert_close(out, run(ref, 0), **TOL)


def test_gradcheck_of_the_aggregation():
    edge_index = random_graph(7, 20, seed=8)
    n, e, heads, channels = 7, edge_index.shape[1], 2, 3
    g = torch.Generator().manual_seed(9)
    alpha = torch.rand(e, heads, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, heads, channels, generator=g, dtype=torch.float64, requires_grad=True)
    pattern = EdgePattern.of(edge_index, n)
    assert torch.autograd.gradcheck(lambda a, h: AttentionSpmm.apply(a, h, pattern), (alpha, x))
    src, dst = edge_index
    dense = torch.zeros(n, n, heads, dtype=torch.float64).index_put_((dst, src), alpha.detach(), accumulate=True)
    torch.testing.assert_close(AttentionSpmm.apply(alpha, x, pattern), torch.einsum("ijh,jhc->ihc", dense, x))


def test_index_structures_are_cached_per_edge_index():
    ref, ours = pair()
    ref.eval(), ours.eval()
    edge_index = random_graph(30, 100, seed=10)
    x = torch.randn(30, 32)
    ours(x, edge_index)
    first = ours._cache[3]
    ours(x, edge_index)
    assert ours._cache[3] is first
    edge_index[0] = edge_index[0].flip(0)  # same tensor, edited in place: the pattern must be rebuilt
    out = ours(x, edge_index)
    assert ours._cache[3] is not first
    torch.testing.assert_close(out, ref(x, edge_index), **TOL)


def test_products_take_int32_indices_and_gathers_int64():
    """MKL's sparse products take int32 indices (no per-product conversion), while `index_add_` and
    `index_select` are fast with int64 ones: each use gets its own copy (issue #16)."""
    pattern = EdgePattern.of(random_graph(30, 100, seed=11), 30, heads=2)
    for csr in (pattern.by_target, pattern.by_source):
        matrix = csr.matrix(torch.ones(len(csr.col)))
        assert matrix.crow_indices().dtype == matrix.col_indices().dtype == torch.int32
        assert csr.ptr.dtype == csr.col.dtype == torch.int64
        assert torch.equal(matrix.col_indices().long(), csr.col) and torch.equal(matrix.crow_indices().long(), csr.ptr)


@pytest.mark.parametrize("kwargs, message", [
    (dict(concat=False), "concat=False"),
    (dict(add_self_loops=True), "add_self_loops=True"),
    (dict(edge_dim=3), "edge_dim"),
    (dict(residual=True), "residual"),
])
def test_unsupported_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseGATConv(16, 4, heads=4, **kwargs)
    with pytest.raises(ValueError, match="in_channels must be an int"):
        SparseGATConv((16, 8), 4, heads=4)


def test_unsupported_forward_arguments():
    conv = SparseGATConv(16, 4, heads=4)
    x, edge_index = torch.randn(10, 16), random_graph(10, 30, seed=11)
    with pytest.raises(ValueError, match="edge_attr"):
        conv(x, edge_index, edge_attr=torch.randn(edge_index.shape[1], 3))
    with pytest.raises(ValueError, match="dense \\[2, E\\] int64"):
        conv(x, torch.sparse_coo_tensor(edge_index, torch.ones(edge_index.shape[1]), (10, 10),
                                              check_invariants=True))
    with pytest.raises(ValueError, match="one \\[N, in_channels\\] tensor"):
        conv((x, x), edge_index)
    with pytest.raises(IndexError, match="edge_index"):  # PyG's own check, before ours runs
        conv(x[:5], edge_index)


@pytest.mark.parametrize("graph", ["random", "knn"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_attention_matches_pyg_outputs_and_gradients(graph, dropout, one_thread):
    """The training path (EdgeSoftmaxSpmm: attention, dropout and aggregation fused, hand-written backward)
    against PyG's GATConv on the same seed: the same output and the same gradients for x and every parameter."""
    n = 90
    edge_index = random_graph(n, 700, seed=12) if graph == "random" else knn_edges(n, seed=13)
    ref, ours = pair(dropout=dropout)
    x = torch.randn(n, 32, generator=torch.Generator().manual_seed(14), requires_grad=True)
    weight = torch.randn(n, 32, generator=torch.Generator().manual_seed(15))
    results = []
    for conv in (ref, ours):
        torch.manual_seed(16)
        out = conv(x, edge_index)
        results.append((out, torch.autograd.grad((out * weight).sum(), [x, *conv.parameters()])))
    (out_r, grads_r), (out_o, grads_o) = results
    torch.testing.assert_close(out_o, out_r, **TOL)
    names = ["x"] + [name for name, _ in ours.named_parameters()]
    for name, g_o, g_r in zip(names, grads_o, grads_r):
        assert g_r.abs().max() > 0, name
        torch.testing.assert_close(g_o, g_r, **TOL, msg=lambda m: f"gradient wrt {name}: {m}")


def test_gradcheck_of_the_fused_attention():
    from recgoat_lib.models.gat import EdgeSoftmaxSpmm
    edge_index = random_graph(7, 20, seed=17)
    n, heads, channels = 7, 2, 3
    g = torch.Generator().manual_seed(18)
    s_src, s_dst = (torch.randn(n, heads, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    x = torch.randn(n, heads, channels, generator=g, dtype=torch.float64, requires_grad=True)
    pattern = EdgePattern.of(edge_index, n, heads)
    noise = (torch.rand(heads, edge_index.shape[1], generator=g, dtype=torch.float64) > 0.3) / 0.7
    for mask in (None, noise):
        assert torch.autograd.gradcheck(lambda a, b, h: EdgeSoftmaxSpmm.apply(a, b, h, mask, pattern, 0.2),
                                        (s_src, s_dst, x))
