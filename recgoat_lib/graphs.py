"""Graphs the models propagate over: the normalised user-item graph (more graph builders live beside it)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .data import Dataset


def to_torch_sparse(m: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy matrix as a torch sparse CSR tensor (the layout PyG's spmm is fastest with on CPU), with
    the index type `index_dtype` chooses (int32 where it fits)."""
    m = m.tocsr().astype(np.float32)
    dtype = index_dtype(*m.shape, m.nnz)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr).to(dtype), torch.from_numpy(m.indices).to(dtype),
            torch.from_numpy(m.data), size=m.shape, device=device, check_invariants=False,
        )


def index_dtype(*sizes: int) -> torch.dtype:
    """The index type for sparse products over arrays of these sizes (rows, columns, nonzeros): int32 where
    all fit, else int64. MKL's sparse BLAS, which torch calls for CSR x dense on CPU, takes 32-bit
    indices; given int64 ones, torch converts both index arrays to fresh int32 tensors on every product
    (two `aten::_to_copy` of nnz-long arrays, forward and backward; issue #16). cuSPARSE takes int32 too."""
    return torch.int32 if max(sizes) < 2**31 - 1 else torch.int64


def compact_indices(csr: torch.Tensor) -> torch.Tensor:
    """`csr` (sparse CSR) with the index type `index_dtype` chooses for its size."""
    dtype = index_dtype(*csr.shape, csr.values().numel())
    if csr.crow_indices().dtype == dtype:
        return csr
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(csr.crow_indices().to(dtype), csr.col_indices().to(dtype), csr.values(),
                                       size=csr.shape, check_invariants=False)


