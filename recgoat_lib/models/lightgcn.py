"""LightGCN (He et al., 2020): ID embeddings smoothed over the normalised user-item graph."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import LGConv

from ..data import Dataset
from ..graphs import to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, bpr_loss, l2_reg


@dataclass(frozen=True)
class LightGCNConfig:
    dim: int = 64
    layers: int = 3
    reg: float = 1e-4


class LightGCNPropagation(nn.Module):
    """L rounds of parameter-free propagation on a fixed normalised graph, layer outputs averaged."""

    def __init__(self, adjacency: Tensor, layers: int):
        super().__init__()
        self.register_buffer("adj", adjacency)
        self.convs = nn.ModuleList(LGConv(normalize=False) for _ in range(layers))

    def forward(self, x: Tensor, adj: Tensor | None = None) -> Tensor:
        """Propagate over `adj` when given (e.g. a pruned graph), else over the stored graph."""
        adj = self.adj if adj is None else adj
        out = x
        for conv in self.convs:
            x = conv(x, adj)
            out = out + x
        return out / (len(self.convs) + 1)


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
        return Embeddings(out[: self.n_users], out[self.n_users:])

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        bpr = bpr_loss(emb.user[users], emb.item[pos], emb.item[neg])
        ego = self.embedding.weight
        reg = self.config.reg * l2_reg(ego[users], ego[self.n_users + pos], ego[self.n_users + neg])
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}
