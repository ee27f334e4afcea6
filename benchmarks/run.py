"""Run the speed/memory benchmark and write results/benchmarks/<device>_<scale>.json and CSVs.

    python -m benchmarks.run --scale baby      # real Amazon Baby interactions (~15 min on 2 CPU cores)
    python -m benchmarks.run --scale tiny      # the toy shop, a minute or two (smoke test)

Every measurement runs in its own subprocess (peak RSS per measurement, a timeout on each),
one after another by default (`--jobs N` runs N at once: only for a machine already saturated
by others, where the ratios measured inside each subprocess still hold). Times come from a fixed number of training
batches, extrapolated to an epoch. Each model time is put next to a floor measured in the
same run, so the ratios stay meaningful on a shared, noisy machine:

- LightGCN training: the bare sparse propagation (its 2L sparse-dense products per batch, chained as
  the propagation chains them);
- full-ranking evaluation: the dense score matmul + top-k alone, on the same users;
- RecGOAT: its step against the products it cannot avoid (`benchmarks.floor`).

Absent modality features (Baby ships only interactions) are random numbers of the real
shapes (384-d text, 4096-d image, 384-d user LM), labelled "+random-features": timing only.
Scaling runs use synthetic graphs with Baby's degree distributions, labelled "synthetic".
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from recgoat_lib.data import REPO_ROOT, load_dataset
from recgoat_lib.models import model_names
from recgoat_lib.ot import extrapolate_peak_mb

from .measure import extrapolate_power, growth_exponent, machine

OUT_DIR = REPO_ROOT / "results" / "benchmarks"
GRAPH_MODELS = ("lightgcn", "lm_inject", "freedom", "recgoat", "dprec")
FEATURELESS = ("bpr", "lightgcn")
PROFILED = ("lightgcn", "recgoat")  # their top operators explain the RecGOAT / LightGCN ratio
# The targets: (description, how the measured value compares, bound). RecGOAT's own target is
# its step against the step's floor (benchmarks/floor.py); "RecGOAT epoch <= 3x LightGCN epoch" measured
# the method's O(rows^2 d) CMCL rather than the code, and issue #16 replaced it.
TARGETS = {
    "lightgcn_epoch_over_propagation_floor": ("LightGCN training batch / chained propagation floor", "<=", 2.0),
    "eval_over_matmul_topk_floor": ("full-ranking evaluation (LightGCN) / matmul + top-k floor", "<=", 1.5),
    "recgoat_d800_peak_rss_gb": ("RecGOAT d = 800 peak RSS (GB)", "<", 4.0),
    "max_graph_growth_exponent_per_batch": ("largest growth exponent, batch time vs interactions", "<=", 1.1),
}


@dataclass(frozen=True)
class Scale:
    """What one benchmark scale measures."""

    dataset: str
    item_dims: dict[str, int]
    user_dims: dict[str, int]
    dim: int  # embedding size of the per-model rows
    batches: int  # timed training batches per model (after one warm-up batch)
    dims: tuple[int, ...]  # embedding sizes of the d-scaling runs (LightGCN, RecGOAT)
    large_dim_batches: int  # timed batches at those sizes (a RecGOAT batch at d = 800 takes a minute on CPU)
    factors: tuple[int, ...]  # synthetic growth factors for models without features
    feature_factors: tuple[int, ...]  # ... and for models with modality features (their kNN setup is O(n^2))
    scaling_feature_dim: int  # width of the random features at synthetic scales
    oat_dims: tuple[int, ...]
    oat_small_items: tuple[int, ...]  # item counts at which the naive cost is measured at every d
    naive_budget_mb: float  # the naive I x d x d cost is only allocated below this size
    lm_texts: int
    timeout_s: int
    scaling_models: tuple[str, ...] = GRAPH_MODELS


SCALES = {
    "baby": Scale(dataset="baby", item_dims={"image": 4096, "text": 384}, user_dims={"text": 384}, dim=64,
                  batches=3, dims=(64, 800), large_dim_batches=1, factors=(1, 4, 16), feature_factors=(1, 2),
                  scaling_feature_dim=64, oat_dims=(64, 800), oat_small_items=(64, 128, 256),
                  naive_budget_mb=1024, lm_texts=512, timeout_s=420),
    "tiny": Scale(dataset="toy", item_dims={"image": 64, "text": 32}, user_dims={"text": 32}, dim=32,
                  batches=2, dims=(16, 32, 64), large_dim_batches=1, factors=(1, 2, 4), feature_factors=(1, 2),
                  scaling_feature_dim=16, oat_dims=(16, 64), oat_small_items=(32, 64, 128),
                  naive_budget_mb=64, lm_texts=32, timeout_s=300),
}


def plan(scale: Scale, models: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(group, task) pairs in the order they run."""
    data = {"name": scale.dataset, "item_dims": scale.item_dims, "user_dims": scale.user_dims}
    tasks = [("models", {"task": "model", "model": m, "data": data, "dim": scale.dim, "batches": scale.batches,
                         "floors": ("propagation", "eval"), "profile": m in PROFILED}) for m in models]
    tasks += [("dims", {"task": "model", "model": m, "data": data, "dim": d, "batches": scale.large_dim_batches,
                        "floors": ()})
              for m in ("lightgcn", "recgoat") if m in models for d in scale.dims if d != scale.dim]
    for m in scale.scaling_models:
        if m not in models:
            continue
        featureless = m in FEATURELESS
        feat = {} if featureless else {k: scale.scaling_feature_dim for k in scale.item_dims}
        ufeat = {} if featureless else {k: scale.scaling_feature_dim for k in scale.user_dims}
        for f in scale.factors if featureless else scale.feature_factors:
            tasks.append(("scaling", {"task": "model", "model": m, "dim": scale.dim, "batches": scale.batches,
                                      "floors": ("propagation",) if featureless else (),
                                      "data": {"name": scale.dataset, "factor": f,
                                                                "item_dims": feat, "user_dims": ufeat}}))
    tasks.append(("oat", {"task": "oat", "points": oat_points(scale, load_dataset(scale.dataset).n_items)}))
    tasks.append(("lm", {"task": "lm", "n_texts": scale.lm_texts}))
    if "recgoat" in models:
        tasks.append(("parts", {"task": "recgoat_parts", "data": data, "dim": scale.dim, "calls": scale.batches}))
    if "recgoat" in models:  # without the user LM branch, as in the released code: how much of the memory is it?
        tasks.append(("variants", {"task": "model", "model": "recgoat", "data": data, "dim": max(scale.dims),
                                   "batches": scale.large_dim_batches, "floors": (),
                                   "overrides": {"user_branch": False}}))
    return tasks


