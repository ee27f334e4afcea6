"""Pinned headline numbers: what each notebook finds, recorded once and checked on every run.

A notebook ends with `pins.check(name, {"what": (value, tolerance), ...}, profile)`. When
`./reproduce.sh run` executes the notebooks it sets `RECGOAT_RECORD_PINS=1`, and the values are
written to `results/pins/<name>.json` (commit them with the notebooks; their diff shows what a
change did to the findings). Every other execution, nbval's in CI included, compares the fresh
values with the committed ones and raises `PinError` (failing the notebook) when one moved by more
than its tolerance. Tolerances come from the notebook's seed spread (see `seed_tolerance`), so
noise passes and a changed result does not. Only the quick profile is pinned.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .data import REPO_ROOT

PINS_DIR = REPO_ROOT / "results" / "pins"
RECORD_ENV = "RECGOAT_RECORD_PINS"
PINNED_PROFILE = "quick"


class PinError(AssertionError):
    """A headline number moved by more than its tolerance, or has never been recorded."""


def seed_tolerance(values: list[float] | np.ndarray, k: float = 2.0, floor: float = 1e-4) -> float:
    """`k` standard deviations of a quantity over seeds (ddof=1), at least `floor`: a rerun of the
    same seeds lands within it unless the code's result changed by more than the seed noise."""
    v = np.asarray(values, dtype=float)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return max(k * sd, floor)


def check(name: str, values: dict[str, tuple[float, float]], profile: str = PINNED_PROFILE,
          pins_dir: Path = PINS_DIR) -> pd.DataFrame:
    """Record or check `values` (label -> (value, tolerance)); returns the comparison table."""
    clean = {k: (float(v), float(t)) for k, (v, t) in values.items()}
    bad = [k for k, (v, t) in clean.items() if not (math.isfinite(v) and math.isfinite(t) and t >= 0)]
    if bad:
        raise PinError(f"{name}: pins must be finite with a tolerance >= 0: {bad}")
    if profile != PINNED_PROFILE:
        return pd.DataFrame([{"pin": k, "value": v} for k, (v, _) in clean.items()])
    path = Path(pins_dir) / f"{name}.json"
    if os.environ.get(RECORD_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({k: {"value": v, "tolerance": t} for k, (v, t) in clean.items()},
                                   indent=1, sort_keys=True) + "\n")
        return pd.DataFrame([{"pin": k, "value": v, "tolerance": t, "status": "recorded"}
                             for k, (v, t) in clean.items()])
    if not path.exists():
        raise PinError(f"no pins recorded for {name} ({path.name} under results/pins): run "
                       f"`./reproduce.sh run` to record them")
    pinned = json.loads(path.read_text())
    rows, failures = [], []
    for k in sorted(set(pinned) | set(clean)):
        if k not in clean or k not in pinned:
            failures.append(f"{k}: {'not computed by the notebook' if k not in clean else 'never recorded'}")
            continue
        value, ref, tol = clean[k][0], pinned[k]["value"], pinned[k]["tolerance"]
        ok = abs(value - ref) <= tol
        rows.append({"pin": k, "value": value, "pinned": ref, "tolerance": tol, "status": "ok" if ok else "MOVED"})
        if not ok:
            failures.append(f"{k}: {value:.6g}, pinned {ref:.6g} ± {tol:.3g}")
    if failures:
        raise PinError(f"{name}: headline results changed:\n  " + "\n  ".join(failures)
                       + "\nIf the change is intended, rerun `./reproduce.sh run` and commit results/pins.")
    return pd.DataFrame(rows)


def seed_means(frame: pd.DataFrame, by: str,
               metrics: tuple[str, ...] = ("recall@20",)) -> dict[str, tuple[float, float]]:
    """Pins for a per-seed run table: each group's mean of each metric, with its `seed_tolerance`."""
    return {f"{group} {m}": (float(g[m].mean()), seed_tolerance(g[m].to_numpy()))
            for group, g in frame.groupby(by, sort=False) for m in metrics}


def record_means(records: dict[str, list[dict]], metrics: tuple[str, ...] = ("recall@20",),
                 prefix: str = "") -> dict[str, tuple[float, float]]:
    """`seed_means` of run records (label -> one record per seed, e.g. a benchmark's or an ablation
    study's `records`) on their test metrics, each pin named "<prefix><label> <metric>"."""
    frame = pd.DataFrame([{"label": f"{prefix}{label}", **{m: r["test"][m] for m in metrics}}
                          for label, recs in records.items() for r in recs], columns=["label", *metrics])
    return seed_means(frame, "label", metrics)
