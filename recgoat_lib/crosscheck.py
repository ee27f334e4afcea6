"""The toy verdicts of several executions of the notebooks, compared: which claims, ablations and
semantic-gap comparisons change their verdict when the same code runs on another CPU.

A seed's numbers depend on the CPU: on the vector instruction set torch's CPU kernels use (AVX2 or
AVX-512) and, with the same instruction set, on the CPU model (AMD EPYC or Intel Xeon): the last bits
of a float sum differ, and after some epochs so do the metrics. A verdict that flips between two
executions is one the seed rule decides at its edge. `results/cross_isa/<label>/` holds the verdict
tables of one execution (`EXECUTIONS`; their README says which commit and machine); `python -m
recgoat_lib.crosscheck` compares every other execution with the committed notebooks' own and writes the
table the README shows. Every side is kept there, so a later run that rewrites results/tables/ does not
change the comparison.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping

import pandas as pd

from .data import REPO_ROOT
from .tables import save_table

CROSS_DIR = REPO_ROOT / "results" / "cross_isa"
#: label (folder under CROSS_DIR) -> the machine the notebooks ran on; the first is the reference
EXECUTIONS = {"epyc_avx512": "AMD EPYC, AVX-512 (the committed notebooks)",
              "epyc_avx2": "AMD EPYC, AVX2", "xeon_avx512": "Intel Xeon, AVX-512"}
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


def cross_table(executions: Mapping[str, str] = EXECUTIONS, cross_dir: Path = CROSS_DIR) -> pd.DataFrame:
    """One row per other execution and verdict table: how many of the table's verdicts that execution
    reaches differently from the first of `executions` (folders under `cross_dir`), and which."""
    reference, *others = executions
    rows = []
    for other in others:
        for name, keys in VERDICT_TABLES.items():
            ref, oth = cross_dir / reference / f"{name}.csv", cross_dir / other / f"{name}.csv"
            if not (ref.exists() and oth.exists()):
                continue
            reference_table = pd.read_csv(ref)
            changed = verdict_changes(reference_table, pd.read_csv(oth), keys)
            rows.append({"execution": executions[other], "table": name,
                         "verdicts": int(reference_table["verdict"].notna().sum()), "changed": len(changed),
                         "which (reference -> this execution)": "; ".join(
                             f"{', '.join(str(r[k]) for k in keys)}: {r['reference']} -> {r['other']}"
                             for _, r in changed.iterrows())})
    if not rows:
        raise FileNotFoundError(f"no verdict table both under {cross_dir / reference} and under another "
                                f"execution's folder ({', '.join(others)})")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """`python -m recgoat_lib.crosscheck`: write results/tables/cross_isa (every execution in
    `EXECUTIONS` against the committed notebooks')."""
    argparse.ArgumentParser(prog="python -m recgoat_lib.crosscheck", description=main.__doc__).parse_args(argv)
    table = cross_table()
    print(table.to_markdown(index=False))
    print("wrote", save_table(table, "cross_isa", None))


if __name__ == "__main__":
    main()
