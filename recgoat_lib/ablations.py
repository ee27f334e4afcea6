"""Ablations and sensitivity of RecGOAT: which parts matter, and how fragile is the model?

Every ablation is a config of the one RecGOAT model (overrides of `RecGOATConfig` and of
`TrainConfig`), never a copy of it, run through the benchmark's protocol (`Benchmark.run_points`:
same profile, seeds and results cache). Two groups:

- components: remove one part of the model (OAT, CMCL, modality GAT, user LM branch, LM
  features, one modality) and measure what the full model loses;
- departures: each behaviour of the released code (and each other place where this companion
  reads the paper one way, e.g. the GAT layer before the audit, the user pair's CMCL sign), alone,
  against the paper-intent default, so a reader sees what each one costs. `departures.DEPARTURES` ties each
  to its variant; README's departure table is computed from it and the ablation table.

Sensitivity sweeps vary one hyper-parameter at a time around the default, select the value on
validation Recall@20, and report test metrics only at the selected value.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from tqdm.auto import tqdm

from .protocol import TUNE_METRIC, Benchmark, Entry, format_point
from .data import Dataset, load_dataset
from .models import make_config
from .presets import REAL_TEXT_SEEDS, SPORTS_TEXT_CHECK, Budget, get_profile
from .runner import RESULTS_DIR
from .stats import FAILS, HOLDS, UNDECIDED, compare_runs, seed_verdict

MODEL = "recgoat"
REFERENCE = "full"


@dataclass(frozen=True)
class Ablation:
    """One named variant: RecGOAT config overrides, training overrides, and what it removes.

    `released` marks the variants that reproduce a behaviour of the released code.
    """

    name: str
    what: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    released: bool = False

    @property
    def change(self) -> str:
        return format_point({**self.model, **self.train}).replace("defaults", "none (paper intent)")

    def entry(self, base: dict[str, Any] | None = None) -> Entry:
        """The benchmark entry that runs this variant on top of `base` (e.g. the tuned config)."""
        return Entry(self.name, MODEL, fixed={**(base or {}), **self.model}, train=dict(self.train))


ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation(REFERENCE, "the full model, paper intent"),
    Ablation("w/o OAT (concat)", "fuse by Linear over concatenated views, no transport", {"fusion": "concat"}),
    Ablation("w/o OAT (sum)", "the same weighted sum of unaligned views, no transport", {"fusion": "sum"}),
    Ablation("w/o CMCL", "no contrastive alignment loss (so the aligned user LM branch has no effect)",
             {"cl_weight": 0.0}),
    Ablation("w/o OAT and CMCL", "neither alignment: weighted sum, no contrastive loss",
             {"fusion": "sum", "cl_weight": 0.0}),
    Ablation("w/o modality GAT", "LM views are projected only, no graph attention", {"gat_layers": 0}),
    Ablation("w/o user LM branch", "no user-user LM branch (also the released code)", {"user_branch": False},
             released=True),
    Ablation("user LM summed", "user LM vector added to the scored user vector instead of aligned by CMCL",
             {"user_fusion": "sum"}),
    Ablation("ID only", "no LM features at all: LightGCN ID branch with CMCL user-item term",
             {"modalities": (), "user_branch": False}),
    Ablation("image only", "image item view only; no text, so no user LM branch either",
             {"modalities": ("image",), "user_branch": False}),
    Ablation("text only", "text item view and the text-based user branch", {"modalities": ("text",)}),
    Ablation("released CMCL sign", "minimise 1 - InfoNCE for the modality pairs", {"cl_sign": "released"},
             released=True),
    Ablation("flipped user-pair sign", "minimise 1 - InfoNCE for the user pair (not in the released code)",
             {"cl_user_sign": "flipped"}),
    Ablation("one-way InfoNCE", "every InfoNCE term in the direction a->b only", {"infonce": "one_way"},
             released=True),
    Ablation("modality pairs on batch rows", "modality pairs over the positives and over the negatives, "
             "duplicates kept", {"cl_items": "batch"}, released=True),
    Ablation("normal init (std 0.1)", "ID embeddings drawn from N(0, 0.1^2) instead of Xavier-uniform",
             {"init": "normal"}, released=True),
    Ablation("GAT without dropout/activation", "no feature dropout, LeakyReLU or output dropout around the "
             "GAT layer (this companion's layer before the audit)",
             {"gat_feat_dropout": 0.0, "gat_activation": "none", "gat_out_dropout": 0.0}),
    Ablation("released Sinkhorn", "fp32 scaling Sinkhorn whose plan underflows", {"sinkhorn": "released"},
             released=True),
    Ablation("negatives not excluded", "uniform negatives may be the user's own positives",
             train={"exclude_train_negatives": False}, released=True),
    Ablation("released selection", "report test metrics at the best test NDCG@10 of an evaluation every "
             "20 epochs, dropout on", train={"selection": "released", "eval_every": 20}, released=True),
)}



def released_model() -> dict[str, Any]:
    """RecGOAT's config as the released code builds it: the model changes of every released-code
    behaviour (`Ablation.released`) together. The training-side ones (selection, negatives) are
    `TrainConfig` fields and are left to the caller's protocol."""
    return {k: v for a in ABLATIONS.values() if a.released for k, v in a.model.items()}


