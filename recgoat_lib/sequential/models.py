"""Sequential models: the interface every one implements, SASRec and GRU4Rec backbones, and DMESR, RECONSTRUCTED.

DMESR (arXiv 2602.13715) has no public code and no public numbers; `DMESR` below is the
companion's reading of its description, not the authors' model: frozen LM item views
(an MLLM-written view and the original-text view), a trainable adapter per view, a
symmetric InfoNCE aligning the two adapted views, bidirectional (causal) cross-attention
between the coarse view sequence and the original-text view sequence, one backbone per
fused view, and the two user states concatenated. Guesses the description leaves open:
adapters are two-layer MLPs; cross-attention runs over sequence positions with a causal
mask (so no position sees a later item), one residual block per direction; items are
scored against the concatenation of their two adapted views; training is full-softmax
next-item cross-entropy plus `align_weight` x InfoNCE over the batch's target items.
On toy the MLLM-written view is the generated image description, so the InfoNCE pairs it
with the original text (the paper pairs MLLM visual and textual descriptions).

`SASRec(item_input="id")` is the ID baseline, `SASRec(item_input="lm")` the LM-feature
baseline without alignment or fusion (both views concatenated through one adapter).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..models.base import info_nce
from .data import PAD, SequenceData

BACKBONES = ("sasrec", "gru4rec")


def embed(table: Tensor, seqs: Tensor) -> Tensor:
    """Look up item vectors for padded id sequences (padding -> zero vector)."""
    return nn.functional.pad(table, (0, 0, 1, 0))[seqs]


class SequentialRecommender(nn.Module, ABC):
    """A next-item model: `encode` maps padded sequences to a state after every position,
    `item_table` gives the vectors states are scored against, and `loss` is full-softmax
    cross-entropy at every non-padding position (subclasses add terms)."""

    @abstractmethod
    def encode(self, seqs: Tensor) -> Tensor:
        """[B, L] padded ids -> [B, L, d] states."""

    @abstractmethod
    def item_table(self) -> Tensor:
        """[n_items, d] item vectors (row i is item i, no padding row)."""

    def scores(self, seqs: Tensor) -> Tensor:
        """[B, n_items] scores of the next item after each sequence."""
        return self.encode(seqs)[:, -1] @ self.item_table().T

    def loss(self, seqs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        keep = targets != PAD
        logits = self.encode(seqs)[keep] @ self.item_table().T
        ce = nn.functional.cross_entropy(logits, targets[keep] - 1)
        return {"loss": ce, "ce": ce}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def attention_mask(seqs: Tensor, heads: int) -> Tensor:
    """[B*heads, L, L] boolean mask (True = blocked): causal, padding keys blocked, the
    diagonal always open so that padding rows still have one key (their output is unused)."""
    length = seqs.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=seqs.device).triu(1)
    mask = causal[None] | (seqs == PAD)[:, None, :]
    mask &= ~torch.eye(length, dtype=torch.bool, device=seqs.device)[None]
    return mask.repeat_interleave(heads, dim=0)


class SASRecEncoder(nn.Module):
    """SASRec (Kang & McAuley, 2018): learned positions + causal pre-LN Transformer blocks."""

    def __init__(self, dim: int, max_len: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.position = nn.Embedding(max_len, dim)
        block = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, seqs: Tensor) -> Tensor:
        pos = self.position(torch.arange(seqs.shape[1], device=seqs.device))
        x = self.dropout(x + pos) * (seqs != PAD)[..., None]
        return self.norm(self.blocks(x, mask=attention_mask(seqs, self.heads)))


class GRU4RecEncoder(nn.Module):
    """GRU4Rec (Hidasi et al., 2016): a GRU over the item sequence (left padding is zeros)."""

    def __init__(self, dim: int, layers: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=layers, batch_first=True)

    def forward(self, x: Tensor, seqs: Tensor) -> Tensor:
        return self.gru(self.dropout(x))[0]


def backbone(name: str, dim: int, max_len: int, layers: int, heads: int, dropout: float) -> nn.Module:
    if name == "sasrec":
        return SASRecEncoder(dim, max_len, layers, heads, dropout)
    if name == "gru4rec":
        return GRU4RecEncoder(dim, layers, dropout)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


def adapter(d_in: int, dim: int) -> nn.Module:
    """Trainable projection of a frozen LM view into the model's space."""
    return nn.Sequential(nn.Linear(d_in, dim), nn.GELU(), nn.Linear(dim, dim))


def _require_views(data: SequenceData, names: tuple[str, ...], who: str) -> None:
    missing = [v for v in names if v not in data.views]
    if missing:
        raise ValueError(f"{who} needs LM item views {missing}; SequenceData has {sorted(data.views) or 'none'} "
                         f"(pass views=sequential.data.lm_views(ds))")


