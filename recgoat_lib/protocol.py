"""The accuracy benchmark protocol (the speed suite is `benchmarks/`): an equal, recorded tuning budget per model,
then several seeds.

For each model (an `Entry`: a registered model, fixed overrides, training switches) the grid
in `presets.GRIDS[profile][entry]` is tried on the validation split only (mean validation Recall@20
over `TUNE_SEEDS` seeds); the chosen config is then trained with every seed of the profile
and the test metrics at the best-validation epoch are summarised as mean and std. Every
profile gives every entry the same number of grid points. A model whose modality features
are absent from the dataset is not run: its row says which features it needs.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .data import DataError, Dataset
from .models import make_config, model_class
from .presets import GRIDS, SPORTS_TEXT_CHECK, Budget, Profile, get_profile
from .runner import RESULTS_DIR, run_many, spec
from .stats import compare_runs

FEATURE_MODALITIES = ("image", "text")
TUNE_METRIC = "recall@20"
TUNE_SEEDS = 1
TABLE_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "precision@10", "precision@20")
# The released code's behaviours (see models/recgoat.py and train.TrainConfig): its CMCL sign,
# one-way InfoNCE over the positives and the negatives with duplicates, N(0, 0.1^2) embeddings,
# fp32 Sinkhorn, no user branch; negatives not excluded, selection on test NDCG@10 every 20 epochs.
RELEASED_MODEL = {"cl_sign": "released", "infonce": "one_way", "cl_items": "batch", "init": "normal",
                  "sinkhorn": "released", "user_branch": False}
RELEASED_TRAIN = {"exclude_train_negatives": False, "selection": "released", "eval_every": 20}


# Models rebuilt from a paper's description alone (no public code or numbers): their labels carry a "*".
RECONSTRUCTED = {"dprec": "dprec*"}


@dataclass(frozen=True)
class Entry:
    """One benchmark row: a registered model with fixed config overrides and training switches.

    `tuned_as` names another entry whose chosen config this one reuses instead of tuning its own
    (used for RecGOAT-as-released, whose selection on test cannot be tuned on validation).
    """

    label: str
    model: str
    fixed: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    tuned_as: str | None = None

    @property
    def uses_features(self) -> bool:
        return "modalities" in {f for f in model_class(self.model).Config.__dataclass_fields__}


ENTRIES = {e.label: e for e in (
    Entry("bpr", "bpr"),
    Entry("lightgcn", "lightgcn"),
    Entry("vbpr", "vbpr"),
    Entry("freedom", "freedom"),
    Entry("bm3", "bm3"),
    Entry("lgmrec", "lgmrec"),
    Entry("lm_inject", "lm_inject"),
    Entry(RECONSTRUCTED["dprec"], "dprec"),
    Entry("recgoat", "recgoat"),
    Entry("recgoat_released", "recgoat", fixed=RELEASED_MODEL, train=RELEASED_TRAIN, tuned_as="recgoat"),
)}
TARGET = "recgoat"

def grid_combinations(grid: Mapping[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of a grid's values, as config overrides ([{}], one empty point, for no grid)."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def grid_points(profile: str, label: str) -> list[dict[str, Any]]:
    """Every combination of the entry's grid under `profile` (one empty point when it has none)."""
    return grid_combinations(GRIDS[profile].get(label, {}))


def feature_modalities(ds: Dataset, wanted: tuple[str, ...] = FEATURE_MODALITIES) -> tuple[str, ...]:
    """The wanted item modalities the dataset actually has (e.g. ("text",) for real Sports)."""
    return tuple(m for m in wanted if m in ds.item_features)


@dataclass
class BenchmarkResult:
    """Everything a benchmark produced: run records per entry, the tuning log, skipped entries."""

    dataset: str
    profile: str
    records: dict[str, list[dict[str, Any]]]
    chosen: dict[str, dict[str, Any]]
    tuning: pd.DataFrame
    missing: dict[str, str]
    modalities: tuple[str, ...]
    results_dir: Path = RESULTS_DIR


