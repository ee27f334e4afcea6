"""The data layer: one `Dataset` type, the MMRec file reader, k-core filtering and MMRec's split.

Every model, notebook and benchmark sees data only through `Dataset`, so a reader
can swap the embedded toy data for the real Amazon splits (or their own data in
MMRec layout) without touching anything else. Bad input raises `DataError`
naming the file and the problem; nothing is silently dropped or guessed.

The `Dataset` type and the pure helpers (k-core, split, item-text recipe) live in `dataset.py`,
below both this module and `toy.py`, and are re-exported here: import them from `recgoat_lib.data`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import (FEATURE_FILES, MMREC_FEATURE_DIMS, MMREC_SIZES, SPLITS, TEXT_FIELDS, DataError, Dataset,
                      item_texts, kcore, mmrec_split, prepare_interactions, validate)
from .toy import make_toy

__all__ = ["FEATURE_FILES", "MMREC_FEATURE_DIMS", "MMREC_SIZES", "SPLITS", "TEXT_FIELDS", "DataError", "Dataset",
           "item_texts", "kcore", "mmrec_split", "prepare_interactions", "validate", "USER_FEATURE_FILES",
           "ITEM_TEXT_FILE", "DATA_ROOT_ENV", "FEATURE_DIR_ENV", "REPO_ROOT", "data_root", "read_inter", "feature_dir",
           "load_dataset", "load_mmrec", "available_datasets", "repo_relative", "shown_path", "check_mmrec_features"]

USER_FEATURE_FILES = {"text": "user_text_feat.npy"}
ITEM_TEXT_FILE = "item_text.tsv"
DATA_ROOT_ENV = "RECGOAT_DATA_ROOT"
FEATURE_DIR_ENV = "RECGOAT_FEATURE_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
_SHOWN_VALUES = 3  # bad values quoted in a DataError; its count says how many there are in all


def repo_relative(path: str | os.PathLike) -> Path:
    """`path` relative to the repository root when it lies inside it, else unchanged: what the
    library returns and prints for files it wrote, so notebook outputs carry no machine's paths."""
    path = Path(path)
    resolved = path.resolve()
    return resolved.relative_to(REPO_ROOT) if resolved.is_relative_to(REPO_ROOT) else path


