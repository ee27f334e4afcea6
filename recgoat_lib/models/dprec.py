"""DPRec, RECONSTRUCTED: dual-perspective multi-level cross-modal recommendation with LLM features.

DPRec (Journal of Computer Research and Development, 2025) has no public code and no
public numbers; this module is the companion's reading of its description, not the
authors' model. Every choice below that the description leaves open is a guess and is
named as such, and the ablation switches let a comparison stand without trusting it:

- per modality, two encoding perspectives of LLM-derived item features:
  "memory" = what an entity holds itself (an item's own projected feature, a user's own
  free preference vector; no neighbourhood smoothing) and "expansion" = what its
  neighbourhood says (the projected features propagated over the frozen modality kNN
  item graph, lifted to users through the normalised interaction matrix); a learned
  sigmoid gate mixes them per entity and dimension (switch: `perspectives`);
- a LightGCN collaborative branch over the user-item graph;
- a learnable hypergraph per modality: items are softly assigned to `hyperedges` groups
  from their modality vector, users inherit their items' assignments, and the
  collaborative item embeddings are convolved item -> hyperedge -> item/user (guess: the
  messages are ID embeddings, the groups are modality-defined) (switch: `hypergraph`);
- symmetric InfoNCE between every pair of modalities at three levels: item vectors,
  user vectors and hyperedge-derived (group-level) user vectors (switch: `alignment`);
- BPR on score(u, i) = user . item with user = u_cf + mean_m user_m and
  item = i_cf + mean_m item_m.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch
from torch import Tensor, nn

from ..data import Dataset
from ..graphs import knn_graph, sym_normalize, to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, batch_rows, bpr_loss, info_nce, l2_reg, users_items
from .lightgcn import LightGCNPropagation

PERSPECTIVES = ("memory", "expansion")


@dataclass(frozen=True)
class DPRecConfig:
    """Hyper-parameters of the reconstructed DPRec; the switches are its ablations.

    `perspectives=("memory",)` / `("expansion",)` are the single-perspective ablations,
    `hypergraph=False` drops the hypergraphs, `alignment=False` the multi-level InfoNCE.
    The InfoNCE terms use at most `align_batch` random users and items of each training batch
    (in-batch negatives; the cost grows with the square of that number).
    """

    modalities: tuple[str, ...] = ("image", "text")
    dim: int = 64
    layers: int = 2
    knn_k: int = 10
    item_layers: int = 1
    perspectives: tuple[str, ...] = PERSPECTIVES
    hypergraph: bool = True
    hyperedges: int = 16
    alignment: bool = True
    align_weight: float = 0.05
    align_batch: int = 512
    temperature: float = 0.2
    reg: float = 1e-4

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ValueError("DPRec needs at least one modality")
        if not self.perspectives or set(self.perspectives) - set(PERSPECTIVES):
            raise ValueError(f"perspectives must be a non-empty subset of {PERSPECTIVES}, got {self.perspectives}")
        if self.alignment and len(self.modalities) < 2:
            raise ValueError("cross-modal alignment needs at least two modalities; set alignment=False")
        if self.align_batch < 2:
            raise ValueError(f"align_batch must be at least 2, got {self.align_batch}")
        if self.hypergraph and self.hyperedges < 2:
            raise ValueError(f"hyperedges must be at least 2, got {self.hyperedges}")


class ModalityEncoder(nn.Module):
    """One modality's dual-perspective (and optionally hypergraph) user and item vectors."""

    def __init__(self, features: Tensor, knn: Tensor, interactions: Tensor, n_users: int, config: DPRecConfig):
        super().__init__()
        self.perspectives = config.perspectives
        self.register_buffer("features", features)
        self.register_buffer("interactions", interactions)
        self.project = nn.Linear(features.shape[1], config.dim)
        if "memory" in self.perspectives:
            self.user_memory = nn.Embedding(n_users, config.dim)
            nn.init.xavier_uniform_(self.user_memory.weight)
        if "expansion" in self.perspectives:
            self.expand = LightGCNPropagation(knn, config.item_layers)
        if len(self.perspectives) == 2:
            self.gate = nn.Linear(2 * config.dim, config.dim)
        self.assign = nn.Linear(config.dim, config.hyperedges) if config.hypergraph else None

    def forward(self, item_cf: Tensor) -> dict[str, Tensor]:
        """user/item vectors of this modality, plus the hypergraph user vectors when enabled."""
        local = self.project(self.features)
        views = {}
        if "memory" in self.perspectives:
            views["memory"] = (self.user_memory.weight, local)
        if "expansion" in self.perspectives:
            item = self.expand(local)
            views["expansion"] = (self.interactions @ item, item)
        if len(views) == 1:
            user, item = next(iter(views.values()))
        else:
            (um, im), (ue, ie) = views["memory"], views["expansion"]
            g_user = torch.sigmoid(self.gate(torch.cat([um, ue], 1)))
            g_item = torch.sigmoid(self.gate(torch.cat([im, ie], 1)))
            user, item = g_user * um + (1 - g_user) * ue, g_item * im + (1 - g_item) * ie
        out = {"user": user, "item": item}
        if self.assign is not None:
            h_item = torch.softmax(self.assign(item), dim=1)
            h_user = self.interactions @ h_item
            edges = (h_item / h_item.sum(0, keepdim=True)).T @ item_cf
            out["hyper_user"], out["hyper_item"] = h_user @ edges, h_item @ edges
            out["user"], out["item"] = user + out["hyper_user"], item + out["hyper_item"]
        return out


