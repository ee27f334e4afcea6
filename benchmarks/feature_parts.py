"""Feature files in row blocks, for a transfer that carries less than a whole file.

    python -m benchmarks.feature_parts split DATA_ROOT/sports/user_text_feat.npy --max-mb 40
    python -m benchmarks.feature_parts join DATA_ROOT

A short GPU lease may carry only so many megabytes per call (`benchmarks/gpu_lease.sh`), fewer than
Sports' LM features and the repository together. `split` writes `<name>.part<i>of<n>.npy` beside the
file, each at most `--max-mb` megabytes; the parts travel in separate calls and `join` puts every
complete set found under a folder back together as `<name>.npy`, equal to the original array, row for
row and bit for bit. A set with a part missing stops `join` with an error naming it: a feature file
short of rows would otherwise fail only later, or not at all.
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

PART = re.compile(r"^(?P<stem>.+)\.part(?P<i>\d+)of(?P<n>\d+)\.npy$")


def split(path: Path, max_mb: float) -> list[Path]:
    """Write `path`'s rows as consecutive blocks of at most `max_mb` megabytes; return the part files."""
    x = np.load(path, mmap_mode="r")
    rows = max(1, int(max_mb * 1e6 // max(x[:1].nbytes, 1)))
    n = -(-len(x) // rows)
    parts = []
    for i in range(n):
        part = path.with_name(f"{path.stem}.part{i}of{n}.npy")
        np.save(part, np.ascontiguousarray(x[i * rows:(i + 1) * rows]))
        parts.append(part)
    return parts


def join(folder: Path) -> list[Path]:
    """Join every set of parts under `folder` into its whole file (an existing whole file is kept);
    return the files written. Raises ValueError naming a set with parts missing or of mixed counts."""
    sets: dict[Path, dict[int, tuple[int, Path]]] = defaultdict(dict)
    for p in sorted(folder.rglob("*.part*of*.npy")):
        if m := PART.match(p.name):
            sets[p.with_name(m["stem"] + ".npy")][int(m["i"])] = (int(m["n"]), p)
    written = []
    for whole, parts in sorted(sets.items()):
        counts = sorted({n for n, _ in parts.values()})
        if len(counts) != 1 or sorted(parts) != list(range(counts[0])):
            raise ValueError(f"{whole}: parts {sorted(parts)} found, of counts {counts}; "
                             "every part must travel before the features can be joined")
        if whole.exists():
            continue
        np.save(whole, np.concatenate([np.load(parts[i][1]) for i in sorted(parts)]))
        written.append(whole)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.feature_parts", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="write FILE's rows as parts of at most --max-mb megabytes")
    s.add_argument("file", type=Path)
    s.add_argument("--max-mb", type=float, required=True)
    j = sub.add_parser("join", help="join every complete set of parts under FOLDER")
    j.add_argument("folder", type=Path)
    a = p.parse_args(argv)
    for path in split(a.file, a.max_mb) if a.command == "split" else join(a.folder):
        print("wrote", path)


if __name__ == "__main__":
    main()
