"""FREEDOM (Zhou et al., 2023): freeze the modality item-item graphs, prune the user-item graph.

Written from the paper's description:
- one cosine top-k kNN graph per modality, built once from the raw item features (unweighted
  edges; `graphs.knn_graph` excludes self and symmetrises), normalised D^-1/2 A D^-1/2 and
  combined with fixed weights into a single frozen item-item graph;
- item ID embeddings convolved over that item-item graph;
- LightGCN over the user-item graph, which during training is pruned by degree-sensitive edge
  dropout: a fraction of edges is kept, sampled without replacement with probability
  proportional to 1 / sqrt(deg_u deg_i), and the kept graph is re-normalised. FREEDOM draws a
  pruned graph once per epoch; the trainer here has no epoch hook, so a fresh one is drawn for
  every training batch (the same distribution, sampled more often). Evaluation uses the full graph;
- item representation = graph-convolved item + item-item-convolved item;
- loss: BPR on the final embeddings + reg * sum over modalities of a BPR term between the user
  and the linearly projected modality features of the positive and negative items.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Dataset
from ..graphs import compact_indices, knn_graph, sym_normalize, to_torch_sparse, user_item_adjacency
from .base import Embeddings, Recommender, bpr_loss, users_items
from .lightgcn import LightGCNPropagation


@dataclass(frozen=True)
class FREEDOMConfig:
    dim: int = 64
    ui_layers: int = 2
    ii_layers: int = 1
    knn_k: int = 10
    #: weight of the image graph when image is among several modalities; the rest share 1 - image_weight
    image_weight: float = 0.1
    #: fraction of user-item edges pruned during training
    edge_dropout: float = 0.8
    #: weight of the modality-feature BPR terms
    reg: float = 1e-4
    modalities: tuple[str, ...] = ("image", "text")

    def __post_init__(self) -> None:
        if not 0.0 <= self.edge_dropout < 1.0:
            raise ValueError(f"edge_dropout must be in [0, 1), got {self.edge_dropout}")
        if not 0.0 <= self.image_weight <= 1.0:
            raise ValueError(f"image_weight must be in [0, 1], got {self.image_weight}")
        if not self.modalities:
            raise ValueError("FREEDOM needs at least one modality")


def modality_weights(modalities: tuple[str, ...], image_weight: float) -> dict[str, float]:
    """Fixed graph weights: a single modality gets 1; with several, image gets `image_weight`
    and the others share the rest equally."""
    if len(modalities) == 1:
        return {modalities[0]: 1.0}
    others = [m for m in modalities if m != "image"]
    if len(others) == len(modalities):
        return {m: 1.0 / len(others) for m in others}
    return {"image": image_weight, **{m: (1.0 - image_weight) / len(others) for m in others}}


class FREEDOM(Recommender):
    """LightGCN on a pruned user-item graph + ID convolution on a frozen multimodal item-item graph."""

    Config = FREEDOMConfig

    def __init__(self, ds: Dataset, config: FREEDOMConfig = FREEDOMConfig()):
        super().__init__()
        ds.require_features(config.modalities, "FREEDOM")
        self.config = config
        self.n_users, self.n_items = ds.n_users, ds.n_items
        weights = modality_weights(config.modalities, config.image_weight)
        item_graph = sum(w * sym_normalize((knn_graph(ds.item_features[m], config.knn_k) != 0).astype("float32"))
                         for m, w in weights.items())
        self.register_buffer("item_graph", to_torch_sparse(item_graph))
        self.propagate = LightGCNPropagation(to_torch_sparse(user_item_adjacency(ds)), config.ui_layers)

        users, items = ds.split_pairs("train")
        self.register_buffer("edge_users", torch.tensor(users))
        self.register_buffer("edge_items", torch.tensor(items))
        deg_u = torch.bincount(self.edge_users, minlength=ds.n_users).float()
        deg_i = torch.bincount(self.edge_items, minlength=ds.n_items).float()
        self.register_buffer("keep_weight", (deg_u[self.edge_users] * deg_i[self.edge_items]).rsqrt())
        self.n_keep = max(1, int(round(len(users) * (1.0 - config.edge_dropout))))

        self.embedding = nn.Embedding(ds.n_users + ds.n_items, config.dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        for m in config.modalities:
            self.register_buffer(f"feat_{m}", torch.from_numpy(ds.item_features[m]))
        self.project = nn.ModuleDict({m: nn.Linear(ds.item_features[m].shape[1], config.dim, bias=False)
                                      for m in config.modalities})

    def pruned_graph(self) -> Tensor:
        """A degree-sensitively pruned, re-normalised user-item adjacency (sparse CSR)."""
        kept = torch.multinomial(self.keep_weight, self.n_keep, replacement=False)
        u, i = self.edge_users[kept], self.edge_items[kept] + self.n_users
        rows, cols = torch.cat([u, i]), torch.cat([i, u])
        deg = torch.bincount(rows, minlength=self.n_users + self.n_items).float()
        vals = (deg[rows] * deg[cols]).rsqrt()
        n = self.n_users + self.n_items
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n), check_invariants=False)
        return compact_indices(coo.coalesce().to_sparse_csr())

    def forward(self) -> Embeddings:
        ego = self.embedding.weight
        h = ego[self.n_users:]
        for _ in range(self.config.ii_layers):
            h = torch.sparse.mm(self.item_graph, h)
        out = self.propagate(ego, self.pruned_graph() if self.training else None)
        user, item = users_items(out, self.n_users)
        return Embeddings(user, item + h)

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        emb = self()
        u = emb.user[users]
        parts = {"bpr": bpr_loss(u, emb.item[pos], emb.item[neg])}
        for m, proj in self.project.items():
            f = proj(getattr(self, f"feat_{m}")[torch.cat([pos, neg])])
            parts[f"bpr_{m}"] = bpr_loss(u, *f.split(len(pos)))
        parts["loss"] = parts["bpr"] + self.config.reg * sum(parts[f"bpr_{m}"] for m in self.project)
        return parts
