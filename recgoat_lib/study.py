"""The converged real-data study: every model to convergence on Sports with its real title text.

A `Study` names a dataset, the models (benchmark entries), the seeds and the training budget
(validation Recall@20 every epoch, early stopping with patience 20 as MMRec does, an epoch cap
that no run should reach). Its runs go through the runner, and its records are committed under
`results/runs/<dataset>/`, so `study_table` rebuilds the table from the records alone on a fresh
clone and one more seed can be added without retraining the rest. Until a model has all its
seeds, its row says what is missing instead of presenting a partial mean as final; a run that the
epoch cap stopped is flagged, never reported as converged.

Each model is tuned first: every point of its grid (the same number of points per model) runs with
the first seed, the best on validation Recall@20 is chosen, and only that point runs the other seeds.

`python -m recgoat_lib.study` trains the missing runs of a study (tuning points first; `--plan` only
lists them) and writes its tables.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .ablations import released_model
from .presets import STUDY_GRIDS
from .references import published
from .protocol import format_point, grid_combinations
from .runner import RESULTS_DIR, Record, RunSpec, commit_label, load_records, spec, valid_curve
from .stats import FAILS, HOLDS, compare_runs, p_text, seed_verdict
from .train import TrainConfig

METRIC = "recall@20"


@dataclass(frozen=True)
class Study:
    """Models x seeds on one dataset under one training budget, each model at its own overrides and
    first tuned on its grid (`grids[label]`, config values; the same number of points per model) with
    the first seed, on validation Recall@20; the chosen point then runs with every seed."""

    name: str
    dataset: str
    models: dict[str, tuple[str, dict[str, Any]]]
    seeds: tuple[int, ...]
    train: TrainConfig
    dim: int = 64
    grids: Mapping[str, Mapping[str, tuple]] = field(default_factory=dict)
    contrasts: tuple[tuple[str, str], ...] = ()  # (label, against): paired comparisons besides the verdict

    def points(self, label: str) -> list[dict[str, Any]]:
        """The label's grid points (config overrides on top of its own); [{}] when it has no grid."""
        return grid_combinations(self.grids.get(label, {}))

    def spec(self, label: str, seed: int, point: Mapping[str, Any] | None = None) -> RunSpec:
        model, overrides = self.models[label]
        return spec(self.dataset, model, self.train, seed, **{"dim": self.dim, **overrides, **(point or {})})

    def tuning_specs(self, label: str) -> list[RunSpec]:
        """One run per grid point, with the first seed."""
        return [self.spec(label, self.seeds[0], point) for point in self.points(label)]

    def specs(self, label: str, point: Mapping[str, Any] | None = None) -> list[RunSpec]:
        """Every seed at one grid point (by default the model's own defaults)."""
        return [self.spec(label, seed, point) for seed in self.seeds]