# On real Sports (text view only) "image only" lacks its features and "text only" is the full model.
REAL_TEXT_VARIANTS = tuple(n for n in ABLATIONS if n not in ("image only", "text only"))

LOG_SCALE = ("cl_weight", "cl_temperature", "ot_eps", "ot_scale", "dim")


def ablation_plan() -> pd.DataFrame:
    """The variants as a table: name, config change, what it removes, released-code behaviour or not."""
    return pd.DataFrame([{"variant": a.name, "change": a.change, "what": a.what, "released": a.released}
                         for a in ABLATIONS.values()])


@dataclass
class AblationResult:
    """Run records per variant (profile seeds each) and the variants skipped for lack of features."""

    records: dict[str, list[dict[str, Any]]]
    missing: dict[str, str]


def run_ablations(bench: Benchmark, names: list[str] | tuple[str, ...] = tuple(ABLATIONS),
                  base: dict[str, Any] | None = None) -> AblationResult:
    """Run each named variant (on top of `base`) with every seed of the bench's profile."""
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise KeyError(f"unknown ablations {unknown}; known: {list(ABLATIONS)}")
    if REFERENCE not in names:
        raise ValueError(f"the ablations must include the reference {REFERENCE!r}")
    records, missing = {}, {}
    for name in tqdm(names, desc="ablations"):
        entry = ABLATIONS[name].entry(base)
        reason = bench.missing_features(entry)
        if reason is not None:
            missing[name] = reason
            continue
        records[name] = bench.run_points(entry, [{}], bench.profile.seeds)[0]
    if REFERENCE in missing:
        raise ValueError(f"the full model cannot run on {bench.ds.name}: {missing[REFERENCE]}")
    return AblationResult(records, missing)


def ablation_table(result: AblationResult, metrics: tuple[str, ...] = ("recall@20", "ndcg@20"),
                   test_metric: str = TUNE_METRIC, results_dir=RESULTS_DIR) -> pd.DataFrame:
    """One row per variant: mean and std over seeds of each test metric, the difference of the
    means to the full model, a paired test (per-user, seed-averaged `test_metric`) against it, and a
    verdict on the per-seed differences of `test_metric` (variant minus full model, same seed) by
    `stats.seed_verdict`: "lower" / "higher" only when every seed agrees and the mean difference
    exceeds twice its standard deviation over seeds, else "not distinguishable at this budget"."""
    ref = result.records[REFERENCE]
    ref_means = {m: np.mean([r["test"][m] for r in ref]) for m in metrics}
    rows = []
    for name, ab in ABLATIONS.items():
        row = {"variant": name, "change": ab.change, "released": ab.released}
        if name in result.missing:
            rows.append({**row, "seeds": 0, "note": result.missing[name]})
            continue
        if name not in result.records:
            continue
        recs = result.records[name]
        row["seeds"] = len(recs)
        for m in metrics:
            v = np.array([r["test"][m] for r in recs])
            row[f"{m} mean"] = v.mean()
            row[f"{m} std"] = v.std(ddof=1) if len(v) > 1 else np.nan  # undefined for one seed, not 0
            row[f"{m} diff"] = v.mean() - ref_means[m]
        if name != REFERENCE:
            t = compare_runs(recs, ref, test_metric, results_dir)
            row.update({"users": t.n, f"p t-test ({test_metric})": t.t_p, f"p Wilcoxon ({test_metric})": t.wilcoxon_p})
            by_seed = {r["seed"]: r["test"][test_metric] for r in ref}
            diffs = [r["test"][test_metric] - by_seed[r["seed"]] for r in recs if r["seed"] in by_seed]
            row["verdict"] = {HOLDS: "higher", FAILS: "lower"}.get(seed_verdict(diffs), UNDECIDED)
        rows.append(row)
    return pd.DataFrame(rows)


def run_budget_ablations(budget: Budget = SPORTS_TEXT_CHECK, names: tuple[str, ...] = REAL_TEXT_VARIANTS,
                         seeds: tuple[int, ...] = REAL_TEXT_SEEDS, ds: Dataset | None = None,
                         results_dir: Path = RESULTS_DIR) -> AblationResult:
    """The ablations on a real dataset under a reduced, stated budget (by default the benchmark's
    Sports text check: defaults, no tuning, 10 epochs), through the results cache, so the full
    model's runs are shared with that check and an interrupted run resumes where it stopped."""
    profile = replace(budget, seeds=seeds).profile(get_profile("paper"))
    return run_ablations(Benchmark(ds or load_dataset(budget.dataset), profile, results_dir, tune=budget.tune), names)


