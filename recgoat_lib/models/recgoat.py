"""RecGOAT: graph attention over three relations, CMCL (instance alignment) and OAT (distribution alignment).

Defaults follow the paper's intent; every place where the released code departs is a
config switch with the released behaviour one value away (see `RecGOATConfig`):

- `cl_sign="released"`: minimise 1 - InfoNCE for the modality pairs (pushes views apart);
- `sinkhorn="released"`: fp32 scaling Sinkhorn, whose plan underflows to 0 at s / eps = 1e4;
- `user_branch=False`: no user-user LM branch (the released one crashes and is unused);
- `infonce="one_way"`: InfoNCE in the direction a->b only;
- `cl_items="batch"`: modality pairs over the batch's positives and, separately, its negatives,
  duplicates kept (the default uses the unique items of both);
- `init="normal"`: ID embeddings drawn from N(0, 0.1^2) instead of Xavier-uniform.
Training-level departures (negatives that may be positives, selection on test NDCG@10 with
dropout on) are `TrainConfig(exclude_train_negatives=False, selection="released")`.

How the user LM branch is used the paper does not say; its score is z_u^cf . z_i^fused.
`user_fusion="align"` (default) keeps that score and aligns the user LM vector with the CF
user vector through one more CMCL pair (z_u^cf, z_u^lm), the user-side twin of the item
modality pairs; `user_fusion="sum"` instead scores with z_u = z_u^cf + z_u^lm (our earlier
reading, measured in notebook 08).

Paper to code (the equations are in docs/paper.md; the README's "Paper to code" table covers the
whole library):

| paper step                                      | code                                                    | notebook |
|-------------------------------------------------|---------------------------------------------------------|----------|
| docs/paper.md#step-1-lm-representations         | inputs: lm.with_lm_features, images.with_image_features | 02       |
| docs/paper.md#user-item-graph-lightgcn          | self.propagate (lightgcn.LightGCNPropagation)           | 03       |
| docs/paper.md#item-item-graphs-gat-per-modality | self.branches (GraphAttentionBranch, gat.SparseGATConv) | 03       |
| docs/paper.md#user-user-graph                   | self.user_lm (GraphAttentionBranch on user LM features) | 03, 08   |
| docs/paper.md#step-3-cmcl                       | RecGOAT.loss (base.info_nce)                            | 04       |
| docs/paper.md#dimension-cost                    | RecGOAT._transport (ot.dimension_cost)                  | 05       |
| docs/paper.md#sinkhorn                          | RecGOAT._transport (ot.transport_plan)                  | 05       |
| docs/paper.md#residual-and-fusion               | RecGOAT._transport (self.delta), RecGOAT.forward        | 05, 08   |
| docs/paper.md#step-5-prediction-and-loss        | Recommender.score, RecGOAT.loss (base.bpr_loss)         | 07       |
| docs/paper.md#departures-of-the-released-code   | RecGOATConfig switches, train.TrainConfig               | 08       |
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import DataError, Dataset
from ..graphs import in_neighbourhood, knn_graph, to_torch_sparse, user_item_adjacency, with_self_loops
from ..ot import SINKHORN_METHODS, dimension_cost, plan_diagnostics, transport_plan
from .base import Embeddings, Recommender, batch_rows, bpr_loss, evaluating, info_nce, l2_reg, users_items
from .gat import SparseGATConv
from .lightgcn import LightGCNPropagation

FUSIONS = ("oat", "concat", "sum")
USER_FUSIONS = ("align", "sum")
CL_SIGNS = ("paper", "released")
CL_USER_SIGNS = ("paper", "flipped")
INFONCE = ("symmetric", "one_way")
CL_ITEMS = ("unique", "batch")
GAT_ACTIVATIONS = ("leaky_relu", "none")
INITS = ("xavier", "normal")
ITEM_NORMS = ("ln_l2", "none")
NORMAL_INIT_STD = 0.1  # the released code's N(0, 0.1^2) embedding initialisation
LOGGED_EXTRAS = ("fusion_", "plan_mass_", "plan_row_error_", "plan_col_error_")  # scalars shown in training history


@dataclass(frozen=True)
class RecGOATConfig:
    """RecGOAT hyper-parameters (paper values unless noted) and the released-code switches.

    fusion: "oat" (transport-aligned weighted sum, the model), "sum" (the same weighted sum
    of unaligned views: RecGOAT without OAT) or "concat" (Linear over [Z^cf, Z^m...]).
    fusion_init_image / fusion_init_text: initial learnable weights a, b (unconstrained).
    modalities=() leaves the LM item views out (the "ID only" ablation: fused item = CF item,
    no modality pairs, so CMCL is its user-item term times 1 - cl_modality_share).
    gat_layers=0 keeps each LM view's projection but no graph attention (the "w/o modality
    GAT" ablation); the paper uses one GAT layer.
    gat_feat_dropout, gat_activation, gat_out_dropout: dropout on each GAT layer's input features,
    then LeakyReLU(0.2) ("leaky_relu") or nothing ("none") and dropout on its output. The paper
    gives the layer LeakyReLU(0.2) and dropout 0.1; the released code places them so (its DGL
    GATConv has feat_drop 0.1, and LeakyReLU(0.2) and dropout 0.1 follow the layer). `dropout` is
    the attention dropout inside the layer and the dropout after fusion.
    init: ID embeddings Xavier-uniform ("xavier") or N(0, 0.1^2) ("normal", the released code).
    The paper does not state this initialisation, so Xavier (our choice before the audit) stays.
    item_norm: the fused item vector through LayerNorm, dropout and L2 normalisation ("ln_l2", the
    paper and the released code), or scored as it is, as LightGCN scores ("none"; an investigation
    switch: unit items against unnormalised users fix the score scale, issue #17 item 8).
    infonce: "symmetric" (a->b and b->a averaged) or "one_way" (a->b only, the released code).
    The paper writes CMCL as InfoNCE with in-batch negatives without fixing a direction; the
    default keeps the symmetric reading and the one-way one is measured in notebook 08.
    cl_sign: sign of the item modality pairs, "paper" (minimise InfoNCE) or "released"
    (minimise 1 - InfoNCE). cl_user_sign: the same for the user pair (z_u^cf, z_u^lm), which
    the released code does not have: "paper" or "flipped" (1 - InfoNCE).
    cl_items: item rows of the modality pairs, "unique" (the unique items among the batch's
    positives and negatives) or "batch" (the released code: the pairs once over the positives and
    once over the negatives, duplicates kept, so a repeated item is its own negative; each pair's
    term is the mean of the two). The paper names the batch's positive and negative items only.
    user_fusion: how the user LM branch (user_branch=True) is used, "align" (a CMCL pair with
    the CF user vector; the score stays z_u^cf . z_i) or "sum" (z_u = z_u^cf + z_u^lm).
    """

    dim: int = 64
    layers: int = 3
    reg: float = 1e-4
    modalities: tuple[str, ...] = ("image", "text")
    knn_k: int = 20
    gat_layers: int = 1
    heads: int = 8
    dropout: float = 0.1
    gat_feat_dropout: float = 0.1
    gat_activation: str = "leaky_relu"
    gat_out_dropout: float = 0.1
    init: str = "xavier"
    item_norm: str = "ln_l2"
    user_branch: bool = True
    user_fusion: str = "align"
    cl_weight: float = 0.032
    cl_temperature: float = 0.2
    cl_modality_share: float = 0.5
    cl_sign: str = "paper"
    cl_user_sign: str = "paper"
    infonce: str = "symmetric"
    cl_items: str = "unique"
    ot_scale: float = 100.0
    ot_eps: float = 0.01
    ot_iters: int = 100
    sinkhorn: str = "log"
    fusion: str = "oat"
    fusion_init_image: float = 0.05
    fusion_init_text: float = 0.8

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        known = ("image", "text")
        if len(set(self.modalities)) != len(self.modalities) or not set(self.modalities) <= set(known):
            raise ValueError(f"modalities must be distinct names from {known}, got {self.modalities}")
        for name, value, allowed in (("fusion", self.fusion, FUSIONS), ("cl_sign", self.cl_sign, CL_SIGNS),
                                     ("sinkhorn", self.sinkhorn, SINKHORN_METHODS),
                                     ("user_fusion", self.user_fusion, USER_FUSIONS),
                                     ("cl_user_sign", self.cl_user_sign, CL_USER_SIGNS),
                                     ("infonce", self.infonce, INFONCE), ("cl_items", self.cl_items, CL_ITEMS),
                                     ("gat_activation", self.gat_activation, GAT_ACTIVATIONS),
                                     ("init", self.init, INITS), ("item_norm", self.item_norm, ITEM_NORMS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.gat_layers < 0:
            raise ValueError(f"gat_layers must be >= 0, got {self.gat_layers}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.cl_modality_share <= 1.0:
            raise ValueError(f"cl_modality_share must be in [0, 1], got {self.cl_modality_share}")
        for name in ("dropout", "gat_feat_dropout", "gat_out_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


def project_rows(proj: nn.Linear, x: Tensor, rows: Tensor | None) -> Tensor:
    """proj(x[rows]), or proj(x) when `rows` is None.

    When the rows are most of x (a batch's user neighbourhood on a kNN graph is ~90% of the users)
    and the projection narrows the features (d < the LM width), every row is projected and the
    d-wide rows are taken after: equal values, without copying a feature-wide [rows, 384] block
    per step (issue #16)."""
    if rows is None:
        return proj(x)
    if 2 * len(rows) >= len(x) and proj.out_features < x.shape[1]:
        return proj(x).index_select(0, rows)
    return proj(x[rows])


class GraphAttentionBranch(nn.Module):
    """One LM view on its kNN graph: Linear(d_feat -> d), then `gat_layers` multi-head GAT layers with
    self loops. Each layer has the paper's LeakyReLU(0.2) and dropout 0.1 where the released code puts
    them: dropout on its input features, attention (LeakyReLU(0.2) scores, attention dropout), then
    LeakyReLU(0.2) and dropout on its output (`RecGOATConfig.gat_feat_dropout`, `gat_activation`,
    `gat_out_dropout`; stacked layers are joined by that activation)."""

    def __init__(self, features: np.ndarray, c: RecGOATConfig):
        super().__init__()
        self.register_buffer("x", torch.as_tensor(features, dtype=torch.float32), persistent=False)
        self.register_buffer("edge_index", with_self_loops(knn_graph(features, c.knn_k)), persistent=False)
        self.proj = nn.Linear(features.shape[1], c.dim)
        self.gats = nn.ModuleList(SparseGATConv(c.dim, c.dim // c.heads, heads=c.heads, concat=True,
                                                negative_slope=0.2, dropout=c.dropout, add_self_loops=False)
                                  for _ in range(c.gat_layers))
        self.feat_dropout = nn.Dropout(c.gat_feat_dropout)
        self.after = nn.Sequential(nn.LeakyReLU(0.2) if c.gat_activation == "leaky_relu" else nn.Identity(),
                                   nn.Dropout(c.gat_out_dropout))

    def forward(self, targets: Tensor | None = None, upto: int | None = None) -> Tensor:
        """The view after all GAT layers (or the input of layer `upto`) of every node, or of
        `targets` only: those rows are computed on the targets' neighbourhood, with equal values."""
        gats = self.gats[:upto]
        if targets is None:
            nodes, edge_index, rows = None, self.edge_index, None
        elif len(gats):
            nodes, edge_index, rows = in_neighbourhood(self.edge_index, targets, len(gats), len(self.x))
        else:
            nodes, edge_index, rows = targets, None, None
        h = project_rows(self.proj, self.x, nodes)
        for gat in gats:
            h = self.after(gat(self.feat_dropout(h), edge_index))
        return h if rows is None else h[rows]

    @torch.no_grad()
    def attention(self) -> tuple[Tensor, Tensor]:
        """(edge_index [2, E] as (source, target), last GAT layer's attention per edge averaged over heads)."""
        if not self.gats:
            raise ValueError("this branch has no GAT layer (gat_layers=0)")
        last = len(self.gats) - 1
        h = self.forward(upto=last)
        _, (edge_index, alpha) = self.gats[last](self.feat_dropout(h), self.edge_index, return_attention_weights=True)
        return edge_index, alpha.mean(1)


class RecGOAT(Recommender):
    """LightGCN ID branch + one GAT branch per item modality (+ a user LM branch), fused by OAT."""

    Config = RecGOATConfig

    def __init__(self, ds: Dataset, config: RecGOATConfig = RecGOATConfig()):
        super().__init__()
        c = self.config = config
        ds.require_features(c.modalities, "RecGOAT")
        if c.user_branch and "text" not in ds.user_features:
            raise DataError(f"RecGOAT with user_branch=True needs user LM features user_features['text'], "
                            f"which dataset '{ds.name}' lacks (encode them with recgoat_lib.lm, or set "
                            f"user_branch=False as in the released code)")
        self.n_users = ds.n_users
        self.embedding = nn.Embedding(ds.n_users + ds.n_items, c.dim)
        if c.init == "normal":
            nn.init.normal_(self.embedding.weight, std=NORMAL_INIT_STD)
        else:
            nn.init.xavier_uniform_(self.embedding.weight)
        self.propagate = LightGCNPropagation(to_torch_sparse(user_item_adjacency(ds)), c.layers)
        self.branches = nn.ModuleDict({m: GraphAttentionBranch(ds.item_features[m], c) for m in c.modalities})
        self.user_lm = GraphAttentionBranch(ds.user_features["text"], c) if c.user_branch else None
        init = {"image": c.fusion_init_image, "text": c.fusion_init_text}
        if c.fusion == "concat":
            self.concat = nn.Linear(c.dim * (len(c.modalities) + 1), c.dim)
        else:
            self.weights = nn.ParameterDict({m: nn.Parameter(torch.tensor(init[m])) for m in c.modalities})
        if c.fusion == "oat":
            self.delta = nn.ParameterDict({m: nn.Parameter(nn.init.xavier_uniform_(torch.empty(c.dim, c.dim)))
                                           for m in c.modalities})
        self.norm = nn.LayerNorm(c.dim)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, users: Tensor | None = None, user_lm: bool = True) -> Embeddings:
        """Every item's row; every user's row, or only the rows of `users` (a training batch: the
        user LM branch then runs on their neighbourhood alone). `user_lm=False` skips the user LM
        branch where the scores do not read it (user_fusion="align"; see `ranking_forward`)."""
        c = self.config
        # Step 2: LightGCN over the normalised user-item graph (docs/paper.md#user-item-graph-lightgcn)
        out = self.propagate(self.embedding.weight)
        user, item_cf = users_items(out, self.n_users)
        if users is not None:
            user = user[users]
        # Step 2: Linear + GAT over each modality's item-item kNN graph
        # (docs/paper.md#item-item-graphs-gat-per-modality)
        views = {m: branch() for m, branch in self.branches.items()}
        extras: dict[str, Tensor] = {"user_cf": user, "item_cf": item_cf, **{f"item_{m}": v for m, v in views.items()}}
        # Step 2: GAT over the user-user kNN graph of the user LM features (docs/paper.md#user-user-graph); with
        # user_fusion="align" it enters only CMCL (Step 3, in self.loss)
        if self.user_lm is not None and (user_lm or c.user_fusion == "sum"):
            extras["user_lm"] = self.user_lm(users)
            if c.user_fusion == "sum":
                user = user + extras["user_lm"]

        # Ablation fusion="concat": a linear layer over [Z^cf, Z^m...] replaces OAT and the weighted sum
        if c.fusion == "concat":
            fused = self.concat(torch.cat([item_cf, *views.values()], dim=1))
        else:
            # Step 4: OAT, Z^m (T^m + Delta^m) with T^m from Sinkhorn on the dimension cost (docs/paper.md#step-4-oat)
            if c.fusion == "oat" and views:
                views = self._transport(views, item_cf, extras)
            # Step 4: fusion (1 - a - b) Z^cf + a Z^img + b Z^txt, learnable a, b (docs/paper.md#residual-and-fusion)
            fused = (1.0 - sum(self.weights.values())) * item_cf
            for m, v in views.items():
                fused = fused + self.weights[m] * v
                extras[f"fusion_{m}"] = self.weights[m].detach()
        # Step 4: LayerNorm, dropout, L2 normalisation (docs/paper.md#residual-and-fusion); Step 5 scores
        # user . item (docs/paper.md#step-5-prediction-and-loss)
        item = F.normalize(self.dropout(self.norm(fused)), dim=1) if c.item_norm == "ln_l2" else fused
        return Embeddings(user, item, extras)

    def ranking_forward(self) -> Embeddings:
        """`forward()` without the user LM branch over all users when the scores do not read it
        (user_fusion="align") and it draws no dropout masks (eval mode): the same scores, and the
        random stream of a run unchanged, for an evaluation's least part of the work."""
        return self(user_lm=self.training)

    def _transport(self, views: dict[str, Tensor], item_cf: Tensor, extras: dict[str, Tensor]) -> dict[str, Tensor]:
        """Z^m (T^m + Delta^m) per modality; T^m from Sinkhorn on the detached cost, all modalities at once."""
        c = self.config
        with torch.autocast(item_cf.device.type, enabled=False):  # the cost and Sinkhorn in fp32 under bf16 autocast
            cost = torch.stack([dimension_cost(v.detach().float(), item_cf.detach().float(), c.ot_scale)
                                for v in views.values()])
            plans = transport_plan(cost, c.ot_eps, c.ot_iters, c.sinkhorn)
        diag = plan_diagnostics(plans)
        aligned = {}
        for j, (m, v) in enumerate(views.items()):
            aligned[m] = v @ (plans[j] + self.delta[m])
            extras.update({f"plan_{m}": plans[j], f"cost_{m}": cost[j], f"item_{m}_aligned": aligned[m],
                           **{f"plan_{key}_{m}": val[j] for key, val in diag.items()}})
        return aligned

    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]:
        c = self.config
        batch_users, inverse = torch.unique(users, return_inverse=True)
        emb = self(batch_users)
        u, p, n = emb.user[inverse], emb.item[pos], emb.item[neg]
        bpr = bpr_loss(u, p, n)
        reg = c.reg * l2_reg(*batch_rows(self.embedding.weight, self.n_users, users, pos, neg))
        logged = {k: v for k, v in emb.extras.items() if k.startswith(LOGGED_EXTRAS)}
        if c.cl_weight == 0:  # no CMCL: skip the InfoNCE terms (most of a step) instead of weighting them by 0
            return {"loss": bpr + reg, "bpr": bpr, "reg": reg, **logged}

        symmetric = c.infonce == "symmetric"
        # the fused item rows are unit length already; the user rows are normalised once per unique user (not per
        # duplicate in the batch) and, with user_fusion="align" (emb.user is z_u^cf), serve the user pair too
        unit_user = F.normalize(emb.user, dim=1)
        unit_p = p if c.item_norm == "ln_l2" else F.normalize(p, dim=1)
        cl_ui = info_nce(unit_user[inverse], unit_p, c.cl_temperature, symmetric, normalised=True)
        terms = []  # per CMCL pair, signed: the item modality pairs, then the user pair
        views = [emb.extras["item_cf"], *(emb.extras[f"item_{m}"] for m in c.modalities)]
        if len(views) > 1:
            row_sets = [torch.unique(torch.cat([pos, neg]))] if c.cl_items == "unique" else [pos, neg]
            per_set = []
            for rows in row_sets:
                unit = [F.normalize(v[rows], dim=1) for v in views]  # each view normalised once for all its pairs
                per_set.append(torch.stack([info_nce(a, b, c.cl_temperature, symmetric, normalised=True)
                                            for a, b in combinations(unit, 2)]))
            item_pairs = torch.stack(per_set).mean(0)
            terms.append(1.0 - item_pairs if c.cl_sign == "released" else item_pairs)
        if self.user_lm is not None and c.user_fusion == "align":
            user_pair = info_nce(unit_user, F.normalize(emb.extras["user_lm"], dim=1), c.cl_temperature, symmetric,
                                 normalised=True)
            terms.append((1.0 - user_pair if c.cl_user_sign == "flipped" else user_pair).reshape(1))
        cl_mod = torch.cat(terms).mean() if terms else torch.zeros((), device=u.device)
        cl = (1.0 - c.cl_modality_share) * cl_ui + c.cl_modality_share * cl_mod
        return {"loss": bpr + reg + c.cl_weight * cl, "bpr": bpr, "reg": reg, "cl": cl,
                "cl_ui": cl_ui, "cl_modality": cl_mod, **logged}

    @torch.no_grad()
    def views(self) -> dict[str, Tensor]:
        """The item views of one eval-mode forward, named as `item_views` names them (without OAT,
        "<m>_aligned" is the same tensor as "<m>")."""
        return item_views(self.eval_forward(), self.config.modalities)

    def attention(self, branch: str) -> tuple[Tensor, Tensor]:
        """Per-edge GAT attention of an item modality ("image", "text") or of the "user" branch."""
        if branch == "user":
            if self.user_lm is None:
                raise ValueError("this RecGOAT has no user branch (user_branch=False)")
            module = self.user_lm
        elif branch in self.branches:
            module = self.branches[branch]
        else:
            raise ValueError(f"unknown branch {branch!r}; this model has {list(self.branches)} and 'user'")
        with evaluating(self):
            return module.attention()


def item_views(emb: Embeddings, modalities: tuple[str, ...]) -> dict[str, Tensor]:
    """A RecGOAT forward's item views, the one vocabulary of the notebooks and the estimators: "id"
    (the LightGCN item vectors z_cf), then per modality "<m>" (its GAT output, before fusion) and
    "<m>_aligned" (after OAT; "<m>" itself when the model fuses without OAT), and "fused" (the
    scored item vectors)."""
    ex = emb.extras
    views = {"id": ex["item_cf"]}
    for m in modalities:
        views[m] = ex[f"item_{m}"]
        views[f"{m}_aligned"] = ex.get(f"item_{m}_aligned", views[m])
    return {**views, "fused": emb.item}
