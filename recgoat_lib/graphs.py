"""Graphs the models propagate over: the normalised user-item graph (more graph builders live beside it)."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .data import Dataset


def to_torch_sparse(m: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """A scipy matrix as a torch sparse CSR tensor (the layout PyG's spmm is fastest with on CPU)."""
    m = m.tocsr().astype(np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data), size=m.shape, device=device, check_invariants=False,
        )


def sym_normalize(a: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2, with isolated nodes left at zero."""
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float64)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    d = sp.diags(inv)
    return (d @ a @ d).tocsr()


def user_item_adjacency(ds: Dataset) -> sp.csr_matrix:
    """Normalised bipartite graph over n_users + n_items nodes, from training interactions only."""
    r = ds.csr("train")
    a = sp.bmat([[None, r], [r.T, None]], format="csr")
    return sym_normalize(a)
