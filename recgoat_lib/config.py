"""Profiles: named sets of parameter values (not code paths) shared by every notebook."""
from __future__ import annotations

from dataclasses import dataclass, replace

from .train import TrainConfig


@dataclass(frozen=True)
class Profile:
    """What a notebook runs under a profile: datasets, seeds, training budget, cache use.

    With the cache on, a spec that several notebooks train (RecGOAT's defaults on toy appear in
    03, 04, 05, 07 and 08) trains once per reproduction; the key includes the library's code
    fingerprint, so an edited library never reads an older record (see `runner`)."""

    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    train: TrainConfig
    dim: int
    use_cache: bool


PROFILES = {
    "quick": Profile(
        name="quick", datasets=("toy",), seeds=(2025, 2026, 2027),
        train=TrainConfig(epochs=40, batch_size=2048, lr=1e-3, eval_every=2, patience=5, progress=False),
        dim=64, use_cache=True,
    ),
    "paper": Profile(
        name="paper", datasets=("baby", "sports", "clothing"), seeds=(2025, 2026, 2027, 2028, 2029),
        train=TrainConfig(epochs=1000, batch_size=2048, lr=1e-3, eval_every=1, patience=20),
        dim=64, use_cache=True,
    ),
}


def get_profile(name: str, **train_overrides) -> Profile:
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    p = PROFILES[name]
    return replace(p, train=replace(p.train, **train_overrides)) if train_overrides else p
