"""The generated parts of the README and the docs pages: tables copied from results/tables/, the
departure table, the status paragraph, notebook wall times. `python -m recgoat_lib.report` refreshes
them all.

The figure and table writers live in `tables` and are re-exported here for the notebooks.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from .data import REPO_ROOT, repo_relative
from .departures import DEPARTURES
from .models import make_config
from .presets import PAPER_RECGOAT, get_profile
from .stats import UNDECIDED
from .study import SPORTS_CONVERGED, verdict
from .tables import FIGURES_DIR, TABLES_DIR, save_figure, save_table, set_style

__all__ = ["FIGURES_DIR", "TABLES_DIR", "save_figure", "save_table", "set_style", "departure_table", "status",
           "render_tables", "update_documents", "notebook_durations", "recgoat_settings_table"]

README = REPO_ROOT / "README.md"
DOCS_DIR = REPO_ROOT / "docs"
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


def recgoat_settings_table(profile: str = "paper") -> pd.DataFrame:
    """RecGOAT's settings per dataset under `profile` and whose they are (`presets.ModelSettings.source`):
    the datasets the profile runs and those the paper's released settings name; "no data here" marks
    a dataset this companion has no interactions for."""
    prof = get_profile(profile)
    rows = []
    for dataset in dict.fromkeys((*prof.datasets, *PAPER_RECGOAT)):
        settings = prof.model_settings("recgoat", dataset)
        config = make_config("recgoat", **{"dim": prof.dim, **settings.model})
        train = prof.model_train("recgoat", dataset)
        whose = settings.source if dataset in PAPER_RECGOAT else (
            f"{settings.source}: the paper has no {dataset.title()}, so RecGOAT takes the baselines' settings "
            "and its defaults")
        rows.append({"dataset": dataset.title(), "d": config.dim, "kNN k": config.knn_k,
                     "lambda_cl": config.cl_weight, "lr": train.lr, "batch": train.batch_size,
                     "epochs": train.epochs,
                     "whose": whose + ("" if dataset in prof.datasets else "; no data here")})
    return pd.DataFrame(rows)


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


def _mean(cell: str) -> float:
    """The mean of a "mean ± std" table cell."""
    return float(str(cell).split(" ± ")[0])


def status(tables_dir: Path = TABLES_DIR) -> str:
    """The README's opening status paragraph, computed from the generated tables (never typed):
    the toy benchmark's ranking and RecGOAT's paired test against the best baseline, which
    components the toy ablations show to matter by the seed rule, the theory verdict counts, how many
    toy verdicts moved on another CPU instruction set, and the state of the converged real-data study."""
    def table(name: str) -> pd.DataFrame | None:
        path = tables_dir / f"{name}.csv"
        return pd.read_csv(path) if path.exists() else None

    parts = []
    bench, sig = table("benchmark_toy"), table("benchmark_significance")
    if bench is not None:
        ran = bench[bench["seeds"] > 0].assign(r20=lambda f: f["recall@20"].map(_mean))
        ran = ran.sort_values("r20", ascending=False)
        line = (f"**Toy data** (synthetic, {int(ran['seeds'].iloc[0])} seeds, quick budget): best test Recall@20 "
                f"{ran['r20'].iloc[0]:.3f} ({ran['model'].iloc[0]}); RecGOAT "
                f"{ran.set_index('model').loc['recgoat', 'r20']:.3f}, rank {list(ran['model']).index('recgoat') + 1} "
                f"of {len(ran)}")
        if sig is not None:
            hit = sig[(sig["model"] == "recgoat") & (sig["metric"] == "recall@20")]
            if len(hit):
                h = hit.iloc[0]
                line += f" ({h['mean diff']:+.4f} against {h['vs']}, paired t p = {h['p (t-test)']:.2g})"
        parts.append(line + ".")
    ab = table("ablations")
    if ab is not None and "verdict" in ab:
        lower = ab.loc[ab["verdict"] == "lower", "variant"].tolist()
        higher = ab.loc[ab["verdict"] == "higher", "variant"].tolist()
        parts.append(f"Toy ablations (each variant against the full model, seed rule): lower with "
                     f"{', '.join(lower) or 'none'}; higher with {', '.join(higher) or 'none'}; the other "
                     f"{int((ab['verdict'] == UNDECIDED).sum())} are not distinguishable at this budget.")
    theory = table("theory_verdicts")
    if theory is not None:
        counts = theory["verdict"].value_counts()
        parts.append(f"Theory checks (notebook 06, {int(theory['seeds'].iloc[0])} seeds): "
                     + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    cross = table("cross_isa")
    if cross is not None:
        moved = cross.groupby("execution", sort=False)[["changed", "verdicts"]].sum()
        parts.append("On other CPUs, against the committed execution of the notebooks, toy verdicts (theory, "
                     "ablations, semantic gap) moved: " + "; ".join(
                         f"{r.changed} of {r.verdicts} on {execution}" for execution, r in moved.iterrows())
                     + " (README, \"What the numbers do and do not depend on\").")
    parts.append(f"**Real data** (converged Sports study, text only): {verdict(SPORTS_CONVERGED)}")
    return " ".join(parts)


TABLE_BLOCK = re.compile(r"(<!-- table:([\w\-]+) -->\n).*?(<!-- /table -->)", re.S)


def render_tables(text: str, tables_dir: Path = TABLES_DIR) -> tuple[str, list[str]]:
    """`text` with every `<!-- table:NAME -->...<!-- /table -->` block replaced by results/tables/NAME.md,
    and the names filled (a marker whose table is missing says so instead). Pure: writes nothing, so
    tests can check that each committed document equals what the committed tables give."""
    filled = []

    def fill(m: re.Match) -> str:
        path = tables_dir / f"{m.group(2)}.md"
        if not path.exists():
            return f"{m.group(1)}_(not generated yet: run `./reproduce.sh`)_\n{m.group(3)}"
        filled.append(m.group(2))
        return f"{m.group(1)}{path.read_text().rstrip()}\n{m.group(3)}"

    return TABLE_BLOCK.sub(fill, text), filled


def documents(docs_dir: Path = DOCS_DIR) -> list[Path]:
    """The markdown files whose table blocks `report` fills: README.md and every page under docs/."""
    return [README, *sorted(docs_dir.glob("*.md"))]


def update_documents(paths: list[Path] | None = None, tables_dir: Path = TABLES_DIR) -> dict[str, list[str]]:
    """Fill every table block of each document (README.md and docs/*.md by default) from
    results/tables/ (see `render_tables`); returns, per file name, the table names filled.

    Tables are only ever copied from what the pipeline wrote, so no document can drift from
    the code's numbers.
    """
    filled = {}
    for path in documents() if paths is None else paths:
        text, filled[path.name] = render_tables(path.read_text(), tables_dir)
        path.write_text(text)
    return filled


BENCHMARKS_DIR = REPO_ROOT / "results" / "benchmarks"
# Speed-suite outputs shown in the README and docs/performance.md: (CSV under results/benchmarks, table name, columns).
BENCHMARK_TABLES = (
    ("cpu_floor_targets.csv", "efficiency_floor_targets", None),
    ("cpu_floor_steps.csv", "efficiency_floor_steps",
     ["shape", "dim", "batch_size", "step_s", "floor_s", "step_over_floor", "peak_rss_mb"]),
    ("cpu_floor_versus.csv", "efficiency_floor_versus",
     ["version", "dim", "batch_size", "epoch_s", "eval_valid_test_s", "eval_floor_s", "eval_over_floor",
      "eval_speedup", "max_rel_loss_diff_vs_before"]),
    ("cpu_allocator.csv", "efficiency_allocator", None),
    ("executors.csv", "efficiency_executors", None),
    ("reuse.csv", "efficiency_reuse", None),
    ("cpu_bf16.csv", "efficiency_bf16", ["part", "precision", "seed", "recall@20", "ndcg@20", "dim", "fp32_step_s",
                                         "bf16_step_s", "bf16_speedup", "bf16_rel_loss_diff", "load_average"]),
)


def benchmark_tables(bench_dir: Path = BENCHMARKS_DIR) -> list[Path]:
    """Copy the speed suite's committed outputs the documents show into results/tables/ (as measured)."""
    written = []
    for csv, name, cols in BENCHMARK_TABLES:
        if (bench_dir / csv).exists():
            frame = pd.read_csv(bench_dir / csv)
            written.append(save_table(frame[cols] if cols else frame, name, None, float_format="%.4g"))
    return written


if __name__ == "__main__":
    print("wrote", *benchmark_tables())
    print("wrote", save_table(notebook_durations(), "notebook_durations", None, float_format="%.1f"))
    print("wrote", save_table(departure_table(), "departures", None))
    print("wrote", save_table(recgoat_settings_table(), "paper_recgoat_settings", None, float_format="%.4g"))
    (TABLES_DIR / "status.md").write_text(status() + "\n")
    print("wrote", repo_relative(TABLES_DIR / "status.md"))
    for name, tables in update_documents().items():
        print(f"{name} tables filled:", tables)
