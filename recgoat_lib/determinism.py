"""What the library pins so that a result repeats on another machine: torch's CPU thread count.

Seeds alone are not enough. Floating-point sums are not associative, and torch's CPU kernels
(reductions, dense and sparse matrix products, the backward passes of embeddings) split their
work into one chunk per thread, so the same seed on 1 and on 2 threads gives losses that differ
in the last bits within the first epochs; training amplifies those bits into different metrics
after some epochs (measured on toy with DMESR* and DPRec*; README, "What the numbers do and
do not depend on").

So the thread count is part of a result's recipe: importing `recgoat_lib` and the training loop
(`train.fit`, behind `train.train` and `sequential.train.train_sequential`) set it to `configured_threads()`:
$RECGOAT_THREADS, else 1 (the count the README asked users to set by hand; one thread is also
the fastest for these small models on a shared CPU). OMP_NUM_THREADS no longer changes the results.

Not pinned, because pinning cannot make them equal: a different CPU instruction set (AVX2 vs
AVX-512 kernels) or CPU model (the same AVX-512 build gave other metrics on AMD EPYC and on Intel
Xeon), a different torch/MKL/OpenBLAS build, and CUDA (atomics in scatter/index_add
and sparse products; CPU and GPU results differ anyway).
"""
from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch

THREADS_ENV = "RECGOAT_THREADS"
DEFAULT_THREADS = 1


def configured_threads() -> int:
    """The torch thread count results are computed with: $RECGOAT_THREADS if set, else 1."""
    raw = os.environ.get(THREADS_ENV, "").strip() or str(DEFAULT_THREADS)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"${THREADS_ENV} must be a positive integer, got {raw!r}")
    return int(raw)


def pin_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count to `threads` (remembered in $RECGOAT_THREADS, so later
    pins by training entry points and child processes keep it), else to `configured_threads()`;
    returns the count set."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be positive, got {threads}")
        os.environ[THREADS_ENV] = str(threads)
    n = configured_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def cpu_model() -> str:
    """The CPU's model name ("model name" in /proc/cpuinfo; `platform.processor()` where there is none).
    The same torch build on the same instruction set still gave other toy metrics on another CPU
    model (AMD EPYC and Intel Xeon, both AVX-512; README, "What the numbers do and do not depend on")."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def execution_context(device: torch.device) -> dict[str, str | int]:
    """What a run's numbers depend on beyond its recipe: device, torch thread count, the vector
    instruction set of torch's CPU kernels, the CPU model and the torch build. A run resumed from a
    checkpoint under another context is a mix of two computations; `train.fit` records each part."""
    return {"device": str(device), "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_model": cpu_model(),
            "torch": torch.__version__}
