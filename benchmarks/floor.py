"""RecGOAT at its hardware floor (issue 16): `python -m benchmarks.floor [--before-ref main]`.

Writes results/benchmarks/<device>_floor.json and CSVs in the suite's format (run.py). Shapes are
those of Amazon Baby and Sports with random interactions and features (timing only, labelled
"synthetic"), since only their sizes matter here:

- steps: a RecGOAT training step (batch 4096) over the bare products it cannot avoid, measured in one
  process, interleaved, best of `--calls` rounds (tasks.recgoat_floor_task), at Baby d = 64, 800 and
  Sports d = 64, 600;
- versus: a Sports-shaped epoch (a fixed number of batches extrapolated) and a valid + test evaluation
  with the library at `--before-ref` (extracted with `git archive`) and with this checkout, run
  alternately, `--rounds` times each; per version the fastest; the losses of the timed batches are
  compared (the change must compute the same values).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd

from .measure import machine
from .run import OUT_DIR, REPO_ROOT, run_task

BABY = {"shape": [19445, 7050, 118000], "item_dims": {"image": 4096, "text": 384}, "user_dims": {"text": 384}}
SPORTS = {"shape": [35598, 18357, 218000], "item_dims": {"text": 384}, "user_dims": {"text": 384}}
STEPS = (("baby", BABY, 64), ("baby", BABY, 800), ("sports", SPORTS, 64), ("sports", SPORTS, 600))
TIMEOUT_S = 1200
TARGETS = {"step_over_floor": ("RecGOAT step / its floor (each shape)", "<=", 1.5),
           "epoch_speedup": ("Sports epoch, before / after", ">=", 2.0),
           "eval_over_floor": ("valid + test evaluation / matmul + top-k floor (after)", "<=", 1.5)}


def extract(ref: str, into: Path) -> str:
    """`recgoat_lib` as committed at `ref`, written under `into`; returns the commit hash."""
    commit = subprocess.run(["git", "rev-parse", ref], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "recgoat_lib"], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-ref", default="main", help="git ref of the code to compare against")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: docs/performance.md's epochs)")
    parser.add_argument("--calls", type=int, default=4, help="timed rounds of step + floor per shape")
    parser.add_argument("--rounds", type=int, default=3, help="before/after processes per version")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per Sports epoch estimate")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--steps-from", type=Path, default=None,
                        help="a previous run's JSON whose step rows are reused (only the before/after epochs are run)")
    args = parser.parse_args(argv)
    start, t0 = machine(), time.perf_counter()
    raw = []
    if args.steps_from is not None:
        raw += [r for r in json.loads(args.steps_from.read_text())["raw"] if r["group"] == "steps"]
    for name, data, dim in STEPS if args.steps_from is None else ():
        task = {"task": "recgoat_floor", "data": data, "dim": dim, "calls": args.calls}
        raw.append({"group": "steps", "shape": name, "task": task, **run_task(task, TIMEOUT_S, args.threads)})
    with tempfile.TemporaryDirectory() as before:
        commit = extract(args.before_ref, Path(before))
        task = {"task": "epoch", "data": SPORTS, "dim": 64, "batches": args.batches}
        for _ in range(args.rounds):
            for version, library in (("before", Path(before)), ("after", None)):
                raw.append({"group": "versus", "version": version, "task": task,
                            **run_task(task, TIMEOUT_S, args.threads, library)})
    tables = summarise(raw)
    label = f"{start['device']}_floor"
    record = {"label": label, "threads": args.threads, "before": {"ref": args.before_ref, "commit": commit},
              "steps_from": str(args.steps_from) if args.steps_from else None,
              "gpu": "CUDA used" if start["gpu_available"] else "no GPU available: every number is CPU",
              "machine_start": start, "machine_end": machine(), "total_s": time.perf_counter() - t0, "raw": raw,
              "tables": {k: v.to_dict(orient="records") for k, v in tables.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{label}.json"
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    for name, frame in tables.items():
        frame.to_csv(args.out / f"{label}_{name}.csv", index=False)
    for name, frame in tables.items():
        print(f"\n## {name}\n{frame.to_markdown(index=False, floatfmt='.3g')}")
    return path


def summarise(raw: list[dict]) -> dict[str, pd.DataFrame]:
    """steps (step / floor per shape), floor_parts, versus (before/after fastest per version), targets, failed."""
    ok = [r for r in raw if "result" in r]
    steps = pd.DataFrame([{"shape": r["shape"], **{k: v for k, v in r["result"].items() if k != "floor_parts"}}
                          for r in ok if r["group"] == "steps"])
    parts = pd.DataFrame([{"shape": r["shape"], "dim": r["result"]["dim"], "part": k.removeprefix("floor: "),
                           "seconds": v} for r in ok if r["group"] == "steps"
                          for k, v in r["result"]["floor_parts"].items()])
    runs = pd.DataFrame([{"version": r["version"], **{k: v for k, v in r["result"].items() if k != "losses"}}
                         for r in ok if r["group"] == "versus"])
    versus = runs.groupby("version", sort=False).min(numeric_only=True).reset_index() if not runs.empty else runs
    if not versus.empty:
        versus["eval_over_floor"] = versus["eval_valid_test_s"] / versus["eval_floor_s"]
    losses = {r["version"]: np.array(r["result"]["losses"]) for r in ok if r["group"] == "versus"}
    values = {"step_over_floor": steps["step_over_floor"].max() if not steps.empty else float("nan"),
              "epoch_speedup": float("nan"), "eval_over_floor": float("nan")}
    if set(losses) == {"before", "after"}:
        v = versus.set_index("version")
        values["epoch_speedup"] = v.loc["before", "epoch_s"] / v.loc["after", "epoch_s"]
        values["eval_over_floor"] = v.loc["after", "eval_over_floor"]
        versus["eval_speedup"] = v.loc["before", "eval_valid_test_s"] / versus["eval_valid_test_s"].to_numpy()
        versus["max_rel_loss_diff_vs_before"] = float(np.max(np.abs(losses["after"] / losses["before"] - 1)))
    targets = pd.DataFrame([{"target": what, "measured": values[key], "bound": f"{op} {bound:g}",
                             "met": (values[key] <= bound if op == "<=" else values[key] >= bound)
                             if values[key] == values[key] else None}
                            for key, (what, op, bound) in TARGETS.items()])
    failed = pd.DataFrame([{"group": r["group"], "task": json.dumps(r["task"]), "error": r["error"]}
                           for r in raw if "error" in r])
    return {"targets": targets, "steps": steps, "floor_parts": parts, "versus": versus, "failed": failed}


if __name__ == "__main__":
    main()
