"""Peak memory of this process: the one mechanism behind every memory number the project records.

The trainer's `peak_rss_mb`, the runner's per-run reset, the OAT cost's extra peak
(`ot.cost_peak_memory_mb`) and the speed suite's rows (`benchmarks/`) all read memory here, so
they measure the same thing: the resident set size from the kernel (Linux: `/proc/self/status`,
VmRSS now and VmHWM, its high-water mark, which `reset_peak_memory` sets back to the current
RSS), and, once this process has used CUDA, the caching allocator's allocated bytes and their peak
(a process that never touched CUDA is not made to initialise it just to read zeros).

It also holds the one allocator setting the library makes, while training steps run (`kept_blocks`).
"""
from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
#: glibc's mallopt parameters (malloc.h): the values `kept_blocks` sets, and glibc's defaults it restores
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
TRIM_THRESHOLD_MB = 64
_DEFAULT_MMAP_MAX, _DEFAULT_TRIM_THRESHOLD = 65536, 128 * 1024
#: $RECGOAT_MALLOC=default leaves glibc's allocator as configured, as does a malloc setting of the user's own
MALLOC_ENV = "RECGOAT_MALLOC"
_USER_MALLOC_ENV = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@dataclass(frozen=True)
class Memory:
    """One reading in MB: resident set size, and CUDA allocated bytes (None where this process has not
    initialised CUDA)."""

    rss_mb: float
    cuda_mb: float | None


def _status_mb(field: str) -> float | None:
    """A `/proc/self/status` field (kB) in MB; None where the file does not exist (not Linux)."""
    try:
        with _STATUS.open() as f:
            line = next(line for line in f if line.startswith(field + ":"))
    except OSError:
        return None
    return int(line.split()[1]) / 1024


def reset_peak_memory(release_heap: bool = False) -> None:
    """Start a new peak: the kernel's RSS high-water mark (VmHWM) and CUDA's peak counter are set
    back to the current values, so a later `peak_memory()` is the peak of what ran in between.

    `release_heap=True` first hands freed heap pages back to the system (glibc's `malloc_trim`),
    so that pages freed earlier and reused later cannot hide part of a peak measured as an
    increase over `current_memory()`.
    """
    libc = _libc() if release_heap else None
    if libc is not None:
        libc.malloc_trim(0)
    try:
        _STATUS.with_name("clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: the peak stays the process's peak so far
    if torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def current_memory() -> Memory:
    """Memory in use now (VmRSS; CUDA allocated bytes, after waiting for queued kernels)."""
    rss = _status_mb("VmRSS")
    if rss is None:
        raise OSError("the current resident set size is read from /proc/self/status (Linux only)")
    if not torch.cuda.is_initialized():
        return Memory(rss, None)
    torch.cuda.synchronize()
    return Memory(rss, torch.cuda.memory_allocated() / 2**20)


def peak_memory() -> Memory:
    """Peak memory since the process started or the last `reset_peak_memory()`: VmHWM (without
    /proc, `getrusage`'s ru_maxrss read as kB, Linux's unit, and never reset) and CUDA's peak
    allocated bytes."""
    rss = _status_mb("VmHWM")
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not torch.cuda.is_initialized():
        return Memory(rss, None)
    torch.cuda.synchronize()
    return Memory(rss, torch.cuda.max_memory_allocated() / 2**20)


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc and neither $RECGOAT_MALLOC=default nor the user's own malloc settings
    (glibc's MALLOC_* variables or malloc tunables, which leaving the context would reset) say to leave it
    alone, else None."""
    if os.environ.get(MALLOC_ENV, "").strip().lower() == "default":
        return None
    if any(v in os.environ for v in _USER_MALLOC_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    return _libc()


def _libc() -> ctypes.CDLL | None:
    """glibc (with its `mallopt` and `malloc_trim`), or None on another C library."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextmanager
def kept_blocks() -> Iterator[bool]:
    """While training steps run, have glibc's malloc reuse freed memory instead of handing it back.

    A training step allocates and frees the same blocks every batch ([n_users + n_items, d] propagated
    embeddings and their gradients, [items, d] views, the zero-filled targets of gradient scatters). Under
    glibc's defaults every block above its mmap threshold (128 kB, moving up to 32 MB at most) is mapped fresh
    and unmapped when freed, and the heap's top is trimmed back to the kernel, so each batch page-faults on
    every 4 kB page it writes first: thousands of minor faults per LightGCN batch at Baby's size and 1.2 million
    per RecGOAT step at Sports' d = 600. Inside this context no block is mapped on its own (M_MMAP_MAX = 0: all
    come from the heap; glibc still maps memory itself if the heap cannot grow) and the heap keeps up to 64 MB
    of freed memory at its top (M_TRIM_THRESHOLD), so the step's blocks are reused from batch to batch. On
    leaving, both parameters return to glibc's default values and the freed heap pages are returned
    (`malloc_trim`), so that model building and evaluation, whose large one-off blocks would otherwise fragment
    a heap that never shrinks, map their large blocks on their own again. One thing does not come back: glibc
    stops moving its mmap threshold once a program sets either parameter, so the threshold stays where it was
    when the context was first entered (128 kB unless earlier frees had raised it). Computed values are
    unchanged (`tests/test_memory.py` counts the faults and compares the loss); `python -m benchmarks.allocator`
    measures speed and peak RSS with and without. Yields whether the setting is in force: not where
    $RECGOAT_MALLOC is "default" or the user has set glibc's malloc parameters, nor where the C library is not
    glibc.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_MAX, 0)
    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_MB << 20)
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
