"""The toy verdicts of two executions of the notebooks, compared: which claims, ablations and
semantic-gap comparisons change their verdict when the same code runs on another CPU.

A seed's numbers depend on the vector instruction set torch's CPU kernels use (AVX2 or AVX-512): the
last bits of a float sum differ, and after some epochs so do the metrics. A verdict that flips between
two executions is one the seed rule decides at its edge. `results/cross_isa/<label>/` holds the
verdict tables of one execution (`avx512`: the committed notebooks' own; `avx2`: every notebook executed
again on an AVX2 machine; its README says which commit); `python -m recgoat_lib.crosscheck` writes the
comparison table the README shows. Both sides are kept there, so a later run that rewrites
results/tables/ does not change the comparison.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .data import REPO_ROOT
from .tables import save_table

CROSS_DIR = REPO_ROOT / "results" / "cross_isa"
# The verdict tables (<name>.csv, as the notebooks write them to results/tables/) and the columns
# that name a row in them.
VERDICT_TABLES = {"theory_verdicts": ("claim",), "ablations": ("variant",),
                  "12_semantic_gap_verdicts": ("distortion", "gap", "dilution", "comparison")}


def verdict_changes(reference: pd.DataFrame, other: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """The rows whose `verdict` differs between two executions' tables (matched on `keys`; a row in
    only one of them is an error: the executions did not measure the same things)."""
    ref, oth = reference.set_index(list(keys)), other.set_index(list(keys))
    if set(ref.index) != set(oth.index):
        raise ValueError(f"the two tables name different rows: {sorted(set(ref.index) ^ set(oth.index), key=str)[:3]}")
    verdicts = pd.DataFrame({"reference": ref["verdict"].fillna(""),
                             "other": oth["verdict"].reindex(ref.index).fillna("")})
    return verdicts[verdicts["reference"] != verdicts["other"]].reset_index()


def cross_table(reference: str = "avx512", other: str = "avx2", cross_dir: Path = CROSS_DIR) -> pd.DataFrame:
    """One row per verdict table: how many of its verdicts the execution `other` reaches differently
    from the execution `reference` (both folders under `cross_dir`), and which."""
    rows = []
    for name, keys in VERDICT_TABLES.items():
        ref, oth = cross_dir / reference / f"{name}.csv", cross_dir / other / f"{name}.csv"
        if not (ref.exists() and oth.exists()):
            continue
        reference_table = pd.read_csv(ref)
        changed = verdict_changes(reference_table, pd.read_csv(oth), keys)
        rows.append({"table": name, "verdicts": int(reference_table["verdict"].notna().sum()), "changed": len(changed),
                     f"which ({reference} -> {other})": "; ".join(
                         f"{', '.join(str(r[k]) for k in keys)}: {r['reference']} -> {r['other']}"
                         for _, r in changed.iterrows())})
    if not rows:
        raise FileNotFoundError(f"no verdict table of both executions under {cross_dir / reference} and "
                                f"{cross_dir / other}")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """`python -m recgoat_lib.crosscheck`: write results/tables/cross_isa (avx512 against avx2)."""
    p = argparse.ArgumentParser(prog="python -m recgoat_lib.crosscheck", description=main.__doc__)
    p.add_argument("--reference", default="avx512")
    p.add_argument("--other", default="avx2")
    a = p.parse_args(argv)
    table = cross_table(a.reference, a.other)
    print(table.to_markdown(index=False))
    print("wrote", save_table(table, "cross_isa", None))


if __name__ == "__main__":
    main()
