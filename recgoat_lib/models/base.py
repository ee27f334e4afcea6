"""The one interface every recommender implements, so trainer, evaluator and benchmarks never special-case a model."""
from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

M = TypeVar("M", bound=nn.Module)


@contextlib.contextmanager
def evaluating(module: M, eval_mode: bool = True) -> Iterator[M]:
    """Run the block with `module` in eval mode (dropout off; `eval_mode=False`: in training mode)
    and put it back in the mode it was in afterwards, also when the block raises. The one place
    that saves and restores a module's mode (evaluators, `eval_forward`, attention read-outs)."""
    was_training = module.training
    module.train(not eval_mode)
    try:
        yield module
    finally:
        module.train(was_training)


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
        with evaluating(self):
            return self()

    def ranking_forward(self) -> Embeddings:
        """The embeddings `score` needs, as `forward()` computes them (a model may skip extras that
        scoring does not read; the evaluator calls this)."""
        return self()

    def score(self, emb: Embeddings, users: Tensor) -> Tensor:
        return emb.user[users] @ emb.item.T

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def full_precision(t: Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on `t`'s device: the region computes in its inputs' dtype (fp32) under a bf16 training
    forward (`train.training_precision`), for sparse products (no bf16 kernel) and the sums and
    exponentials whose accuracy the losses need."""
    return torch.autocast(t.device.type, enabled=False)


def upcast(t: Tensor) -> Tensor:
    """`t` in fp32 when autocast made it bf16 or fp16; otherwise `t` itself (fp64 stays fp64)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def users_items(x: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
    """The rows [users; items] of `x` as (users, items) views. Their gradient is one concatenation,
    where two slices `x[:n]`, `x[n:]` would each zero-fill an [n_users + n_items, d] gradient and
    then add the two (issue #16)."""
    return x.split((n_users, len(x) - n_users))


def batch_rows(x: Tensor, n_users: int, users: Tensor, pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The rows of a batch's users, positive and negative items in [users; items] `x`, gathered at once.

    Three gathers would each scatter their gradient into its own zero-filled [n_users + n_items, d]
    tensor and autograd would then add the three; one gather scatters into one (issue #16)."""
    rows = torch.cat([users, n_users + pos, n_users + neg])
    return x.index_select(0, rows).split((len(users), len(pos), len(neg)))


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


#: below this temperature exp((cos - 1) / temperature) can underflow to 0 for a whole row (fp32 exp(-87) ~ 1e-38),
#: so `info_nce` falls back to max-shifted logsumexps through autograd there
FUSED_MIN_TEMPERATURE = 2.0 / 80.0
#: fewest rows per block of InfoNCE's logits on CPU: 64 rows of a 5,720-column block (1.5 MB) stay in L2
#: cache from the product through the exponential and both sums, and again through the gradient's
#: scaling and its two products, so the [n, n] logits cross memory once each way
_BLOCK_ROWS = 64


def _row_blocks(n: int, width: int, device: torch.device) -> list[slice]:
    """InfoNCE's row blocks on CPU: max(`_BLOCK_ROWS`, width) rows each, since every block also rewrites
    the [m, width] gradient it adds to, which outgrows the cache at large widths (at Sports' shapes on
    one thread, 64-row blocks made the step faster at d = 64 and slower at d = 600; blocks of about d
    rows were not slower than one block there; `benchmarks/floor.py` times the result). On a GPU one
    block of all rows: one large kernel beats many."""
    step = max(_BLOCK_ROWS, width) if device.type == "cpu" else max(n, 1)
    return [slice(start, start + step) for start in range(0, n, step)]


class LogitsBuffers:
    """[n, m] buffers for InfoNCE's logits, kept between training steps and reused (CPU only).

    A fresh tensor of that size (130 MB at 5,720 rows) is a fresh mapping from the C allocator, whose
    first write page-faults every page: on CPU that cost as much as the logits product itself. A step
    takes one buffer per InfoNCE term and gives it back after that term's backward, so a steady run
    allocates them once. At most `keep` buffers are held between steps; `release()` frees them (the
    trainer does so before each evaluation, so they never add to its peak memory). CUDA's caching
    allocator already reuses memory: there a plain allocation is made. One pool per thread.
    """

    def __init__(self, keep: int = 6, slack: float = 1.1):
        self.keep, self.slack = keep, slack
        self._local = threading.local()

    @property
    def free(self) -> list[Tensor]:
        if not hasattr(self._local, "free"):
            self._local.free = []
        return self._local.free

    def take(self, n: int, m: int, like: Tensor) -> Tensor:
        """An uninitialised [n, m] tensor of `like`'s dtype and device (a view of a flat pooled buffer on CPU)."""
        if like.device.type != "cpu":
            return torch.empty(n, m, dtype=like.dtype, device=like.device)
        fits = [i for i, buf in enumerate(self.free) if buf.dtype == like.dtype and buf.numel() >= n * m]
        if fits:
            flat = self.free.pop(min(fits, key=lambda i: self.free[i].numel()))
        else:
            flat = torch.empty(int(n * m * self.slack), dtype=like.dtype)
        return flat[: n * m].view(n, m)

    def give(self, t: Tensor) -> None:
        """Return a tensor from `take` (its flat buffer goes back to the pool; nothing else may use `t` after)."""
        if t.device.type == "cpu":
            flat = t if t._base is None else t._base
            self.free.append(flat)
            while len(self.free) > self.keep:
                self.free.pop(0)

    def release(self) -> None:
        self.free.clear()


LOGITS_BUFFERS = LogitsBuffers()


class _UnitInfoNCE(torch.autograd.Function):
    """InfoNCE of unit rows `a`, `b` with a hand-written backward: 3 products of the logits' size and
    one exponential, where autograd through two logsumexps pays each exponential twice more.

    The logits L = a b^T / t are bounded by 1/t (unit rows), so exp(L - 1/t) shifts by a
    constant instead of each row's and column's maximum: one E = exp(L - 1/t) serves the row
    sums, the column sums and the backward, dL = (E / r_i + E / c_j) / (2n) - I / n (one-way:
    E / r_i / n - I / n), and the gradients dL b / t and dL^T a / t are the only other products.
    dL is written over E (a fresh [n, n] buffer costs more than the arithmetic on it), so the
    graph can be back-propagated once only (no retain_graph, which nothing here uses).
    On CPU both passes go over row blocks (`_row_blocks`): each block's product, exponential and
    sums (forward), and its scaling and its share of both gradient products (backward), are done
    while the block is in cache; the values are those of the whole-matrix formulas.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, temperature: float, symmetric: bool) -> Tensor:
        a, b = upcast(a), upcast(b)  # fp32 under bf16 autocast too
        inv_t = 1.0 / temperature
        e = LOGITS_BUFFERS.take(len(a), len(b), a)  # E = exp(L - 1/t): the only [n, n] tensor kept
        shift, b_t = a.new_full((), -inv_t), b.T
        positive, row = a.new_empty(len(a)), a.new_empty(len(a))
        col = a.new_zeros(len(b)) if symmetric else None
        with full_precision(a):
            for rows in _row_blocks(len(a), a.shape[1], a.device):
                block = e[rows]
                torch.addmm(shift, a[rows], b_t, alpha=inv_t, out=block)  # L - 1/t
                torch.add(block.diagonal(offset=rows.start), inv_t, out=positive[rows])  # L_ii
                block.exp_()
                torch.sum(block, 1, out=row[rows])
                if symmetric:
                    col += block.sum(0)
        loss = (row.log() + inv_t - positive).mean()
        if symmetric:
            loss = (loss + (col.log() + inv_t - positive).mean()) / 2
        if not any(ctx.needs_input_grad[:2]):  # no backward will read E
            LOGITS_BUFFERS.give(e)
            e = None
        ctx.save_for_backward(a, b, e, row, col)
        ctx.inv_t = inv_t
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        if ctx.inv_t is None:
            raise RuntimeError("info_nce: backward through the same graph twice is not supported")
        a, b, e, row, col = ctx.saved_tensors
        n, inv_t, ctx.inv_t = len(a), ctx.inv_t, None
        scale = grad * inv_t / (n if col is None else 2 * n)  # chain rule through L = a b^T / t
        row_w, col_w, diagonal = scale / row[:, None], None if col is None else scale / col, grad * inv_t / n
        grad_a, grad_b = torch.empty_like(a), torch.zeros_like(b)
        for rows in _row_blocks(n, a.shape[1], a.device):
            g = e[rows].mul_(row_w[rows] if col_w is None else row_w[rows] + col_w)  # E_ij (s / r_i [+ s / c_j])
            g.diagonal(offset=rows.start).sub_(diagonal)
            torch.mm(g, b, out=grad_a[rows])
            grad_b.addmm_(g.T, a[rows])
        LOGITS_BUFFERS.give(e)
        return grad_a, grad_b, None, None


def info_nce(a: Tensor, b: Tensor, temperature: float, symmetric: bool = True, normalised: bool = False) -> Tensor:
    """InfoNCE with in-batch negatives: row i of `a` and row i of `b` are the positive pair, the
    other rows of the batch the negatives, on cosine similarity / `temperature`.

    `symmetric=True` averages both directions (a->b over the rows of the logits L, b->a over its
    columns); `symmetric=False` is a->b only, as in the released RecGOAT code. Both directions
    read the one product L = a_n @ b_n.T / temperature: the cross-entropy of row i is
    logsumexp(L[i, :]) - L[i, i], that of column i is logsumexp(L[:, i]) - L[i, i], so no second
    product and no transposed copy is made; forward and backward together cost the three products
    of that size a bare implementation needs (`_UnitInfoNCE`). `normalised=True` says the rows are
    already unit length (a caller that reuses one view in several pairs normalises it once).
    """
    if not normalised:
        a, b = nn.functional.normalize(a, dim=1), nn.functional.normalize(b, dim=1)
    if temperature >= FUSED_MIN_TEMPERATURE:
        return _UnitInfoNCE.apply(a, b, temperature, symmetric)
    logits = a @ b.T / temperature
    positive = logits.diagonal()
    loss = (torch.logsumexp(logits, dim=1) - positive).mean()
    if symmetric:
        loss = (loss + (torch.logsumexp(logits, dim=0) - positive).mean()) / 2
    return loss
