"""The library, not the environment, fixes torch's thread count, on which results depend."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from recgoat_lib.data import REPO_ROOT, Dataset
from recgoat_lib.determinism import THREADS_ENV, configured_threads, pin_threads
from recgoat_lib.models import build_model
from recgoat_lib.train import TrainConfig, train


def threads_after_import(**env: str) -> int:
    """torch's thread count in a fresh interpreter right after `import recgoat_lib`."""
    clean = {k: v for k, v in os.environ.items() if k not in (THREADS_ENV, "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import recgoat_lib, torch; print(torch.get_num_threads())"],
                         env={**clean, "PYTHONPATH": str(REPO_ROOT), **env}, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_import_pins_one_thread_whatever_omp_num_threads_says():
    assert threads_after_import(OMP_NUM_THREADS="2") == 1
    assert threads_after_import(OMP_NUM_THREADS="2", RECGOAT_THREADS="2") == 2


def test_pin_threads_remembers_an_explicit_count(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "")  # unset (configured: 1), and put back as it was afterwards
    before = torch.get_num_threads()
    try:
        assert configured_threads() == 1
        assert pin_threads(2) == 2 and torch.get_num_threads() == 2 and os.environ[THREADS_ENV] == "2"
        assert pin_threads() == 2  # a later pin (e.g. by a training entry point) keeps the explicit choice
        monkeypatch.setenv(THREADS_ENV, "two")
        with pytest.raises(ValueError, match=THREADS_ENV):
            configured_threads()
        with pytest.raises(ValueError, match="positive"):
            pin_threads(0)
    finally:
        torch.set_num_threads(before)


def test_training_runs_with_the_pinned_count(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    rows = [(u, (u + j) % 8, 0 if j < 3 else j - 2) for u in range(6) for j in range(5)]
    ds = Dataset("t", 6, 8, pd.DataFrame(rows, columns=["user", "item", "split"]).astype(np.int64))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # e.g. left over from other code in the same process
        config = TrainConfig(epochs=1, ks=(2,), select_metric="recall@2", progress=False)
        train(build_model("bpr", ds, {"dim": 4}), ds, config, seed=0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
