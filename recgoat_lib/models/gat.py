"""A GATConv whose neighbour aggregation is a sparse x dense product (RecGOAT's GAT branches, issue #9).

PyG's GATConv builds [E, heads, channels] message tensors (gather, multiply, scatter-add); on a kNN
graph with E ~ 30 N those dominate both the time and, at d = 800, the peak memory. Here
out[i, h] = sum_{e: j -> i} alpha[e, h] x[j, h] is one CSR spmm per head (measured faster on CPU than
one matrix over (node, head) rows), with a hand-written backward: the transposed spmm for the features
and a sampled dense-dense product (torch.sparse.sampled_addmm) for the attention. Nothing of size
E x channels is created. The attention itself (LeakyReLU, softmax over each target's in-edges,
dropout) is computed with the aggregation by `EdgeSoftmaxSpmm` on [heads, E] values in target order,
with segment reductions instead of PyG's scatters and its own backward (issue #16); same parameters,
initialisation and dropout draws as PyG's GATConv. With `return_attention_weights` PyG's own
`edge_updater` computes the attention (in edge order, as GATConv returns it) and `AttentionSpmm` aggregates.
"""
from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch_geometric.nn import GATConv

from ..graphs import index_dtype
from .base import full_precision, upcast


@dataclass(frozen=True)
class _Csr:
    """Rows of a fixed [n, n] pattern in CSR form; `perm[k]` is the edge (column of edge_index) of nonzero k.

    `ptr` and `col` (int64) serve the gathers and segment reductions; `matrix` builds its products from
    copies in `graphs.index_dtype`'s type (int32, as MKL takes them, so that no product converts them).
    The gathers keep int64: `index_add_` over an int32 index measured 13x slower on this CPU (issue #16)."""
    ptr: Tensor
    col: Tensor
    perm: Tensor
    matrix_ptr: Tensor
    matrix_col: Tensor

    @classmethod
    def group(cls, rows: Tensor, cols: Tensor, n: int) -> "_Csr":
        perm = torch.argsort(rows * n + cols)
        ptr = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
        ptr[1:] = torch.bincount(rows, minlength=n).cumsum(0)
        col = cols[perm]
        dtype = index_dtype(n, len(cols))
        return cls(ptr, col, perm, ptr.to(dtype), col.to(dtype))

    def matrix(self, values: Tensor) -> Tensor:
        n = len(self.ptr) - 1
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self.matrix_ptr, self.matrix_col, values, (n, n), check_invariants=False)

    def values(self, alpha: Tensor) -> Tensor:
        """Attention alpha [E, heads] (edge order) as per-head nonzero values [heads, E]."""
        return alpha.index_select(0, self.perm).T.contiguous()

    def spmm(self, values: Tensor, x: Tensor) -> Tensor:
        """[n, heads, C] (a view of [heads, n, C]): row i, head h = sum over nonzeros k = (i, j) of
        values[h, k] * x[j, h]; each head's product is written into its slice of one output."""
        per_head = x.transpose(0, 1).contiguous()
        out = x.new_empty(len(values), len(self.ptr) - 1, x.shape[2])
        for h, v in enumerate(values):
            torch.addmm(out[h], self.matrix(v), per_head[h], beta=0.0, out=out[h])
        return out.transpose(0, 1)


@dataclass(frozen=True)
class EdgePattern:
    """A graph's edges grouped by target (forward) and by source (backward: the transposed product).

    For the fused attention (`EdgeSoftmaxSpmm`): `row[k]` is the target of nonzero k of `by_target`,
    `to_source[m]` the position in `by_target` of nonzero m of `by_source`, and `offsets` is
    `by_target.ptr` repeated per head (the segments of `torch.segment_reduce` over [heads, E] values).
    """
    by_target: _Csr
    by_source: _Csr
    row: Tensor
    to_source: Tensor
    heads: int
    offsets: Tensor

    @classmethod
    def of(cls, edge_index: Tensor, n: int, heads: int = 1) -> "EdgePattern":
        src, dst = edge_index
        by_target, by_source = _Csr.group(dst, src, n), _Csr.group(src, dst, n)
        row = torch.repeat_interleave(torch.arange(n, device=src.device), by_target.ptr.diff())
        position = torch.empty_like(by_target.perm)
        position[by_target.perm] = torch.arange(len(position), device=src.device)
        offsets = by_target.ptr.expand(heads, -1).contiguous()
        return cls(by_target, by_source, row, position[by_source.perm], heads, offsets)