def oat_points(scale: Scale, n_items: int) -> list[dict]:
    """Identity cost and Sinkhorn at the full item count; naive cost at small counts, and at full where it fits."""
    points = []
    for d in scale.oat_dims:
        points.append({"method": "identity", "dim": d, "items": n_items})
        points += [{"method": "naive", "dim": d, "items": i} for i in scale.oat_small_items]
        if n_items * d * d * 4 / 2**20 <= scale.naive_budget_mb:
            points.append({"method": "naive", "dim": d, "items": n_items})
        points.append({"method": "sinkhorn", "dim": d, "items": n_items, "modalities": 2})
    return points


def run_task(task: dict, timeout_s: int, threads: int, library: Path | None = None,
             env: dict[str, str] | None = None) -> dict:
    """One task in a fresh interpreter; its JSON row, or {"error": ...} on failure or timeout.

    `library`: a directory holding another `recgoat_lib` (e.g. the code before a change) that the task
    imports instead of this checkout's; the task code (`benchmarks`) stays this checkout's. `env`: further
    environment variables of the task's process.
    """
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RECGOAT_THREADS")},
           **(env or {})}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as shim:
        cwd = REPO_ROOT
        if library is not None:  # `python -m` puts the working directory first on sys.path
            cwd = Path(shim)
            (cwd / "benchmarks").symlink_to(REPO_ROOT / "benchmarks")
            (cwd / "recgoat_lib").symlink_to(library.resolve() / "recgoat_lib")
        return _run_in(cwd, task, env, timeout_s, t0)


