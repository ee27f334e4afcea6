"""Next-item training of a sequential model through the one training loop (`train.fit`)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..evaluate import EvalResult
from ..train import TrainConfig, TrainResult, fit
from .data import SequenceData
from .evaluate import evaluate_sequential
from .models import SequentialRecommender


def train_sequential(model: SequentialRecommender, data: SequenceData, config: TrainConfig, seed: int,
                     checkpoint: Path | None = None, on_eval: Callable[[int, SequentialRecommender], None] | None = None
                     ) -> TrainResult:
    """Next-item training (Adam, shuffled user sequences, full-softmax loss of the model) by `train.fit`:
    validation every `eval_every` epochs on `config.select_metric`, stop after `patience`
    evaluations without improvement, test metrics (full and sampled) at the best-validation
    epoch, evaluated only when validation improves. `checkpoint` and `on_eval` as in `train.fit`."""
    if config.selection != "valid":
        raise ValueError("sequential models are selected on validation only (selection='valid')")
    inputs, targets = data.train_examples()

    def epoch_batches(rng: np.random.Generator, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.from_numpy(rng.permutation(len(inputs)))
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            yield inputs[idx].to(device), targets[idx].to(device)

    def select(model: SequentialRecommender) -> tuple[float, Callable[[], tuple[EvalResult, EvalResult]]]:
        valid = evaluate_sequential(model, data, "valid", config.ks)
        return valid.metrics[config.select_metric], lambda: (valid, evaluate_sequential(model, data, "test", config.ks))

    return fit(model, config, seed, epoch_batches, select, checkpoint, on_eval)
