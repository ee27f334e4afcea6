"""The tables of the README and the docs pages are copied from results/tables, never typed."""
import json
import re

import pandas as pd
import pytest

from recgoat_lib.departures import DEPARTURES
from recgoat_lib.report import (README, TABLE_BLOCK, departure_table, notebook_durations, recgoat_settings_table,
                                documents, render_tables, save_table, update_documents)


def test_update_documents_copies_generated_tables(tmp_path, monkeypatch):
    monkeypatch.setattr("recgoat_lib.tables.TABLES_DIR", tmp_path)
    save_table(pd.DataFrame({"model": ["a", "b"], "recall@20": [0.12345, None], "note": [None, "x"]}), "demo")
    readme, page = tmp_path / "README.md", tmp_path / "page.md"
    readme.write_text("x\n<!-- table:demo -->\nold\n<!-- /table -->\n<!-- table:absent -->\n<!-- /table -->\n")
    page.write_text("y\n<!-- table:demo -->\n<!-- /table -->\n")
    assert update_documents([readme, page], tmp_path) == {"README.md": ["demo"], "page.md": ["demo"]}
    text = readme.read_text()
    assert "0.1235" in text and "old" not in text and "not generated yet" in text
    assert "0.1235" in page.read_text()
    assert (tmp_path / "demo.tex").exists() and (tmp_path / "demo.csv").exists()
    assert "nan" not in text and "nan" not in (tmp_path / "demo.tex").read_text()  # missing cells are blank


def test_notebook_durations_read_papermill_metadata(tmp_path):
    for name, seconds in (("01_a", 12.5), ("02_b", 30.0)):
        meta = {"papermill": {"duration": seconds, "end_time": "2026-11-25T12:00:00.0", "parameters": {"X": 1}}}
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"metadata": meta, "cells": []}))
    (tmp_path / "scratch.ipynb").write_text("{}")  # not numbered: ignored
    table = notebook_durations(tmp_path)
    assert table["notebook"].tolist() == ["01_a", "02_b", "total"]
    assert table["seconds"].tolist() == [12.5, 30.0, 42.5] and table["minutes"].iloc[-1] == pytest.approx(42.5 / 60)
    (tmp_path / "03_c.ipynb").write_text(json.dumps({"metadata": {}, "cells": []}))
    with pytest.raises(ValueError, match="03_c.ipynb has no papermill duration"):
        notebook_durations(tmp_path)


def test_departure_table_computes_the_measured_effect_from_the_ablation_table(tmp_path):
    measured, unmeasurable = DEPARTURES[0], next(d for d in DEPARTURES if d.variant is None)
    pd.DataFrame({"variant": ["full", measured.variant], "seeds": [3, 3], "recall@20 std": [0.002, 0.0041],
                  "recall@20 diff": [0.0, -0.01234], "p t-test (recall@20)": [None, 0.0123]}
                 ).to_csv(tmp_path / "ablations.csv", index=False)
    table = departure_table(tmp_path).set_index("departure")["measured effect"]
    assert table[measured.what] == "-0.0123 ± 0.0041 Recall@20, p = 0.012 (toy, 3 seeds)"
    assert table[unmeasurable.what] == unmeasurable.note
    assert (table == "not yet measured").sum() == sum(d.variant not in (None, measured.variant) for d in DEPARTURES)
    assert (departure_table(tmp_path / "absent")["measured effect"] == "not yet measured").sum() == sum(
        d.variant is not None for d in DEPARTURES)


def drifted_tables(text: str) -> list[str]:
    """Names of the table blocks whose content differs from what `render_tables` writes."""
    rendered = {m.group(2): m.group(0) for m in TABLE_BLOCK.finditer(render_tables(text)[0])}
    return [m.group(2) for m in TABLE_BLOCK.finditer(text) if m.group(0) != rendered[m.group(2)]]


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.name)
def test_committed_document_tables_equal_their_sources(doc):
    """Every generated block of the committed README and docs pages is exactly the committed
    results/tables/NAME.md (a page without blocks passes: it has nothing generated)."""
    text = doc.read_text()
    names = [m.group(2) for m in TABLE_BLOCK.finditer(text)]
    assert names or doc != README, "the README has no generated tables"
    assert render_tables(text)[1] == names, f"a {doc.name} table has no results/tables/NAME.md"
    assert drifted_tables(text) == [], f"{doc.name} differs from results/tables/: run python -m recgoat_lib.report"
    assert render_tables(text)[0] == text


def test_a_hand_edited_readme_number_is_caught():
    text = README.read_text()
    first = next(TABLE_BLOCK.finditer(text))
    digit = re.compile(r"\d").search(text, first.end(1))
    edited = text[:digit.start()] + str((int(digit.group()) + 1) % 10) + text[digit.end():]
    assert drifted_tables(edited) == [first.group(2)]


def test_the_paper_settings_table_is_the_presets():
    """The README's 'whose settings' table is generated from presets, and the committed one is current."""
    from recgoat_lib.presets import PAPER_RECGOAT
    from recgoat_lib.tables import TABLES_DIR

    table = recgoat_settings_table().set_index("dataset")
    for dataset, settings in PAPER_RECGOAT.items():
        row = table.loc[dataset.title()]
        assert (row["d"], row["kNN k"], row["lambda_cl"]) == (settings.model["dim"], settings.model["knn_k"],
                                                              settings.model["cl_weight"])
        assert (row["lr"], row["batch"], row["epochs"]) == tuple(settings.train[k] for k in ("lr", "batch_size",
                                                                                             "epochs"))
        assert row["whose"].startswith(settings.source)
    committed = pd.read_csv(TABLES_DIR / "paper_recgoat_settings.csv").set_index("dataset")
    pd.testing.assert_frame_equal(committed, table, check_dtype=False)


def test_status_counts_the_toy_verdicts_that_moved_on_each_other_cpu(tmp_path):
    from recgoat_lib.report import status
    assert "other CPUs" not in status(tmp_path)  # no comparison table, no sentence
    pd.DataFrame({"execution": ["AMD EPYC, AVX2", "AMD EPYC, AVX2", "Intel Xeon, AVX-512"],
                  "table": ["theory_verdicts", "ablations", "theory_verdicts"], "verdicts": [4, 3, 4],
                  "changed": [1, 0, 2]}).to_csv(tmp_path / "cross_isa.csv", index=False)
    assert "moved: 1 of 7 on AMD EPYC, AVX2; 2 of 4 on Intel Xeon, AVX-512 (README" in status(tmp_path)