def sweep_default(bench: Benchmark, param: str, base: dict[str, Any] | None = None) -> Any:
    """The value of `param` in the model the sweeps vary around."""
    return getattr(make_config(MODEL, **bench.overrides(ABLATIONS[REFERENCE].entry(base), {})), param)


def run_sweeps(bench: Benchmark, grid: dict[str, tuple], n_seeds: int,
               base: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per (parameter, value, seed): validation and test Recall/NDCG@20.

    The default value is always included; runs equal to an earlier one (e.g. the full model's)
    are served by the bench, not retrained.
    """
    if not 1 <= n_seeds <= len(bench.profile.seeds):
        raise ValueError(f"n_seeds must be in 1..{len(bench.profile.seeds)}, got {n_seeds}")
    entry = ABLATIONS[REFERENCE].entry(base)
    points = []
    for param, values in grid.items():
        default = sweep_default(bench, param, base)
        points += [(param, v, v == default) for v in sorted(set(values) | {default})]
    seeds = bench.profile.seeds[:n_seeds]
    runs = bench.run_points(entry, [{param: value} for param, value, _ in points], seeds)
    rows = [{"parameter": param, "value": value, "default": is_default, "seed": seed,
             **{f"valid {m}": r["valid"][m] for m in ("recall@20", "ndcg@20")},
             **{f"test {m}": r["test"][m] for m in ("recall@20", "ndcg@20")}}
            for (param, value, is_default), recs in zip(points, runs) for seed, r in zip(seeds, recs)]
    return pd.DataFrame(rows)


def sweep_choice(frame: pd.DataFrame, metric: str = TUNE_METRIC) -> pd.DataFrame:
    """Per parameter: the default, the value with the best mean validation `metric`, and the test
    metrics (mean and std over seeds) at that chosen value only."""
    rows = []
    for param, g in frame.groupby("parameter", sort=False):
        means = g.groupby("value")[f"valid {metric}"].mean()
        chosen = means.idxmax()
        at = g[g["value"] == chosen]
        rows.append({"parameter": param, "default": g.loc[g["default"], "value"].iloc[0], "chosen": chosen,
                     f"valid {metric} at default": means[g.loc[g["default"], "value"].iloc[0]],
                     f"valid {metric} at chosen": means[chosen],
                     **{f"test {m} {s}": getattr(at[f"test {m}"], s)() for m in ("recall@20", "ndcg@20")
                        for s in ("mean", "std")}, "seeds": len(at)})
    return pd.DataFrame(rows)


def plot_sweeps(frame: pd.DataFrame, metric: str = TUNE_METRIC) -> plt.Figure:
    """Validation `metric` against each parameter's value: mean over seeds with a +-1 std band,
    the default marked by a dashed line."""
    params = list(dict.fromkeys(frame["parameter"]))
    cols = min(4, len(params))
    fig, axes = plt.subplots(-(-len(params) // cols), cols, figsize=(3.6 * cols, 3.0 * -(-len(params) // cols)),
                             squeeze=False)
    for ax, param in zip(axes.flat, params):
        g = frame[frame["parameter"] == param].astype({"value": float})
        sns.lineplot(data=g, x="value", y=f"valid {metric}", errorbar="sd", marker="o", ax=ax)
        ax.axvline(float(g.loc[g["default"], "value"].iloc[0]), color="grey", ls="--", lw=1)
        if param in LOG_SCALE:
            ax.set_xscale("log")
        ax.set(title=param, xlabel=param, ylabel=f"valid {metric}")
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    """`python -m recgoat_lib.ablations`: the ablations on real Sports text under the benchmark's
    SPORTS_TEXT_CHECK budget; prints the table and writes `<table>` (and the per-run `<table>_runs`)."""
    import argparse
    from .protocol import efficiency
    from .determinism import pin_threads
    from .tables import save_table
    p = argparse.ArgumentParser(prog="python -m recgoat_lib.ablations", description=main.__doc__)
    p.add_argument("--variants", default=",".join(REAL_TEXT_VARIANTS),
                   help=f"comma-separated, must include {REFERENCE!r}; known: {', '.join(ABLATIONS)}")
    p.add_argument("--seeds", default=",".join(map(str, REAL_TEXT_SEEDS)))
    p.add_argument("--threads", type=int, default=1, help="torch threads (the results depend on it)")
    p.add_argument("--table", default=f"{SPORTS_TEXT_CHECK.dataset}_ablations")
    a = p.parse_args(argv)
    pin_threads(a.threads)
    result = run_budget_ablations(names=tuple(a.variants.split(",")), seeds=tuple(int(s) for s in a.seeds.split(",")))
    table = ablation_table(result)
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print("wrote", save_table(table, a.table, None, float_format="%.4g"))
    runs = efficiency(result)
    print("wrote", save_table(runs, f"{a.table}_runs", None, float_format="%.4g"))


if __name__ == "__main__":
    main()
