"""Presets: one parameter vocabulary for the notebooks, and the paper profile's per-dataset RecGOAT
settings reaching the runs the paper profile builds (while `quick` and the stated budgets keep theirs)."""
from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import pytest

from recgoat_lib import protocol as bm
from recgoat_lib.data import REPO_ROOT
from recgoat_lib.presets import (NOTEBOOK_PARAMETERS, PAPER_RECGOAT, PROFILES, SPORTS_TEXT_CHECK, get_profile,
                                 recgoat_settings)

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def parameter_names(path: Path) -> list[str]:
    """The names the notebook's one `parameters` cell assigns."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} parameters cells"
    tree = ast.parse("".join(cells[0]["source"]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_parameters_use_the_vocabulary(path: Path):
    names = parameter_names(path)
    assert "PROFILE" in names
    unknown = sorted(set(names) - set(NOTEBOOK_PARAMETERS))
    assert not unknown, f"{path.name}: parameters {unknown} are not in presets.NOTEBOOK_PARAMETERS"


def test_paper_recgoat_settings_are_the_released_codes():
    assert {n: (s.model["dim"], s.model["knn_k"], s.model["cl_weight"]) for n, s in PAPER_RECGOAT.items()} == {
        "baby": (800, 20, 0.032), "sports": (600, 30, 0.005), "electronics": (200, 20, 0.05)}
    assert recgoat_settings("sports").train == {"lr": 8e-4, "batch_size": 4096, "epochs": 1000}
    assert recgoat_settings("clothing").model == {} and recgoat_settings("baby", "quick").model == {}
    paper = PROFILES["paper"]
    assert (paper.dim, paper.train.lr, paper.train.batch_size, paper.train.patience) == (64, 1e-3, 2048, 20)


def spec_of(bench: bm.Benchmark, label: str):
    entry = bm.ENTRIES[label]
    train = replace(bench.profile.model_train(entry.model, bench.ds.name), **entry.train)
    return bench.overrides(entry, {}), train


def test_the_paper_profile_trains_recgoat_with_its_settings_and_baselines_with_mmrecs(tiny):
    sports = replace(tiny, name="sports")
    bench = bm.Benchmark(sports, get_profile("paper"))
    model, train = spec_of(bench, "recgoat")
    assert (model["dim"], model["knn_k"], model["cl_weight"]) == (600, 30, 0.005)
    assert (train.lr, train.batch_size, train.epochs) == (8e-4, 4096, 1000)
    model, train = spec_of(bench, "lightgcn")
    assert (model["dim"], train.lr, train.batch_size) == (64, 1e-3, 2048)
    model, train = spec_of(bm.Benchmark(tiny, get_profile("quick")), "recgoat")  # quick: unchanged
    assert (model["dim"], train.lr, train.batch_size, "knn_k" in model) == (64, 1e-3, 2048, False)
    budget = bm.Benchmark(sports, SPORTS_TEXT_CHECK.profile(get_profile("paper")))  # a budget states its own
    model, train = spec_of(budget, "recgoat")
    assert (model["dim"], train.lr, train.batch_size, "knn_k" in model) == (64, 5e-3, 4096, False)
