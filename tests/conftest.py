"""Shared test data and helpers. Fixtures: the toy dataset (built once per session, also with random text
features) and a tiny hand-made dataset. Plain helpers, imported with `from conftest import ...`:
`real_data_or_skip`, `random_dataset` (a small random dataset with every feature RecGOAT uses) and
`fixed_scores` (a model whose scores are a given matrix). An autouse fixture gives every test the
session's torch thread count; an autouse guard fails the session when a test
added, changed or removed a file under results/ or figures/ (the committed results), the content-keyed
feature cache results/cache/ excepted."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from recgoat_lib.data import REPO_ROOT, Dataset, data_root
from recgoat_lib.determinism import THREADS_ENV
from recgoat_lib.estimators import FixedEmbeddings
from recgoat_lib.toy import make_toy


GUARDED = ("results", "figures")
UNGUARDED = REPO_ROOT / "results" / "cache"


def committed_results() -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file under the guarded folders, the feature cache excepted."""
    files = (f for folder in GUARDED for f in (REPO_ROOT / folder).rglob("*")
             if f.is_file() and UNGUARDED not in f.parents)
    return {str(f.relative_to(REPO_ROOT)): (st.st_mtime_ns, st.st_size) for f in files for st in [f.stat()]}


@pytest.fixture(autouse=True)
def thread_count_restored():
    """Each test starts with the thread count the session started with: command-line entry points
    under test pin it (`determinism.pin_threads` remembers it in $RECGOAT_THREADS), and a count left
    behind would silently change the numbers of every later test in the same worker (a test once
    left 2 behind)."""
    before = os.environ.get(THREADS_ENV), torch.get_num_threads()
    yield
    if before[0] is None:
        os.environ.pop(THREADS_ENV, None)
    else:
        os.environ[THREADS_ENV] = before[0]
    torch.set_num_threads(before[1])


@pytest.fixture(scope="session", autouse=True)
def results_untouched():
    """Tests write into temporary folders only: the records, tables, pins and figures a clone ships
    must be exactly as they were after the session (a leaked table once went unnoticed)."""
    before = committed_results()
    yield
    after = committed_results()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests wrote into the committed results: {changed[:10]}"


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


def random_dataset(seed: int = 0, n_users: int = 40, n_items: int = 30, name: str = "tiny") -> Dataset:
    """A small random dataset with every feature RecGOAT uses (image, item and user text): 6 interactions
    per user, 4 train, 1 valid, 1 test."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=6, replace=False)
        rows += [(u, int(i), s) for i, s in zip(items, [0, 0, 0, 0, 1, 2])]
    df = pd.DataFrame(rows, columns=["user", "item", "split"])
    return Dataset(
        name=name, n_users=n_users, n_items=n_items, interactions=df,
        item_features={"image": rng.normal(size=(n_items, 12)).astype(np.float32),
                       "text": rng.normal(size=(n_items, 20)).astype(np.float32)},
        user_features={"text": rng.normal(size=(n_users, 20)).astype(np.float32)},
    )


def fixed_scores(scores: np.ndarray) -> FixedEmbeddings:
    """A 'model' whose [users, items] scores are `scores`: one-hot users against the score columns."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    return FixedEmbeddings(torch.eye(scores.shape[0]), scores.T)