class Benchmark:
    """Runs entries on one dataset under one profile, never running the same spec twice."""

    def __init__(self, ds: Dataset, profile: Profile, results_dir: Path = RESULTS_DIR, tune: bool = True,
                 extra: dict[str, dict[str, Any]] | None = None):
        """`tune=False` runs each entry's defaults; `extra[label]` adds fixed overrides to an entry.
        Models that use features get every item modality of `FEATURE_MODALITIES` (image, text) the dataset has."""
        self.ds, self.profile, self.results_dir, self.tune_grid = ds, profile, results_dir, tune
        self.extra = extra or {}
        self.modalities = feature_modalities(ds)

    def overrides(self, entry: Entry, point: dict[str, Any]) -> dict[str, Any]:
        """The model config overrides of one run: the dataset's modalities unless the entry fixes its own."""
        own = {"modalities": self.modalities} if entry.uses_features else {}
        settings = self.profile.model_settings(entry.model, self.ds.name).model
        return {"dim": self.profile.dim, **own, **settings, **entry.fixed, **self.extra.get(entry.label, {}), **point}

    def run_points(self, entry: Entry, points: list[dict[str, Any]], seeds: tuple[int, ...]) -> list[list[dict]]:
        """Records of every (point, seed), one list per point, trained in one `run_many` call."""
        train = replace(self.profile.model_train(entry.model, self.ds.name), **entry.train)
        specs = [spec(self.ds.name, entry.model, train, seed,
                      **self.overrides(entry, point)) for point in points for seed in seeds]
        recs = run_many(specs, self.ds, cache=self.profile.use_cache, results_dir=self.results_dir,
                        progress=False)
        return [recs[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(points))]

    def missing_features(self, entry: Entry) -> str | None:
        """Why an entry (a benchmark model or an ablation variant) cannot run on this dataset: the
        item modalities its config uses and, with RecGOAT's user branch, the user LM features that
        the dataset lacks; None when it can run."""
        if not entry.uses_features:
            return None
        wanted = self.modalities or FEATURE_MODALITIES
        try:
            self.ds.require_features(wanted, entry.label)
            config = make_config(entry.model, **self.overrides(entry, {}))
            absent = [m for m in config.modalities if m not in self.ds.item_features]
            if getattr(config, "user_branch", False) and "text" not in self.ds.user_features:
                absent.append("user text")
        except (DataError, ValueError) as exc:
            absent = [m for m in wanted if m not in self.ds.item_features]
            if not absent:
                return str(exc)
        return f"needs features: {', '.join(absent)} — absent" if absent else None

    def tune(self, entry: Entry) -> tuple[dict[str, Any], pd.DataFrame]:
        """Try every grid point on `TUNE_SEEDS` seeds; choose the best mean validation Recall@20.
        With tuning off, the single point is the model's defaults."""
        points = grid_points(self.profile.name, entry.label) if self.tune_grid else [{}]
        runs = self.run_points(entry, points, self.profile.seeds[:TUNE_SEEDS])
        rows = [{"model": entry.label, "config": format_point(point),
                 f"valid {TUNE_METRIC}": float(np.mean([r["valid"][TUNE_METRIC] for r in recs])), "point": point}
                for point, recs in zip(points, runs)]
        log = pd.DataFrame(rows)
        best = int(log[f"valid {TUNE_METRIC}"].to_numpy().argmax())
        log["chosen"] = np.arange(len(log)) == best
        return rows[best]["point"], log

    def __call__(self, labels: list[str] | tuple[str, ...]) -> BenchmarkResult:
        unknown = [x for x in labels if x not in ENTRIES]
        if unknown:
            raise KeyError(f"unknown benchmark entries {unknown}; known: {sorted(ENTRIES)}")
        records, chosen, logs, missing = {}, {}, [], {}
        for label in tqdm(labels, desc=f"benchmark {self.ds.name}"):
            entry = ENTRIES[label]
            reason = self.missing_features(entry)
            if reason is not None:
                missing[label] = reason
                continue
            if entry.tuned_as is not None:
                if entry.tuned_as not in chosen:
                    raise ValueError(f"{label} reuses {entry.tuned_as}'s tuned config: list {entry.tuned_as} first")
                chosen[label] = chosen[entry.tuned_as]
            else:
                point, log = self.tune(entry)
                chosen[label] = {**self.extra.get(label, {}), **point}  # shown as the entry's config
                logs.append(log)
            records[label] = self.run_points(entry, [chosen[label]], self.profile.seeds)[0]
        tuning = pd.concat(logs, ignore_index=True).drop(columns="point") if logs else pd.DataFrame()
        return BenchmarkResult(self.ds.name, self.profile.name, records, chosen, tuning, missing,
                               self.modalities, self.results_dir)