@dataclass(frozen=True)
class SASRecConfig:
    """`item_input="id"`: free item embeddings; "lm": the concatenated frozen LM views
    through one adapter (no alignment, no fusion)."""

    item_input: str = "id"
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.item_input not in ("id", "lm"):
            raise ValueError(f"item_input must be 'id' or 'lm', got {self.item_input!r}")


class SASRec(SequentialRecommender):
    """SASRec on item IDs or on frozen LM item features."""

    Config = SASRecConfig

    def __init__(self, data: SequenceData, config: SASRecConfig = SASRecConfig()):
        super().__init__()
        self.config = config
        if config.item_input == "id":
            self.items = nn.Embedding(data.n_items, config.dim)
            nn.init.normal_(self.items.weight, std=0.02)
        else:
            _require_views(data, ("mllm", "text"), "SASRec(item_input='lm')")
            self.register_buffer("features", torch.from_numpy(
                np.concatenate([data.views["mllm"], data.views["text"]], 1)))
            self.adapt = adapter(self.features.shape[1], config.dim)
        self.encoder = SASRecEncoder(config.dim, data.max_len, config.layers, config.heads, config.dropout)

    def item_table(self) -> Tensor:
        return self.items.weight if self.config.item_input == "id" else self.adapt(self.features)

    def encode(self, seqs: Tensor) -> Tensor:
        return self.encoder(embed(self.item_table(), seqs), seqs)


@dataclass(frozen=True)
class DMESRConfig:
    """Reconstructed DMESR; `alignment=False` / `fusion=False` are its ablations and
    `backbone="gru4rec"` the second backbone."""

    backbone: str = "sasrec"
    coarse_view: str = "mllm"
    fine_view: str = "text"
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    alignment: bool = True
    align_weight: float = 0.1
    temperature: float = 0.2
    fusion: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.coarse_view == self.fine_view:
            raise ValueError("coarse_view and fine_view must differ")


class CrossAttention(nn.Module):
    """One direction of the view fusion: queries from one view sequence, keys/values from the
    other, causal; residual + LayerNorm."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, query: Tensor, context: Tensor, seqs: Tensor) -> Tensor:
        out = self.attn(query, context, context, attn_mask=attention_mask(seqs, self.heads), need_weights=False)[0]
        return self.norm(query + out)


class DMESR(SequentialRecommender):
    """Reconstructed DMESR (no public code): dual LM views -> adapters -> InfoNCE alignment ->
    bidirectional cross-attention -> one backbone per fused view -> concatenated user state."""

    Config = DMESRConfig

    def __init__(self, data: SequenceData, config: DMESRConfig = DMESRConfig()):
        super().__init__()
        self.config = config
        self.view_names = (config.coarse_view, config.fine_view)
        _require_views(data, self.view_names, "DMESR")
        for name in self.view_names:
            self.register_buffer(f"view_{name}", torch.from_numpy(data.views[name]))
        self.adapters = nn.ModuleDict({v: adapter(data.views[v].shape[1], config.dim) for v in self.view_names})
        if config.fusion:
            self.cross = nn.ModuleDict({v: CrossAttention(config.dim, config.heads, config.dropout)
                                        for v in self.view_names})
        self.backbones = nn.ModuleDict({v: backbone(config.backbone, config.dim, data.max_len, config.layers,
                                                    config.heads, config.dropout) for v in self.view_names})

    def views(self) -> dict[str, Tensor]:
        """Each view's adapted item table [n_items, dim]."""
        return {v: self.adapters[v](getattr(self, f"view_{v}")) for v in self.view_names}

    def item_table(self) -> Tensor:
        return torch.cat(list(self.views().values()), 1)

    def encode(self, seqs: Tensor) -> Tensor:
        coarse, fine = self.view_names
        x = {v: embed(t, seqs) for v, t in self.views().items()}
        if self.config.fusion:
            x = {coarse: self.cross[coarse](x[coarse], x[fine], seqs),
                 fine: self.cross[fine](x[fine], x[coarse], seqs)}
        return torch.cat([self.backbones[v](x[v], seqs) for v in self.view_names], -1)

    def loss(self, seqs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        out = super().loss(seqs, targets)
        if self.config.alignment:
            items = targets[targets != PAD].unique() - 1
            views = self.views()
            align = info_nce(views[self.view_names[0]][items], views[self.view_names[1]][items],
                             self.config.temperature)
            out["align"] = align
            out["loss"] = out["loss"] + self.config.align_weight * align
        return out


SEQUENTIAL_MODELS: dict[str, type[SequentialRecommender]] = {"sasrec": SASRec, "dmesr": DMESR}
