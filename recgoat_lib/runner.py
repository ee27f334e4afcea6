"""The experiment runner: every number the notebooks and command lines report is a run made here.

A run is a `RunSpec` (dataset, model name and config, training config, seed) trained on a
`Dataset` (full ranking, `train.train`) or a `SequenceData` (next-item protocol,
`sequential.train.train_sequential`). Its record is one JSON file plus the per-user test metrics in a
compressed `.npz`, stored under `<results_dir>/runs/<dataset>/<key>.json`.

The key is a hash of everything that determines the numbers: both configs, the seed, the data
checksum, and a fingerprint of the library's source code (`code_fingerprint`: every `.py` file
of `recgoat_lib`). Any edit to the library, a docstring included, gives new keys, so a record made
by other code is never served from the cache; it stays on disk as a record of what that code
measured (with its commit and whether the tree was dirty) and can still be read by
`load_records`. Execution details that do not enter the key (thread count, device, wall times)
are stored in the record.

Independent runs can be spread over local processes (`executor="processes"`: several small runs
side by side on one many-core machine or one GPU, no extra package) or over processes and machines
with Ray (`executor="ray"`, an optional extra: `pip install -e ".[ray]"`); the default is serial.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Union

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import __version__
from .data import REPO_ROOT, DataError, Dataset
from .determinism import THREADS_ENV, pin_threads
from .files import atomic_write
from .memory import reset_peak_memory
from .models import build_model, make_config, model_class, model_names
from .sequential.data import SequenceData
from .sequential.models import SEQUENTIAL_MODELS
from .sequential.train import train_sequential
from .train import TrainConfig, TrainResult, seed_everything, train

# Where run records (runs/<dataset>/), checkpoints and saved model states go: $RECGOAT_RESULTS_DIR or results/.
RESULTS_DIR = Path(os.environ.get("RECGOAT_RESULTS_DIR", REPO_ROOT / "results"))
PACKAGE_DIR = Path(__file__).resolve().parent
EXECUTORS = ("serial", "processes", "ray")
RunData = Union[Dataset, SequenceData]
Record = dict[str, Any]


class RunnerError(RuntimeError):
    """A spec, a record file or an executor the runner cannot use; raised before anything trains."""


@dataclass(frozen=True)
class RunSpec:
    """One training run: dataset name, model name and config, training config, seed."""

    dataset: str
    model: str
    model_config: Any
    train: TrainConfig
    seed: int

    def to_dict(self) -> dict[str, Any]:
        t = asdict(self.train)
        t.pop("progress")
        if t["max_batches"] is None:  # the usual case; so the keys of full-epoch runs never mention it
            t.pop("max_batches")
        if t["precision"] == "fp32":  # likewise: fp32 runs' keys are those made before the switch existed
            t.pop("precision")
        return {"dataset": self.dataset, "model": self.model, "model_config": asdict(self.model_config),
                "train": t, "seed": self.seed}

    def key(self, data_checksum: str, code: str | None = None) -> str:
        """The run's identity: configs, seed, data checksum and library code fingerprint."""
        payload = json.dumps({**self.to_dict(), "data": data_checksum, "code": code or code_fingerprint()},
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def is_sequential(model: str) -> bool:
    return model in SEQUENTIAL_MODELS


def model_config(model: str, **overrides: Any) -> Any:
    """The frozen config of a registered full-ranking or sequential model; unknown keys are an error."""
    if is_sequential(model):
        cfg_cls = SEQUENTIAL_MODELS[model].Config
        unknown = set(overrides) - {f.name for f in fields(cfg_cls)}
        if unknown:
            raise TypeError(f"{model}: unknown config keys {sorted(unknown)}; "
                            f"known: {sorted(f.name for f in fields(cfg_cls))}")
        return cfg_cls(**overrides)
    if model not in model_names():
        raise KeyError(f"unknown model {model!r}; known: {sorted([*model_names(), *SEQUENTIAL_MODELS])}")
    return make_config(model, **overrides)


def spec(dataset: str, model: str, train: TrainConfig, seed: int, **model_overrides: Any) -> RunSpec:
    """A `RunSpec` whose model config is the model's defaults with `model_overrides` applied."""
    return RunSpec(dataset, model, model_config(model, **model_overrides), train, seed)


@lru_cache(maxsize=None)
def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the path and bytes of every `.py` file of the library (read once per process,
    i.e. the code this process imported)."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        h.update(path.relative_to(package_dir).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def git_state() -> tuple[str, bool | None]:
    """(short commit, whether tracked files differ from it); ("unknown", None) outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", None


def commit_label(r: Record) -> str:
    """The commit a record was made at, "+dirty" when tracked files differed from it (`git_state`)."""
    return r["git_commit"] + ("+dirty" if r.get("git_dirty") else "")


def check_specs(specs: list[RunSpec], data: RunData) -> None:
    """Reject specs that cannot run on `data` (wrong dataset or protocol, missing features)
    with one error listing every problem, before anything trains."""
    problems = []
    for s in specs:
        if s.dataset != data.name:
            problems.append(f"{s.model} (seed {s.seed}): spec is for dataset {s.dataset!r}, data is {data.name!r}")
        elif is_sequential(s.model) != isinstance(data, SequenceData):
            want = "SequenceData (leave-one-out)" if is_sequential(s.model) else "Dataset"
            problems.append(f"{s.model}: needs a {want}, got {type(data).__name__}")
        elif isinstance(data, Dataset):
            cls = model_class(s.model)
            try:
                data.require_features(getattr(s.model_config, "modalities", cls.required_features), cls.__name__)
            except DataError as exc:
                problems.append(str(exc))
    if problems:
        raise RunnerError("cannot run these specs:\n  " + "\n  ".join(dict.fromkeys(problems)))


def record_path(results_dir: Path, dataset: str, key: str) -> Path:
    return Path(results_dir) / "runs" / dataset / f"{key}.json"


def read_record(path: Path) -> Record:
    """A record file, or a `RunnerError` naming it when it cannot be parsed (a cached run never
    overwrites it; a run with `cache=False` writes its own record over the spec's file)."""
    try:
        rec = json.loads(path.read_text())
        if not isinstance(rec, dict) or "key" not in rec or "test" not in rec:
            raise ValueError("not a run record (no 'key' or 'test')")
        return rec
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunnerError(f"corrupt run record {path}: {exc}. Move or delete it to rerun that spec "
                          f"(a cached run never overwrites it).") from exc


def per_user(record: Record, results_dir: Path = RESULTS_DIR) -> dict[str, np.ndarray]:
    """The per-user test metrics saved with a run record (key 'users' holds the user ids)."""
    with np.load(record_path(results_dir, record["dataset"], record["key"]).with_suffix(".npz")) as z:
        return dict(z)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed to exactly `path` (given a name, numpy would append ".npz"), closed before
    the atomic rename."""
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)


def save_record(record: Record, per_user_metrics: dict[str, np.ndarray], results_dir: Path) -> Path:
    """Write the arrays, then the JSON (the JSON's presence means the run is complete)."""
    path = record_path(results_dir, record["dataset"], record["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    npz = path.with_suffix(".npz")
    atomic_write(npz, lambda tmp: _savez(tmp, per_user_metrics))
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=float)))
    return path


@contextlib.contextmanager
def spec_lock(results_dir: Path, dataset: str, key: str, wait: float | None = None) -> Iterator[None]:
    """An exclusive lock on one spec while it trains, so two processes (notebooks run side by side,
    Ray drivers) never train it at once: the second waits (at most `wait` seconds, else a
    `RunnerError`; None: as long as it takes), then reads the record the first one wrote. The OS
    releases the lock if its holder dies. Lock files stay (an unlinked lock could be held twice)."""
    lock = record_path(results_dir, dataset, key).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise RunnerError(f"spec {key} is being trained by another process (lock {lock})") from exc
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op threads (None: leave the process's setting), restored afterwards.

    `n` is pinned through $RECGOAT_THREADS (`determinism.pin_threads`), which the training loop's
    own pin reads; setting torch's count alone would be undone by it."""
    before, before_env = torch.get_num_threads(), os.environ.get(THREADS_ENV)
    if n is not None:
        pin_threads(n)
    try:
        yield
    finally:
        if before_env is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = before_env
        torch.set_num_threads(before)


def _build(s: RunSpec, data: RunData) -> torch.nn.Module:
    seed_everything(s.seed)
    if isinstance(data, SequenceData):
        return SEQUENTIAL_MODELS[s.model](data, s.model_config)
    return build_model(s.model, data, s.model_config)


def train_spec(s: RunSpec, data: RunData, key: str, results_dir: Path, threads: int | None = None,
               resume: bool = True, keep_state: bool = False,
               on_eval: Callable[[int, Any], None] | None = None) -> tuple[Record, dict[str, np.ndarray]]:
    """Train one spec and return its record and per-user test metrics (nothing is written but the
    checkpoint, which lets an interrupted run resume, and the model state when `keep_state`).
    `on_eval(epoch, model)` is called on the fresh model (epoch 0) and after every evaluation.
    Runs in the caller's process or in a Ray worker."""
    with torch_threads(threads):
        reset_peak_memory()
        model = _build(s, data)
        ckpt = Path(results_dir) / "checkpoints" / f"{key}.pt" if resume and on_eval is None else None
        if on_eval is not None:
            on_eval(0, model)
        fit_spec = train_sequential if isinstance(data, SequenceData) else train
        res: TrainResult = fit_spec(model, data, s.train, s.seed, checkpoint=ckpt, on_eval=on_eval)
        if keep_state:
            state = record_path(results_dir, s.dataset, key).with_suffix(".pt")
            state.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(state, lambda tmp: torch.save(model.state_dict(), tmp))
        commit, dirty = git_state()
        record = {
            "key": key, **s.to_dict(), "dataset_checksum": data.checksum(), "code": code_fingerprint(),
            "protocol": "sequential" if isinstance(data, SequenceData) else "full",
            "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
            "epoch_cap_hit": res.epochs_run >= s.train.epochs,
            "valid": res.valid, "test": res.test, "history": res.history,
            "train_seconds_per_epoch": res.train_seconds_per_epoch, "eval_seconds": res.eval_seconds,
            "peak_rss_mb": res.peak_rss_mb, "peak_cuda_mb": res.peak_cuda_mb,
            "n_parameters": sum(p.numel() for p in model.parameters()),
            # device, threads, instruction set, CPU model, torch (`determinism.execution_context`): the
            # last bits of a float sum, and after enough epochs a seed's metrics, depend on them
            **{k: v for k, v in res.segments[-1].items() if k != "from_epoch"},
            "library_version": __version__, "git_commit": commit, "git_dirty": dirty,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if len(res.segments) > 1:  # resumed under another context: the fields above describe the last part only
            record["execution_segments"] = res.segments
        if ckpt is not None:
            ckpt.unlink(missing_ok=True)
    return record, {"users": res.test_users, **res.test_per_user}


def run(s: RunSpec, data: RunData, cache: bool = True, results_dir: Path = RESULTS_DIR,
        threads: int | None = None, resume: bool = True, keep_state: bool = False,
        on_eval: Callable[[int, Any], None] | None = None) -> Record:
    """Train and evaluate one spec, or read its record from the cache; returns the record (see `run_many`)."""
    return run_many([s], data, cache=cache, results_dir=results_dir, threads=threads, resume=resume,
                    progress=False, keep_state=keep_state, on_eval=on_eval)[0]


def run_many(specs: list[RunSpec], data: RunData, cache: bool = True, results_dir: Path = RESULTS_DIR,
             executor: str = "serial", address: str | None = None, threads: int | None = None,
             resume: bool = True, progress: bool = True, keep_state: bool = False,
             on_eval: Callable[[int, Any], None] | None = None, workers: int | None = None) -> list[Record]:
    """One record per spec, in order. Specs already recorded (same key) are read back when `cache`;
    equal specs are trained once. `executor="processes"` trains the missing ones in `workers` local
    processes (default: one per CPU core; `threads` each, default 1), which share this machine's GPU
    when it has one; `executor="ray"` trains them as Ray tasks (one process each, `threads` CPUs and
    one GPU each when CUDA is present); `address` joins a running cluster.
    Every record is written as soon as its run finishes, so an interrupted call loses nothing done.
    `keep_state` also saves each trained model's state beside its record (see `trained_model`).
    With `on_eval` (a callback that records quantities over training, see `train_spec`) every spec is
    trained in this process, since a cached record cannot replay the callback; its record is rewritten."""
    if executor not in EXECUTORS:
        raise RunnerError(f"unknown executor {executor!r}; choose from {EXECUTORS}")
    if on_eval is not None and executor != "serial":
        raise RunnerError("on_eval runs in the caller's process: use executor='serial'")
    cache = cache and on_eval is None
    check_specs(specs, data)
    results_dir = Path(results_dir)
    checksum = data.checksum()
    keys = [s.key(checksum) for s in specs]
    done: dict[str, Record] = {}
    if cache:
        for k in dict.fromkeys(keys):
            path = record_path(results_dir, data.name, k)
            if path.exists():
                done[k] = read_record(path)
    todo = {k: s for k, s in zip(keys, specs) if k not in done}
    if todo:
        with contextlib.ExitStack() as locks:
            for k in sorted(todo):  # one order in every process: two callers cannot deadlock
                locks.enter_context(spec_lock(results_dir, data.name, k))
                path = record_path(results_dir, data.name, k)
                if cache and path.exists():  # another process trained it while this one waited
                    done[k] = read_record(path)
            todo = {k: s for k, s in todo.items() if k not in done}
            options = dict(threads=threads, resume=resume, keep_state=keep_state)
            if executor == "serial":
                finished = _run_serial(todo, data, results_dir, progress, on_eval=on_eval, **options)
            elif executor == "processes":
                finished = _run_processes(todo, data, results_dir, progress, workers, **options)
            else:
                finished = _run_ray(todo, data, results_dir, progress, address, **options)
            for k, (rec, arrays) in finished:
                done[k] = read_record(save_record(rec, arrays, results_dir))  # as a later cache hit reads it
    return [done[k] for k in keys]


def _run_serial(todo: dict[str, RunSpec], data: RunData, results_dir: Path, progress: bool, **options: Any):
    for k, s in tqdm(todo.items(), desc=f"runs on {data.name}", disable=not progress or len(todo) < 2):
        yield k, train_spec(s, data, k, results_dir, **options)


def _run_processes(todo: dict[str, RunSpec], data: RunData, results_dir: Path, progress: bool,
                   workers: int | None, threads: int | None, resume: bool, keep_state: bool):
    """Train each spec in a pool of spawned processes (spawned, not forked: a forked child cannot use
    CUDA). A run that fails does not stop the others: every finished run is yielded (and so saved),
    then one RunnerError names the failures."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n = min(workers or os.cpu_count() or 1, len(todo))
    failed = []
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_spec, s, data, k, results_dir, threads or 1, resume, keep_state): k
                   for k, s in todo.items()}
        for f in tqdm(as_completed(futures), total=len(futures), desc=f"runs on {data.name} ({n} processes)",
                      disable=not progress):
            if f.exception() is not None:
                failed.append(f"{futures[f]}: {f.exception()!r}")
                continue
            yield futures[f], f.result()
    _report_failures(failed, len(todo))


def _report_failures(failed: list[str], total: int) -> None:
    """After a parallel executor has yielded (and so saved) every run that finished: one error
    naming the runs that failed, if any."""
    if failed:
        raise RunnerError(f"{len(failed)} of {total} runs failed: " + "; ".join(failed))


def _run_ray(todo: dict[str, RunSpec], data: RunData, results_dir: Path, progress: bool, address: str | None,
             threads: int | None, resume: bool, keep_state: bool):
    """Train each spec as a Ray task (`threads` CPUs, and a GPU each where there is one). As with
    local processes, a run that fails does not stop the others: every finished run is yielded (and
    so saved), then one RunnerError names the failures."""
    try:
        import ray
    except ImportError as exc:
        raise RunnerError('executor "ray" needs Ray: pip install -e ".[ray]"') from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    per_task = threads or 1
    task = ray.remote(num_cpus=per_task, num_gpus=1 if torch.cuda.is_available() else 0)(train_spec)
    data_ref = ray.put(data)
    pending = {task.remote(s, data_ref, k, str(results_dir), per_task, resume, keep_state): k for k, s in todo.items()}
    failed = []
    with tqdm(total=len(pending), desc=f"ray runs on {data.name}", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            bar.update()
            try:
                result = ray.get(ready[0])
            except Exception as exc:  # the task's own error (RayTaskError) or a lost worker
                failed.append(f"{k}: {exc!r}")
                continue
            yield k, result
    _report_failures(failed, len(todo))


@dataclass
class Lineup:
    """The runs of named variants over seeds: records per variant (in seed order) and, for the
    kept seed, each variant's trained model."""

    records: dict[str, list[Record]]
    models: dict[str, Any]

    def frame(self, metrics: tuple[str, ...] = ("recall@20", "ndcg@20"), label: str = "variant") -> pd.DataFrame:
        """One row per (variant, seed): the validation-selected test metrics, best epoch, timing, key."""
        return pd.DataFrame([{label: name, "seed": r["seed"], **{m: r["test"][m] for m in metrics},
                              "best_epoch": r["best_epoch"], "s_per_epoch": r["train_seconds_per_epoch"],
                              "key": r["key"]} for name, recs in self.records.items() for r in recs])


def run_lineup(data: RunData, variants: dict[str, tuple[str, dict[str, Any]]], train_config: TrainConfig,
               seeds: tuple[int, ...], cache: bool = True, results_dir: Path = RESULTS_DIR,
               keep_seed: int | None = None, variant_train: dict[str, Mapping[str, Any]] | None = None,
               **run_options: Any) -> Lineup:
    """Each named variant (registered model name, config overrides) once per seed, in one `run_many`
    call; with `keep_seed`, each variant's model of that seed too (its state after the last epoch,
    saved with the record so that a cache hit returns the same model). `variant_train[name]`
    overrides `train_config` for one variant (e.g. the paper's RecGOAT lr and batch size)."""
    trains = {name: replace(train_config, **(variant_train or {}).get(name, {})) for name in variants}
    specs = {(name, seed): spec(data.name, model, trains[name], seed, **overrides)
             for name, (model, overrides) in variants.items() for seed in seeds}
    records = dict(zip(specs, run_many(list(specs.values()), data, cache=cache, results_dir=results_dir,
                                       keep_state=keep_seed is not None, **run_options)))
    models = {} if keep_seed is None else {
        name: trained_model(specs[(name, keep_seed)], data, results_dir) for name in variants}
    return Lineup({name: [records[(name, seed)] for seed in seeds] for name in variants}, models)


def trained_model(s: RunSpec, data: RunData, results_dir: Path = RESULTS_DIR) -> Any:
    """The model a spec trained (state after its last epoch), rebuilt from the state saved beside
    its record (same key: same code, configs, seed and data, so the same model); trains the spec
    again when no state is saved."""
    key = s.key(data.checksum())
    state = record_path(results_dir, data.name, key).with_suffix(".pt")
    if not state.exists():
        with spec_lock(results_dir, data.name, key):
            rec, arrays = train_spec(s, data, key, Path(results_dir), keep_state=True)
            if not record_path(results_dir, data.name, key).exists():
                save_record(rec, arrays, Path(results_dir))
    model = _build(s, data)
    model.load_state_dict(torch.load(state, weights_only=True))
    return model.eval()


def load_records(results_dir: Path = RESULTS_DIR, dataset: str | None = None, **match: Any) -> list[Record]:
    """Every record under `results_dir/runs` (of `dataset`), whatever code made it, filtered by
    top-level fields (`model="lightgcn"`) or config fields (`train__epochs=10`, `model_config__dim=64`)."""
    base = Path(results_dir) / "runs"
    paths = sorted((base / dataset if dataset else base).rglob("*.json"))
    out = []
    for p in paths:
        rec = read_record(p)
        if all(_field(rec, k) == v for k, v in match.items()):
            out.append(rec)
    return out


def valid_curve(record: Record) -> dict[int, float]:
    """epoch -> validation Recall@20 (the selection score) of every epoch a record evaluated."""
    return {int(h["epoch"]): float(h["select_score"]) for h in record["history"] if "select_score" in h}


def _field(rec: Record, name: str) -> Any:
    value: Any = rec
    for part in name.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def records_frame(records: list[Record], metrics: tuple[str, ...] = ("recall@20", "ndcg@20")) -> pd.DataFrame:
    """One row per run: dataset, model, seed, test metrics, best epoch and timings."""
    return pd.DataFrame([{"dataset": r["dataset"], "model": r["model"], "seed": r["seed"],
                          **{m: r["test"][m] for m in metrics}, "best_epoch": r["best_epoch"],
                          "epochs_run": r["epochs_run"], "s_per_epoch": r["train_seconds_per_epoch"],
                          "peak_rss_mb": r["peak_rss_mb"]} for r in records])


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["layers=2", "lr=5e-3", "modalities=[\\"text\\"]"]` -> {"layers": 2, "lr": 0.005, ...}
    (values parsed as JSON, else kept as strings; lists become tuples)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise RunnerError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        try:
            value = json.loads(v)
        except ValueError:
            value = v
        out[k.strip()] = tuple(value) if isinstance(value, list) else value
    return out


def main(argv: list[str] | None = None) -> None:
    """Train models on one dataset through the runner and print (optionally save) their table."""
    import argparse

    from .data import check_mmrec_features, load_dataset
    from .presets import get_profile
    from .references import compare
    from .tables import save_table

    ap = argparse.ArgumentParser(prog="python -m recgoat_lib.runner", description=main.__doc__)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--profile", default="paper", help="base training config and seeds (quick or paper)")
    ap.add_argument("--seeds", type=int, nargs="*", help="default: the profile's first seed")
    ap.add_argument("--set", dest="model_overrides", action="append", metavar="KEY=VALUE",
                    help="model config override for every model, e.g. --set layers=2 --set dim=128")
    ap.add_argument("--train", dest="train_overrides", action="append", metavar="KEY=VALUE",
                    help="training config override, e.g. --train epochs=50 --train patience=20 --train eval_every=1")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: the process's)")
    ap.add_argument("--executor", default="serial", choices=EXECUTORS)
    ap.add_argument("--address", default=None, help="Ray cluster address (e.g. auto); default: a local Ray")
    ap.add_argument("--workers", type=int, default=None, help="processes for --executor processes (default: CPU cores)")
    ap.add_argument("--no-cache", action="store_true", help="train even when a record exists")
    ap.add_argument("--table", help="also save the table as results/tables/<TABLE>.{md,csv,tex}")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    try:
        to, mo = parse_overrides(args.train_overrides), parse_overrides(args.model_overrides)
        specs = [spec(args.dataset, m, replace(profile.model_train(m, args.dataset), **to), s,
                      **{**profile.model_settings(m, args.dataset).model, **mo})
                 for m in args.models for s in args.seeds or profile.seeds[:1]]
        if profile.name == "paper":  # the paper's features, MMRec's shapes, checked before anything trains
            needed = {x for sp in specs for x in getattr(sp.model_config, "modalities", ())}
            check_mmrec_features(args.dataset, sorted(needed))
    except (TypeError, ValueError, KeyError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    records = run_many(specs, load_dataset(args.dataset), cache=not args.no_cache, executor=args.executor,
                       address=args.address, threads=args.threads, workers=args.workers)
    frame = records_frame(records, ("recall@10", "recall@20", "ndcg@10", "ndcg@20"))
    frame["commit"] = [commit_label(r) for r in records]
    table = compare(frame)
    print(table.to_string(index=False))
    if args.table:
        print("wrote", save_table(table, args.table, None))


if __name__ == "__main__":
    main()
