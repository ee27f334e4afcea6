"""Verdicts of two executions compared row by row."""
import pandas as pd
import pytest

from recgoat_lib import crosscheck
from recgoat_lib.tables import TABLES_DIR


def test_verdict_changes_lists_only_the_rows_whose_verdict_moved():
    ref = pd.DataFrame({"claim": ["a", "b", "c"], "verdict": ["holds", "tie", None], "measured": [1, 2, 3]})
    other = pd.DataFrame({"claim": ["c", "b", "a"], "verdict": [None, "lower", "holds"], "measured": [9, 9, 9]})
    changed = crosscheck.verdict_changes(ref, other, ("claim",))
    assert changed.to_dict("records") == [{"claim": "b", "reference": "tie", "other": "lower"}]
    with pytest.raises(ValueError, match="different rows"):
        crosscheck.verdict_changes(ref, other.iloc[:2], ("claim",))


def test_cross_table_counts_each_tables_changes(tmp_path):
    for label, verdicts in (("x", ["holds", "tie"]), ("y", ["holds", "higher"])):
        (tmp_path / label).mkdir()
        pd.DataFrame({"claim": ["p", "q"], "verdict": verdicts}).to_csv(tmp_path / label / "theory_verdicts.csv")
    table = crosscheck.cross_table("x", "y", tmp_path)
    assert table[["table", "verdicts", "changed"]].values.tolist() == [["theory_verdicts", 2, 1]]
    assert table["which (x -> y)"].iloc[0] == "q: tie -> higher"
    with pytest.raises(FileNotFoundError):
        crosscheck.cross_table("x", "absent", tmp_path)


def test_the_committed_comparison_is_current():
    """results/tables/cross_isa.csv is what the two committed executions give."""
    committed = pd.read_csv(TABLES_DIR / "cross_isa.csv").fillna("")
    pd.testing.assert_frame_equal(committed, crosscheck.cross_table().fillna(""), check_dtype=False)
