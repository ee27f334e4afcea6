"""Shared fixtures: the toy dataset (built once per session, also with random text features) and a
tiny hand-made dataset."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recgoat_lib.data import Dataset, data_root
from recgoat_lib.toy import make_toy


@pytest.fixture
def one_thread():
    """Small sparse models run much faster on one thread when the CPU is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def toy() -> Dataset:
    return make_toy(seed=2025)


@pytest.fixture(scope="session")
def toy_text(toy) -> Dataset:
    """The toy shop plus random 24-d stand-ins for the MiniLM item and user text features (the real
    ones need the encoder), to exercise the text paths of every model quickly."""
    rng = np.random.default_rng(0)
    return toy.with_features(item={"text": rng.normal(size=(toy.n_items, 24)).astype(np.float32)},
                             user={"text": rng.normal(size=(toy.n_users, 24)).astype(np.float32)})


@pytest.fixture
def tiny() -> Dataset:
    """4 users x 6 items with every split non-empty."""
    rows = [(0, 0, 0), (0, 1, 0), (0, 2, 1), (0, 3, 2),
            (1, 1, 0), (1, 4, 0), (1, 5, 1), (1, 0, 2),
            (2, 2, 0), (2, 3, 0), (2, 4, 2),
            (3, 5, 0), (3, 0, 0)]
    df = pd.DataFrame(rows, columns=["user", "item", "split"]).astype(np.int64)
    return Dataset(name="tiny", n_users=4, n_items=6, interactions=df)


def real_data_or_skip(name: str):
    """The real Amazon dataset folder, or a skip naming what is missing."""
    folder = data_root() / name
    if not (folder / f"{name}.inter").exists():
        pytest.skip(f"real dataset '{name}' not found at {folder} (set RECGOAT_DATA_ROOT)")
    return folder