def _run_in(cwd: Path, task: dict, env: dict[str, str], timeout_s: int, t0: float) -> dict:
    """`python -m benchmarks.tasks <task>` in `cwd`; its parsed JSON row with the wall time."""
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.tasks", json.dumps(task)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}",
                "wall_s": wall}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**out, "wall_s": wall}


def summarise(results: list[tuple[str, dict, dict]]) -> dict[str, pd.DataFrame]:
    """Tables from the raw rows: models, d scaling, synthetic scaling, growth exponents, OAT, LM."""
    def rows(group: str) -> list[dict]:
        return [r["result"] for g, _, r in results if g == group and "result" in r]

    models = pd.DataFrame(rows("models"))
    if not models.empty:
        models["eval_ratio"] = models["eval_s"] / models["eval_floor_s"]
        if "spmm_floor_s" in models:
            models["batch_over_spmm_floor"] = models["batch_s"] / models["spmm_floor_s"]
            models["batch_over_propagation"] = models["batch_s"] / models["propagation_s"]
        if "spmm_one_input_s" in models:  # the floor's pre-chaining definition, beside it for comparison
            models["batch_over_one_input_spmm"] = models["batch_s"] / models["spmm_one_input_s"]
    failed = pd.DataFrame([{"group": g, "task": json.dumps(t), "error": r["error"]}
                           for g, t, r in results if "error" in r])
    dims = pd.concat([models[models["model"].isin(("lightgcn", "recgoat"))] if not models.empty else None,
                      pd.DataFrame(rows("dims"))], ignore_index=True)
    scaling = pd.DataFrame(rows("scaling"))
    growth = []
    for var, frame, key in (("interactions (synthetic)", scaling, "train_interactions"), ("dim", dims, "dim")):
        for m, g in frame.groupby("model") if not frame.empty else ():
            if g[key].nunique() < 2:
                continue
            cols = [c for c in ("batch_s", "epoch_s", "peak_rss_mb", "spmm_floor_s") if c in g and g[c].notna().all()]
            growth.append({"model": m, "grows_with": var, "points": len(g),
                           **{f"exponent_{col}": growth_exponent(g[key], g[col]) for col in cols}})
    oat = pd.DataFrame([row for r in rows("oat") for row in r])
    if not oat.empty:
        oat["kind"] = "measured"
        n_items = oat.loc[oat["method"] == "identity", "items"].max()
        extra = []
        for d, g in oat[oat["method"] == "naive"].groupby("dim"):
            small = g[g["items"] < n_items]
            extra.append({"method": "naive", "dim": d, "items": n_items, "kind": "extrapolated from "
                          + ", ".join(str(i) for i in small["items"]) + " items",
                          "seconds": extrapolate_power(small["items"], small["seconds"], n_items),
                          "peak_extra_mb": extrapolate_peak_mb(small["items"], small["dim"], small["peak_extra_mb"],
                                                               n_items, d)[1]})
        oat = pd.concat([oat, pd.DataFrame(extra)], ignore_index=True)
        oat.loc[oat["method"] == "naive", "formula_mb"] = oat["items"] * oat["dim"] ** 2 * 4 / 2**20
    lm = pd.DataFrame(rows("lm"))
    parts = pd.DataFrame([row for r in rows("parts") for row in r])
    return {"models": models, "dims": dims, "variants": pd.DataFrame(rows("variants")), "parts": parts,
            "scaling": scaling,
            "growth": pd.DataFrame(growth), "oat": oat, "lm": lm, "failed": failed}