# Sports with real title text (no image features exist here): MMRec's training protocol for
# every model (lr 1e-3, batch 2048, validation Recall@20 every epoch, patience 20, cap 1000).
# DPRec*'s cross-modal alignment needs two modalities, so with text alone it runs without it.
# "recgoat released" is RecGOAT as the released code builds it (every released-code model behaviour
# of `ablations.released_model`); its training-side behaviours (test-set selection, negatives that
# may be positives) are left out: every model of the study shares one protocol.
SPORTS_CONVERGED = Study(
    name="sports_converged", dataset="sports",
    models={"bpr": ("bpr", {}), "lightgcn": ("lightgcn", {}), "vbpr": ("vbpr", {"modalities": ("text",)}),
            "freedom": ("freedom", {"modalities": ("text",)}), "bm3": ("bm3", {"modalities": ("text",)}),
            "lgmrec": ("lgmrec", {"modalities": ("text",)}), "lm_inject": ("lm_inject", {"modalities": ("text",)}),
            "dprec*": ("dprec", {"modalities": ("text",), "alignment": False}),
            "recgoat": ("recgoat", {"modalities": ("text",)}),
            "recgoat released": ("recgoat", {"modalities": ("text",), **released_model()}),
            "recgoat ID-only": ("recgoat", {"modalities": (), "user_branch": False})},
    seeds=(2025, 2026, 2027),
    train=TrainConfig(epochs=1000, batch_size=2048, lr=1e-3, eval_every=1, patience=20),
    grids=STUDY_GRIDS,
    # what the LM views and alignment add to RecGOAT's own ID-only scaffolding, what the released
    # code's behaviours change, and what the alignment adds over naive injection of the same LM features
    # (the paper's motivation; this third contrast was added once lm_inject's seeds were recorded)
    contrasts=(("recgoat", "recgoat ID-only"), ("recgoat", "recgoat released"), ("recgoat", "lm_inject")),
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


def latest_record(records: list[Record], s: RunSpec) -> Record | None:
    """The latest (by date) of `records` that ran spec `s`, whatever code made it; None if none did."""
    hits = sorted((r for r in records if _matches(r, s)), key=lambda r: r["date"])
    return hits[-1] if hits else None


def chosen_point(study: Study, label: str, records: list[Record]) -> dict[str, Any] | None:
    """The label's grid point with the best validation Recall@20 at the first seed; None until every
    point has a record (the test set plays no part in the choice)."""
    points = study.points(label)
    if len(points) == 1:
        return points[0]
    runs = [latest_record(records, s) for s in study.tuning_specs(label)]
    if any(r is None for r in runs):
        return None
    return max(zip(runs, points), key=lambda rp: rp[0]["valid"][METRIC])[1]


def study_records(study: Study, records: list[Record]) -> dict[str, dict[int, Record]]:
    """label -> seed -> the latest record (by date) at the label's chosen grid point, from `records`
    (`load_records(results_dir, study.dataset)`); a label still being tuned has none."""
    found: dict[str, dict[int, Record]] = {}
    for label in study.models:
        point = chosen_point(study, label, records)
        for s in study.specs(label, point) if point is not None else []:
            if (r := latest_record(records, s)) is not None:
                found.setdefault(label, {})[s.seed] = r
    return found


def missing_runs(study: Study, labels: list[str] | None = None,
                 results_dir: Path = RESULTS_DIR) -> list[tuple[str, RunSpec]]:
    """What to train next, per label: the grid points without a record at the first seed, or, once
    the label is tuned, the seeds its chosen point still lacks."""
    records = load_records(results_dir, study.dataset)
    todo = []
    for label in labels or study.models:
        point = chosen_point(study, label, records)
        specs = study.tuning_specs(label) if point is None else study.specs(label, point)
        todo += [(label, s) for s in specs if latest_record(records, s) is None]
    return todo


def remaining_runs(study: Study, results_dir: Path = RESULTS_DIR) -> dict[str, int]:
    """label -> how many runs it still needs in all: its untried grid points and the other seeds of
    the point it has chosen (or will choose)."""
    records = load_records(results_dir, study.dataset)
    left = {}
    for label in study.models:
        untried = sum(latest_record(records, s) is None for s in study.tuning_specs(label))
        point = chosen_point(study, label, records)
        seeds = study.specs(label, point)[1:] if point is not None else []
        left[label] = untried + (sum(latest_record(records, s) is None for s in seeds) if point is not None
                                 else len(study.seeds) - 1)
    return left


def label_records(study: Study, label: str, records: list[Record]) -> list[Record]:
    """Every record of `label` among `records`, at any grid point and seed."""
    specs = [study.spec(label, seed, point) for point in study.points(label) for seed in study.seeds]
    return [r for s in specs if (r := latest_record(records, s)) is not None]


def _point(study: Study, label: str, s: RunSpec) -> dict[str, Any]:
    """The grid point a spec of `label` runs at."""
    return {k: getattr(s.model_config, k) for k in study.grids.get(label, {})}


def _record_point(study: Study, label: str, r: Record) -> dict[str, Any]:
    """The grid point a record of `label` ran at."""
    return {k: r["model_config"][k] for k in study.grids.get(label, {})}


def _complete(study: Study, found: dict[str, dict[int, Record]]) -> tuple[dict[str, list[Record]], str | None]:
    """The labels with every seed at their chosen point (their records in seed order), and the best
    complete baseline by mean validation Recall@20 (None when no baseline is complete)."""
    complete = {label: [recs[s] for s in study.seeds] for label, recs in found.items()
                if len(recs) == len(study.seeds)}
    baselines = {label: np.mean([r["valid"][METRIC] for r in recs]) for label, recs in complete.items()
                 if not study.models[label][0] == "recgoat"}
    return complete, (max(baselines, key=baselines.get) if baselines else None)


def tuning_table(study: Study, results_dir: Path = RESULTS_DIR) -> pd.DataFrame:
    """Every grid point of every label: its validation Recall@20 at the first seed (or "not run yet")
    and whether it was chosen."""
    records = load_records(results_dir, study.dataset)
    rows = []
    for label in study.models:
        chosen = chosen_point(study, label, records)
        for point, s in zip(study.points(label), study.tuning_specs(label)):
            r = latest_record(records, s)
            rows.append({"model": label, "point": format_point(point),
                         f"valid {METRIC} (seed {study.seeds[0]})": f"{r['valid'][METRIC]:.4f}" if r else "not run yet",
                         "best epoch": r["best_epoch"] if r else "", "hours": f"{_hours(r):.2f}" if r else "",
                         "device": run_hardware(r) if r else "", "chosen": point == chosen})
    return pd.DataFrame(rows)


def study_table(study: Study, results_dir: Path = RESULTS_DIR) -> pd.DataFrame:
    """One row per model: mean ± std of test Recall/NDCG@20 over its seeds (or what is missing),
    the paired tests of complete models against the best complete baseline on per-user Recall@20,
    the published MMRec Recall@20 (cited, not measured), epochs, wall time, the device it was
    measured on, the data (interactions and features) its runs read, and cap flags."""
    records = load_records(results_dir, study.dataset)
    found = study_records(study, records)
    complete, best = _complete(study, found)
    rows = []
    for label, (model, _) in study.models.items():
        recs = list(found.get(label, {}).values())
        ref = (published(study.dataset, model) or {}).get(METRIC) if label == model else None
        point = chosen_point(study, label, records)
        n_points = len(study.points(label))
        tuned = [s for s in study.tuning_specs(label) if latest_record(records, s) is not None]
        row: dict[str, Any] = {"model": label, "seeds": f"{len(recs)} of {len(study.seeds)}",
                               "tuned": format_point(point) if point is not None
                               else f"tuning: {len(tuned)} of {n_points} points run"}
        if label in complete:
            for m in ("recall@20", "ndcg@20"):
                v = np.array([r["test"][m] for r in recs])
                row[m] = f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"
        else:
            done = ", ".join(f"{r['seed']}: {r['test'][METRIC]:.4f}" for r in recs)
            so_far = ", ".join(f"{format_point(_record_point(study, label, r))} seed {r['seed']}: "
                               f"{r['test'][METRIC]:.4f}" for r in label_records(study, label, records))
            row["recall@20"] = (f"incomplete ({done})" if recs else "not run yet" if point is not None
                                else f"tuning (so far {so_far})" if so_far else "tuning")
            row["ndcg@20"] = ""
        if best is not None:  # blank until a model has all its seeds
            vs = f"vs {best} (t / Wilcoxon p)"
            if label == best:
                row[vs] = "(the best complete baseline)"
            elif label in complete:
                t = compare_runs(complete[label], complete[best], METRIC, results_dir)
                row[vs] = f"{t.mean_diff:+.4f} ({p_text(t.t_p)} / {p_text(t.wilcoxon_p)})"
            else:
                row[vs] = ""
        row["published recall@20 (cited)"] = f"{ref:.4f}" if ref else ""
        row["best epoch"] = ", ".join(str(r["best_epoch"]) for r in recs)
        capped = [str(r["seed"]) for r in recs if r["epochs_run"] >= study.train.epochs]
        row["epoch cap hit"] = ", ".join(capped) or ("none" if recs else "")
        row["hours per run"] = ", ".join(f"{_hours(r):.2f}" for r in recs)
        row["device"] = ", ".join(sorted({run_hardware(r) for r in recs}))
        # what the runs read (`Dataset.checksum`: interactions and features); LM features encoded on
        # another machine can differ in their last bits, and so does this
        row["data"] = ", ".join(sorted({f"`{r['dataset_checksum'][:8]}`" for r in recs}))
        # in backticks: a hash such as 97951e5 must not be read as a number by the table writers
        commits = {f"`{commit_label(r)}`" for r in recs}
        row["commit"] = ", ".join(sorted(commits))
        rows.append(row)
    return pd.DataFrame(rows)


def run_device(r: Record) -> str:
    """Where a run trained ("cpu", "cuda"): wall times are only comparable on one device."""
    return r.get("device", "cpu").split(":")[0]


def run_hardware(r: Record) -> str:
    """The device as the tables show it: a CPU run with the vector instruction set its kernels used,
    the CPU's vendor and family, and its torch thread count where that is not one ("cpu AVX512 Intel
    Xeon", "cpu AVX512 AMD EPYC, 2 threads"; less for records made before runs kept them), since a
    seed's numbers can differ between those as they do between CPU and GPU. A run resumed from a
    checkpoint under another execution context lists its parts with their epochs and threads."""
    if not (segments := r.get("execution_segments")):
        return _hardware(r)
    ends = [s["from_epoch"] for s in segments[1:]] + [r["epochs_run"]]
    return "; ".join(f"epochs {s['from_epoch'] + 1}-{end}: {_hardware(s, always_threads=True)}"
                     for s, end in zip(segments, ends))


def _hardware(part: Mapping[str, Any], always_threads: bool = False) -> str:
    device = run_device(part)
    if device != "cpu":
        return device
    # the vendor and family of the CPU model ("Intel(R) Xeon(R) Processor" -> "Intel Xeon")
    model = " ".join(part.get("cpu_model", "").replace("(R)", "").replace("(TM)", "").split()[:2])
    text = " ".join(x for x in (device, part.get("cpu_capability"), model) if x)
    threads = part.get("threads")
    if always_threads or (threads is not None and threads != 1):
        text += f", {threads if threads is not None else '?'} thread{'' if threads == 1 else 's'}"
    return text


def epoch_seconds(r: Record) -> float:
    """Wall seconds a run spent per epoch, training plus its share of the evaluations, as it ran
    (on a shared machine, with the sharing)."""
    return r["train_seconds_per_epoch"] + r["eval_seconds"] / max(r["train"]["eval_every"], 1)


def _hours(r: Record) -> float:
    return r["epochs_run"] * epoch_seconds(r) / 3600


ALPHA = 0.05  # the paired t test's level in `verdict`


def judged(a: list[Record], b: list[Record], results_dir: Path = RESULTS_DIR) -> tuple[str, str]:
    """Runs `a` against runs `b` (one per seed, in the study's seed order): "above", "below" or "level",
    and the numbers behind it. Above (below) needs both tests: the paired t test on per-user Recall@20
    (seed-averaged) at p < ALPHA, which sees the users' noise but not the seeds', and the seed rule on the
    per-seed differences of test Recall@20 (`stats.seed_verdict`: the same sign in every seed, a mean
    beyond 2 standard deviations over seeds), which sees the seeds'. `investigations.judge` is the other
    rule in this library, for validation Recall@20 read off short runs' curves: a curve keeps no per-user
    values and a variant may have one seed, so it puts a floor (two standard errors of a difference over
    users) under the seed rule instead; a converged test metric has both tests, so both must agree here."""
    t = compare_runs(a, b, METRIC, results_dir)
    per_seed = [x["test"][METRIC] - y["test"][METRIC] for x, y in zip(a, b)]
    rule = seed_verdict(per_seed)
    side = ("above" if rule == HOLDS else "below" if rule == FAILS else "level") if t.t_p < ALPHA else "level"
    numbers = (f"{t.mean_diff:+.4f} Recall@20 (per seed {', '.join(f'{d:+.4f}' for d in per_seed)}), "
               f"paired t p {p_text(t.t_p)}, seed rule: {rule}")
    return side, numbers


def verdict(study: Study, results_dir: Path = RESULTS_DIR) -> str:
    """The study's answer, computed from its records: whether RecGOAT beats the best complete baseline,
    then one sentence per `study.contrasts` pair (`_contrasts`). A difference is called as `judged` says
    (the paired t test on per-user Recall@20 and the seed rule must agree). While a baseline still lacks
    seeds, the best complete one may not be the best, so the first sentence is marked provisional and
    names them. While RecGOAT (or a contrast's side) lacks seeds there is no verdict, but once two
    seeds are shared the same rule is applied to them and said as provisional (`_on_shared_seeds`). The
    records are read once, here."""
    found = study_records(study, load_records(results_dir, study.dataset))
    complete, best = _complete(study, found)
    said = (_headline(study, found, complete, best, results_dir), _contrasts(study, found, complete, results_dir))
    return " ".join(part for part in said if part)


def _on_shared_seeds(study: Study, found: dict[str, dict[int, Record]], label: str, against: str,
                     results_dir: Path) -> tuple[list[int], str, str] | None:
    """`judged` on the seeds both labels have so far ((seeds, side, numbers)), or None with fewer than
    two: the seed rule needs two. Weaker than the final call (fewer seeds, so the seed rule has less to
    go on and the seed-averaged per-user values are noisier), hence only ever said as provisional."""
    seeds = [s for s in study.seeds if s in found.get(label, {}) and s in found.get(against, {})]
    if len(seeds) < 2:
        return None
    side, numbers = judged([found[label][s] for s in seeds], [found[against][s] for s in seeds], results_dir)
    return seeds, side, numbers


def _headline(study: Study, found: dict[str, dict[int, Record]], complete: dict[str, list[Record]],
              best: str | None, results_dir: Path) -> str:
    """RecGOAT against the best complete baseline, or what is missing before it can be said (with the
    provisional call on the seeds recorded so far, where there are two)."""
    missing = [label for label in study.models if len(found.get(label, {})) < len(study.seeds)]
    pending = [label for label in missing if study.models[label][0] != "recgoat"]
    words = {"above": "beats", "below": "falls below", "level": "is not distinguishable from"}
    if "recgoat" in missing:
        done = sum(len(v) for v in found.values())
        said = (f"No verdict yet: {done} of {len(study.models) * len(study.seeds)} runs at the tuned points recorded; "
                f"{len(missing)} of {len(study.models)} models have fewer than {len(study.seeds)} seeds "
                f"({', '.join(missing)}).")
        if best is not None and (shared := _on_shared_seeds(study, found, "recgoat", best, results_dir)):
            seeds, side, numbers = shared
            said += (f" Provisional, on the {len(seeds)} seeds recorded so far ({', '.join(map(str, seeds))}): "
                     f"RecGOAT {words[side]} the best complete baseline ({best}): {numbers}.")
        return said
    if best is None:
        return "No verdict yet: no complete baseline to compare with."
    side, numbers = judged(complete["recgoat"], complete[best], results_dir)
    said = f"RecGOAT {words[side]} the best complete baseline ({best}) on {study.dataset}: {numbers}."
    return f"Provisional (baselines without all their seeds: {', '.join(pending)}): {said}" if pending else said


def _contrasts(study: Study, found: dict[str, dict[int, Record]], complete: dict[str, list[Record]],
               results_dir: Path) -> str:
    """One sentence per `study.contrasts` pair once both labels have every seed, judged as the headline
    is; until then, how many seeds each has, and the provisional call on the seeds they share where
    there are two."""
    said = []
    words = {"above": "above", "below": "below", "level": "not distinguishable from"}
    for label, against in study.contrasts:
        if label in complete and against in complete:
            side, numbers = judged(complete[label], complete[against], results_dir)
            said.append(f"{label} is {words[side]} {against}: {numbers}.")
            continue
        have = ", ".join(f"{x} {len(found.get(x, {}))} of {len(study.seeds)} seeds" for x in (label, against))
        if shared := _on_shared_seeds(study, found, label, against, results_dir):
            seeds, side, numbers = shared
            said.append(f"{label} against {against}: not yet ({have}); provisional, on the shared seeds "
                        f"{', '.join(map(str, seeds))}, {label} is {words[side]} {against}: {numbers}.")
        else:
            said.append(f"{label} against {against}: not yet ({have}).")
    return " ".join(said)


def plot_study(study: Study, results_dir: Path = RESULTS_DIR):
    """Test Recall@20 per model: one filled dot per seed at the chosen grid point, a hollow dot per
    tuning run that is not (or not yet) counted, the cited MMRec number as a cross; None without records."""
    import matplotlib.pyplot as plt

    records = load_records(results_dir, study.dataset)
    found = study_records(study, records)
    tuning = {label: [r for s in study.tuning_specs(label) if (r := latest_record(records, s)) is not None
                      and r not in found.get(label, {}).values()] for label in study.models}
    if not found and not any(tuning.values()):
        return None
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(study.models) + 2.0))
    labels = list(study.models)
    for y, label in enumerate(labels):
        values = [r["test"][METRIC] for r in found.get(label, {}).values()]
        ax.plot(values, [y] * len(values), "o", color="C0", label="measured, chosen point (one dot per seed)")
        extra = [r["test"][METRIC] for r in tuning[label]]
        ax.plot(extra, [y] * len(extra), "o", mfc="none", color="C0", label="tuning run, not (yet) chosen")
        model = study.models[label][0]
        ref = (published(study.dataset, model) or {}).get(METRIC) if label == model else None
        if ref:
            ax.plot([ref], [y], "x", color="C3", label="published MMRec, image + text (cited)")
    ax.set(yticks=range(len(labels)), yticklabels=labels, xlabel=f"test {METRIC}",
           title=f"{study.dataset}: converged study, text only ({study.name})")
    handles, names = ax.get_legend_handles_labels()
    # below the axes: inside, it would cover the dots of whichever model sits in its corner
    ax.legend(dict(zip(names, handles)).values(), dict(zip(names, handles)).keys(), fontsize=8,
              loc="upper center", bbox_to_anchor=(0.45, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def plot_curves(study: Study, results_dir: Path = RESULTS_DIR):
    """Validation Recall@20 per epoch of every recorded run, one panel per model: the chosen point's
    seeds as solid lines, the other grid points dashed and grey, each run's best epoch (where its test
    figure is read) as a dot. It shows what the table cannot: whether a run had flattened out before
    early stopping ended it, and where one peaked early and fell. None without records."""
    import matplotlib.pyplot as plt

    records = load_records(results_dir, study.dataset)
    found = study_records(study, records)
    runs = {label: label_records(study, label, records) for label in study.models}
    if not any(runs.values()):
        return None
    ncols = 4
    nrows = -(-len(runs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.6 * nrows), sharey=True, squeeze=False)
    for ax, (label, recs) in itertools.zip_longest(axes.flat, runs.items(), fillvalue=(None, None)):
        if label is None:
            ax.set_axis_off()
            continue
        chosen = list(found.get(label, {}).values())
        for r in recs:
            curve = valid_curve(r)
            if r in chosen:
                style = dict(color=f"C{study.seeds.index(r['seed']) % 10}", label=f"seed {r['seed']}")
            else:
                point = _record_point(study, label, r)
                status = "not chosen" if label in found else "tuning"
                seed = "" if r["seed"] == study.seeds[0] else f" seed {r['seed']}"
                style = dict(color="0.6", ls="--", label=f"{format_point(point)}{seed}, {status}")
            ax.plot(list(curve), list(curve.values()), lw=1, **style)
            ax.plot([r["best_epoch"]], [r["valid"][METRIC]], "o", ms=3, color=style["color"])
        if not recs:
            ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
        else:
            ax.legend(fontsize=7, frameon=False, loc="lower right")
        ax.set_title(label, fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"valid {METRIC}")
    fig.suptitle(f"{study.dataset}: validation {METRIC} per epoch, every recorded run ({study.name}; "
                 f"dot: best epoch, where test is read)", fontsize=11)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    """Train the missing runs of a study (one at a time, or in parallel with --executor ray), then
    write its table; `--plan` lists the missing runs only; `--table-only` rebuilds from records."""
    import argparse

    from .data import load_dataset
    from .lm import with_lm_features
    from .runner import EXECUTORS, RunnerError, run_many
    from .tables import save_figure, save_table

    ap = argparse.ArgumentParser(prog="python -m recgoat_lib.study", description=main.__doc__)
    ap.add_argument("--study", default=SPORTS_CONVERGED.name, choices=sorted(STUDIES))
    ap.add_argument("--models", nargs="*", help="only these labels (default: all)")
    ap.add_argument("--plan", action="store_true")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--executor", default="serial", choices=EXECUTORS)
    ap.add_argument("--workers", type=int, default=None, help="processes for --executor processes (default: CPU cores)")
    args = ap.parse_args(argv)
    study = STUDIES[args.study]
    ds, failures = None, []
    for _ in ("tuning points", "the chosen points' seeds"):  # two rounds: the second follows from the first
        if not (todo := missing_runs(study, args.models)):
            break
        print(f"{study.name}: {len(todo)} runs to train next:", ", ".join(
            f"{label}/{s.seed} ({format_point(_point(study, label, s))})" for label, s in todo))
        if args.plan or args.table_only:
            break
        # When the LM text features still have to be encoded (an hour on one thread), the ID-only
        # models run first on the interactions alone, which they are; features found in the data
        # root (MMRec's text_feat.npy / user_text_feat.npy) serve every run in one call.
        ds = load_dataset(study.dataset) if ds is None else ds
        options = dict(executor=args.executor, threads=args.threads, workers=args.workers)
        if ds.item_text is not None and "text" not in ds.item_features:
            if plain := [s for _, s in todo if not uses_features(s)]:
                run_many(plain, ds, **options)
            if not (todo := [(label, s) for label, s in todo if uses_features(s)]):
                continue
            ds = with_lm_features(ds)
        try:
            run_many([s for _, s in todo], ds, **options)
        except RunnerError as exc:  # the runs that finished are saved; the failed ones stay missing
            failures.append(str(exc))
            print("error:", exc)
    tuning = tuning_table(study)
    print(tuning.to_markdown(index=False))
    print("wrote", save_table(tuning, f"{study.name}_tuning", None))
    table = study_table(study)
    print(table.to_markdown(index=False))
    print("wrote", save_table(table, study.name, None))
    for name, plot in ((study.name, plot_study), (f"{study.name}_curves", plot_curves)):
        if (fig := plot(study)) is not None:
            print("wrote", save_figure(fig, name, None))
    print(verdict(study))
    if failures:
        raise SystemExit("some runs failed:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
