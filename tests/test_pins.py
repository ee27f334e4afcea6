"""Pins: recorded headline numbers fail a notebook when they move beyond their tolerance."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from recgoat_lib import pins
from recgoat_lib.data import REPO_ROOT


def test_record_then_check_within_and_beyond_tolerance(tmp_path, monkeypatch):
    monkeypatch.setenv(pins.RECORD_ENV, "1")
    table = pins.check("nb", {"recall": (0.177, 0.01), "claim": (1.0, 0.0)}, pins_dir=tmp_path)
    assert set(table["status"]) == {"recorded"}
    assert json.loads((tmp_path / "nb.json").read_text())["recall"] == {"value": 0.177, "tolerance": 0.01}
    monkeypatch.delenv(pins.RECORD_ENV)
    ok = pins.check("nb", {"recall": (0.18, 0.01), "claim": (1.0, 0.0)}, pins_dir=tmp_path)
    assert list(ok["status"]) == ["ok", "ok"]
    with pytest.raises(pins.PinError, match=r"recall: 0.1, pinned 0.177"):
        pins.check("nb", {"recall": (0.10, 0.01), "claim": (1.0, 0.0)}, pins_dir=tmp_path)
    with pytest.raises(pins.PinError, match="claim"):
        pins.check("nb", {"recall": (0.177, 0.01), "claim": (0.0, 0.0)}, pins_dir=tmp_path)
    with pytest.raises(pins.PinError, match="never recorded"):
        pins.check("nb", {"recall": (0.177, 0.01), "claim": (1.0, 0.0), "new": (1.0, 0.0)}, pins_dir=tmp_path)
    with pytest.raises(pins.PinError, match="not computed"):
        pins.check("nb", {"recall": (0.177, 0.01)}, pins_dir=tmp_path)
    with pytest.raises(pins.PinError, match="no pins recorded"):
        pins.check("other", {"recall": (0.1, 0.01)}, pins_dir=tmp_path)
    with pytest.raises(pins.PinError, match="finite"):
        pins.check("nb", {"recall": (float("nan"), 0.01)}, pins_dir=tmp_path)
    assert "status" not in pins.check("other", {"x": (1.0, 0.0)}, profile="paper", pins_dir=tmp_path)


def test_seed_tolerance_is_k_standard_deviations_with_a_floor():
    assert pins.seed_tolerance([0.17, 0.18, 0.19]) == pytest.approx(2 * 0.01)
    assert pins.seed_tolerance([0.17]) == 1e-4
    assert pins.seed_tolerance([0.5, 0.5], floor=0.002) == 0.002


def test_every_pinning_notebook_has_committed_pins():
    names = []
    for nb in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        names += re.findall(r'pins\.check\(\s*"([\w\-]+)"', source)
    assert len(names) >= 8, names
    for name in names:
        path = Path(pins.PINS_DIR) / f"{name}.json"
        assert path.exists(), f"{name}: run ./reproduce.sh run and commit results/pins"
        assert json.loads(path.read_text())


def test_seed_means():
    frame = pd.DataFrame({"variant": ["a", "a", "b", "b"], "recall@20": [0.1, 0.2, 0.3, 0.3]})
    got = pins.seed_means(frame, "variant")
    assert got["a recall@20"][0] == pytest.approx(0.15) and got["a recall@20"][1] == pytest.approx(2 * 0.0707107)
    assert got["b recall@20"] == (pytest.approx(0.3), 1e-4)


def test_record_means_names_pins_by_label_and_metric():
    records = {"lightgcn": [{"test": {"recall@20": 0.1, "ndcg@20": 0.05}},
                            {"test": {"recall@20": 0.2, "ndcg@20": 0.07}}],
               "bpr": [{"test": {"recall@20": 0.3, "ndcg@20": 0.1}}]}
    got = pins.record_means(records, ("recall@20", "ndcg@20"), prefix="toy ")
    assert list(got) == ["toy lightgcn recall@20", "toy lightgcn ndcg@20", "toy bpr recall@20", "toy bpr ndcg@20"]
    assert got["toy lightgcn recall@20"] == (pytest.approx(0.15), pytest.approx(2 * 0.0707107, rel=1e-5))
    assert got["toy lightgcn ndcg@20"] == (pytest.approx(0.06), pytest.approx(2 * 0.0141421, rel=1e-5))
    assert got["toy bpr recall@20"] == (pytest.approx(0.3), 1e-4)  # one seed: the floor


def test_record_means_of_no_records_is_no_pins():
    assert pins.record_means({}, ("recall@20", "ndcg@20")) == {}
