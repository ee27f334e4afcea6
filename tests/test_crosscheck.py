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


def test_cross_table_counts_each_executions_changes_against_the_first(tmp_path):
    for label, verdicts in (("x", ["holds", "tie"]), ("y", ["holds", "higher"]), ("z", ["lower", "tie"])):
        (tmp_path / label).mkdir()
        pd.DataFrame({"claim": ["p", "q"], "verdict": verdicts}).to_csv(tmp_path / label / "theory_verdicts.csv")
    table = crosscheck.cross_table({"x": "machine X", "y": "machine Y", "z": "machine Z"}, tmp_path)
    assert table[["execution", "table", "verdicts", "changed"]].values.tolist() == [
        ["machine Y", "theory_verdicts", 2, 1], ["machine Z", "theory_verdicts", 2, 1]]
    assert table["which (reference -> this execution)"].tolist() == ["q: tie -> higher", "p: holds -> lower"]
    with pytest.raises(FileNotFoundError):
        crosscheck.cross_table({"x": "machine X", "absent": "nowhere"}, tmp_path)


def test_the_committed_comparison_is_current():
    """results/tables/cross_isa.csv is what the committed executions give."""
    committed = pd.read_csv(TABLES_DIR / "cross_isa.csv").fillna("")
    pd.testing.assert_frame_equal(committed, crosscheck.cross_table().fillna(""), check_dtype=False)
