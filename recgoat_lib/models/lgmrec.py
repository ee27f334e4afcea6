"""LGMRec (Guo et al., AAAI 2024): local graph embeddings plus global hypergraph embeddings.

Written from the paper's description:
- local collaborative embedding E^c: LightGCN over the user-item graph on ID embeddings;
- local modality embedding per modality m: items get their projected features F_m W_m, users the
  mean of their training items' projected features, and the pair is propagated `mm_layers` times
  over the same normalised user-item graph (last layer kept, no ID embeddings: modality-only);
- global hypergraph embedding per modality: A learnable hyperedges; item i belongs to them with
  weights H_i = softmax over hyperedges of (f_i V_m / tau) (Gumbel-softmax during training), a user
  with H_u from the sum of its items' logits; hyperedge dropout keeps a `keep_rate` share of
  memberships; one HGNN layer maps E^c_items -> hyperedges (H_i^T E) -> users and items (H_u, H_i);
- fusion: E = E^c + sum_m normalize(E^m) + alpha * normalize(sum_m E^hyper_m);
- loss: BPR on E + cl_weight * cross-modal InfoNCE (tau) between the hypergraph embeddings of
  two modalities, against all users / all items, summed over the batch (not averaged, as in
  MMRec) + reg * `norm_reg` of the batch's final embeddings.

Defaults are MMRec's LGMRec.yaml (its Baby setting): n_ui_layers 2, n_mm_layers 2, n_hyper_layer 1,
hyper_num 4, keep_rate 0.5, alpha 0.3, cl_weight 1e-4, reg_weight 1e-6, tau 0.2, dim 64. (Its
commented Sports setting is keep_rate 0.4, alpha 0.6; Clothing n_hyper_layer 2, hyper_num 64,
keep_rate 0.2, alpha 0.2.)

Departures from MMRec's code: it is written for exactly image + text and, with one modality,
silently falls back to plain LightGCN (then fails in the loss). Here any non-empty set of
modalities works: the local and global terms sum over the modalities present and the
contrastive loss runs over every ordered pair (a, b), a before b in `modalities` (the single pair
image -> text for MMRec's setting; none with one modality). Evaluation uses the plain softmax
(no Gumbel noise, no hyperedge dropout), so scores are deterministic; MMRec samples Gumbel noise
at evaluation too.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import scipy.sparse as sp
import torch
from torch import Tensor, nn
from torch.nn.functional import cross_entropy, gumbel_softmax, normalize, softmax

from ..data import Dataset
from ..graphs import to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, bpr_loss, norm_reg, users_items
from .lightgcn import LightGCNPropagation, SymmetricSpMM


@dataclass(frozen=True)
class LGMRecConfig:
    dim: int = 64
    ui_layers: int = 2
    mm_layers: int = 2
    hyper_layers: int = 1
    hyper_num: int = 4
    #: share of hyperedge memberships kept by dropout during training
    keep_rate: float = 0.5
    #: weight of the global (hypergraph) embedding in the fusion
    alpha: float = 0.3
    #: temperature of the hyperedge (Gumbel-)softmax and of the contrastive loss
    tau: float = 0.2
    cl_weight: float = 1e-4
    reg: float = 1e-6
    modalities: tuple[str, ...] = ("image", "text")

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_rate <= 1.0:
            raise ValueError(f"keep_rate must be in (0, 1], got {self.keep_rate}")
        if self.hyper_num < 1 or self.hyper_layers < 1:
            raise ValueError(f"hyper_num and hyper_layers must be >= 1, got {self.hyper_num}, {self.hyper_layers}")
        if self.tau <= 0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if not self.modalities:
            raise ValueError("LGMRec needs at least one modality")


def hypergraph_conv(h_item: Tensor, h_user: Tensor, x_item: Tensor, layers: int) -> tuple[Tensor, Tensor]:
    """HGNN over item hyperedges: items -> hyperedges (H_i^T X) -> items (H_i .) and users (H_u .)."""
    for _ in range(layers):
        edges = h_item.T @ x_item
        x_item = h_item @ edges
    return h_user @ edges, x_item


def cross_modal_nce(a: Tensor, b_all: Tensor, rows: Tensor, tau: float) -> Tensor:
    """-sum_r log softmax_j(cos(a_r, b_j) / tau)[rows_r]: row r of `a` against every row of `b_all`,
    the positive being the same user (item) in the other modality; summed over the batch."""
    logits = normalize(a) @ normalize(b_all).T / tau
    return cross_entropy(logits, rows, reduction="sum")


class LGMRec(Recommender):
    """Local (LightGCN + modality graph) and global (learned hypergraph) embeddings; BPR + cross-modal InfoNCE."""

    Config = LGMRecConfig

    def __init__(self, ds: Dataset, config: LGMRecConfig = LGMRecConfig()):
        super().__init__()
        ds.require_features(config.modalities, "LGMRec")
        self.config = config
        self.n_users = ds.n_users
        self.propagate = LightGCNPropagation(to_torch_sparse(user_item_adjacency(ds)), config.ui_layers)
        r = ds.csr("train")
        self.register_buffer("interactions", to_torch_sparse(r))
        self.register_buffer("user_mean", to_torch_sparse(sp.diags(1.0 / r.getnnz(axis=1).clip(min=1)) @ r))
        self.embedding = nn.Embedding(ds.n_users + ds.n_items, config.dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        for m in config.modalities:
            self.register_buffer(f"feat_{m}", torch.from_numpy(ds.item_features[m]))
        self.project = nn.ModuleDict({m: nn.Linear(ds.item_features[m].shape[1], config.dim, bias=False)
                                      for m in config.modalities})
        self.hyper = nn.ModuleDict({m: nn.Linear(ds.item_features[m].shape[1], config.hyper_num, bias=False)
                                    for m in config.modalities})
        for w in [*self.project.values(), *self.hyper.values()]:
            nn.init.xavier_uniform_(w.weight)
        self.edge_dropout = nn.Dropout(1.0 - config.keep_rate)

    def modality_graph_embedding(self, m: str) -> Tensor:
        """E^m: [user means; items] of F_m W_m, propagated `mm_layers` times (last layer)."""
        items = self.project[m](getattr(self, f"feat_{m}"))
        x = torch.cat([torch.sparse.mm(self.user_mean, items), items])
        for _ in range(self.config.mm_layers):
            x = SymmetricSpMM.apply(self.propagate.adj, x)
        return x

    def hyperedges(self, m: str) -> tuple[Tensor, Tensor]:
        """(H_item, H_user): soft hyperedge memberships from modality m's features, memberships dropped out."""
        logits_item = self.hyper[m](getattr(self, f"feat_{m}"))
        logits_user = torch.sparse.mm(self.interactions, logits_item)
        if self.training:
            h_item, h_user = (gumbel_softmax(x, self.config.tau, dim=1) for x in (logits_item, logits_user))
        else:
            h_item, h_user = (softmax(x / self.config.tau, dim=1) for x in (logits_item, logits_user))
        return self.edge_dropout(h_item), self.edge_dropout(h_user)

    def forward(self) -> Embeddings:
        cf = self.propagate(self.embedding.weight)
        local = cf + sum(normalize(self.modality_graph_embedding(m)) for m in self.project)
        extras = {}
        for m in self.project:
            h_item, h_user = self.hyperedges(m)
            user, item = hypergraph_conv(h_item, h_user, cf[self.n_users:], self.config.hyper_layers)
            extras[f"hyper_user_{m}"], extras[f"hyper_item_{m}"] = user, item
        hyper = sum(torch.cat([extras[f"hyper_user_{m}"], extras[f"hyper_item_{m}"]]) for m in self.project)
        out = local + self.config.alpha * normalize(hyper)
        return Embeddings(*users_items(out, self.n_users), extras)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        u, i_pos, i_neg = emb.user[users], emb.item[pos], emb.item[neg]
        x = emb.extras
        cl = u.new_zeros(())
        for a, b in combinations(self.project, 2):
            cl = cl + cross_modal_nce(x[f"hyper_user_{a}"][users], x[f"hyper_user_{b}"], users, self.config.tau)
            cl = cl + cross_modal_nce(x[f"hyper_item_{a}"][pos], x[f"hyper_item_{b}"], pos, self.config.tau)
        parts = {"bpr": bpr_loss(u, i_pos, i_neg), "cl": self.config.cl_weight * cl,
                 "reg": self.config.reg * norm_reg(u, i_pos, i_neg)}
        parts["loss"] = parts["bpr"] + parts["cl"] + parts["reg"]
        return parts