class AttentionSpmm(torch.autograd.Function):
    """out[i, h, :] = sum over edges e = (j -> i) of alpha[e, h] * x[j, h, :], for alpha [E, H] and x [N, H, C]."""

    @staticmethod
    def forward(ctx: Any, alpha: Tensor, x: Tensor, pattern: EdgePattern) -> Tensor:
        values = pattern.by_target.values(alpha)
        ctx.save_for_backward(alpha, x, values)
        ctx.pattern = pattern
        return pattern.by_target.spmm(values, x)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        alpha, x, values = ctx.saved_tensors
        pattern: EdgePattern = ctx.pattern
        grad_alpha = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = pattern.by_source.spmm(pattern.by_source.values(alpha), grad_out)
        if ctx.needs_input_grad[0]:
            # d out[i, h] / d alpha[e, h] = x[j, h], so grad_alpha[e, h] = <grad_out[i, h], x[j, h]>: the
            # product grad_out[:, h] @ x[:, h].T sampled at the pattern (the values passed in are ignored: beta=0).
            fwd = pattern.by_target
            sampled = torch.stack([
                torch.sparse.sampled_addmm(fwd.matrix(v), grad_out[:, h], x[:, h].contiguous().T, beta=0.0).values()
                for h, v in enumerate(values)])
            grad_alpha = torch.empty_like(alpha).index_copy_(0, fwd.perm, sampled.T)
        return grad_alpha, grad_x, None


def _segment(values: Tensor, pattern: EdgePattern, reduce: str) -> Tensor:
    """Per head and target node, the `reduce` ("max", "sum") of `values` [heads, E] (target order) over its in-edges."""
    return torch.segment_reduce(values, reduce, offsets=pattern.offsets, axis=1)


def attention_noise(edges: int, heads: int, p: float, training: bool, pattern: EdgePattern,
                    like: Tensor) -> Tensor | None:
    """The dropout noise F.dropout(alpha, p) would multiply PyG's [E, heads] attention by (mask / (1 - p), drawn
    from the same generator calls, so a seed drops the same edges), as [heads, E] in `pattern`'s target order;
    None when dropout is off."""
    if not training or p == 0.0:
        return None
    noise = torch.empty(edges, heads, dtype=torch.float32, device=like.device).bernoulli_(1 - p).div_(1 - p)
    return noise.index_select(0, pattern.by_target.perm).T.contiguous()


class EdgeSoftmaxSpmm(torch.autograd.Function):
    """GAT attention and aggregation in one function, with a hand-written backward (issue #16).

    From the node scores s_src, s_dst [N, H] (PyG's alpha_j, alpha_i) and the messages x [N, H, C]:
    e = LeakyReLU(s_src[j] + s_dst[i]) per edge j -> i, alpha = softmax of e over each target's
    in-edges (max-shifted, PyG's + 1e-16 in the denominator), alpha * noise (the dropout mask of
    `attention_noise`, or None) and out[i, h] = sum_j alpha[e, h] x[j, h]: the values PyG's
    `GATConv.edge_updater` followed by `AttentionSpmm` compute. All edge work is on [H, E] tensors
    in target order (CSR segments, so the per-target max and sums are `torch.segment_reduce`
    instead of scatters over a random order), and the backward of the softmax, of the LeakyReLU and
    of the two score gathers is written out: no [E, H] tensor is permuted or scattered per call.
    """

    @staticmethod
    def forward(ctx: Any, s_src: Tensor, s_dst: Tensor, x: Tensor, noise: Tensor | None, pattern: EdgePattern,
                negative_slope: float) -> Tensor:
        with full_precision(x):  # fp32 under bf16 autocast too (no bf16 sparse kernel; the softmax's sums)
            return EdgeSoftmaxSpmm._forward(ctx, upcast(s_src), upcast(s_dst), upcast(x), noise, pattern,
                                            negative_slope)

    @staticmethod
    def _forward(ctx: Any, s_src: Tensor, s_dst: Tensor, x: Tensor, noise: Tensor | None, pattern: EdgePattern,
                 negative_slope: float) -> Tensor:
        fwd = pattern.by_target
        score = s_src.T.contiguous().index_select(1, fwd.col) + s_dst.T.contiguous().index_select(1, pattern.row)
        score = torch.nn.functional.leaky_relu_(score, negative_slope)  # kept for its backward (its sign)
        shifted = torch.sub(score, _segment(score, pattern, "max").index_select(1, pattern.row)).exp_()
        alpha = shifted.div_((_segment(shifted, pattern, "sum") + 1e-16).index_select(1, pattern.row))
        dropped = alpha if noise is None else alpha * noise
        ctx.save_for_backward(x, alpha, dropped, score, noise)
        ctx.pattern, ctx.negative_slope = pattern, negative_slope
        return fwd.spmm(dropped, x)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None, None]:
        x, alpha, dropped, score, noise = ctx.saved_tensors
        pattern: EdgePattern = ctx.pattern
        fwd, bwd = pattern.by_target, pattern.by_source
        grad_x = bwd.spmm(dropped.index_select(1, pattern.to_source), grad_out)
        grad_alpha = torch.stack([  # <grad_out[i, h], x[j, h]> at each edge (the values passed in are ignored)
            torch.sparse.sampled_addmm(fwd.matrix(v), grad_out[:, h], x[:, h].contiguous().T, beta=0.0).values()
            for h, v in enumerate(dropped)])
        if noise is not None:
            grad_alpha.mul_(noise)
        # softmax: d e = alpha * (d alpha - sum over the target's in-edges of alpha * d alpha)
        weighted = grad_alpha.mul_(alpha)
        grad_score = weighted.sub_(alpha * _segment(weighted, pattern, "sum").index_select(1, pattern.row))
        # LeakyReLU's own backward kernel, from its output (vectorised; torch.where measured 12x slower here)
        grad_score = torch.ops.aten.leaky_relu_backward(grad_score, score, ctx.negative_slope, True)
        grad_dst = _segment(grad_score, pattern, "sum")
        grad_src = torch.zeros_like(grad_dst).index_add_(1, fwd.col, grad_score)
        return grad_src.T, grad_dst.T, grad_x, None, None, None


