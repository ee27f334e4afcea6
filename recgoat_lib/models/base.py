"""The one interface every recommender implements, so trainer, evaluator and benchmarks never special-case a model."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Embeddings:
    """Final user and item representations of one forward pass, plus model-specific extras
    (pre-fusion views, OT diagnostics, attention weights) for notebooks and losses."""

    user: Tensor
    item: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)


class Recommender(nn.Module, ABC):
    """A top-K recommender trained with BPR triples.

    `forward()` computes all embeddings once; `loss(users, pos, neg)` returns a dict whose
    "loss" entry is optimised (other entries are logged); `score(emb, users)` gives full
    ranking scores [len(users), n_items] from a cached forward pass.
    """

    #: item modalities the model needs in `Dataset.item_features` (checked before building)
    required_features: tuple[str, ...] = ()

    @abstractmethod
    def forward(self) -> Embeddings: ...

    @abstractmethod
    def loss(self, users: Tensor, pos: Tensor, neg: Tensor) -> dict[str, Tensor]: ...

    def eval_forward(self) -> Embeddings:
        """One forward pass in eval mode (dropout off), leaving the module in the mode it was in."""
        was_training = self.training
        self.eval()
        try:
            return self()
        finally:
            self.train(was_training)

    def score(self, emb: Embeddings, users: Tensor) -> Tensor:
        return emb.user[users] @ emb.item.T

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def bpr_loss(u: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Bayesian personalised ranking: -log sigmoid(s(u, pos) - s(u, neg)), averaged."""
    return -nn.functional.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()


def l2_reg(*tensors: Tensor) -> Tensor:
    """MMRec's EmbLoss: squared L2 norm of the batch's ego embeddings, divided by batch size."""
    return sum(t.pow(2).sum() for t in tensors) / (2 * tensors[0].shape[0])


def norm_reg(*tensors: Tensor) -> Tensor:
    """MMRec's EmbLoss as BM3 and LGMRec use it: the tensors' unsquared Frobenius norms summed, divided by
    the row count of the last tensor (unlike `l2_reg`, the penalty grows linearly with the embedding scale)."""
    return sum(t.norm() for t in tensors) / tensors[-1].shape[0]


def info_nce(a: Tensor, b: Tensor, temperature: float, symmetric: bool = True, normalised: bool = False) -> Tensor:
    """InfoNCE with in-batch negatives: row i of `a` and row i of `b` are the positive pair, the
    other rows of the batch the negatives, on cosine similarity / `temperature`.

    `symmetric=True` averages both directions (a->b over the rows of the logits L, b->a over its
    columns); `symmetric=False` is a->b only, as in the released RecGOAT code. Both directions
    read the one product L = a_n @ b_n.T / temperature: the cross-entropy of row i is
    logsumexp(L[i, :]) - L[i, i], that of column i is logsumexp(L[:, i]) - L[i, i], so no second
    product and no transposed copy is made. `normalised=True` says the rows are already unit
    length (a caller that reuses one view in several pairs normalises it once).
    """
    if not normalised:
        a, b = nn.functional.normalize(a, dim=1), nn.functional.normalize(b, dim=1)
    logits = a @ b.T / temperature
    positive = logits.diagonal()
    loss = (torch.logsumexp(logits, dim=1) - positive).mean()
    if symmetric:
        loss = (loss + (torch.logsumexp(logits, dim=0) - positive).mean()) / 2
    return loss
