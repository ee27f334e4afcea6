"""Training with validation-selected early stopping, resumable checkpoints and per-epoch timings.

`fit` is the one training loop (timing, finite-loss check, evaluation schedule, model selection,
early stopping, checkpoints, `on_eval`); `train` runs it on BPR triples for the top-K models,
`sequential.train.train_sequential` on next-item sequences.
"""
from __future__ import annotations

import contextlib
import itertools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Dataset
from .determinism import execution_context, pin_threads
from .files import atomic_write
from .evaluate import EvalResult, evaluate, evaluate_splits
from .memory import kept_blocks, peak_memory
from .models.base import LOGITS_BUFFERS, Recommender

RELEASED_SELECT_K = 10  # the released RecGOAT code selects on test NDCG@10
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained and selected.

    `exclude_train_negatives=False` reproduces the released RecGOAT code, whose uniform
    negatives may be the user's own positives. `selection="released"` reproduces its
    model selection: the best *test* NDCG@10 (`RELEASED_SELECT_K`, so `ks` must hold 10) seen
    at the evaluations, made with dropout still on; the released code evaluates every 20 epochs,
    which is `eval_every=20` (set so in `protocol.RELEASED_TRAIN`, left to the caller here).
    `max_batches` stops each epoch after that many batches: for timing only (`dry_run`), never for results.
    `precision="bf16"` runs each training forward under bf16 autocast (`training_precision`; opt-in,
    its accuracy effect on toy is in results/benchmarks/cpu_bf16.csv); evaluation stays fp32.
    """

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    eval_every: int = 1
    patience: int = 20
    ks: tuple[int, ...] = (10, 20)
    select_metric: str = "recall@20"
    exclude_train_negatives: bool = True
    selection: str = "valid"
    device: str = "auto"
    progress: bool = True
    max_batches: int | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.selection not in ("valid", "released"):
            raise ValueError(f"selection must be 'valid' or 'released', got {self.selection!r}")
        if self.selection == "released" and RELEASED_SELECT_K not in self.ks:
            raise ValueError(f"selection='released' selects on test NDCG@{RELEASED_SELECT_K}, so ks must include "
                             f"{RELEASED_SELECT_K}, got ks={self.ks}")
        if min(self.epochs, self.batch_size, self.eval_every, 1 if self.max_batches is None else self.max_batches) < 1:
            raise ValueError("epochs, batch_size, eval_every and max_batches must be positive")


@dataclass
class TrainResult:
    best_epoch: int
    valid: dict[str, float]
    test: dict[str, float]
    test_per_user: dict[str, np.ndarray]
    test_users: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds_per_epoch: float = 0.0
    eval_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    epochs_run: int = 0
    peak_cuda_mb: float | None = None  # the CUDA allocator's peak; None where CUDA was not used
    #: the execution contexts (`determinism.execution_context`) the epochs ran under, each with the
    #: epoch it took over at; more than one only when a checkpoint was resumed under another context
    segments: list[dict] = field(default_factory=list)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (the thread count is `determinism`'s job)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class NegativeSampler:
    """Uniform negatives per training pair, optionally re-drawn until not a training positive."""

    def __init__(self, ds: Dataset, exclude_positives: bool = True):
        self.users, self.items = ds.split_pairs("train")
        self.n_items = ds.n_items
        self.exclude = exclude_positives
        self.keys = np.sort(self.users * ds.n_items + self.items)
        if exclude_positives and np.bincount(self.users).max() >= ds.n_items:
            raise ValueError("a user has interacted with every item: no negative exists")

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, positives, negatives) for one epoch, shuffled."""
        order = rng.permutation(len(self.users))
        u, p = self.users[order], self.items[order]
        n = rng.integers(self.n_items, size=len(u))
        if self.exclude:
            bad = np.flatnonzero(self._is_positive(u, n))
            while len(bad):
                n[bad] = rng.integers(self.n_items, size=len(bad))
                bad = bad[self._is_positive(u[bad], n[bad])]
        return u, p, n


