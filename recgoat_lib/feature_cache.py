"""The feature cache: frozen encoder outputs stored on disk, keyed by the encoder and its exact inputs.

Text (`lm`), image (`images`) and sequential (`sequential.data.lm_views`) features are all
encoded through `encode_cached`, so a second call with the same encoder and inputs is a file
read and any changed input or encoder is a miss. Files live under results/cache/lm (the
folder name predates image features; keys never collide across encoders).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from .data import REPO_ROOT

CACHE_DIR = REPO_ROOT / "results" / "cache" / "lm"


class CachedEncoder(Protocol):
    """What the cache needs from an encoder: a name that changes whenever its outputs would,
    and a batch encoder returning [len(inputs), dim]."""

    identity: str

    def encode(self, inputs: Sequence) -> np.ndarray: ...


def cache_key(identity: str, items: Sequence[str | bytes]) -> str:
    """sha256 over the encoder identity and the exact inputs (length-prefixed, order kept)."""
    h = hashlib.sha256(identity.encode())
    for t in items:
        b = t.encode() if isinstance(t, str) else bytes(t)
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def encode_cached(encoder: CachedEncoder, inputs: Sequence, cache_dir: str | os.PathLike | None = None,
                  fingerprints: Sequence[str | bytes] | None = None) -> tuple[np.ndarray, bool]:
    """Encode `inputs`, reading/writing `<cache_dir>/<key>.npy`; returns (features, cache_hit).

    The key hashes the encoder identity and the inputs themselves (texts), or `fingerprints`
    (one str/bytes per input) for inputs that are not text, such as images.
    """
    inputs = list(inputs)
    if fingerprints is not None and len(fingerprints) != len(inputs):
        raise ValueError(f"{len(fingerprints)} fingerprints for {len(inputs)} inputs")
    folder = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    path = folder / f"{cache_key(encoder.identity, inputs if fingerprints is None else fingerprints)}.npy"
    if path.exists():
        x = np.load(path)
        if x.shape[0] == len(inputs):
            return x, True
    x = np.asarray(encoder.encode(inputs), dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(inputs):
        raise ValueError(f"encoder {encoder.identity} returned shape {x.shape} for {len(inputs)} inputs")
    if not np.isfinite(x).all():
        raise ValueError(f"encoder {encoder.identity} returned NaN/inf")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, x)
    tmp.replace(path)
    return x, False