def run_benchmark(ds: Dataset, profile: Profile, labels: list[str] | tuple[str, ...] = tuple(ENTRIES),
                  results_dir: Path = RESULTS_DIR, tune: bool = True,
                  extra: dict[str, dict[str, Any]] | None = None) -> BenchmarkResult:
    """Tune and run `labels` on `ds` under `profile` (see the module docstring)."""
    return Benchmark(ds, profile, results_dir, tune=tune, extra=extra)(labels)


def run_budget(budget: Budget, ds: Dataset, base: Profile, results_dir: Path = RESULTS_DIR,
               extra: dict[str, dict[str, Any]] | None = None) -> BenchmarkResult:
    """Run a reduced budget on top of `base`; `extra[label]` adds fixed config overrides to an entry
    (e.g. a paper value)."""
    return run_benchmark(ds, budget.profile(base), budget.labels, results_dir, budget.tune, extra)


def main(argv: list[str] | None = None) -> None:
    """`python -m recgoat_lib.protocol`: run the SPORTS_TEXT_CHECK budget (or a given one)
    through the results cache and print the table, so a notebook can load the records."""
    import argparse
    from .data import load_dataset
    from .determinism import pin_threads
    from .tables import save_table
    p = argparse.ArgumentParser(prog="python -m recgoat_lib.protocol", description=main.__doc__)
    p.add_argument("--labels", default=",".join(SPORTS_TEXT_CHECK.labels))
    p.add_argument("--seeds", default=",".join(map(str, SPORTS_TEXT_CHECK.seeds)))
    p.add_argument("--threads", type=int, default=1, help="torch threads (the results depend on it)")
    p.add_argument("--extra", type=json.loads, default={},
                   help='config overrides per entry as JSON, e.g. \'{"recgoat": {"cl_weight": 0.005}}\'')
    p.add_argument("--table", default=None, help="table name (default: <dataset>_text_check)")
    a = p.parse_args(argv)
    pin_threads(a.threads)
    budget = replace(SPORTS_TEXT_CHECK, labels=tuple(a.labels.split(",")),
                     seeds=tuple(int(s) for s in a.seeds.split(",")))
    res = run_budget(budget, load_dataset(budget.dataset), get_profile("paper"), extra=a.extra)
    table = results_table(res)
    name = a.table or f"{budget.dataset}_text_check"
    print(table.to_markdown(index=False))
    print("wrote", save_table(table, name, None))
    runs = efficiency(res)
    print(runs.to_markdown(index=False))
    print("wrote", save_table(runs, f"{name}_runs", None, float_format="%.4g"))



def format_point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items()) or "defaults"


def best_baseline(result: BenchmarkResult, target: str = TARGET) -> str | None:
    """The non-RecGOAT entry with the highest mean *validation* Recall@20 (never chosen on test)."""
    scores = {label: np.mean([r["valid"][TUNE_METRIC] for r in recs])
              for label, recs in result.records.items() if ENTRIES[label].model != ENTRIES[target].model}
    return max(scores, key=scores.get) if scores else None


