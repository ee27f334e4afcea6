"""Committed notebooks carry no absolute path of the machine that executed them, and the library
prints the paths it writes relative to the repository (`data.shown_path`, `data.repo_relative`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from recgoat_lib.data import REPO_ROOT, repo_relative, shown_path
from recgoat_lib.notebook_outputs import WIDGET, strip_widgets

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Typical roots of absolute paths on Linux, macOS and Windows, plus this checkout's own location.
ABSOLUTE = re.compile("|".join([r"/work/", r"/home/", r"/root/", r"/tmp/", r"/Users/", r"/private/var/",
                                r"\b[A-Za-z]:\\", re.escape(str(REPO_ROOT) + "/")]))


def _output_texts(output: dict) -> list[str]:
    """The human-readable text of one cell output (images are base64 and could match by chance)."""
    texts = [output.get("text", ""), "\n".join(output.get("traceback", []))]
    for mime, value in output.get("data", {}).items():
        if not mime.startswith("image/"):
            texts.append(value if isinstance(value, str) else "".join(value) if isinstance(value, list)
                         else json.dumps(value))
    return ["".join(t) if isinstance(t, list) else t for t in texts]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_absolute_paths_in_committed_outputs(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            for text in _output_texts(output):
                found += [f"cell {index}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
                          for m in ABSOLUTE.finditer(text)]
    found += [f"metadata: {m.group()!r}" for m in ABSOLUTE.finditer(json.dumps(nb.get("metadata", {})))]
    assert not found, f"{path.name} shows absolute paths (print them with data.shown_path):\n" + "\n".join(found)


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 11


def test_shown_path_policy(tmp_path, monkeypatch):
    assert shown_path(REPO_ROOT / "figures" / "x.png") == "figures/x.png"
    assert repo_relative(REPO_ROOT / "results" / "tables" / "t.csv") == Path("results/tables/t.csv")
    assert repo_relative(tmp_path / "t.csv") == tmp_path / "t.csv"  # outside the repository: unchanged
    monkeypatch.setenv("HOME", str(tmp_path))
    assert shown_path(tmp_path / "data" / "baby") == "~/data/baby"
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    assert shown_path(tmp_path / "data" / "baby") == ".../baby"
    assert not ABSOLUTE.search(shown_path(tmp_path / "data" / "baby"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_frozen_progress_widgets_in_committed_outputs(path: Path):
    """A progress bar saved from a batch execution is a widget whose text reads 0% forever;
    `reproduce.sh` strips them after executing (`notebook_outputs`; Jupyter still shows them live)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    widgets = [index for index, cell in enumerate(nb["cells"]) for output in cell.get("outputs", [])
               if WIDGET in output.get("data", {})]
    assert not widgets, f"{path.name}: widget outputs in cells {widgets} (python -m recgoat_lib.notebook_outputs)"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state in its metadata"


def test_reproduce_strips_progress_widgets_after_executing():
    assert "-m recgoat_lib.notebook_outputs" in (REPO_ROOT / "reproduce.sh").read_text()


def test_strip_widgets_removes_outputs_and_state_and_keeps_the_rest(tmp_path):
    bar = {"output_type": "display_data", "metadata": {},
           "data": {WIDGET: {"model_id": "x"}, "text/plain": ["runs:   0%|          | 0/9"]}}
    text = {"output_type": "stream", "name": "stdout", "text": ["kept\n"]}
    nb = {"cells": [{"cell_type": "code", "outputs": [bar, text], "source": [], "metadata": {}}],
          "metadata": {"widgets": {"state": {}}, "kernelspec": {"name": "python3"}}, "nbformat": 4}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert strip_widgets(path) == 1
    got = json.loads(path.read_text())
    assert got["cells"][0]["outputs"] == [text] and got["metadata"] == {"kernelspec": {"name": "python3"}}
