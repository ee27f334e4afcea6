"""Where notebooks write what they show: figures to figures/, tables to results/tables/."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .data import REPO_ROOT

FIGURES_DIR = REPO_ROOT / "figures"
TABLES_DIR = REPO_ROOT / "results" / "tables"


def set_style() -> None:
    """One readable look for every figure."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "savefig.bbox": "tight"})


def save_figure(fig: plt.Figure, name: str, profile: str = "quick") -> Path:
    """Write `figures/<name>.png` (paper-profile figures get a `_paper` suffix so quick ones survive)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / (f"{name}.png" if profile == "quick" else f"{name}_{profile}.png")
    fig.savefig(path)
    return path


def save_table(df: pd.DataFrame, name: str, profile: str = "quick", float_format: str = "%.4f") -> Path:
    """Write a table as CSV, Markdown and LaTeX under results/tables/; returns the CSV path."""
    TABLES_DIR.mkdir(parents=True, exist_ok=True)
    stem = TABLES_DIR / (name if profile == "quick" else f"{name}_{profile}")
    df.to_csv(stem.with_suffix(".csv"), index=False, float_format=float_format)
    stem.with_suffix(".md").write_text(df.to_markdown(index=False, floatfmt=float_format[1:]) + "\n")
    stem.with_suffix(".tex").write_text(df.to_latex(index=False, float_format=float_format.__mod__))
    return stem.with_suffix(".csv")
