"""Analysis of an LM feature space (notebook 02): neighbours, a 2-D projection, and the semantic gap.

The paper starts from a "semantic gap": LM similarity between items tracks collaborative
similarity (co-occurrence in training interactions) only weakly. `similarity_pairs` measures
both on sampled item pairs and `semantic_gap` summarises how far apart they are; `nearest_items`
and `pca_2d` show what the encoder does capture. Reads features, produces none (that is `lm`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .data import Dataset


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally shaped matrices."""
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na, 1e-12)


def nearest_items(x: np.ndarray, query: np.ndarray, k: int = 5, exclude: int | None = None) -> pd.DataFrame:
    """The k rows of `x` most cosine-similar to the vector `query` (optionally excluding one row)."""
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = xn @ (query / max(np.linalg.norm(query), 1e-12))
    if exclude is not None:
        sims[exclude] = -np.inf
    top = np.argsort(-sims, kind="stable")[:k]
    return pd.DataFrame({"item": top, "cosine": sims[top]})


def similarity_pairs(ds: Dataset, item_feats: np.ndarray, n_pairs: int = 100_000,
                     seed: int = 0) -> pd.DataFrame:
    """LM vs collaborative similarity on uniformly sampled distinct item pairs.

    Columns: i, j, lm (cosine of the LM features), co (number of users who interacted with
    both in training) and cf (co / sqrt(deg_i deg_j), the cosine of the two items'
    training-interaction columns). This is the "semantic gap" the paper starts from.
    """
    if item_feats.shape[0] != ds.n_items:
        raise ValueError(f"item_feats has {item_feats.shape[0]} rows for {ds.n_items} items")
    rng = np.random.default_rng(seed)
    i, j = rng.integers(ds.n_items, size=(2, n_pairs))
    i, j = i[i != j], j[i != j]
    x = ds.csr("train").tocsc()
    co = np.asarray(x[:, i].multiply(x[:, j]).sum(axis=0)).ravel()
    deg = np.asarray(x.sum(axis=0)).ravel()
    cf = co / np.sqrt(np.maximum(deg[i] * deg[j], 1.0))
    return pd.DataFrame({"i": i, "j": j, "lm": cosine(item_feats[i], item_feats[j]),
                         "co": co.astype(np.int64), "cf": cf})


def semantic_gap(pairs: pd.DataFrame) -> dict[str, float]:
    """How far LM similarity is from collaborative similarity on `similarity_pairs` output."""
    from scipy.stats import pearsonr, spearmanr
    both = pairs[pairs["co"] > 0]
    return {
        "pairs": len(pairs),
        "share_co_occurring": float(len(both) / len(pairs)),
        "pearson_lm_cf": float(pearsonr(pairs["lm"], pairs["cf"])[0]),
        "spearman_lm_cf": float(spearmanr(pairs["lm"], pairs["cf"])[0]),
        "spearman_lm_cf_co_occurring": float(spearmanr(both["lm"], both["cf"])[0]) if len(both) > 2 else float("nan"),
        "mean_lm_co_occurring": float(both["lm"].mean()),
        "mean_lm_never": float(pairs.loc[pairs["co"] == 0, "lm"].mean()),
    }


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the two leading principal components (deterministic sign: largest loading positive)."""
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    v = vt[:2]
    v = v * np.sign(v[np.arange(2), np.abs(v).argmax(axis=1)])[:, None]
    return xc @ v.T
