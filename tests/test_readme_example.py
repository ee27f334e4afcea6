"""The README's usage example runs as written (in a subprocess, with its records in a temporary folder)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from recgoat_lib.data import REPO_ROOT


def test_readme_usage_example_runs(tmp_path):
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Use the library"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = {**os.environ, "RECGOAT_RESULTS_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RecGOAT" in out.stdout and "LightGCN" in out.stdout and "t_p" in out.stdout
    assert len(list((tmp_path / "runs" / "toy").glob("*.json"))) == 4