def training_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a training forward runs in: nothing for "fp32"; for "bf16", torch.autocast with
    bfloat16 on `device`'s type, so Linear layers and dense products run in bf16 while parameters,
    optimizer state and gradients stay fp32 (no loss scaling is needed with bf16's fp32 range). Parts
    that need fp32 keep it inside (InfoNCE, the GAT attention softmax, the OT cost and Sinkhorn)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over the model's parameters, as every training loop and benchmark here builds it: the fused
    kernel (`fused=True`), one pass over each parameter, its gradient and both moments per step, where
    the default single-tensor implementation makes one pass per elementary operation (issue #16).
    The same update, equal to float rounding (tests/test_train.py)."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, *batch: torch.Tensor,
               precision: str = "fp32") -> dict[str, torch.Tensor]:
    """One optimisation step on one batch (BPR triples users, pos, neg, or sequences and targets) in
    `precision`; returns the model's loss parts. (Shared with benchmarks/, which times this step on a
    fixed number of batches.)"""
    with training_precision(precision, batch[0].device):
        parts = model.loss(*batch)
    optimizer.zero_grad()
    parts["loss"].backward()
    optimizer.step()
    return parts


#: one epoch's batches, drawn from the training generator, already on the device
EpochBatches = Callable[[np.random.Generator, torch.device], Iterable[tuple[torch.Tensor, ...]]]
#: one evaluation: the selection score and a call that returns (valid, test) results at this epoch,
#: made only when the score is the best so far (so a protocol may evaluate test lazily)
Selection = Callable[[nn.Module], tuple[float, Callable[[], tuple[EvalResult | None, EvalResult]]]]


def fit(model: nn.Module, config: TrainConfig, seed: int, epoch_batches: EpochBatches, select: Selection,
        checkpoint: Path | None = None, on_eval: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """The training loop every model goes through: Adam on `model.loss(*batch)` over
    `epoch_batches(rng, device)` (at most `config.max_batches` per epoch), `select(model)` every
    `eval_every` epochs and at the last, stop after `patience` evaluations without improvement,
    and return the (valid, test) results of the best evaluation.

    With a `checkpoint` path the full state is saved after every evaluation, and a run
    started with the same path resumes where it stopped; resumed under another execution context
    (threads, instruction set, CPU model, device, torch), it says so and the result lists both parts
    (`TrainResult.segments`). `on_eval(epoch, model)` is called after each evaluation (notebooks use
    it to record quantities over training). Runs with the pinned torch thread count
    (`determinism.pin_threads`), on which the metrics depend.
    """
    pin_threads()
    device = resolve_device(config.device)
    model.to(device)
    optimizer = adam(model, config.lr)
    rng = np.random.default_rng(seed)
    context = execution_context(device)
    state = {"epoch": 0, "best": -np.inf, "best_epoch": 0, "bad_evals": 0, "history": [], "best_eval": None,
             "segments": [{"from_epoch": 0, **context}]}
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        # a checkpoint from before contexts were kept: its epochs' context is unknown
        segments = state.setdefault("segments", [{"from_epoch": 0, "device": "unknown"}])
        before = {k: v for k, v in segments[-1].items() if k != "from_epoch"}
        if before != context:
            print(f"{checkpoint.name}: resuming after epoch {state['epoch']} under {context}; the epochs "
                  f"before ran under {before}, so this run mixes both (listed in its result)", flush=True)
            segments.append({"from_epoch": state["epoch"], **context})

    train_times, eval_times = [], []
    bar = tqdm(range(state["epoch"], config.epochs), desc=type(model).__name__,
               disable=not config.progress, leave=False)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n_batches = 0
        with kept_blocks():  # the steps' freed blocks reused from batch to batch (memory.kept_blocks)
            for batch in itertools.islice(epoch_batches(rng, device), config.max_batches):
                parts = train_step(model, optimizer, *batch, precision=config.precision)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                n_batches += 1
        train_times.append(time.perf_counter() - t0)
        row = {"epoch": epoch + 1, **{k: v / n_batches for k, v in sums.items()}, "train_s": train_times[-1]}
        if not np.isfinite(row["loss"]):
            raise FloatingPointError(f"{type(model).__name__}: loss became {row['loss']} at epoch {epoch + 1}")

        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            LOGITS_BUFFERS.release()  # the training step's reused InfoNCE buffers: not held through evaluation
            t1 = time.perf_counter()
            score, results = select(model)
            eval_times.append(time.perf_counter() - t1)
            row.update({"select_score": score, "eval_s": eval_times[-1]})
            if score > state["best"]:
                state.update(best=score, best_epoch=epoch + 1, bad_evals=0, best_eval=results())
            else:
                state["bad_evals"] += 1
            if on_eval is not None:
                on_eval(epoch + 1, model)
            bar.set_postfix(loss=f"{row['loss']:.4f}", val=f"{score:.4f}", best=state["best_epoch"])
        state["history"].append(row)
        state["epoch"] = epoch + 1
        if checkpoint is not None and "eval_s" in row:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            snapshot = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "state": state}
            atomic_write(checkpoint, lambda tmp: torch.save(snapshot, tmp))  # a crash mid-write keeps the last one
        if state["bad_evals"] >= config.patience:
            break

    valid, test = state["best_eval"]
    peak = peak_memory()
    return TrainResult(
        best_epoch=state["best_epoch"], valid=valid.metrics if valid else {}, test=test.metrics,
        test_per_user=test.per_user, test_users=test.users, history=state["history"],
        train_seconds_per_epoch=float(np.mean(train_times)) if train_times else 0.0,
        eval_seconds=float(np.mean(eval_times)) if eval_times else 0.0,
        peak_rss_mb=peak.rss_mb, peak_cuda_mb=peak.cuda_mb, epochs_run=state["epoch"],
        segments=state["segments"],
    )


def train(model: Recommender, ds: Dataset, config: TrainConfig, seed: int,
          checkpoint: Path | None = None,
          on_eval: Callable[[int, Recommender], None] | None = None) -> TrainResult:
    """Train with BPR triples (`fit`); evaluate on validation every `eval_every` epochs in eval mode
    (test beside it); stop after `patience` evaluations without improvement; return test metrics
    at the best epoch. `selection="released"` selects on test NDCG@10 with dropout on instead.
    `checkpoint` and `on_eval` as in `fit`.
    """
    sampler = NegativeSampler(ds, config.exclude_train_negatives)

    def epoch_batches(rng: np.random.Generator, device: torch.device) -> Iterable[tuple[torch.Tensor, ...]]:
        u, p, n = (torch.from_numpy(a).to(device) for a in sampler.epoch(rng))
        for start in range(0, len(u), config.batch_size):
            sl = slice(start, start + config.batch_size)
            yield u[sl], p[sl], n[sl]

    def select(model: Recommender) -> tuple[float, Callable[[], tuple[EvalResult | None, EvalResult]]]:
        if config.selection == "released":
            test = evaluate(model, ds, "test", config.ks, eval_mode=False)
            return test.metrics[f"ndcg@{RELEASED_SELECT_K}"], lambda: (None, test)
        # test beside valid: same forward, scores and top-k, so it costs little more than valid alone
        valid, test = evaluate_splits(model, ds, ("valid", "test"), config.ks).values()
        return valid.metrics[config.select_metric], lambda: (valid, test)

    return fit(model, config, seed, epoch_batches, select, checkpoint, on_eval)
