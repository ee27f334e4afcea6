"""Serial vs Ray: the wall time of the same independent specs run one after another and as Ray tasks.

    python -m benchmarks.executors            # 4 toy specs, 2 Ray workers (one torch thread each)

Both runs start from an empty results folder and train the same specs; the records are checked
equal (same key, same metrics) and the ratio serial / Ray of the wall times measured in this one
run is written to results/benchmarks/executors.csv. On a 2-core machine the ideal ratio is 2;
other jobs sharing the cores pull it down, so the machine's load is recorded next to it.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from recgoat_lib.data import REPO_ROOT
from recgoat_lib.lm import with_lm_features
from recgoat_lib.runner import run_many, spec
from recgoat_lib.toy import make_toy
from recgoat_lib.train import TrainConfig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.executors", description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    import ray

    ds = with_lm_features(make_toy(seed=2025), progress=False)
    budget = TrainConfig(epochs=args.epochs, eval_every=2, patience=100, progress=False)
    specs = [spec("toy", m, budget, seed, **extra) for seed in (2025, 2026)
             for m, extra in (("lightgcn", {}), ("recgoat", {"knn_k": 10}))]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        serial = run_many(specs, ds, results_dir=Path(tmp) / "serial", threads=1)
        t_serial = time.perf_counter() - t0
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            t0 = time.perf_counter()
            parallel = run_many(specs, ds, results_dir=Path(tmp) / "ray", executor="ray", threads=1)
            t_ray = time.perf_counter() - t0
        finally:
            ray.shutdown()
    same = all(a["key"] == b["key"] and a["test"] == b["test"] for a, b in zip(serial, parallel))
    row = {"specs": len(specs), "ray workers": args.workers, "serial s": t_serial, "ray s": t_ray,
           "serial / ray": t_serial / t_ray, "records equal": same, "load average (1 min)": os.getloadavg()[0]}
    out = REPO_ROOT / "results" / "benchmarks" / "executors.csv"
    pd.DataFrame([row]).to_csv(out, index=False, float_format="%.3f")
    print(pd.DataFrame([row]).to_markdown(index=False, floatfmt=".3f"))
    print("wrote", out.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