def check_targets(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The issue's targets with the measured value (NaN where a measurement failed)."""
    models, dims, growth = tables["models"], tables["dims"], tables["growth"]

    def pick(frame: pd.DataFrame, col: str, model: str, dim: int | None = None) -> float:
        if frame.empty or col not in frame:
            return float("nan")
        sel = frame[(frame["model"] == model) & ((frame["dim"] == dim) if dim else True)]
        return float(sel[col].iloc[0]) if len(sel) else float("nan")

    graph_growth = growth[(growth["grows_with"] != "dim") & growth["model"].isin(GRAPH_MODELS)] \
        if not growth.empty else growth
    values = {
        "lightgcn_epoch_over_propagation_floor": pick(models, "batch_over_spmm_floor", "lightgcn"),
        "eval_over_matmul_topk_floor": pick(models, "eval_ratio", "lightgcn"),
        "recgoat_d800_peak_rss_gb": pick(dims, "peak_rss_mb", "recgoat", 800) / 1024,
        "max_graph_growth_exponent_per_batch": float(graph_growth["exponent_batch_s"].max())
        if not graph_growth.empty else float("nan"),
    }
    out = []
    for key, (what, op, bound) in TARGETS.items():
        v = values[key]
        met = (v <= bound if op == "<=" else v < bound) if v == v else None
        out.append({"target": what, "measured": v, "bound": f"{op} {bound:g}", "met": met})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="baby")
    parser.add_argument("--models", nargs="*", default=None, help="registered models (default: all)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch/OpenMP threads per measurement (default: all cores available)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="measurements run at once (default 1: none overlap; more only on a machine that is "
                             "saturated by others anyway, where the in-process ratios still hold)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    models = tuple(args.models) if args.models else model_names()
    unknown = set(models) - set(model_names())
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; registered: {model_names()}")

    start = machine()
    t0 = time.perf_counter()
    tasks = plan(scale, models)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_task, task, scale.timeout_s, args.threads) for _, task in tasks]
        for _ in tqdm(as_completed(futures), total=len(futures), desc=f"benchmark ({args.scale})"):
            pass
    results = [(group, task, f.result()) for (group, task), f in zip(tasks, futures)]
    tables = summarise(results)
    tables["targets"] = check_targets(tables)
    end = machine()

    label = f"{start['device']}_{args.scale}"
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "label": label, "scale": args.scale, "settings": asdict(scale), "threads": args.threads, "jobs": args.jobs,
        "gpu": "CUDA used" if start["gpu_available"] else "no GPU available: every number is CPU",
        "machine_start": start, "machine_end": end, "total_s": time.perf_counter() - t0,
        "raw": [{"group": g, "task": t, **r} for g, t, r in results],
        "tables": {k: v.to_dict(orient="records") for k, v in tables.items()},
    }
    path = args.out / f"{label}.json"
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    for name, frame in tables.items():
        frame.to_csv(args.out / f"{label}_{name}.csv", index=False)
    print(report(record, tables))
    return path


def report(record: dict, tables: dict[str, pd.DataFrame]) -> str:
    """A plain-text summary of one benchmark run."""
    s, e = record["machine_start"], record["machine_end"]
    lines = [f"benchmark {record['label']}: {record['gpu']}; {s['cpu_cores']} cores, {record['threads']} threads; "
             f"load average {s['load_average']} at start, {e['load_average']} at end; "
             f"{record['total_s'] / 60:.1f} min"]
    for name, cols in (("targets", None),
                       ("models", ["model", "dim", "setup_s", "batch_s", "epoch_s", "peak_rss_mb", "eval_s",
                                   "eval_floor_s", "eval_ratio", "batch_over_spmm_floor",
                                   "batch_over_one_input_spmm"]),
                       ("dims", ["model", "dim", "batch_s", "epoch_s", "peak_rss_mb"]),
                       ("variants", ["model", "overrides", "dim", "batch_s", "epoch_s", "peak_rss_mb"]),
                       ("parts", ["part", "count", "seconds", "share"]),
                       ("scaling", ["model", "dataset", "train_interactions", "batch_s", "spmm_floor_s", "epoch_s",
                                    "peak_rss_mb"]),
                       ("growth", None), ("oat", ["method", "dim", "items", "kind", "seconds", "peak_extra_mb"]),
                       ("lm", ["texts", "texts_per_s", "load_s"]), ("failed", None)):
        frame = tables[name]
        if frame.empty:
            continue
        frame = frame[[c for c in cols if c in frame]] if cols else frame
        lines += ["", f"## {name}", frame.to_markdown(index=False, floatfmt=".3g")]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
