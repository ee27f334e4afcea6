"""The converged real-data study: every model to convergence on Sports with its real title text.

A `Study` names a dataset, the models (benchmark entries), the seeds and the training budget
(validation Recall@20 every epoch, early stopping with patience 20 as MMRec does, an epoch cap
that no run should reach). Its runs go through the runner, and its records are committed under
`results/runs/<dataset>/`, so `study_table` rebuilds the table from the records alone on a fresh
clone and one more seed can be added without retraining the rest. Until a model has all its
seeds, its row says what is missing instead of presenting a partial mean as final; a run that the
epoch cap stopped is flagged, never reported as converged.

`python -m recgoat_lib.study` trains the missing runs of a study (or only lists them with
`--plan`) and writes its table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .references import published
from .runner import RESULTS_DIR, Record, RunSpec, load_records, spec
from .stats import compare_runs
from .train import TrainConfig

METRIC = "recall@20"


@dataclass(frozen=True)
class Study:
    """Models x seeds on one dataset under one training budget (each model at its own overrides)."""

    name: str
    dataset: str
    models: dict[str, tuple[str, dict[str, Any]]]
    seeds: tuple[int, ...]
    train: TrainConfig
    dim: int = 64
    notes: dict[str, str] = field(default_factory=dict)

    def specs(self, label: str) -> list[RunSpec]:
        model, overrides = self.models[label]
        return [spec(self.dataset, model, self.train, seed, **{"dim": self.dim, **overrides}) for seed in self.seeds]


# Sports with real title text (no image features exist here): MMRec's training protocol for
# every model (lr 1e-3, batch 2048, validation Recall@20 every epoch, patience 20, cap 1000).
# DPRec*'s cross-modal alignment needs two modalities, so with text alone it runs without it.
SPORTS_CONVERGED = Study(
    name="sports_converged", dataset="sports",
    models={"bpr": ("bpr", {}), "lightgcn": ("lightgcn", {}), "vbpr": ("vbpr", {"modalities": ("text",)}),
            "freedom": ("freedom", {"modalities": ("text",)}), "bm3": ("bm3", {"modalities": ("text",)}),
            "lgmrec": ("lgmrec", {"modalities": ("text",)}), "lm_inject": ("lm_inject", {"modalities": ("text",)}),
            "dprec*": ("dprec", {"modalities": ("text",), "alignment": False}),
            "recgoat": ("recgoat", {"modalities": ("text",)}),
            "recgoat ID-only": ("recgoat", {"modalities": (), "user_branch": False})},
    seeds=(2025, 2026, 2027),
    train=TrainConfig(epochs=1000, batch_size=2048, lr=1e-3, eval_every=1, patience=20),
)
STUDIES = {s.name: s for s in (SPORTS_CONVERGED,)}


def uses_features(s: RunSpec) -> bool:
    """Whether a run reads LM/modality features (item modalities or RecGOAT's user LM branch)."""
    return bool(getattr(s.model_config, "modalities", ())) or bool(getattr(s.model_config, "user_branch", False))


def _matches(record: Record, s: RunSpec) -> bool:
    """Whether a record ran this spec, whatever code made it (the study reads committed records):
    same dataset, model and seed, and equal values for every config field both know. The data
    checksum is not compared: ID-only runs are made on the interactions without the LM features
    (which they do not read), the others with them; both share the split and the test users."""
    want = json.loads(json.dumps(s.to_dict(), default=str))
    if any(record.get(k) != want[k] for k in ("dataset", "model", "seed")):
        return False
    return all(record[part][k] == v for part in ("model_config", "train") for k, v in want[part].items()
               if k in record[part])


def study_records(study: Study, results_dir: Path = RESULTS_DIR) -> dict[str, dict[int, Record]]:
    """label -> seed -> the latest record of that run (by date), from the records on disk."""
    records = load_records(results_dir, study.dataset)
    found: dict[str, dict[int, Record]] = {}
    for label in study.models:
        for s in study.specs(label):
            hits = sorted((r for r in records if _matches(r, s)), key=lambda r: r["date"])
            if hits:
                found.setdefault(label, {})[s.seed] = hits[-1]
    return found


def study_table(study: Study, results_dir: Path = RESULTS_DIR) -> pd.DataFrame:
    """One row per model: mean ± std of test Recall/NDCG@20 over its seeds (or what is missing),
    the paired tests of complete models against the best complete baseline on per-user Recall@20,
    the published MMRec Recall@20 (cited, not measured), epochs, wall time, and cap flags."""
    found = study_records(study, results_dir)
    complete = {label: [recs[s] for s in study.seeds] for label, recs in found.items()
                if len(recs) == len(study.seeds)}
    baselines = {label: np.mean([r["valid"][METRIC] for r in recs]) for label, recs in complete.items()
                 if not study.models[label][0] == "recgoat"}
    best = max(baselines, key=baselines.get) if baselines else None
    rows = []
    for label, (model, _) in study.models.items():
        recs = list(found.get(label, {}).values())
        ref = (published(study.dataset, model) or {}).get(METRIC) if label == model else None
        row: dict[str, Any] = {"model": label, "seeds": f"{len(recs)} of {len(study.seeds)}"}
        if label in complete:
            for m in ("recall@20", "ndcg@20"):
                v = np.array([r["test"][m] for r in recs])
                row[m] = f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"
        else:
            done = ", ".join(f"{r['seed']}: {r['test'][METRIC]:.4f}" for r in recs)
            row["recall@20"] = f"incomplete ({done})" if recs else "not run yet"
            row["ndcg@20"] = ""
        if label in complete and best is not None and label != best:
            t = compare_runs(complete[label], complete[best], METRIC, results_dir)
            row[f"vs {best} (t / Wilcoxon p)"] = f"{t.mean_diff:+.4f} ({t.t_p:.2g} / {t.wilcoxon_p:.2g})"
        row["published recall@20 (cited)"] = f"{ref:.4f}" if ref else ""
        row["best epoch"] = ", ".join(str(r["best_epoch"]) for r in recs)
        capped = [str(r["seed"]) for r in recs if r["epochs_run"] >= study.train.epochs]
        row["epoch cap hit"] = ", ".join(capped) or "none"
        row["hours per run"] = ", ".join(f"{_hours(r):.2f}" for r in recs)
        # in backticks: a hash such as 97951e5 must not be read as a number by the table writers
        commits = {f"`{r['git_commit']}{'+dirty' if r.get('git_dirty') else ''}`" for r in recs}
        row["commit"] = ", ".join(sorted(commits))
        rows.append(row)
    return pd.DataFrame(rows)


def _hours(r: Record) -> float:
    per_epoch = r["train_seconds_per_epoch"] + r["eval_seconds"] / max(r["train"]["eval_every"], 1)
    return r["epochs_run"] * per_epoch / 3600


def verdict(study: Study, results_dir: Path = RESULTS_DIR) -> str:
    """One sentence computed from the table: whether RecGOAT beats the best complete baseline."""
    found = study_records(study, results_dir)
    missing = [label for label in study.models if len(found.get(label, {})) < len(study.seeds)]
    if "recgoat" in missing:
        done = sum(len(v) for v in found.values())
        return (f"No verdict yet: {done} of {len(study.models) * len(study.seeds)} runs recorded; "
                f"{len(missing)} of {len(study.models)} models have fewer than {len(study.seeds)} seeds "
                f"({', '.join(missing)}).")
    table = study_table(study, results_dir).set_index("model")
    col = next((c for c in table.columns if c.startswith("vs ")), None)
    if col is None or not isinstance(table.loc["recgoat", col], str):
        return "No verdict yet: no complete baseline to compare with."
    diff, rest = table.loc["recgoat", col].split(" ", 1)
    p = float(rest.strip("()").split(" / ")[0])
    better = float(diff) > 0 and p < 0.05
    worse = float(diff) < 0 and p < 0.05
    word = "beats" if better else "falls below" if worse else "is not distinguishable from"
    best = col[3:].split(" ")[0]
    return f"RecGOAT {word} the best baseline ({best}) on {study.dataset}: {diff} Recall@20, p {p:.2g}."


def plot_study(study: Study, results_dir: Path = RESULTS_DIR):
    """Test Recall@20 per model, one dot per seed, the cited MMRec number as a cross; None without records."""
    import matplotlib.pyplot as plt

    found = study_records(study, results_dir)
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(study.models) + 1.2))
    labels = list(study.models)
    for y, label in enumerate(labels):
        values = [r["test"][METRIC] for r in found.get(label, {}).values()]
        ax.plot(values, [y] * len(values), "o", color="C0", label="measured (one dot per seed)" if y == 0 else None)
        model = study.models[label][0]
        ref = (published(study.dataset, model) or {}).get(METRIC) if label == model else None
        if ref:
            ax.plot([ref], [y], "x", color="C3", label="published MMRec, image + text (cited)")
    ax.set(yticks=range(len(labels)), yticklabels=labels, xlabel=f"test {METRIC}",
           title=f"{study.dataset}: converged study, text only ({study.name})")
    handles, names = ax.get_legend_handles_labels()
    ax.legend(dict(zip(names, handles)).values(), dict(zip(names, handles)).keys(), fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    """Train the missing runs of a study (one at a time, or in parallel with --executor ray), then
    write its table; `--plan` lists the missing runs only; `--table-only` rebuilds from records."""
    import argparse

    from .data import load_dataset
    from .lm import with_lm_features
    from .runner import EXECUTORS, run_many
    from .tables import save_figure, save_table

    ap = argparse.ArgumentParser(prog="python -m recgoat_lib.study", description=main.__doc__)
    ap.add_argument("--study", default=SPORTS_CONVERGED.name, choices=sorted(STUDIES))
    ap.add_argument("--models", nargs="*", help="only these labels (default: all)")
    ap.add_argument("--plan", action="store_true")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--executor", default="serial", choices=EXECUTORS)
    args = ap.parse_args(argv)
    study = STUDIES[args.study]
    found = study_records(study)
    todo = [(label, s) for label in (args.models or study.models) for s in study.specs(label)
            if s.seed not in found.get(label, {})]
    print(f"{study.name}: {len(todo)} runs missing:", ", ".join(f"{label}/{s.seed}" for label, s in todo) or "none")
    if todo and not (args.plan or args.table_only):
        # ID-only models run on the interactions alone (the LM features cost an hour to encode on one
        # thread and do not enter them); the others on the dataset with its LM text features.
        ds = load_dataset(study.dataset)
        plain = [s for _, s in todo if not uses_features(s)]
        if plain:
            run_many(plain, ds, executor=args.executor, threads=args.threads)
        rest = [s for _, s in todo if uses_features(s)]
        if rest:
            if ds.item_text is not None and "text" not in ds.item_features:
                ds = with_lm_features(ds)
            run_many(rest, ds, executor=args.executor, threads=args.threads)
    table = study_table(study)
    print(table.to_markdown(index=False))
    print("wrote", save_table(table, study.name, None))
    fig = plot_study(study)
    if fig is not None:
        print("wrote", save_figure(fig, study.name, None))
    print(verdict(study))


if __name__ == "__main__":
    main()
