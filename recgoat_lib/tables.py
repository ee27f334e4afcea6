"""Where notebooks write what they show: figures to figures/, tables to results/tables/.

The save functions return the written path relative to the repository root (see
`data.repo_relative`), so printing it puts no absolute path of the machine into notebook outputs.
A bottom-layer module: every command line may save tables without importing `report`.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .data import REPO_ROOT, repo_relative

FIGURES_DIR = REPO_ROOT / "figures"
TABLES_DIR = REPO_ROOT / "results" / "tables"


def set_style() -> None:
    """One readable look for every figure."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "savefig.bbox": "tight"})


def _stem(name: str, profile: str | None) -> str:
    """Quick-profile (and profile-less) outputs keep their name; others get a suffix so quick ones survive."""
    return name if profile in (None, "quick") else f"{name}_{profile}"


def save_figure(fig: plt.Figure, name: str, profile: str | None = "quick") -> Path:
    """Write `figures/<name>.png` (paper-profile figures get a `_paper` suffix); returns its repo-relative path."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{_stem(name, profile)}.png"
    fig.savefig(path)
    return repo_relative(path)


def save_table(df: pd.DataFrame, name: str, profile: str | None = "quick", float_format: str = "%.4f") -> Path:
    """Write a table as CSV, Markdown and LaTeX under results/tables/; returns the CSV's repo-relative path.
    Missing cells (rows of different kinds in one table) are blank in every format, not "nan"."""
    TABLES_DIR.mkdir(parents=True, exist_ok=True)
    stem = TABLES_DIR / _stem(name, profile)
    df.to_csv(stem.with_suffix(".csv"), index=False, float_format=float_format)
    cells = df.astype(object).where(df.notna(), None)  # tabulate blanks None, not NaN
    stem.with_suffix(".md").write_text(cells.to_markdown(index=False, floatfmt=float_format[1:], missingval="") + "\n")
    stem.with_suffix(".tex").write_text(df.to_latex(index=False, float_format=float_format.__mod__, na_rep=""))
    return repo_relative(stem.with_suffix(".csv"))