def spmm(adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """adj @ x for a sparse CSR `adj` and a dense `x`, written straight into a new tensor, without autograd
    (for the custom autograd Functions that call it). `torch.sparse.mm` first zero-fills its output
    and copies it (aten::zeros + copy_); here the product writes every element itself."""
    out = x.new_empty(adj.shape[0], x.shape[1])
    return torch.addmm(out, adj, x, beta=0.0, out=out)


def mean_of_powers(adj: torch.Tensor, x: torch.Tensor, layers: int) -> torch.Tensor:
    """(x + A x + A^2 x + ... + A^L x) / (L + 1) for a sparse CSR `adj` and L = `layers` >= 1, without
    autograd: LightGCN's layer mean, and (A symmetric) its gradient too.

    Evaluated by Horner's rule, h <- x + A h from h = x, then scaled once: each step one sparse product
    written into a fresh output (`spmm`) and x added to it in place, while it is still in cache. Summing
    the layer outputs instead costs L + 1 more passes over [n, d] forward and as many again for autograd's
    gradient accumulation; a sparse addmm with c x as its input (h <- c x + A h) first copies c x into
    each fresh output, which measured slower than the in-place add (issue #16)."""
    h = spmm(adj, x).add_(x)
    for _ in range(layers - 1):
        h = spmm(adj, h).add_(x)
    return h.mul_(1.0 / (layers + 1))


def sym_normalize(a: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2, with isolated nodes left at zero."""
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float64)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    d = sp.diags(inv)
    return (d @ a @ d).tocsr()


def user_item_adjacency(ds: Dataset) -> sp.csr_matrix:
    """Normalised bipartite graph over n_users + n_items nodes, from training interactions only."""
    r = ds.csr("train")
    a = sp.bmat([[None, r], [r.T, None]], format="csr")
    return sym_normalize(a)


def knn_graph(features: np.ndarray | torch.Tensor, k: int, chunk_size: int = 4096) -> sp.csr_matrix:
    """Cosine top-k neighbour graph on the rows of `features`: self excluded, symmetrised.

    Row i keeps its k most cosine-similar other rows; the graph is then made undirected
    (an edge exists when either end chose the other) with the cosine as edge weight.
    Similarities are computed `chunk_size` rows at a time, so memory stays at
    chunk_size x n (18k items or 35k users fit comfortably).
    """
    x = torch.as_tensor(features, dtype=torch.float32)
    if x.ndim != 2:
        raise ValueError(f"knn_graph: features must be 2-D [n, dim], got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"knn_graph: k must be in [1, {n - 1}] for {n} rows, got {k}")
    if not torch.isfinite(x).all():
        raise ValueError("knn_graph: features contain NaN or inf")
    x = torch.nn.functional.normalize(x, dim=1)
    rows, cols, sims = [], [], []
    for start in range(0, n, chunk_size):
        block = x[start:start + chunk_size] @ x.T
        idx = torch.arange(start, start + block.shape[0])
        block[idx - start, idx] = -torch.inf
        top = torch.topk(block, k, dim=1)
        rows.append(idx.repeat_interleave(k))
        cols.append(top.indices.reshape(-1))
        sims.append(top.values.reshape(-1))
    a = sp.csr_matrix((torch.cat(sims).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())), shape=(n, n))
    return a.maximum(a.T).tocsr()


def with_self_loops(adj: sp.spmatrix) -> torch.Tensor:
    """PyG edge_index [2, E] of `adj` plus one self loop per node (GAT attends to the node itself too).

    Edge weights are dropped, as in the released code: attention decides how much each neighbour counts.
    """
    a = (adj.tocsr() != 0).astype(np.float32)
    a = (a + sp.identity(a.shape[0], format="csr", dtype=np.float32)).tocoo()
    return torch.from_numpy(np.vstack([a.row, a.col]).astype(np.int64))


def in_neighbourhood(edge_index: torch.Tensor, targets: torch.Tensor, hops: int,
                     n_nodes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The part of a graph that `hops` message-passing layers need to compute `targets`' outputs.

    Returns (nodes, local edge_index, positions of `targets` among `nodes`): the nodes within
    `hops` incoming steps of a target, and the edges into nodes within `hops - 1` steps (a
    superset of what each layer reads), relabelled to positions in `nodes`. Running the layers on
    this subgraph gives the targets exactly the rows a full-graph pass would, at the cost of their
    neighbourhood instead of the whole graph (a training batch's users, say).
    """
    src, dst = edge_index
    inner = torch.zeros(n_nodes, dtype=torch.bool, device=edge_index.device)
    inner[targets] = True
    for _ in range(hops - 1):
        inner[src[inner[dst]]] = True
    keep = inner[dst]
    nodes = torch.unique(torch.cat([src[keep], targets]))
    local = torch.full((n_nodes,), -1, dtype=torch.long, device=edge_index.device)
    local[nodes] = torch.arange(len(nodes), device=edge_index.device)
    return nodes, local[edge_index[:, keep]], local[targets]


def degree_stats(adj: sp.spmatrix) -> dict[str, float]:
    """Node count, edge count (undirected edges counted once for symmetric graphs) and degree summary."""
    pattern = adj.tocsr() != 0
    deg = np.diff(pattern.indptr)
    symmetric = (pattern != pattern.T).nnz == 0
    return {"nodes": adj.shape[0], "edges": int(pattern.nnz // 2 if symmetric else pattern.nnz),
            "min": int(deg.min()), "median": float(np.median(deg)), "mean": float(deg.mean()),
            "max": int(deg.max()), "isolated": int((deg == 0).sum())}


def neighbour_agreement(adj: sp.spmatrix, labels: np.ndarray) -> float:
    """Fraction of edges whose two ends share a label (e.g. the toy's ground-truth item topic)."""
    a = adj.tocoo()
    labels = np.asarray(labels)
    if labels.shape[0] != adj.shape[0]:
        raise ValueError(f"neighbour_agreement: {labels.shape[0]} labels for {adj.shape[0]} nodes")
    return float((labels[a.row] == labels[a.col]).mean())


def attention_summary(edge_index: torch.Tensor, weight: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
    """Where a GAT's attention goes, averaged over target nodes.

    `edge_index` is [2, E] (source, target) with self loops, `weight` the attention per edge
    (summing to 1 over each target's incoming edges). Returns the mean attention a node keeps
    on itself, the mean attention on neighbours sharing its label, and what uniform attention
    would give same-label neighbours (for comparison).
    """
    src, dst = edge_index.cpu().numpy()
    w = weight.detach().cpu().numpy().astype(np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    if src.max(initial=-1) >= n or len(w) != len(src):
        raise ValueError(f"attention_summary: {len(w)} weights for {len(src)} edges over {n} labelled nodes")
    own = src == dst
    same = (labels[src] == labels[dst]) & ~own

    def per_node(x: np.ndarray) -> np.ndarray:
        return np.bincount(dst, weights=x, minlength=n)

    incoming = per_node(np.ones_like(w))
    return {"self": float(per_node(w * own).mean()), "same_label": float(per_node(w * same).mean()),
            "same_label_if_uniform": float((per_node(same) / np.maximum(incoming, 1)).mean())}


def attended_neighbours(edge_index: torch.Tensor, weight: torch.Tensor, node: int) -> pd.DataFrame:
    """The nodes `node` attends to (itself included), by attention weight, highest first."""
    src, dst = edge_index.cpu().numpy()
    mask = dst == node
    if not mask.any():
        raise ValueError(f"attended_neighbours: node {node} has no incoming edges")
    df = pd.DataFrame({"neighbour": src[mask], "attention": weight.detach().cpu().numpy()[mask]})
    return df.sort_values("attention", ascending=False, ignore_index=True)
