"""What an executed notebook keeps: no progress-bar widgets.

A progress bar drawn while papermill executes a notebook is saved as an ipywidgets output whose
text reads "0%" forever, plus the widget's state in the notebook's metadata. `./reproduce.sh`
strips both after executing each notebook (run a notebook in Jupyter to see its bars live);
`tests/test_notebooks_clean.py` checks the committed notebooks.

`python -m recgoat_lib.notebook_outputs NOTEBOOK...` strips the given notebooks in place.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

WIDGET = "application/vnd.jupyter.widget-view+json"


def strip_widgets(path: Path) -> int:
    """Remove widget outputs and saved widget state from the notebook at `path` (in place, and only
    when there is something to remove); returns the number of outputs removed."""
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    removed = 0
    for cell in nb["cells"]:
        if "outputs" in cell:
            kept = [o for o in cell["outputs"] if WIDGET not in o.get("data", {})]
            removed += len(cell["outputs"]) - len(kept)
            cell["outputs"] = kept
    had_state = nb.get("metadata", {}).pop("widgets", None) is not None
    if removed or had_state:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + ("\n" if raw.endswith("\n") else ""),
                        encoding="utf-8")
    return removed


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        strip_widgets(Path(arg))
