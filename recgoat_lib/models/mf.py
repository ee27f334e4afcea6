"""BPR-MF (Rendle et al., 2009): one free embedding per user and item, dot-product score."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..data import Dataset
from .base import Embeddings, Recommender, bpr_loss, l2_reg


@dataclass(frozen=True)
class BPRConfig:
    dim: int = 64
    reg: float = 1e-4


class BPRMF(Recommender):
    """Matrix factorisation trained with the BPR pairwise loss."""

    Config = BPRConfig

    def __init__(self, ds: Dataset, config: BPRConfig = BPRConfig()):
        super().__init__()
        self.config = config
        self.user_emb = nn.Embedding(ds.n_users, config.dim)
        self.item_emb = nn.Embedding(ds.n_items, config.dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)

    def forward(self) -> Embeddings:
        return Embeddings(self.user_emb.weight, self.item_emb.weight)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        u, p, n = self.user_emb(users), self.item_emb(pos), self.item_emb(neg)
        bpr, reg = bpr_loss(u, p, n), self.config.reg * l2_reg(u, p, n)
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}
