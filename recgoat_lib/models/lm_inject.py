"""Naive LM injection: LightGCN whose item inputs are projected LM features, with no alignment.

The baseline RecGOAT argues against: the frozen large-model item features are mapped by one
linear layer into the ID space and fed to LightGCN, either replacing the item ID embeddings
("replace") or filling half of each item's vector next to a half-width ID embedding
("concat"). Nothing aligns the two spaces; the paper (v2) claims such injection can even hurt.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Dataset
from ..graphs import to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, bpr_loss, l2_reg, users_items
from .lightgcn import LightGCNPropagation
from .vbpr import concat_features

MODES = ("replace", "concat")


@dataclass(frozen=True)
class LMInjectConfig:
    dim: int = 64
    layers: int = 3
    reg: float = 1e-4
    mode: str = "concat"
    modalities: tuple[str, ...] = ("image", "text")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "concat" and self.dim % 2:
            raise ValueError(f"mode='concat' splits dim in two halves; dim={self.dim} is odd")


class NaiveLMInjection(Recommender):
    """LightGCN over [user IDs; item inputs], item inputs = W f_i or [ID_i; W f_i]; BPR + L2 on ego rows."""

    Config = LMInjectConfig

    def __init__(self, ds: Dataset, config: LMInjectConfig = LMInjectConfig()):
        super().__init__()
        self.config = config
        self.n_users = ds.n_users
        self.register_buffer("features", concat_features(ds, config.modalities, "NaiveLMInjection"))
        id_dim = config.dim // 2 if config.mode == "concat" else 0
        self.user_emb = nn.Embedding(ds.n_users, config.dim)
        self.item_emb = nn.Embedding(ds.n_items, id_dim) if id_dim else None
        self.project = nn.Linear(self.features.shape[1], config.dim - id_dim)
        for m in (self.user_emb, self.item_emb, self.project):
            if m is not None:
                nn.init.xavier_uniform_(m.weight)
        self.propagate = LightGCNPropagation(to_torch_sparse(user_item_adjacency(ds)), config.layers)

    def item_inputs(self) -> Tensor:
        content = self.project(self.features)
        return content if self.item_emb is None else torch.cat([self.item_emb.weight, content], dim=1)

    def forward(self) -> Embeddings:
        items = self.item_inputs()
        out = self.propagate(torch.cat([self.user_emb.weight, items]))
        return Embeddings(*users_items(out, self.n_users), {"item_inputs": items})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        bpr = bpr_loss(emb.user[users], emb.item[pos], emb.item[neg])
        items = emb.extras["item_inputs"]
        reg = self.config.reg * l2_reg(self.user_emb(users), items[pos], items[neg])
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}
