"""Wang & Isola's alignment and uniformity: how close paired views are, and how spread out
one view is on the sphere. Notebook 04 uses them to see what CMCL's InfoNCE does to the views."""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def alignment(a: Tensor, b: Tensor) -> float:
    """Mean squared distance between paired, L2-normalised rows (0 = the two views coincide)."""
    if a.shape != b.shape:
        raise ValueError(f"alignment: paired views must have equal shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return float((F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(1).mean())


@torch.no_grad()
def uniformity(x: Tensor, t: float = 2.0, max_rows: int = 4096, seed: int = 0) -> float:
    """log mean exp(-t ||x_i - x_j||^2) over pairs of L2-normalised rows (lower = more spread out).

    At most `max_rows` rows (a fixed random subset) are used, so the pairwise distances stay small.
    """
    if x.shape[0] > max_rows:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(x.shape[0], generator=g)[:max_rows].to(x.device)]
    d2 = torch.pdist(F.normalize(x, dim=1)).pow(2)
    return float(torch.log(torch.exp(-t * d2).mean()))


@torch.no_grad()
def pair_retrieval(a: Tensor, b: Tensor) -> float:
    """Instance-level alignment: the share of rows of `a` whose most cosine-similar row of `b`
    is their own pair (what InfoNCE trains for; chance is 1 / n)."""
    if a.shape != b.shape:
        raise ValueError(f"pair_retrieval: paired views must have equal shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    return float((sim.argmax(1) == torch.arange(a.shape[0], device=a.device)).float().mean())


def view_geometry(views: dict[str, Tensor]) -> pd.DataFrame:
    """Uniformity of each view; alignment and pair retrieval of each pair of views (one row per measurement)."""
    names = list(views)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    rows = [{"measure": "uniformity", "views": n, "value": uniformity(views[n])} for n in names]
    rows += [{"measure": "alignment", "views": f"{a}-{b}", "value": alignment(views[a], views[b])} for a, b in pairs]
    rows += [{"measure": "pair retrieval", "views": f"{a}-{b}", "value": pair_retrieval(views[a], views[b])}
             for a, b in pairs]
    return pd.DataFrame(rows)
