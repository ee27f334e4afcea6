"""LightGCN (He et al., 2020): ID embeddings smoothed over the normalised user-item graph."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Dataset
from ..graphs import mean_of_powers, spmm, to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, batch_rows, bpr_loss, full_precision, l2_reg, upcast, users_items


@dataclass(frozen=True)
class LightGCNConfig:
    dim: int = 64
    layers: int = 3
    reg: float = 1e-4


class SymmetricSpMM(torch.autograd.Function):
    """A @ X for a symmetric sparse A, with the gradient A^T G computed as A G.

    The product is what PyG's LGConv(normalize=False) computes on a sparse adjacency; its
    autograd backward transposes A (sorting every non-zero) on each call, which made a
    LightGCN training step 2.7x the bare sparse products on Baby (benchmarks/run.py). For the
    symmetric graphs propagated here the transpose is A itself.
    """

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor) -> Tensor:
        ctx.adj = adj
        with full_precision(x):  # no bf16 sparse kernel: fp32 under bf16 autocast too
            return spmm(adj, upcast(x).contiguous())

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        return None, spmm(ctx.adj, grad.contiguous())


class SymmetricMeanPropagation(torch.autograd.Function):
    """(X + A X + ... + A^L X) / (L + 1) for a symmetric sparse A, in one autograd node.

    Its gradient is the same polynomial of A^T = A applied to the incoming gradient, so forward and
    backward are both `graphs.mean_of_powers`: L sparse products each, and none of the layer sums,
    the scaling, or the gradient accumulations that autograd would make over L separate products."""

    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor, layers: int) -> Tensor:
        ctx.adj, ctx.layers = adj, layers
        with full_precision(x):  # no bf16 sparse kernel: fp32 under bf16 autocast too
            return mean_of_powers(adj, upcast(x).contiguous(), layers)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor, None]:
        return None, mean_of_powers(ctx.adj, grad.contiguous(), ctx.layers), None


def is_symmetric(adj: Tensor) -> bool:
    """Whether a sparse matrix equals its transpose (same pattern and values)."""
    a = adj.to_sparse_coo().coalesce()
    t = a.t().coalesce()
    return torch.equal(a.indices(), t.indices()) and torch.allclose(a.values(), t.values())


class LightGCNPropagation(nn.Module):
    """L rounds of parameter-free propagation on a fixed normalised symmetric graph, layer outputs averaged."""

    def __init__(self, adjacency: Tensor, layers: int):
        super().__init__()
        if not is_symmetric(adjacency):
            raise ValueError("LightGCNPropagation: the adjacency must be symmetric (an undirected graph)")
        self.register_buffer("adj", adjacency)
        self.layers = layers

    def forward(self, x: Tensor, adj: Tensor | None = None) -> Tensor:
        """Propagate over `adj` when given (e.g. a pruned graph; symmetric too), else over the stored graph."""
        if self.layers == 0:
            return x
        return SymmetricMeanPropagation.apply(self.adj if adj is None else adj, x, self.layers)


class LightGCN(Recommender):
    """ID embeddings propagated over D^-1/2 A D^-1/2 of the training graph; BPR + L2 on ego embeddings."""

    Config = LightGCNConfig

    def __init__(self, ds: Dataset, config: LightGCNConfig = LightGCNConfig()):
        super().__init__()
        self.config = config
        self.n_users = ds.n_users
        self.embedding = nn.Embedding(ds.n_users + ds.n_items, config.dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        self.propagate = LightGCNPropagation(to_torch_sparse(user_item_adjacency(ds)), config.layers)

    def forward(self) -> Embeddings:
        out = self.propagate(self.embedding.weight)
        return Embeddings(*users_items(out, self.n_users))

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        ego = self.embedding.weight
        bpr = bpr_loss(*batch_rows(self.propagate(ego), self.n_users, users, pos, neg))
        reg = self.config.reg * l2_reg(*batch_rows(ego, self.n_users, users, pos, neg))
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}
