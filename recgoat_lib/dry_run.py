"""A dry run of the paper profile: how long would RecGOAT take on a real dataset on this machine?

`python -m recgoat_lib.dry_run --dataset baby` takes the REAL interactions of a dataset, writes
them with RANDOM features of MMRec's shapes (`TIMING_SHAPES`: 4096-d image, 384-d text, plus
384-d user text for RecGOAT's user branch) into a temporary data root in MMRec's layout, and
trains RecGOAT there with the paper profile's per-dataset settings (`presets.recgoat_settings`)
for a few epochs plus full evaluation, through the same path as the paper profile: the feature
check (`data.check_mmrec_features`), `load_dataset`, `runner.run` (records, checkpoints). It
reports seconds per epoch, evaluation seconds, peak memory and the hours the paper's epoch count
would take, as a table and a figure.

The numbers it trains are meaningless (random features): the dataset is named
`<dataset>-timing-only`, its records go to `results/dry_run/` (committed, apart), and every table and
figure title says "timing-only". Only the small timing table is committed (results/tables/).
`--max-batches N` trains N batches per epoch and extrapolates the epoch time, for a slow CPU.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data import FEATURE_FILES, REPO_ROOT, USER_FEATURE_FILES, check_mmrec_features, load_dataset
from .determinism import pin_threads
from .presets import get_profile, recgoat_settings
from .tables import save_table
from .runner import RESULTS_DIR, load_records, run, spec
from .study import STUDIES, Study, epoch_seconds, label_records, remaining_runs, run_device, study_records

MODEL = "recgoat"
SUFFIX = "-timing-only"
DRY_RUN_DIR = REPO_ROOT / "results" / "dry_run"
# MMRec's feature shapes per dataset (columns; rows = items): Baby has image and text, Sports text
# only (as in this environment, whose Sports has real titles but no image features).
TIMING_SHAPES: dict[str, dict[str, int]] = {"baby": {"image": 4096, "text": 384}, "sports": {"text": 384}}
USER_TEXT_DIM = 384


@dataclass(frozen=True)
class DryRun:
    """One dry run's measurements and the projection to the paper's epoch count."""

    dataset: str
    settings: dict
    batches_per_epoch: int
    batches_run: int
    s_per_epoch: float
    eval_s: float
    peak_rss_mb: float
    paper_epochs: int
    eval_every: int
    threads: int
    device: str = "cpu"
    peak_cuda_mb: float | None = None  # the CUDA allocator's peak, on a GPU

    @property
    def projected_hours(self) -> float:
        """Hours for `paper_epochs` epochs with a validation evaluation every `eval_every` (no early stop)."""
        return self.paper_epochs * (self.s_per_epoch + self.eval_s / self.eval_every) / 3600

    def row(self) -> dict:
        measured = "full epochs" if self.batches_run >= self.batches_per_epoch else (
            f"{self.batches_run} of {self.batches_per_epoch} batches per epoch, extrapolated")
        return {"dataset": self.dataset, "settings": ", ".join(f"{k}={v}" for k, v in self.settings.items()),
                "features": "random (timing-only)", "batches/epoch": self.batches_per_epoch, "measured": measured,
                "device": self.device, "threads": self.threads, "s/epoch": self.s_per_epoch,
                "eval s": self.eval_s, "peak RSS MB": self.peak_rss_mb, "peak GPU MB": self.peak_cuda_mb,
                "paper epochs": self.paper_epochs,
                "projected h (no early stop)": self.projected_hours}


def write_timing_root(dataset: str, root: Path, seed: int = 0) -> str:
    """Copy `dataset`'s real `.inter` into `root/<dataset>-timing-only/` with random features of
    MMRec's shapes (`TIMING_SHAPES`) and random user text features; returns the new name."""
    name = dataset + SUFFIX
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    real = load_dataset(dataset)
    shutil.copyfile(real.source, folder / f"{name}.inter")
    rng = np.random.default_rng(seed)
    for modality, dim in TIMING_SHAPES[dataset].items():
        np.save(folder / FEATURE_FILES[modality], rng.standard_normal((real.n_items, dim), dtype=np.float32))
    np.save(folder / USER_FEATURE_FILES["text"], rng.standard_normal((real.n_users, USER_TEXT_DIM), dtype=np.float32))
    return name