def shown_path(path: str | os.PathLike) -> str:
    """How a path is printed: relative to the repository root when inside it (`figures/x.png`),
    under the home folder as `~/...`, anywhere else as `.../<name>`, so that printed (and
    committed) output never contains an absolute path of the machine it ran on."""
    path = Path(path).resolve()
    if path.is_relative_to(REPO_ROOT):
        return path.relative_to(REPO_ROOT).as_posix()
    home = Path.home().resolve()
    if path.is_relative_to(home) and home != Path(home.anchor):
        return "~/" + path.relative_to(home).as_posix()
    return f".../{path.name}"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where real datasets live: the argument, else $RECGOAT_DATA_ROOT, else ../shared/data/amazon-mmrec."""
    if root is not None:
        return Path(root)
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    return REPO_ROOT.parent / "shared" / "data" / "amazon-mmrec"


def read_inter(path: Path) -> pd.DataFrame:
    """Read an MMRec `.inter` file (tab-separated; userID, itemID, x_label; extra columns allowed)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser error types
        raise DataError(f"{path}: cannot parse as tab-separated text ({exc})") from exc
    need = ["userID", "itemID", "x_label"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; header is {list(raw.columns)}")
    out = {dst: _integer_column(path, raw, src) for src, dst in zip(need, ("user", "item", "split"))}
    if "timestamp" in raw.columns:
        ts = pd.to_numeric(raw["timestamp"], errors="coerce").astype(np.float64)
        _reject_values(path, raw["timestamp"], ~np.isfinite(ts), "a number (unix time)")
        out["timestamp"] = ts
    df = pd.DataFrame(out)
    for col in ("user", "item"):
        if (df[col] < 0).any():
            r = int(np.flatnonzero((df[col] < 0).to_numpy())[0])
            raise DataError(f"{path}: negative {col} id at row {r + 2}")
    return df


def _reject_values(path: Path, column: pd.Series, bad: pd.Series | np.ndarray, expected: str) -> None:
    """Raise one `DataError` if any row of `column` (raw strings read from `path`) is `bad`:
    the file, the column, how many values are bad, the first few with their row (the file's line;
    the header is row 1) and what was `expected`. The one shape of every bad-value message here."""
    rows = np.flatnonzero(np.asarray(bad))
    if len(rows):
        shown = ", ".join(f"row {r + 2} {column.iloc[r]!r}" for r in rows[:_SHOWN_VALUES])
        more = ", ..." if len(rows) > _SHOWN_VALUES else ""
        raise DataError(f"{path}: column {column.name}: {len(rows)} value{'s' if len(rows) > 1 else ''} "
                        f"not {expected}: {shown}{more}")


def _integer_column(path: Path, raw: pd.DataFrame, name: str) -> pd.Series:
    """Column `name` of `raw` (strings read from `path`) as int64; any value that is not
    an integer ("abc", "1.5", "", "inf") raises `DataError` rather than being coerced."""
    vals = pd.to_numeric(raw[name], errors="coerce")
    _reject_values(path, raw[name], ~np.isfinite(vals) | (vals != vals.round()), "an integer")
    return vals.astype(np.int64)


def _read_item_text(path: Path, n_items: int, inter_name: str) -> pd.DataFrame:
    """`item_text.tsv` as a frame indexed by item id 0..n_items-1. Items without a row get ""
    in every field (legitimate: `lm.missing_items` counts them and the LM layer reports its
    policy for them); a row whose itemID is not an item of `inter_name`, or repeats another row's,
    raises `DataError`, since aligning to the items would otherwise drop that text without a word."""
    meta = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if "itemID" not in meta.columns:
        raise DataError(f"{path}: needs an itemID column, has {list(meta.columns)}")
    ids = _integer_column(path, meta, "itemID")
    _reject_values(path, meta["itemID"], (ids < 0) | (ids >= n_items),
                   f"an item id of {inter_name} (an integer in [0, {n_items}))")
    _reject_values(path, meta["itemID"], ids.duplicated(), "unique (an item has one text row; this repeats one)")
    return meta.assign(itemID=ids).set_index("itemID").reindex(range(n_items), fill_value="")


def feature_dir(name: str) -> Path:
    """Where derived features of dataset `name` are written and looked up
    ($RECGOAT_FEATURE_DIR/<name>, default results/features/<name>): the data root may be read-only."""
    base = os.environ.get(FEATURE_DIR_ENV) or REPO_ROOT / "results" / "features"
    return Path(base) / name


def load_dataset(name: str, root: str | os.PathLike | None = None, seed: int = 2025) -> Dataset:
    """`toy` (generated from `seed`) or an MMRec-format dataset under the data root."""
    if name == "toy":
        return make_toy(seed)
    folder = data_root(root) / name
    if not (folder / f"{name}.inter").exists():
        found = available_datasets(root)
        raise DataError(f"{folder / (name + '.inter')}: file not found; datasets under "
                        f"{data_root(root)}: {found or 'none'} (set ${DATA_ROOT_ENV} or pass root=)")
    return load_mmrec(name, root)


def load_mmrec(name: str, root: str | os.PathLike | None = None,
               n_users: int | None = None, n_items: int | None = None) -> Dataset:
    """Load `<root>/<name>/<name>.inter` plus any `text_feat.npy`, `image_feat.npy`,
    `user_text_feat.npy` and `item_text.tsv` found beside it or in `feature_dir(name)`
    (the latter wins, so freshly encoded features override shipped ones)."""
    folder = data_root(root) / name
    inter = folder / f"{name}.inter"
    df = read_inter(inter)
    n_users = n_users or int(df["user"].max()) + 1
    n_items = n_items or int(df["item"].max()) + 1
    feats, ufeats = {}, {}
    for where in (folder, feature_dir(name)):
        feats.update({m: _load_features(where / f, n_items) for m, f in FEATURE_FILES.items()
                      if (where / f).exists()})
        ufeats.update({m: _load_features(where / f, n_users) for m, f in USER_FEATURE_FILES.items()
                       if (where / f).exists()})
    meta = None
    if (folder / ITEM_TEXT_FILE).exists():
        meta = _read_item_text(folder / ITEM_TEXT_FILE, n_items, inter.name)
    return Dataset(name=name, n_users=n_users, n_items=n_items, interactions=df,
                   item_features=feats, user_features=ufeats, item_meta=meta,
                   item_text=None if meta is None else item_texts(meta), source=str(inter))


def check_mmrec_features(name: str, modalities: tuple[str, ...] | list[str], root: str | os.PathLike | None = None,
                         dims: dict[str, int] | None = None) -> None:
    """Before anything trains: each modality's MMRec feature file exists and has shape [n_items, dim]
    (`dims`, default MMRec's: image 4096, text 384; n_items from `<name>.inter`). The file is the one
    `load_mmrec` would read: in `feature_dir(name)` (derived features) if there, else in `<root>/<name>/`.
    Raises one `DataError` naming every bad file and the shape it must have. Reads headers only."""
    dims = MMREC_FEATURE_DIMS if dims is None else dims
    folder = data_root(root) / name
    n_items = int(read_inter(folder / f"{name}.inter")["item"].max()) + 1
    problems = []
    for m in modalities:
        derived = feature_dir(name) / FEATURE_FILES[m]
        path, want = derived if derived.exists() else folder / FEATURE_FILES[m], (n_items, dims[m])
        if not path.exists():
            problems.append(f"{path}: file not found; expected MMRec's {m} features, shape {list(want)}")
            continue
        try:
            shape = np.load(path, mmap_mode="r").shape
        except Exception as exc:
            problems.append(f"{path}: cannot read as .npy ({exc}); expected shape {list(want)}")
            continue
        if shape != want:
            problems.append(f"{path}: shape {list(shape)}, expected {list(want)} ({m} features, row i = item i)")
    if problems:
        raise DataError("\n".join(problems))


def _load_features(path: Path, n_rows: int) -> np.ndarray:
    try:
        x = np.load(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as .npy ({exc})") from exc
    if x.ndim != 2 or x.shape[0] != n_rows:
        raise DataError(f"{path}: shape {x.shape} does not match {n_rows} rows")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: contains NaN/inf (first in row {int(np.argwhere(~np.isfinite(x))[0, 0])})")
    return x.astype(np.float32)


def available_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """Names of MMRec-format datasets found under the data root."""
    base = data_root(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / f"{p.name}.inter").exists())
