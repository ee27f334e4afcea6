"""Significance of a model comparison: paired tests over users, seeds summarised by mean and std.

Two runs on the same dataset are evaluated on the same test users, so per-user metrics pair up.
Per-user values are first averaged over seeds (one number per user and model), then compared
with a paired t-test (written out here and checked against scipy in the tests) and the
Wilcoxon signed-rank test (scipy), which does not assume normal differences.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from .runner import RESULTS_DIR, per_user


@dataclass(frozen=True)
class PairedTest:
    """a vs b over n paired users: mean of a - b, t-test and Wilcoxon statistics and two-sided p-values."""

    n: int
    mean_diff: float
    t_stat: float
    t_p: float
    wilcoxon_stat: float
    wilcoxon_p: float


def paired_t(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired t statistic and two-sided p-value: t = mean(d) / (sd(d) / sqrt(n)), d = a - b."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(d)
    sd = d.std(ddof=1)
    if sd == 0:
        return (0.0, 1.0) if d.mean() == 0 else (float(np.sign(d.mean()) * np.inf), 0.0)
    t = d.mean() / (sd / np.sqrt(n))
    return float(t), float(2 * sps.t.sf(abs(t), df=n - 1))


def paired_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Compare paired samples `a` and `b` (same users, same order)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-d and the same length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError(f"a paired test needs at least 2 pairs, got {len(a)}")
    t, tp = paired_t(a, b)
    if np.all(a == b):
        w, wp = 0.0, 1.0
    else:
        res = sps.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
        w, wp = float(res.statistic), float(res.pvalue)
    return PairedTest(n=len(a), mean_diff=float((a - b).mean()), t_stat=t, t_p=tp,
                      wilcoxon_stat=w, wilcoxon_p=wp)


def seed_averaged_per_user(records: list[dict[str, Any]], metric: str = "recall@20",
                           results_dir=RESULTS_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(users, per-user `metric` averaged over the runs in `records`); all runs must share the test users."""
    if not records:
        raise ValueError("no run records given")
    users, values = None, []
    for r in records:
        pu = per_user(r, results_dir)
        if metric not in pu:
            raise KeyError(f"run {r['key']} has no per-user {metric!r}; has {sorted(k for k in pu if k != 'users')}")
        if users is None:
            users = pu["users"]
        elif not np.array_equal(users, pu["users"]):
            raise ValueError(f"run {r['key']} was evaluated on different test users; runs cannot be paired")
        values.append(pu[metric])
    return users, np.mean(values, axis=0)


def compare_runs(a: list[dict[str, Any]], b: list[dict[str, Any]], metric: str = "recall@20",
                 results_dir=RESULTS_DIR) -> PairedTest:
    """Paired test of model a's runs against model b's runs on per-user, seed-averaged `metric`."""
    ua, va = seed_averaged_per_user(a, metric, results_dir)
    ub, vb = seed_averaged_per_user(b, metric, results_dir)
    if not np.array_equal(ua, ub):
        raise ValueError("the two models were evaluated on different test users")
    return paired_test(va, vb)


def mean_std(frame: pd.DataFrame, metrics: tuple[str, ...], by: str = "model") -> pd.DataFrame:
    """Mean and (sample) standard deviation over seeds of each metric, one row per `by` value,
    in the order the values first appear."""
    order = list(dict.fromkeys(frame[by]))
    agg = frame.groupby(by)[list(metrics)].agg(["mean", "std"]).loc[order]
    agg.columns = [f"{m} {s}" for m, s in agg.columns]
    return agg.reset_index().assign(seeds=frame.groupby(by).size().loc[order].to_numpy())


HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "not distinguishable at this budget"
SPREAD_FACTOR = 2.0


def seed_verdict(effects: list[float] | np.ndarray, k: float = SPREAD_FACTOR, floor: float = 0.0) -> str:
    """Verdict on a claim measured once per seed as an effect that the claim says is positive.

    The rule: "holds" when the effect is positive in every seed and its mean exceeds `k` standard
    deviations over seeds (ddof=1) and `floor`; "does not hold" when the same is true of its negative;
    otherwise (mixed signs, a mean within the seed spread, or fewer than two seeds) "not
    distinguishable at this budget". `floor` is the measurement's own resolution, for effects whose
    seed spread can be zero (a held-out accuracy near its ceiling moves in steps of one item)."""
    e = np.asarray(effects, dtype=float)
    if len(e) < 2 or not np.isfinite(e).all():
        return UNDECIDED
    margin = max(k * e.std(ddof=1), floor)
    if (e > 0).all() and e.mean() > margin:
        return HOLDS
    if (e < 0).all() and -e.mean() > margin:
        return FAILS
    return UNDECIDED


def spread_text(effects: list[float] | np.ndarray, fmt: str = "+.4f") -> str:
    """"mean ± std over n seeds" of per-seed effects, for the `measured` column of a verdict."""
    e = np.asarray(effects, dtype=float)
    sd = e.std(ddof=1) if len(e) > 1 else float("nan")
    return f"{e.mean():{fmt}} ± {sd:.2g} over {len(e)} seed{'s' if len(e) != 1 else ''}"


def p_text(p: float) -> str:
    """A p-value for a table, to two significant digits; "<1e-300" where it underflowed to 0.0 in double
    precision (scipy returns 0.0 below about 1e-308, and a printed "0" would read as certainty)."""
    return "<1e-300" if p == 0 else f"{p:.2g}"


def shown(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """`table` for display: its p-value columns (names ending in "_p") as `p_text`, so that a p of 1e-13
    does not print as 0.0000, and its other numbers rounded to `digits`."""
    p_columns = [c for c in table.columns if str(c).endswith("_p")]
    return table.round(digits).assign(**{c: table[c].map(p_text) for c in p_columns})
