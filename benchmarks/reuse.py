"""Shared runs within one reproduction: notebooks executed with and without one run cache between them.

    python -m benchmarks.reuse                          # notebooks 03 04 05 (each trains RecGOAT's toy defaults)
    python -m benchmarks.reuse --notebooks 03 04 05 07 08

"without": every notebook gets its own empty results folder (RECGOAT_RESULTS_DIR), so each trains
every run it shows, as the notebooks did before the runner; "with": one empty folder shared by all of
them, as `./reproduce.sh` does now, so a spec that an earlier notebook trained is read back. The two
passes run back to back on the same machine, one notebook at a time, through papermill (executed
copies go to a temporary folder; the committed notebooks are not touched, though their tables and
figures are rewritten as in any execution). Writes results/benchmarks/reuse.csv: seconds and runs
trained per notebook and pass, the totals, the ratio, and the load average before each pass.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from recgoat_lib.data import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


def notebook(prefix: str) -> Path:
    """The numbered notebook whose name starts with `prefix` (e.g. "04")."""
    found = sorted(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    if len(found) != 1:
        raise SystemExit(f"no single notebook named {prefix}_*.ipynb in {NOTEBOOKS}")
    return found[0]


def execute(nb: Path, out_dir: Path, results_dir: Path) -> tuple[float, int]:
    """Run `nb` with papermill into `out_dir` with its runs recorded under `results_dir`; returns
    (wall seconds, run records written there by this notebook)."""
    before = len(list(results_dir.glob("runs/*/*.json")))
    env = {**os.environ, "RECGOAT_RESULTS_DIR": str(results_dir)}
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out_dir / nb.name), "-k", "python3",
           "--cwd", str(NOTEBOOKS), "--log-level", "WARNING"]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - t0, len(list(results_dir.glob("runs/*/*.json"))) - before


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.reuse", description=__doc__.split("\n")[0])
    ap.add_argument("--notebooks", nargs="+", default=["03", "04", "05"], help="notebook number prefixes")
    args = ap.parse_args(argv)
    books = [notebook(p) for p in args.notebooks]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mode in ("without", "with"):
            load = os.getloadavg()[0]
            for nb in books:
                results = tmp / mode / (nb.stem if mode == "without" else "shared")
                results.mkdir(parents=True, exist_ok=True)
                seconds, trained = execute(nb, tmp, results)
                rows.append({"cache shared": mode, "notebook": nb.stem, "seconds": seconds, "runs trained": trained,
                             "load average (1 min) at pass start": load})
                print(f"{mode:>7} shared cache  {nb.stem}: {seconds:.0f} s, {trained} runs trained", flush=True)
    table = pd.DataFrame(rows)
    totals = table.groupby("cache shared", sort=False)[["seconds", "runs trained"]].sum()
    table = pd.concat([table, totals.reset_index().assign(notebook="total")], ignore_index=True)
    ratio = totals.loc["without", "seconds"] / totals.loc["with", "seconds"]
    table = pd.concat([table, pd.DataFrame([{"cache shared": "without / with", "notebook": "total",
                                             "seconds": ratio}])], ignore_index=True)
    out = REPO_ROOT / "results" / "benchmarks" / "reuse.csv"
    table.to_csv(out, index=False, float_format="%.3f")
    print(table.to_markdown(index=False, floatfmt=".2f"))
    print("wrote", out.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