def dry_run(dataset: str, epochs: int = 2, threads: int = 1, max_batches: int | None = None, seed: int = 2025,
            results_dir: Path = DRY_RUN_DIR, root: Path | None = None, device: str = "cpu") -> DryRun:
    """Train RecGOAT under the paper profile's settings of `dataset` on its timing-only copy (see the
    module docstring) on `device` ("cpu", "cuda" or "auto"); `root` is the data root to write it
    to (default: a temporary folder)."""
    profile = get_profile("paper")
    settings = recgoat_settings(dataset)
    tmp = None if root is not None else tempfile.mkdtemp(prefix="recgoat-dry-run-")
    root = Path(root or tmp)
    try:
        name = write_timing_root(dataset, root)
        modalities = tuple(TIMING_SHAPES[dataset])
        check_mmrec_features(name, modalities, root)
        ds = load_dataset(name, root)
        train = replace(profile.model_train(MODEL, dataset), epochs=epochs, max_batches=max_batches, progress=False,
                        device=device)
        s = spec(ds.name, MODEL, train, seed, **{"dim": profile.dim, **settings.model, "modalities": modalities})
        rec = run(s, ds, cache=False, results_dir=results_dir, threads=threads, resume=False)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    batches = -(-len(ds.split("train")) // train.batch_size)
    ran = min(batches, max_batches or batches)
    return DryRun(dataset=name, settings={**settings.model, **settings.train}, batches_per_epoch=batches,
                  batches_run=ran, s_per_epoch=rec["train_seconds_per_epoch"] * batches / ran,
                  eval_s=rec["eval_seconds"], peak_rss_mb=rec["peak_rss_mb"],
                  paper_epochs=settings.train.get("epochs", profile.train.epochs),
                  eval_every=profile.train.eval_every, threads=rec["threads"], device=rec["device"],
                  peak_cuda_mb=rec.get("peak_cuda_mb"))


def study_plan(study: Study, max_batches: int = 10, threads: int = 1, seed: int = 2025) -> pd.DataFrame:
    """The CPU plan of a study's remaining runs on this machine, from epoch times measured now
    (`time_models`, then `plan_from_timings`)."""
    return plan_from_timings(study, time_models(study, max_batches, threads, seed))


def time_models(study: Study, max_batches: int = 10, threads: int = 1,
                seed: int = 2025) -> dict[str, tuple[float, float]]:
    """label -> (seconds per training epoch, seconds per evaluation), each model timed on the dataset's
    timing-only copy (real interactions, random features of the real shapes): `max_batches` training
    batches extrapolated to a full epoch, and one full evaluation."""
    tmp = Path(tempfile.mkdtemp(prefix="recgoat-plan-"))
    timings = {}
    try:
        ds = load_dataset(write_timing_root(study.dataset, tmp), tmp)
        batches = -(-len(ds.split("train")) // study.train.batch_size)
        for label in study.models:
            s = study.spec(label, seed)
            s = replace(s, dataset=ds.name, train=replace(s.train, epochs=1, max_batches=max_batches, progress=False))
            rec = run(s, ds, cache=False, results_dir=tmp, threads=threads, resume=False)
            timings[label] = (rec["train_seconds_per_epoch"] * batches / min(batches, max_batches), rec["eval_seconds"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return timings


def plan_from_timings(study: Study, timings: Mapping[str, tuple[float, float]],
                      results_dir: Path = RESULTS_DIR) -> pd.DataFrame:
    """The hours each model's remaining runs take. A run's length is unknown before it early-stops, so
    the epochs per run are the mean `epochs_run` of the model's own records, else of all the study's
    records, else the cap; the table says which ("its one record" when there is one: a single early
    stop is a rough guess of the next, but the study's runs of other models, from BPR's 40 epochs to
    RecGOAT released's 335, are a worse one). Once a model's grid point is chosen, its own records are
    those at that point: its remaining runs are that point's seeds, and a grid point that lost (RecGOAT
    at cl_weight 0.005 stopped at epoch 23, the chosen 0.032 at 172) says little about them. The seconds per epoch
    are the mean of what those records took as they ran on a CPU (on this machine the study's runs share
    the cores, which a model timed alone does not; runs made on a lent GPU say nothing about CPU hours),
    else `timings` (epoch, evaluation seconds, timed alone)."""
    left = remaining_runs(study, results_dir)
    records = load_records(results_dir, study.dataset)
    done = {label: label_records(study, label, records) for label in study.models}
    chosen = study_records(study, records)
    everyone = [r["epochs_run"] for recs in done.values() for r in recs]
    rows = []
    for label in study.models:
        epoch_s, eval_s = timings[label]
        mine = list(chosen[label].values()) if label in chosen else done[label]
        own = [r["epochs_run"] for r in mine]
        if own:
            epochs, source = np.mean(own), "its records" if len(own) > 1 else "its one record"
        else:
            epochs, source = (np.mean(everyone), "the study's records") if everyone else (study.train.epochs, "the cap")
        as_run = [epoch_seconds(r) for r in mine if run_device(r) == "cpu"]
        per_epoch, times = (np.mean(as_run), "its records") if as_run else (epoch_s + eval_s / study.train.eval_every,
                                                                           "timed alone")
        hours = epochs * per_epoch / 3600
        rows.append({"model": label, "s/epoch": epoch_s, "eval s": eval_s,
                     "s/epoch as run (with eval)": np.mean(as_run) if as_run else np.nan, "times from": times,
                     "epochs per run": epochs, "epochs from": source, "hours per run": hours,
                     "runs left": left[label], "hours left": hours * left[label]})
    return pd.DataFrame(rows)


def timings_from_plan(path: Path) -> dict[str, tuple[float, float]]:
    """The (epoch, evaluation) seconds of a plan table written before (its CSV), to recount the plan as
    records land without timing every model again."""
    frame = pd.read_csv(path)
    missing = {"model", "s/epoch", "eval s"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not a study plan table (no {sorted(missing)} columns)")
    return {row["model"]: (float(row["s/epoch"]), float(row["eval s"])) for _, row in frame.iterrows()}


def plot(runs: list[DryRun]) -> plt.Figure:
    """Seconds per training epoch and per evaluation, and the projected hours, per timing-only dataset."""
    frame = pd.DataFrame([r.row() for r in runs])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    frame.plot.bar(x="dataset", y=["s/epoch", "eval s"], ax=axes[0], rot=0, ylabel="seconds")
    frame.plot.bar(x="dataset", y="projected h (no early stop)", ax=axes[1], rot=0, legend=False,
                   ylabel="hours")
    axes[0].set_title("per epoch (timing-only: random features)")
    axes[1].set_title(f"projected for {runs[0].paper_epochs} epochs (timing-only)")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    """Dry-run the paper profile's RecGOAT on a dataset's real interactions with random MMRec-shaped features."""
    p = argparse.ArgumentParser(prog="python -m recgoat_lib.dry_run", description=main.__doc__)
    p.add_argument("--dataset", choices=sorted(TIMING_SHAPES))
    p.add_argument("--study", choices=sorted(STUDIES), help="instead: the CPU plan of a study's remaining runs")
    p.add_argument("--timings-from", type=Path, default=None,
                   help="with --study: take the epoch times from this earlier plan CSV instead of timing now")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where to train; a CUDA dry run's table and figure are named *_cuda")
    p.add_argument("--max-batches", type=int, default=None,
                   help="train this many batches per epoch and extrapolate the epoch time (a slow CPU)")
    a = p.parse_args(argv)
    pin_threads(a.threads)
    if a.study:
        study = STUDIES[a.study]
        if a.timings_from is not None:
            plan = plan_from_timings(study, timings_from_plan(a.timings_from))
            timed = f"at the epoch times of each model's records where it has some, else of {a.timings_from}"
        else:
            plan = study_plan(study, a.max_batches or 10, a.threads)
            timed = (f"at the epoch times of each model's records where it has some, else timed now on {a.threads} "
                     f"thread(s) of this machine (load average {os.getloadavg()[0]:.1f} while timing)")
        print(plan.to_markdown(index=False, floatfmt=".3g"))
        print(f"total: {plan['hours left'].sum():.0f} hours {timed}")
        print("wrote", save_table(plan, f"{a.study}_plan", None, float_format="%.3g"))
        return
    if not a.dataset:
        p.error("one of --dataset or --study is required")
    result = dry_run(a.dataset, a.epochs, a.threads, a.max_batches, device=a.device)
    table = pd.DataFrame([result.row()])
    name = f"dry_run_{a.dataset}" + ("" if a.device == "cpu" else f"_{a.device}")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    print("wrote", save_table(table, name, "timing-only", float_format="%.4g"))
    fig = plot([result])
    DRY_RUN_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(DRY_RUN_DIR / f"{name}_timing-only.png", dpi=120)
    print("wrote", (DRY_RUN_DIR / f"{name}_timing-only.png").relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
