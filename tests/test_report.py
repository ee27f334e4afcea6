"""README tables are copied from results/tables, never typed."""
from recgoat_lib.report import save_table, update_readme

import pandas as pd


def test_update_readme_copies_generated_tables(tmp_path, monkeypatch):
    monkeypatch.setattr("recgoat_lib.report.TABLES_DIR", tmp_path)
    save_table(pd.DataFrame({"model": ["a"], "recall@20": [0.12345]}), "demo")
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- table:demo -->\nold\n<!-- /table -->\n<!-- table:absent -->\n<!-- /table -->\n")
    assert update_readme(readme, tmp_path) == ["demo"]
    text = readme.read_text()
    assert "0.1235" in text and "old" not in text and "not generated yet" in text
    assert (tmp_path / "demo.tex").exists() and (tmp_path / "demo.csv").exists()
