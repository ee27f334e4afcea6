"""The results store: one JSON per run, named by the hash of everything that determines it.

A rerun with the same config is a cache hit; any change (model config, training
config, seed, dataset contents, library version) gives a new hash, so a stale
result can never be served.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from .data import REPO_ROOT, Dataset
from .models import build_model, make_config
from .train import TrainConfig, TrainResult, resolve_device, seed_everything, train

RESULTS_DIR = REPO_ROOT / "results"


@dataclass(frozen=True)
class RunSpec:
    """One training run: dataset, model name and config, training config, seed."""

    dataset: str
    model: str
    model_config: Any
    train: TrainConfig
    seed: int

    def to_dict(self) -> dict[str, Any]:
        cfg = asdict(self.model_config) if is_dataclass(self.model_config) else dict(self.model_config)
        t = asdict(self.train)
        t.pop("progress")
        return {"dataset": self.dataset, "model": self.model, "model_config": cfg, "train": t, "seed": self.seed}

    def key(self, dataset_checksum: str) -> str:
        payload = json.dumps({**self.to_dict(), "data": dataset_checksum, "version": __version__},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def spec(dataset: str, model: str, train: TrainConfig, seed: int, **model_overrides) -> RunSpec:
    return RunSpec(dataset, model, make_config(model, **model_overrides), train, seed)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(s: RunSpec, ds: Dataset, use_cache: bool = True, results_dir: Path = RESULTS_DIR,
        resume: bool = False) -> dict[str, Any]:
    """Train and evaluate one run, or load it from the cache; returns the run record.

    Per-user test metrics are stored beside the JSON (`.npz`) for paired significance tests.
    With `resume=True` a checkpoint is kept so an interrupted run continues where it stopped.
    """
    key = s.key(ds.checksum())
    path = results_dir / "runs" / f"{key}.json"
    if use_cache and path.exists():
        return json.loads(path.read_text())
    seed_everything(s.seed)
    model = build_model(s.model, ds, s.model_config)
    ckpt = results_dir / "checkpoints" / f"{key}.pt" if resume else None
    res: TrainResult = train(model, ds, s.train, s.seed, checkpoint=ckpt)
    record = {
        "key": key, **s.to_dict(), "dataset_checksum": ds.checksum(), "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run, "valid": res.valid, "test": res.test, "history": res.history,
        "train_seconds_per_epoch": res.train_seconds_per_epoch, "eval_seconds": res.eval_seconds,
        "peak_rss_mb": res.peak_rss_mb, "n_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(resolve_device(s.train.device)), "torch": torch.__version__,
        "library_version": __version__, "git_commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), users=res.test_users, **res.test_per_user)
    path.write_text(json.dumps(record, indent=1, default=float))
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    return record


def per_user(record: dict[str, Any], results_dir: Path = RESULTS_DIR) -> dict[str, np.ndarray]:
    """The per-user test metrics saved with a run record."""
    with np.load(results_dir / "runs" / f"{record['key']}.npz") as z:
        return dict(z)


def records_frame(records: list[dict[str, Any]], metrics: tuple[str, ...] = ("recall@20", "ndcg@20")) -> pd.DataFrame:
    """One row per run: dataset, model, seed, test metrics, best epoch and timings."""
    rows = []
    for r in records:
        rows.append({"dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
                     **{m: r["test"][m] for m in metrics}, "best_epoch": r["best_epoch"],
                     "s_per_epoch": r["train_seconds_per_epoch"], "peak_rss_mb": r["peak_rss_mb"]})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Run models on one dataset through the cache and write a table (with published references)."""
    import argparse

    from .config import get_profile
    from .data import load_dataset
    from .references import compare
    from .report import save_table

    ap = argparse.ArgumentParser(prog="python -m recgoat_lib.results", description=main.__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--seeds", type=int, nargs="*", help="default: the profile's first seed")
    ap.add_argument("--table", help="table name under results/tables/")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    ds = load_dataset(args.dataset)
    seeds = args.seeds or profile.seeds[:1]
    recs = [run(spec(args.dataset, m, profile.train, s), ds, use_cache=True) for m in args.models for s in seeds]
    frame = records_frame(recs, ("recall@10", "recall@20", "ndcg@10", "ndcg@20"))
    frame["epochs_run"] = [r["epochs_run"] for r in recs]
    frame["commit"] = [r["git_commit"] for r in recs]
    frame["date"] = [r["date"][:10] for r in recs]
    table = compare(frame)
    print(table.to_string(index=False))
    if args.table:
        print("wrote", save_table(table, args.table, None))


if __name__ == "__main__":
    main()
