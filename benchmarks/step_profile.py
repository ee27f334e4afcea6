"""Where a RecGOAT training step's time goes at Sports' shapes (issue 16: why the Sports epoch stops
short of 2x): `python -m benchmarks.step_profile [--threads 1 2]`.

One fresh process per thread count runs `tasks.model_task`: RecGOAT on Sports' sizes with random
interactions and 384-d text features (timing only, labelled "synthetic"), d = 64, batch 2048 as the
converged study trains, a few timed training batches and then torch's profiler over one more. Writes
results/benchmarks/<device>_step_profile.json and .csv: per thread count, the step's unprofiled time
(the fastest timed batch) and the operators with the most self time (calls, seconds, share of the
profiled operator time).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from .floor import SPORTS
from .measure import machine
from .run import OUT_DIR, run_task

DIM, BATCH_SIZE, BATCHES = 64, 2048, 4
TIMEOUT_S = 900


def profile_rows(result: dict, threads: int) -> list[dict]:
    """One row per profiled operator of a `model_task` result, with the step's unprofiled time."""
    return [{"threads": threads, "step_s": result["batch_s"], **op} for op in result["profile"]]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--data", default=None, help="another task data dict as JSON (tests: a tiny shape)")
    args = parser.parse_args(argv)
    start, t0 = machine(), time.perf_counter()
    data = SPORTS if args.data is None else json.loads(args.data)
    task = {"task": "model", "model": "recgoat", "data": data, "dim": DIM, "batches": BATCHES,
            "profile": True, "batch_size": BATCH_SIZE, "overrides": {"modalities": list(data["item_dims"])}}
    rows, errors = [], {}
    for threads in args.threads:
        out = run_task(task, TIMEOUT_S, threads)
        if "error" in out:
            errors[threads] = out["error"]
            continue
        rows += profile_rows(out["result"], threads)
    table = pd.DataFrame(rows)
    label = f"{start['device']}_step_profile"
    record = {"label": label, "task": task, "errors": errors, "machine_start": start, "machine_end": machine(),
              "total_s": time.perf_counter() - t0, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{label}.json"
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    table.to_csv(args.out / f"{label}.csv", index=False)
    print(table.to_markdown(index=False, floatfmt=".3g") if len(table) else f"no rows: {errors}")
    return path


if __name__ == "__main__":
    main()
