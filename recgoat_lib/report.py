"""Where notebooks write what they show: figures to figures/, tables to results/tables/.

The save functions return the written path relative to the repository root (see
`data.repo_relative`), so printing it puts no absolute path of the machine into notebook outputs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .data import REPO_ROOT, repo_relative
from .departures import DEPARTURES

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
    """Write a table as CSV, Markdown and LaTeX under results/tables/; returns the CSV's repo-relative path."""
    TABLES_DIR.mkdir(parents=True, exist_ok=True)
    stem = TABLES_DIR / _stem(name, profile)
    df.to_csv(stem.with_suffix(".csv"), index=False, float_format=float_format)
    stem.with_suffix(".md").write_text(df.to_markdown(index=False, floatfmt=float_format[1:]) + "\n")
    stem.with_suffix(".tex").write_text(df.to_latex(index=False, float_format=float_format.__mod__))
    return repo_relative(stem.with_suffix(".csv"))


README = REPO_ROOT / "README.md"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def notebook_durations(notebooks_dir: Path = NOTEBOOKS_DIR) -> pd.DataFrame:
    """Wall time of each numbered notebook as papermill last executed it (from the notebook's own
    metadata) and when it finished, plus a total row: what a quick `./reproduce.sh
    run` costs, measured rather than claimed."""
    rows = []
    for path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is None:
            raise ValueError(f"{path.name} has no papermill duration: execute it with papermill first")
        rows.append({"notebook": path.stem, "seconds": meta["duration"], "finished": meta["end_time"][:16]})
    if not rows:
        raise ValueError(f"no numbered notebooks under {notebooks_dir}")
    frame = pd.DataFrame(rows)
    total = {"notebook": "total", "seconds": frame["seconds"].sum(), "finished": ""}
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True).assign(minutes=lambda f: f["seconds"] / 60)


# Ablation tables the departure table reads (notebook 08's quick-profile table), with the label its
# effects carry. sports_ablations is left out: it was run before the audit changed the GAT layer and
# the released sign, so its rows measure other switches than those named here.
DEPARTURE_SOURCES = (("ablations", "toy"),)
EFFECT_METRIC = "recall@20"


def measured_effect(row: pd.Series, label: str, metric: str = EFFECT_METRIC) -> str:
    """One ablation row as text: the difference of mean test `metric` to the full model, ± the
    variant's std over seeds (when there are several), the paired t-test's p, data and seeds."""
    seeds = int(row["seeds"])
    spread = f" ± {row[f'{metric} std']:.2g}" if seeds > 1 else ""
    name = metric.replace("recall", "Recall").replace("ndcg", "NDCG")
    return (f"{row[f'{metric} diff']:+.3g}{spread} {name}, p = {row[f'p t-test ({metric})']:.2g} "
            f"({label}, {seeds} seed{'s' if seeds > 1 else ''})")


def departure_table(tables_dir: Path = TABLES_DIR,
                    sources: tuple[tuple[str, str], ...] = DEPARTURE_SOURCES) -> pd.DataFrame:
    """Paper | released code | default here | switch | measured effect, one row per `departures.DEPARTURES`.

    The measured effect is computed from each source's ablation table (its row for the departure's
    variant, when that variant has run there with at least one seed), never typed: "not yet
    measured" when no source has the row, the departure's note when no variant can measure it.
    """
    tables = {label: pd.read_csv(tables_dir / f"{name}.csv").set_index("variant")
              for name, label in sources if (tables_dir / f"{name}.csv").exists()}
    rows = []
    for d in DEPARTURES:
        if d.variant is None:
            effect = d.note
        else:
            found = [measured_effect(t.loc[d.variant], label) for label, t in tables.items()
                     if d.variant in t.index and t.loc[d.variant, "seeds"] > 0]
            effect = "; ".join(found) or "not yet measured"
        rows.append({"departure": d.what, "paper": d.paper, "released code": d.released, "default here": d.default,
                     "switch": d.switch, "ablation variant": d.variant or "", "measured effect": effect})
    return pd.DataFrame(rows)


TABLE_BLOCK = re.compile(r"(<!-- table:([\w\-]+) -->\n).*?(<!-- /table -->)", re.S)


def render_readme(text: str, tables_dir: Path = TABLES_DIR) -> tuple[str, list[str]]:
    """`text` with every `<!-- table:NAME -->...<!-- /table -->` block replaced by results/tables/NAME.md,
    and the names filled (a marker whose table is missing says so instead). Pure: writes nothing, so
    tests can check that the committed README equals what the committed tables give."""
    filled = []

    def fill(m: re.Match) -> str:
        path = tables_dir / f"{m.group(2)}.md"
        if not path.exists():
            return f"{m.group(1)}_(not generated yet: run `./reproduce.sh`)_\n{m.group(3)}"
        filled.append(m.group(2))
        return f"{m.group(1)}{path.read_text().rstrip()}\n{m.group(3)}"

    return TABLE_BLOCK.sub(fill, text), filled


def update_readme(readme: Path = README, tables_dir: Path = TABLES_DIR) -> list[str]:
    """Fill every table block of README.md from results/tables/ (see `render_readme`); returns the names filled.

    Tables are only ever copied from what the pipeline wrote, so the README cannot drift from
    the code's numbers.
    """
    text, filled = render_readme(readme.read_text(), tables_dir)
    readme.write_text(text)
    return filled


if __name__ == "__main__":
    print("wrote", save_table(notebook_durations(), "notebook_durations", None, float_format="%.1f"))
    print("wrote", save_table(departure_table(), "departures", None))
    print("README tables filled:", update_readme())
