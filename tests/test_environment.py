"""pyproject.toml is the one dependency list; environment.yml must list the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def names(specs):
    return {re.split(r"[<>=!~ \[]", s.strip(), maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def test_environment_yml_matches_pyproject():
    """environment.yml installs the core and the extras ./reproduce.sh installs (notebooks, test, ray)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    deps = names(project["dependencies"] + extras["notebooks"] + extras["test"] + extras["ray"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = names(line for line in pip_block if not line.startswith("-e"))
    assert deps == conda, f"only in pyproject: {deps - conda}; only in environment.yml: {conda - deps}"


def test_torch_is_pinned_in_setup_before_the_project():
    text = (ROOT / "reproduce.sh").read_text()
    assert text.index("torch==2.13.0") < text.index("-e \".[")
