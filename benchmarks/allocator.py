"""glibc's malloc with and without `memory.kept_blocks` (issue 16): `python -m benchmarks.allocator`.

While `train.fit` runs an epoch's training steps, `memory.kept_blocks` stops glibc's malloc from
mapping blocks on their own and lets its heap keep 64 MB of freed memory, so that the blocks a step
allocates and frees every batch are reused instead of mapped, page-faulted and unmapped anew. This
measures what that changes, in one run: each model's training batches (tasks.model_task, under
`kept_blocks` as in `fit`) in fresh processes with the library's setting ("kept") and with
$RECGOAT_MALLOC=default (glibc as configured), alternately, `--rounds` times each; per setting the
round with the lowest mean batch time. The mean is the figure that matters here, an epoch being the
sum of its batches; the fastest batch is shown too (a batch that happens not to fault hides the
cost). Shapes are Amazon Baby's and Sports' sizes with random interactions and features (timing
only, "synthetic").

Writes results/benchmarks/<device>_allocator.json and <device>_allocator.csv.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from recgoat_lib.memory import MALLOC_ENV

from .floor import BABY, SPORTS
from .measure import machine
from .run import OUT_DIR, run_task

NO_FEATURES = {"item_dims": {}, "user_dims": {}}
#: (model, shape name, data, d, batch size, batches timed): the study's d = 64 and batch 2048, and RecGOAT at
#: the paper's Sports d = 600 and batch 4096
CASES = (("lightgcn", "baby", {**BABY, **NO_FEATURES}, 64, 2048, 30),
         ("lightgcn", "sports", {**SPORTS, **NO_FEATURES}, 64, 2048, 20),
         ("freedom", "sports", {**SPORTS, "user_dims": {}}, 64, 2048, 12),
         ("recgoat", "sports", SPORTS, 64, 2048, 6),
         ("recgoat", "sports", SPORTS, 600, 4096, 3))
SETTINGS = {"kept": {}, "glibc default": {MALLOC_ENV: "default"}}
TIMEOUT_S = 900


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="processes per model and setting")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    start, t0 = machine(), time.perf_counter()
    raw = []
    for model, shape, data, dim, batch_size, batches in CASES:
        task = {"task": "model", "model": model, "data": data, "dim": dim, "batch_size": batch_size,
                "batches": batches}
        if data["item_dims"]:  # the multimodal models on the modalities the shape has (Sports: text)
            task["overrides"] = {"modalities": list(data["item_dims"])}
        for _ in range(args.rounds):
            for setting, env in SETTINGS.items():
                print(f"{model} ({shape}), {setting}", flush=True)
                raw.append({"model": model, "shape": shape, "setting": setting, "task": task,
                            **run_task(task, TIMEOUT_S, args.threads, env=env)})
    table = summarise(raw)
    label = f"{start['device']}_allocator"
    record = {"label": label, "threads": args.threads, "machine_start": start, "machine_end": machine(),
              "total_s": time.perf_counter() - t0, "raw": raw, "table": table.to_dict(orient="records")}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{label}.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    table.to_csv(args.out / f"{label}.csv", index=False)
    print(table.to_markdown(index=False, floatfmt=".3g"))
    return args.out / f"{label}.csv"


def summarise(raw: list[dict]) -> pd.DataFrame:
    """Per model and shape (in CASES order): each setting's best round (lowest mean batch) and the ratios
    glibc default / kept."""
    failed = [r for r in raw if "result" not in r]
    if failed:
        raise SystemExit(f"{len(failed)} allocator tasks failed; first: {failed[0].get('error')}")
    runs = pd.DataFrame([{"model": r["model"], "shape": r["shape"], "setting": r["setting"], **r["result"]}
                         for r in raw])
    rows = []
    for (model, shape, _), group in runs.groupby(["model", "shape", "dim"], sort=False):
        best = {setting: g.loc[g["batch_mean_s"].idxmin()] for setting, g in group.groupby("setting")}
        default, kept = best["glibc default"], best["kept"]
        rows.append({"model": model, "shape": shape, "dim": kept["dim"], "batch_size": kept["batch_size"],
                     "mean batch s, glibc default": default["batch_mean_s"], "mean batch s, kept": kept["batch_mean_s"],
                     "mean speedup": default["batch_mean_s"] / kept["batch_mean_s"],
                     "fastest batch speedup": default["batch_s"] / kept["batch_s"],
                     "faults per batch, glibc default": default["minor_faults_per_batch"],
                     "faults per batch, kept": kept["minor_faults_per_batch"],
                     "peak RSS MB, glibc default": default["peak_rss_mb"], "peak RSS MB, kept": kept["peak_rss_mb"]})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