class DPRec(Recommender):
    """Reconstructed DPRec (no public code): LightGCN + dual-perspective modality encoders +
    per-modality learnable hypergraphs + item/user/hyperedge-level cross-modal InfoNCE; BPR."""

    Config = DPRecConfig

    def __init__(self, ds: Dataset, config: DPRecConfig = DPRecConfig()):
        super().__init__()
        ds.require_features(config.modalities, "DPRec")
        self.config = config
        self.n_users = ds.n_users
        self.embedding = nn.Embedding(ds.n_users + ds.n_items, config.dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        adjacency = user_item_adjacency(ds)
        self.propagate = LightGCNPropagation(to_torch_sparse(adjacency), config.layers)
        interactions = to_torch_sparse(adjacency[: ds.n_users, ds.n_users:])
        self.modalities = nn.ModuleDict({
            m: ModalityEncoder(torch.from_numpy(ds.item_features[m]),
                               to_torch_sparse(sym_normalize(knn_graph(ds.item_features[m], config.knn_k))),
                               interactions, ds.n_users, config)
            for m in config.modalities
        })

    def forward(self) -> Embeddings:
        cf = self.propagate(self.embedding.weight)
        user_cf, item_cf = users_items(cf, self.n_users)
        views = {m: enc(item_cf) for m, enc in self.modalities.items()}
        user = user_cf + torch.stack([v["user"] for v in views.values()]).mean(0)
        item = item_cf + torch.stack([v["item"] for v in views.values()]).mean(0)
        extras = {f"{m}_{k}": t for m, v in views.items() for k, t in v.items()}
        return Embeddings(user, item, extras)

    def alignment_loss(self, emb: Embeddings, users: Tensor, items: Tensor) -> Tensor:
        """Mean symmetric InfoNCE over modality pairs at item, user and hyperedge level."""
        levels = [("item", items), ("user", users)] + ([("hyper_user", users)] if self.config.hypergraph else [])
        terms = [info_nce(emb.extras[f"{a}_{lvl}"][idx], emb.extras[f"{b}_{lvl}"][idx], self.config.temperature)
                 for a, b in combinations(self.config.modalities, 2) for lvl, idx in levels]
        return torch.stack(terms).mean()

    def _subsample(self, ids: Tensor) -> Tensor:
        return ids[torch.randperm(len(ids), device=ids.device)[: self.config.align_batch]]

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        bpr = bpr_loss(emb.user[users], emb.item[pos], emb.item[neg])
        reg = self.config.reg * l2_reg(*batch_rows(self.embedding.weight, self.n_users, users, pos, neg))
        out = {"loss": bpr + reg, "bpr": bpr, "reg": reg}
        if self.config.alignment:
            align = self.alignment_loss(emb, self._subsample(users.unique()), self._subsample(pos.unique()))
            out["align"] = align
            out["loss"] = out["loss"] + self.config.align_weight * align
        return out
