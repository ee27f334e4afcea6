"""bf16 autocast for RecGOAT training (issue 16): `python -m benchmarks.bf16`.

`TrainConfig(precision="bf16")` runs each training forward under bf16 autocast (train.training_precision).
This measures, in one run, what it changes:

- accuracy: RecGOAT on toy (with its LM features) under the `quick` profile's training budget,
  fp32 and bf16 with the same seeds (2025-2027), through the runner (standard run records);
  test Recall@20 and NDCG@20 per seed and their mean difference;
- speed: a training step at Sports shapes (text only, random features) at d = 64 and 600, fp32 and
  bf16 interleaved in one process (tasks.recgoat_precision_task), with each precision's loss.

Writes results/benchmarks/<device>_bf16.json and <device>_bf16.csv (one table: accuracy rows, then speed rows).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .floor import SPORTS
from .measure import machine
from .run import OUT_DIR, run_task

PRECISIONS = ("fp32", "bf16")
DIMS = (64, 600)
METRICS = ("recall@20", "ndcg@20")
TIMEOUT_S = 1500


def accuracy(seeds: tuple[int, ...], threads: int) -> pd.DataFrame:
    """Test metrics of RecGOAT on toy per (precision, seed), quick profile's budget."""
    from recgoat_lib.lm import with_lm_features
    from recgoat_lib.presets import get_profile
    from recgoat_lib.runner import run_many, spec
    from recgoat_lib.toy import make_toy

    ds = with_lm_features(make_toy(), progress=False)
    profile = get_profile("quick")
    train = profile.model_train("recgoat", ds.name)
    specs = [spec(ds.name, "recgoat", replace(train, precision=precision), seed, dim=profile.dim)
             for precision in PRECISIONS for seed in seeds]
    records = run_many(specs, ds, threads=threads, progress=False)
    return pd.DataFrame([{"part": "toy accuracy", "precision": s.train.precision, "seed": s.seed,
                          **{m: r["test"][m] for m in METRICS}, "best_epoch": r["best_epoch"],
                          "train_s_per_epoch": r["train_seconds_per_epoch"]} for s, r in zip(specs, records)])


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2, help="timed rounds of each precision's step per shape")
    parser.add_argument("--seeds", default="2025,2026,2027")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    start, t0 = machine(), time.perf_counter()
    acc = accuracy(tuple(int(s) for s in args.seeds.split(",")), args.threads)
    mean = acc.groupby("precision", sort=False)[list(METRICS)].mean()
    summary = [{"part": "toy accuracy, mean over seeds", "precision": p, **mean.loc[p].to_dict()} for p in PRECISIONS]
    summary.append({"part": "toy accuracy, bf16 - fp32 (mean)", "precision": "bf16 - fp32",
                    **(mean.loc["bf16"] - mean.loc["fp32"]).to_dict()})
    raw = []
    for dim in DIMS:
        task = {"task": "recgoat_precision", "data": SPORTS, "dim": dim, "calls": args.calls}
        raw.append({"task": task, **run_task(task, TIMEOUT_S, args.threads)})
    speed = [{"part": "sports step", "precision": "bf16 vs fp32", **r["result"],
              "load_average": r["machine"]["load_average"]} for r in raw if "result" in r]
    table = pd.concat([acc, pd.DataFrame(summary), pd.DataFrame(speed)], ignore_index=True)
    label = f"{start['device']}_bf16"
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"label": label, "threads": args.threads, "machine_start": start, "machine_end": machine(),
              "total_s": time.perf_counter() - t0, "raw": raw, "table": table.to_dict(orient="records")}
    (args.out / f"{label}.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    table.to_csv(args.out / f"{label}.csv", index=False)
    print(table.replace({np.nan: ""}).to_markdown(index=False, floatfmt=".4g"))
    return args.out / f"{label}.csv"


if __name__ == "__main__":
    main()