class SparseGATConv(GATConv):
    """PyG's GATConv (same parameters, state_dict, initialisation, attention and dropout) with the
    aggregation done by `AttentionSpmm`: no [E, heads, channels] tensors, so faster and far leaner.

    Supports the configuration RecGOAT uses: one node set (int in_channels), concatenated heads,
    self loops already in edge_index (add_self_loops=False), no edge features, no residual, and
    edge_index as a plain [2, E] tensor. The CSR index structures of the last graph are cached and
    reused while the same edge_index tensor (unchanged) comes back, as RecGOAT's fixed kNN graph does.
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, dropout: float = 0.0, add_self_loops: bool = False,
                 bias: bool = True, **kwargs: Any):
        problems = [name for name, bad in [
            ("in_channels must be an int (bipartite pairs are not supported)", not isinstance(in_channels, int)),
            ("concat=False (head averaging)", not concat),
            ("add_self_loops=True (put the self loops into edge_index instead)", add_self_loops),
        ] if bad] + [f"argument '{k}'" for k in kwargs]
        if problems:
            raise ValueError(f"SparseGATConv does not support: {'; '.join(problems)}")
        super().__init__(in_channels, out_channels, heads=heads, concat=True, negative_slope=negative_slope,
                         dropout=dropout, add_self_loops=False, bias=bias)
        self._cache: tuple[weakref.ref, int, int, EdgePattern] | None = None

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor | None = None, size: Any = None,
                return_attention_weights: bool | None = None) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """As GATConv.forward: [N, heads * out_channels], plus (edge_index, alpha [E, heads]) if asked."""
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError("SparseGATConv: x must be one [N, in_channels] tensor (no bipartite pairs)")
        if (not isinstance(edge_index, Tensor) or edge_index.layout != torch.strided or edge_index.dim() != 2
                or edge_index.size(0) != 2 or edge_index.dtype != torch.long):
            raise ValueError("SparseGATConv: edge_index must be a dense [2, E] int64 tensor "
                             "(SparseTensor and torch.sparse adjacencies are not supported)")
        if edge_attr is not None or size is not None:
            raise ValueError("SparseGATConv: edge_attr and size are not supported")
        heads, channels = self.heads, self.out_channels
        h = self.lin(x).view(-1, heads, channels)
        scores = (h * self.att_src).sum(-1), (h * self.att_dst).sum(-1)
        pattern = self._pattern(edge_index, h.size(0))
        if return_attention_weights:  # PyG's attention in edge order, as GATConv returns it
            alpha = self.edge_updater(edge_index, alpha=scores, edge_attr=None, size=None)
            out = AttentionSpmm.apply(alpha, h, pattern)
        else:
            noise = attention_noise(edge_index.size(1), heads, self.dropout, self.training, pattern, h)
            out = EdgeSoftmaxSpmm.apply(*scores, h, noise, pattern, self.negative_slope)
        out = out.reshape(-1, heads * channels)
        if self.bias is not None:
            out = out + self.bias
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def _pattern(self, edge_index: Tensor, n: int) -> EdgePattern:
        cache = self._cache
        if cache is None or cache[0]() is not edge_index or cache[1:3] != (edge_index._version, n):
            if edge_index.numel() and int(edge_index.max()) >= n:
                raise IndexError(f"SparseGATConv: edge_index refers to node {int(edge_index.max())} of only {n}")
            cache = self._cache = (weakref.ref(edge_index), edge_index._version, n,
                                   EdgePattern.of(edge_index, n, self.heads))
        return cache[3]

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_cache": None}