def significance(result: BenchmarkResult, metrics: tuple[str, ...] = ("recall@20", "ndcg@20"),
                 target: str = TARGET) -> pd.DataFrame:
    """Paired tests (per-user, seed-averaged test metrics) of each RecGOAT entry against the best baseline."""
    base = best_baseline(result, target)
    rows = []
    if base is None:
        return pd.DataFrame(rows)
    for label, recs in result.records.items():
        if ENTRIES[label].model != ENTRIES[target].model:
            continue
        for m in metrics:
            t = compare_runs(recs, result.records[base], m, result.results_dir)
            rows.append({"model": label, "vs": base, "metric": m, "users": t.n, "mean diff": t.mean_diff,
                         "t": t.t_stat, "p (t-test)": t.t_p, "p (Wilcoxon)": t.wilcoxon_p})
    return pd.DataFrame(rows)


def summary(result: BenchmarkResult, metrics: tuple[str, ...] = TABLE_METRICS) -> pd.DataFrame:
    """Long frame: one row per (model, metric) with mean, std and number of seeds of the test metric."""
    rows = []
    for label, recs in result.records.items():
        for m in metrics:
            v = np.array([r["test"][m] for r in recs])
            rows.append({"model": label, "metric": m, "mean": v.mean(),
                         "std": v.std(ddof=1) if len(v) > 1 else np.nan,  # undefined for one seed, not 0
                         "seeds": len(v)})
    return pd.DataFrame(rows)


def results_table(result: BenchmarkResult, metrics: tuple[str, ...] = TABLE_METRICS,
                  digits: int = 4) -> pd.DataFrame:
    """The paper-style table: "mean ± std" per metric, the chosen config, the p-values of the
    RecGOAT rows against the best baseline, and a "needs features" row for each skipped model."""
    s = summary(result, metrics)
    sig = significance(result, metrics=(TUNE_METRIC,))
    rows = []
    for label in ENTRIES:
        if label in result.records:
            row = {"model": label, "modalities": _modalities(label, result),
                   "config": format_point(result.chosen[label]),
                   "seeds": len(result.records[label])}
            for m in metrics:
                r = s[(s["model"] == label) & (s["metric"] == m)].iloc[0]
                row[m] = (f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}" if r["seeds"] > 1
                          else f"{r['mean']:.{digits}f} (one seed)")
            hit = sig[sig["model"] == label] if len(sig) else sig
            row[f"p vs best baseline ({TUNE_METRIC}, t / Wilcoxon)"] = (
                f"{hit['p (t-test)'].iloc[0]:.2g} / {hit['p (Wilcoxon)'].iloc[0]:.2g} ({hit['vs'].iloc[0]})"
                if len(hit) else "")
            rows.append(row)
        elif label in result.missing:
            rows.append({"model": label, "modalities": "", "config": "", "seeds": 0,
                         **{m: result.missing[label] for m in metrics}})
    return pd.DataFrame(rows)


def _modalities(label: str, result: BenchmarkResult) -> str:
    return ", ".join(result.modalities) if ENTRIES[label].uses_features else "ID only"


def per_seed(result: BenchmarkResult, metrics: tuple[str, ...] = TABLE_METRICS) -> pd.DataFrame:
    """Long frame for plots: one row per (entry, seed, metric) with the test value."""
    rows = [{"model": label, "seed": r["seed"], "metric": m, "value": r["test"][m]}
            for label, recs in result.records.items() for r in recs for m in metrics]
    return pd.DataFrame(rows)


def efficiency(result: BenchmarkResult) -> pd.DataFrame:
    """Per run: training seconds per epoch, evaluation seconds, peak RSS, epochs, parameters, and the
    commit and date the run was made at. Takes any result with `records` (label -> run records),
    e.g. an `ablations.AblationResult` too."""
    rows = [{"model": label, "seed": r["seed"], "s/epoch": r["train_seconds_per_epoch"],
             "eval s": r["eval_seconds"], "peak RSS MB": r["peak_rss_mb"], "epochs run": r["epochs_run"],
             "best epoch": r["best_epoch"], "parameters": r["n_parameters"], "commit": r["git_commit"],
             "date": r["date"][:10]}
            for label, recs in result.records.items() for r in recs]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
