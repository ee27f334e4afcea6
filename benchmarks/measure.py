"""Measurement helpers: machine load, timing, growth exponents and synthetic data.

Synthetic data here is for timing only and is always labelled so: `scaled_dataset` grows a
real dataset's graph while keeping its user and item degree distributions, and
`timing_features` fills absent modality features with random numbers of the real shapes.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from recgoat_lib.data import Dataset
from recgoat_lib.determinism import cpu_model


def machine() -> dict[str, object]:
    """What the numbers were measured on: device label and name (the GPU's, else the CPU model), CPU
    cores available and the vector instruction set torch's CPU kernels use (AVX2, AVX512, ...), load
    average now."""
    cuda = torch.cuda.is_available()
    return {
        "device": "cuda" if cuda else "cpu",
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_model(),
        "gpu_available": cuda,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings include it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def call_times(fn: Callable[[], object], calls: int, device: torch.device, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of each of `calls` calls of `fn()`, after `warmup` untimed calls."""
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def seconds_per_call(fn: Callable[[], object], calls: int, device: torch.device, warmup: int = 1) -> float:
    """Fastest wall-clock seconds of `fn()` over `calls` calls, after `warmup` untimed calls.

    The minimum, not the mean: on a shared machine other processes only ever add time, so the
    fastest call is the best estimate of what the code itself costs.
    """
    return min(call_times(fn, calls, device, warmup))


def growth_exponent(x, y) -> float:
    """Least-squares slope of log y against log x: the k in y ~ c * x^k."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"growth_exponent: x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    if len(np.unique(x)) < 2:
        raise ValueError("growth_exponent: needs at least two distinct x values")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("growth_exponent: x and y must be positive (log-log fit)")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def extrapolate_power(x, y, at: float) -> float:
    """y at `at` from the power law fitted to (x, y) (used only beyond what fits in memory)."""
    k = growth_exponent(x, y)
    logc = np.mean(np.log(np.asarray(y, float)) - k * np.log(np.asarray(x, float)))
    return float(np.exp(logc) * at**k)


def scaled_dataset(ds: Dataset, factor: int, seed: int = 0) -> Dataset:
    """A synthetic dataset with `factor` times the users, items and interactions of `ds`.

    Configuration model: user copy k of user u keeps u's interaction count and split labels,
    item copy k of item i keeps i's interaction count, and the item slots are shuffled across
    all rows, so both degree distributions are those of `ds` repeated `factor` times. Duplicate
    (user, item) pairs are dropped (a fraction of a percent on Amazon data), as are valid/test
    rows of any user left without a training row. No features are carried over.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    df = ds.interactions
    copy = np.repeat(np.arange(factor, dtype=np.int64), len(df))
    users = np.tile(df["user"].to_numpy(np.int64), factor) + copy * ds.n_users
    items = np.tile(df["item"].to_numpy(np.int64), factor) + copy * ds.n_items
    items = np.random.default_rng(seed).permutation(items)
    out = pd.DataFrame({"user": users, "item": items, "split": np.tile(df["split"].to_numpy(np.int64), factor)})
    out = out.drop_duplicates(["user", "item"], ignore_index=True)
    has_train = np.zeros(factor * ds.n_users, dtype=bool)
    has_train[out.loc[out["split"] == 0, "user"].to_numpy()] = True
    out = out[has_train[out["user"].to_numpy()]].reset_index(drop=True)
    return Dataset(name=f"{ds.name}-synthetic-x{factor}", n_users=factor * ds.n_users, n_items=factor * ds.n_items,
                   interactions=out, source=f"synthetic: {ds.name}'s degree distributions x{factor} (timing only)")


def timing_features(ds: Dataset, item_dims: dict[str, int], user_dims: dict[str, int], seed: int = 0) -> Dataset:
    """`ds` with every absent modality filled by standard-normal features of the given width.

    The values carry no information: use them for timing and memory, never for accuracy.
    The name gains "+random-features" when anything was filled.
    """
    rng = np.random.default_rng(seed)
    item = {m: rng.standard_normal((ds.n_items, d), dtype=np.float32)
            for m, d in item_dims.items() if m not in ds.item_features}
    user = {m: rng.standard_normal((ds.n_users, d), dtype=np.float32)
            for m, d in user_dims.items() if m not in ds.user_features}
    if not item and not user:
        return ds
    return ds.with_features(item=item, user=user, suffix="+random-features")


def synthetic_dataset(n_users: int, n_items: int, n_train: int, seed: int = 0, popularity: float = 0.8) -> Dataset:
    """Random interactions of a real dataset's shape (timing only): about `n_train` training rows (fewer
    by the repeated (user, item) pairs dropped: ~2% at Amazon sizes) plus one validation and one test
    row per user.

    Every user gets >= 3 training rows and a geometric tail above that; items are drawn with
    Zipf-like popularity p_i ~ (rank + 1)^-`popularity`, so a batch repeats popular items as real
    data does (its unique-item count sets the CMCL view-pair size). Labelled "synthetic".
    """
    rng = np.random.default_rng(seed)
    extra = n_train / n_users - 3
    if extra <= 0:
        raise ValueError(f"synthetic_dataset needs more than 3 training rows per user, got {n_train / n_users:.2f}")
    counts = 3 + rng.geometric(1 / (1 + extra), size=n_users) - 1 + 2  # + one valid and one test row
    p = (np.arange(n_items) + 1.0) ** -popularity
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    items = rng.permutation(n_items)[rng.choice(n_items, size=len(users), p=p / p.sum())]
    df = pd.DataFrame({"user": users, "item": items}).drop_duplicates(["user", "item"], ignore_index=True)
    position_from_end = df.groupby("user").cumcount(ascending=False).to_numpy()
    df["split"] = np.select([position_from_end == 0, position_from_end == 1], [2, 1], 0)
    return Dataset(name=f"synthetic-{n_users}x{n_items}", n_users=n_users, n_items=n_items, interactions=df,
                   source=f"synthetic: random interactions of {n_users} users x {n_items} items (timing only)")
