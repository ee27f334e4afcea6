"""Optimal transport between feature dimensions, as RecGOAT's OAT uses it.

OAT compares two views of the same items, Z^m (a modality) and Z^cf (collaborative
IDs), both [I, d], through a d x d cost between their *dimensions*:
C_pq = s * mean_i (Z^m_ip - Z^cf_iq)^2. The released code materialises the
I x d x d difference tensor (`naive_dimension_cost`); expanding the square gives
the same matrix from two column means and one d x d product (`dimension_cost`).

The entropic plan between uniform marginals is computed with Sinkhorn. The
log-domain iteration (`sinkhorn_log`, the default) is stable for any eps; the
released scaling iteration (`sinkhorn_scaling`) forms K = exp(-C / eps) in fp32,
which underflows to zero when C / eps exceeds ~100, so the plan collapses to 0.
"""
from __future__ import annotations

import math
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from torch import Tensor

from .memory import current_memory, peak_memory, reset_peak_memory

SINKHORN_METHODS = ("log", "released")
COST_METHODS = ("identity", "naive")


def dimension_cost(zm: Tensor, zcf: Tensor, scale: float = 100.0) -> Tensor:
    """C_pq = scale * mean_i (zm_ip - zcf_iq)^2 in O(d^2) memory, via the expanded square."""
    _check_views(zm, zcf)
    sq_m = zm.pow(2).mean(0)
    sq_cf = zcf.pow(2).mean(0)
    cross = zm.T @ zcf / zm.shape[0]
    return scale * (sq_m[:, None] + sq_cf[None, :] - 2.0 * cross)


def naive_dimension_cost(zm: Tensor, zcf: Tensor, scale: float = 100.0) -> Tensor:
    """The released formula: builds the I x d x d difference tensor (for tests and memory measurement)."""
    _check_views(zm, zcf)
    return scale * (zm[:, :, None] - zcf[:, None, :]).pow(2).mean(0)


def _check_views(zm: Tensor, zcf: Tensor) -> None:
    if zm.ndim != 2 or zm.shape != zcf.shape:
        raise ValueError(f"OT cost: both views must be [items, dim] of equal shape, got "
                         f"{tuple(zm.shape)} and {tuple(zcf.shape)}")


def sinkhorn_log(cost: Tensor, eps: float, n_iter: int) -> Tensor:
    """Entropic OT plan between uniform marginals, log-domain iterations on dual potentials.

    `cost` is [..., n, m] (a leading batch dimension solves several problems at once).
    Same update order as POT's `ot.bregman.sinkhorn_log` (column potential first, then row),
    so after any number of iterations the two give the same plan.
    """
    n, m = cost.shape[-2:]
    log_a = torch.full(cost.shape[:-1], -math.log(n), dtype=cost.dtype, device=cost.device)
    log_b = torch.full(cost.shape[:-2] + (m,), -math.log(m), dtype=cost.dtype, device=cost.device)
    neg = -cost / eps
    u, v = torch.zeros_like(log_a), torch.zeros_like(log_b)
    for _ in range(n_iter):
        v = log_b - torch.logsumexp(neg + u[..., :, None], dim=-2)
        u = log_a - torch.logsumexp(neg + v[..., None, :], dim=-1)
    return torch.exp(neg + u[..., :, None] + v[..., None, :])


def sinkhorn_scaling(cost: Tensor, eps: float, n_iter: int, guard: float = 1e-8) -> Tensor:
    """The released arithmetic: K = exp(-C / eps), alternate u = a / (K v + guard), v = b / (K^T u + guard)."""
    n, m = cost.shape[-2:]
    kernel = torch.exp(-cost / eps)
    a = torch.full(cost.shape[:-1], 1.0 / n, dtype=cost.dtype, device=cost.device)
    b = torch.full(cost.shape[:-2] + (m,), 1.0 / m, dtype=cost.dtype, device=cost.device)
    u, v = torch.ones_like(a), torch.ones_like(b)
    for _ in range(n_iter):
        u = a / ((kernel @ v[..., None])[..., 0] + guard)
        v = b / ((kernel.transpose(-1, -2) @ u[..., None])[..., 0] + guard)
    return u[..., :, None] * kernel * v[..., None, :]


@torch.no_grad()
def transport_plan(cost: Tensor, eps: float = 0.01, n_iter: int = 100, method: str = "log") -> Tensor:
    """The plan T (no gradient) with the chosen arithmetic: "log" (default) or "released"."""
    if method == "log":
        return sinkhorn_log(cost, eps, n_iter)
    if method == "released":
        return sinkhorn_scaling(cost, eps, n_iter)
    raise ValueError(f"unknown Sinkhorn method {method!r}; choose from {SINKHORN_METHODS}")


def plan_diagnostics(plan: Tensor) -> dict[str, Tensor]:
    """Total mass and largest absolute deviation of each marginal from uniform (all should be ~0 / 1)."""
    n, m = plan.shape[-2:]
    return {
        "mass": plan.sum((-2, -1)),
        "row_error": (plan.sum(-1) - 1.0 / n).abs().amax(-1),
        "col_error": (plan.sum(-2) - 1.0 / m).abs().amax(-1),
    }


def _cost_peak_mb(method: str, n_items: int, dim: int, seed: int) -> float:
    """Extra peak memory (MB) of one cost computation, measured in the current process."""
    cost = naive_dimension_cost if method == "naive" else dimension_cost
    cuda = torch.cuda.is_available()
    g = torch.Generator(device="cuda" if cuda else "cpu").manual_seed(seed)
    zm, zcf = (0.1 * torch.randn(n_items, dim, generator=g, device=g.device) for _ in range(2))
    reset_peak_memory(release_heap=True)  # freed heap pages handed back, so reused pages cannot hide a peak
    before = current_memory()
    cost(zm, zcf)
    after = peak_memory()
    return after.cuda_mb - before.cuda_mb if cuda else after.rss_mb - before.rss_mb


def _cost_peaks(points: list[tuple[str, int, int]], seed: int) -> list[float]:
    return [_cost_peak_mb(method, n, d, seed) for method, n, d in points]


def cost_peak_memory_mb(points: list[tuple[str, int, int]], seed: int = 0) -> list[float]:
    """Measured extra peak memory (MB) of the cost, for each (method, n_items, dim) in `points`,
    on random [n_items, dim] views; method is "naive" (I x d x d tensor) or "identity".

    On CUDA the allocator's peak counter is used. On CPU the points run one after another in
    one fresh process, each as its peak resident set (VmHWM, reset just before the call) minus
    the resident set before it, with freed heap memory returned to the system first (Linux with
    glibc only; page-level resolution, so sizes below a few MB are noise).
    """
    for method, _, _ in points:
        if method not in COST_METHODS:
            raise ValueError(f"unknown cost method {method!r}; choose from {COST_METHODS}")
    if torch.cuda.is_available():
        return _cost_peaks(points, seed)
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_cost_peaks, points, seed).result()


def extrapolate_peak_mb(n_items: np.ndarray, dim: np.ndarray, peak_mb: np.ndarray,
                        target_items: int, target_dim: int) -> tuple[float, float]:
    """Fit peak = c * n_items * dim^2 (least squares through the origin) to measured naive-cost
    peaks and predict the peak at a size too large to allocate; returns (bytes per element, MB)."""
    x = np.asarray(n_items, dtype=np.float64) * np.asarray(dim, dtype=np.float64) ** 2
    y = np.asarray(peak_mb, dtype=np.float64) * 2**20
    c = float(x @ y / (x @ x))
    return c, c * target_items * target_dim**2 / 2**20
