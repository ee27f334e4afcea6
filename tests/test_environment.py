"""pyproject.toml is the one dependency list; environment.yml must list the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def names(specs):
    return {re.split(r"[<>=!~ \[]", s.strip(), maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_environment_yml_matches_pyproject():
    deps = names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    pip_lines = re.findall(r"^\s+- (?!-e )([A-Za-z][\w.\-]*[^\n]*)$", (ROOT / "environment.yml").read_text(), re.M)
    conda = names(l for l in pip_lines if not l.startswith(("python", "pip")))
    assert deps == conda, f"only in pyproject: {deps - conda}; only in environment.yml: {conda - deps}"


def test_torch_is_pinned_in_setup_before_the_project():
    text = (ROOT / "reproduce.sh").read_text()
    assert text.index("torch==2.13.0") < text.index("pip install -e")
