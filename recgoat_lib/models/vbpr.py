"""VBPR (He & McAuley, 2016): BPR-MF plus a visual term from projected item content features.

The score is gamma_u . gamma_i + theta_u . (E f_i): an ID part as in BPR-MF and a content
part where a learned projection E maps the item's (frozen) modality features f_i into the
space of a second, "visual preference" user vector theta_u. With several modalities the
feature vectors are concatenated before the projection (MMRec's multimodal VBPR).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..data import Dataset
from .base import Embeddings, Recommender, bpr_loss, l2_reg


@dataclass(frozen=True)
class VBPRConfig:
    dim: int = 64
    reg: float = 1e-4
    modalities: tuple[str, ...] = ("image", "text")


def concat_features(ds: Dataset, modalities: tuple[str, ...], model: str) -> Tensor:
    """The item features of `modalities` side by side, [n_items, sum of dims] float32; an absent
    one raises a `DataError` naming `model`."""
    if not modalities:
        raise ValueError(f"{model}: modalities is empty: a content-based model needs at least one")
    ds.require_features(modalities, model)
    return torch.from_numpy(np.concatenate([ds.item_features[m] for m in modalities], axis=1))


class VBPR(Recommender):
    """Users carry [gamma_u; theta_u] (2 x dim); items [gamma_i; E f_i]; BPR + L2 on the ID rows."""

    Config = VBPRConfig

    def __init__(self, ds: Dataset, config: VBPRConfig = VBPRConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("features", concat_features(ds, config.modalities, "VBPR"))
        self.user_emb = nn.Embedding(ds.n_users, 2 * config.dim)
        self.item_emb = nn.Embedding(ds.n_items, config.dim)
        self.project = nn.Linear(self.features.shape[1], config.dim, bias=False)  # a bias cancels in BPR
        for w in (self.user_emb.weight, self.item_emb.weight, self.project.weight):
            nn.init.xavier_uniform_(w)

    def forward(self) -> Embeddings:
        content = self.project(self.features)
        return Embeddings(self.user_emb.weight, torch.cat([self.item_emb.weight, content], dim=1),
                          {"content": content})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        bpr = bpr_loss(emb.user[users], emb.item[pos], emb.item[neg])
        reg = self.config.reg * l2_reg(self.user_emb(users), self.item_emb(pos), self.item_emb(neg))
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}
