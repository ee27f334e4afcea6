"""BM3 (Zhou et al., WWW 2023): bootstrap latent representations, no negative sampling.

Written from the paper's description:
- an ID encoder: LightGCN over the user-item graph, with the item's ego ID embedding added back
  to its propagated one (h_u, h_i);
- modality encoders: one linear projection per modality of the frozen item features (h_m);
- a single linear predictor p(.) shared by IDs and modalities gives the "online" views; the
  "target" views are the encoder outputs themselves, perturbed by dropout and cut from the
  gradient (the paper's replacement for BYOL's momentum target network);
- losses, all 1 - cosine between an online and a target view of a positive (u, i) pair only:
  the graph reconstruction loss  L_rec = [1 - cos(p(h_u), sg(h_i'))] + [1 - cos(p(h_i), sg(h_u'))],
  and per modality the alignment loss 1 - cos(p(h_m), sg(h_i')) plus the masked feature loss
  1 - cos(p(h_m), sg(h_m')), weighted by cl_weight;
- ranking score p(h_u) . p(h_i).

The trainer's negatives are ignored: BM3 trains on positive pairs only (MMRec's use_neg_sampling: False).

Defaults are MMRec's BM3.yaml: n_layers 1 (grid {1, 2}), dropout 0.5 (grid {0.3, 0.5}),
reg_weight 0.1 (grid {0.1, 0.01}), cl_weight 2.0 (fixed), embedding and feature size 64.

Departures from MMRec's code: the raw item features stay frozen here (MMRec fine-tunes them as
an `nn.Embedding(freeze=False)`), as in every other model of this library; the regulariser is
MMRec's as written (`norm_reg`: unsquared norms of the encoder's user and item outputs, over n_items).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.functional import cosine_similarity, dropout

from ..data import Dataset
from ..graphs import to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, norm_reg, users_items
from .lightgcn import LightGCNPropagation


@dataclass(frozen=True)
class BM3Config:
    dim: int = 64
    layers: int = 1
    #: dropout that perturbs the (stop-gradient) target views
    dropout: float = 0.5
    #: weight of `norm_reg` on the encoder outputs
    reg: float = 0.1
    #: weight of the modality alignment and masked-feature losses
    cl_weight: float = 2.0
    modalities: tuple[str, ...] = ("image", "text")

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.modalities:
            raise ValueError("BM3 needs at least one modality")


def cosine_loss(online: Tensor, target: Tensor) -> Tensor:
    """1 - mean cosine similarity between matching rows (the target is never differentiated)."""
    return 1.0 - cosine_similarity(online, target.detach(), dim=-1).mean()


class BM3(Recommender):
    """LightGCN ID encoder + projected modality features, trained by predicting dropout-perturbed targets."""

    Config = BM3Config

    def __init__(self, ds: Dataset, config: BM3Config = BM3Config()):
        super().__init__()
        ds.require_features(config.modalities, "BM3")
        self.config = config
        self.n_users = ds.n_users
        self.embedding = nn.Embedding(ds.n_users + ds.n_items, config.dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        self.propagate = LightGCNPropagation(to_torch_sparse(user_item_adjacency(ds)), config.layers)
        self.predictor = nn.Linear(config.dim, config.dim)
        nn.init.xavier_normal_(self.predictor.weight)
        for m in config.modalities:
            self.register_buffer(f"feat_{m}", torch.from_numpy(ds.item_features[m]))
        self.project = nn.ModuleDict({m: nn.Linear(ds.item_features[m].shape[1], config.dim)
                                      for m in config.modalities})
        for proj in self.project.values():
            nn.init.xavier_normal_(proj.weight)

    def encode(self) -> tuple[Tensor, Tensor]:
        """(h_u, h_i): LightGCN outputs, the item's ego ID embedding added to its propagated one."""
        ego = self.embedding.weight
        out = self.propagate(ego)
        user, item = users_items(out, self.n_users)
        return user, item + ego[self.n_users:]

    def forward(self) -> Embeddings:
        h_u, h_i = self.encode()
        return Embeddings(self.predictor(h_u), self.predictor(h_i), {"encoded_user": h_u, "encoded_item": h_i})

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        h_u, h_i = emb.extras["encoded_user"], emb.extras["encoded_item"]
        p = self.config.dropout
        target_u, target_i = dropout(h_u[users], p), dropout(h_i[pos], p)
        parts = {"rec": cosine_loss(emb.user[users], target_i) + cosine_loss(emb.item[pos], target_u)}
        for m, proj in self.project.items():
            h_m = proj(getattr(self, f"feat_{m}")[pos])
            online_m = self.predictor(h_m)
            parts[f"align_{m}"] = cosine_loss(online_m, target_i)
            parts[f"mask_{m}"] = cosine_loss(online_m, dropout(h_m, p))
        parts["reg"] = self.config.reg * norm_reg(h_u, h_i)
        modal = sum(parts[f"{kind}_{m}"] for m in self.project for kind in ("align", "mask"))
        parts["loss"] = parts["rec"] + self.config.cl_weight * modal + parts["reg"]
        return parts
