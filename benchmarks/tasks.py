"""The measurements, one per subprocess: `python -m benchmarks.tasks '<json task>'` prints one JSON row.

Running each measurement in a fresh process makes its peak RSS its own (not the maximum of
everything measured before it). A task is a dict with "task" in {"model", "oat", "lm", "recgoat_parts",
"recgoat_floor", "recgoat_precision", "epoch"}:

- model: build a registered model on a dataset, time a fixed number of training steps
  (`train.train_step`, exactly what `train.train` runs per batch) and extrapolate to an
  epoch; optionally measure the floors beside it, in the same process: the bare forward +
  backward LightGCN propagation on the model's own graph, and one full-ranking evaluation
  against the dense score matmul + top-k alone.
- oat: time and peak memory of the OT cost, identity vs the naive I x d x d formula, and of
  the Sinkhorn plan.
- lm: throughput of the sentence-transformers text encoder.
- recgoat_parts: seconds of each part of one RecGOAT training step (what its epoch pays for).
- recgoat_floor: a RecGOAT training step next to the bare products it cannot avoid (its floor).
- recgoat_precision: a RecGOAT training step in fp32 and under bf16 autocast (train.TrainConfig.precision).
- epoch: a RecGOAT epoch and a valid + test evaluation, for timing one library version against another.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import resource
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from recgoat_lib.data import Dataset, load_dataset
from recgoat_lib.evaluate import evaluate
try:
    from recgoat_lib.memory import peak_memory
except ImportError:  # the epoch task also runs with libraries from before memory.py (floor.py --before-ref)
    peak_memory = None
from recgoat_lib.models import build_model
from recgoat_lib.models.lightgcn import LightGCNPropagation
from recgoat_lib.train import NegativeSampler, TrainConfig, resolve_device, seed_everything, train_step

from .measure import call_times, machine, scaled_dataset, seconds_per_call, sync, synthetic_dataset, timing_features

EVAL_BATCH = 4096  # evaluate()'s default user batch; the floor scores the same batches
EVAL_CALLS = 2  # timed evaluations (and floor passes) per model, after one warm-up
OAT_CALLS = 3  # timed calls per OT cost / Sinkhorn point


def make_dataset(data: dict) -> Dataset:
    """The dataset a task names: {"name", "factor" (None = the real one), "item_dims", "user_dims"}, or
    random interactions of a shape, {"shape": [users, items, train interactions], "item_dims", "user_dims"}."""
    if "shape" in data:
        return timing_features(synthetic_dataset(*data["shape"]), data.get("item_dims", {}), data.get("user_dims", {}))
    ds = load_dataset(data["name"])
    if data.get("factor"):
        ds = scaled_dataset(ds, data["factor"])
    return timing_features(ds, data.get("item_dims", {}), data.get("user_dims", {}))


def model_task(model: str, data: dict, dim: int, batches: int, floors: tuple[str, ...] = (), profile: bool = False,
               overrides: dict | None = None, seed: int = 2025, batch_size: int = TrainConfig().batch_size,
               lr: float = TrainConfig().lr) -> dict:
    """Seconds per training batch (the fastest, `batch_s`, and the mean, `batch_mean_s`) and per epoch
    (from the fastest), minor page faults per batch, setup seconds and peak RSS of one model (+ the
    named `floors`, "propagation" and/or "eval", + with `profile` the operators that take the most
    time in one training batch). `overrides` are further model config values (e.g. a released-code switch)."""
    device = resolve_device("auto")
    rss_imports = peak_memory().rss_mb
    ds = make_dataset(data)
    seed_everything(seed)
    t0 = time.perf_counter()
    net = build_model(model, ds, {"dim": dim, **(overrides or {})}).to(device)
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    u, p, n = (torch.from_numpy(a).to(device) for a in NegativeSampler(ds).epoch(np.random.default_rng(seed)))
    sample_s = time.perf_counter() - t0
    n_batches = math.ceil(len(u) / batch_size)
    optimizer = _adam(net, lr)
    batch_index = itertools.count()
    net.train()

    def one_batch() -> None:
        start = next(batch_index) % n_batches * batch_size
        train_step(net, optimizer, u[start:start + batch_size], p[start:start + batch_size],
                   n[start:start + batch_size])

    faults = []  # minor page faults per batch (the first, untimed, included)

    def counted_batch() -> None:
        before = _minor_faults()
        one_batch()
        faults.append(_minor_faults() - before)

    with _kept_blocks():
        times = call_times(counted_batch, batches, device)
        # the profile explains those batches, so it runs under their allocator setting
        top = _top_operators(one_batch) if profile else None
    batch_s = min(times)
    row = {"model": model, "overrides": json.dumps(overrides or {}), "dataset": ds.name, "users": ds.n_users,
           "items": ds.n_items,
           "train_interactions": len(u), "dim": dim, "batch_size": batch_size, "batches_per_epoch": n_batches,
           "timed_batches": batches, "setup_s": setup_s, "sample_s": sample_s, "batch_s": batch_s,
           "batch_mean_s": float(np.mean(times)), "minor_faults_per_batch": float(np.mean(faults[1:])),
           "epoch_s": sample_s + n_batches * batch_s,
           "parameters": sum(x.numel() for x in net.parameters())}
    if profile:
        row["profile"] = top
    if floors:
        row.update(_floors(net, ds, batches, device, floors))
    row["rss_after_imports_mb"] = rss_imports
    peak = peak_memory()
    row["peak_rss_mb"] = peak.rss_mb
    if device.type == "cuda":
        row["peak_cuda_mb"] = peak.cuda_mb
    return row


def _floors(net, ds: Dataset, batches: int, device: torch.device, which: tuple[str, ...]) -> dict:
    """The propagation floor (models with a LightGCN propagation) and/or the evaluation floor."""
    unknown = set(which) - {"propagation", "eval"}
    if unknown:
        raise ValueError(f"unknown floors {sorted(unknown)}; choose from 'propagation', 'eval'")
    out = {}
    prop = getattr(net, "propagate", None)
    if "propagation" in which and isinstance(prop, LightGCNPropagation):
        x = torch.randn(prop.adj.shape[0], net.config.dim, device=device, requires_grad=True)
        grad = torch.randn_like(x)
        with _kept_blocks():  # the allocator setting the training batches ran under
            out["propagation_s"] = seconds_per_call(lambda: prop(x).backward(grad), batches, device)
            out["spmm_floor_s"] = seconds_per_call(lambda: _chained_spmm(prop.adj, x.detach(), prop.layers),
                                                   batches, device)
            out["spmm_one_input_s"] = seconds_per_call(
                lambda: _chained_spmm(prop.adj, x.detach(), prop.layers, chained=False), batches, device)

    if "eval" in which:
        out["eval_s"] = seconds_per_call(lambda: evaluate(net, ds, "valid"), EVAL_CALLS, device)
        truth = ds.csr("valid")
        users = torch.from_numpy(np.flatnonzero(np.diff(truth.indptr) > 0)).to(device)
        net.eval()
        with torch.no_grad():
            emb = net()

            def matmul_topk() -> None:
                for start in range(0, len(users), EVAL_BATCH):
                    torch.topk(emb.user[users[start:start + EVAL_BATCH]] @ emb.item.T, 20, dim=1)

            out["eval_floor_s"] = seconds_per_call(matmul_topk, EVAL_CALLS, device)
        out["eval_users"] = len(users)
    return out


def _top_operators(fn, top: int = 12) -> list[dict]:
    """torch.profiler over one call of `fn`: the operators with the most self time (seconds, share)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.self_device_time_total or e.self_cpu_time_total]
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    total = sum(getattr(e, key) for e in events)
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    return [{"operator": e.key, "calls": e.count, "self_s": getattr(e, key) / 1e6,
             "share": getattr(e, key) / total} for e in events[:top]]


@torch.no_grad()
def _chained_spmm(adj: torch.Tensor, x: torch.Tensor, layers: int, chained: bool = True) -> None:
    """The 2L sparse products of an L-layer propagation's forward and backward (the gradient of A^k X is
    A^k G on a symmetric adjacency), with no autograd bookkeeping and no layer sums, through the library's
    fastest sparse product (`graphs.spmm`, as the model's own propagation).

    Chained, each product's input is the previous product's output, as in any propagation: this is the
    floor. With `chained=False` every product reads the same `x`, which stays in cache between products;
    that lower figure is what no propagation can reach (it was the floor until issue #16's last
    re-definition, and is reported beside it for comparison)."""
    from recgoat_lib.graphs import spmm  # here, not above: the epoch task also runs with older libraries

    for _ in range(2):
        h = x
        for _ in range(layers):
            h = spmm(adj, h if chained else x)


def oat_task(points: list[dict], seed: int = 0) -> list[dict]:
    """For each {"method", "dim", "items"}: seconds and extra peak MB of one cost (or Sinkhorn plan) computation."""
    from recgoat_lib.ot import cost_peak_memory_mb, dimension_cost, naive_dimension_cost, transport_plan

    device = resolve_device("auto")
    costs = [pt for pt in points if pt["method"] != "sinkhorn"]
    peaks = dict(zip(map(id, costs), cost_peak_memory_mb([(pt["method"], pt["items"], pt["dim"]) for pt in costs],
                                                         seed)))
    torch.manual_seed(seed)
    rows = []
    for pt in points:
        zm, zcf = (0.1 * torch.randn(pt["items"], pt["dim"], device=device) for _ in range(2))
        if pt["method"] == "sinkhorn":
            cost = dimension_cost(zm, zcf).expand(pt["modalities"], pt["dim"], pt["dim"]).contiguous()
            fn = lambda: transport_plan(cost)  # noqa: E731
        else:
            cost_fn = naive_dimension_cost if pt["method"] == "naive" else dimension_cost
            fn = lambda: cost_fn(zm, zcf)  # noqa: E731
        rows.append({**pt, "seconds": seconds_per_call(fn, OAT_CALLS, device), "peak_extra_mb": peaks.get(id(pt))})
    return rows


def lm_task(n_texts: int, batch_size: int = 128) -> dict:
    """Texts per second of the default text encoder on real English item texts (the toy shop's)."""
    from recgoat_lib.lm import TextEncoder

    texts = load_dataset("toy").item_text
    texts = [texts[i % len(texts)] for i in range(n_texts)]
    encoder = TextEncoder(batch_size=batch_size, device=str(resolve_device("auto")), progress=False)
    t0 = time.perf_counter()
    encoder.encode(texts[:1])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dim = encoder.encode(texts).shape[1]
    seconds = time.perf_counter() - t0
    return {"texts": n_texts, "batch_size": batch_size, "dim": dim, "load_s": load_s, "seconds": seconds,
            "texts_per_s": n_texts / seconds, "mean_chars": float(np.mean([len(t) for t in texts])),
            "peak_rss_mb": peak_memory().rss_mb}


def recgoat_parts_task(data: dict, dim: int, calls: int, seed: int = 2025,
                       batch_size: int = TrainConfig().batch_size) -> list[dict]:
    """Where a RecGOAT training step goes: forward + backward seconds of each of its parts on the
    sizes of one real training batch, next to the whole step, all in one process.

    Parts: the LightGCN propagation, each item GAT branch (all items: OAT needs whole views), the
    user LM branch on the batch's users, the OT plans, and each CMCL InfoNCE term at its batch size
    (in-batch negatives: the user-item term over the batch, the view pairs over its unique items,
    the user pair over its unique users). `share` is seconds x count / whole step.
    """
    from recgoat_lib.models.base import info_nce
    from recgoat_lib.ot import dimension_cost, transport_plan

    device = resolve_device("auto")
    ds = make_dataset(data)
    seed_everything(seed)
    net = build_model("recgoat", ds, {"dim": dim}).to(device).train()
    c = net.config
    u, p, n = (torch.from_numpy(a[:batch_size]).to(device)
               for a in NegativeSampler(ds).epoch(np.random.default_rng(seed)))
    users, items = torch.unique(u), torch.unique(torch.cat([p, n]))

    def backward(t: torch.Tensor) -> None:
        t.sum().backward()

    def nce(rows: int) -> tuple:
        a, b = (torch.randn(rows, dim, device=device, requires_grad=True) for _ in range(2))
        return lambda: info_nce(a, b, c.cl_temperature).backward()

    views = len(c.modalities) + 1
    parts = [("whole step", 1, lambda: net.loss(u, p, n)["loss"].backward()),
             ("LightGCN propagation", 1, lambda: backward(net.propagate(net.embedding.weight)))]
    parts += [(f"GAT branch: {m} (all items)", 1, lambda b=b: backward(b())) for m, b in net.branches.items()]
    if net.user_lm is not None:
        parts.append(("GAT branch: user LM (batch users)", 1, lambda: backward(net.user_lm(users))))
    if c.fusion == "oat" and c.modalities:
        zm, zcf = (torch.randn(ds.n_items, dim, device=device) for _ in range(2))
        parts.append(("OT cost + Sinkhorn (all modalities)", 1, lambda: transport_plan(
            torch.stack([dimension_cost(zm, zcf, c.ot_scale)] * len(c.modalities)), c.ot_eps, c.ot_iters, c.sinkhorn)))
    parts.append((f"CMCL: user-item InfoNCE ({len(u)} rows)", 1, nce(len(u))))
    parts.append((f"CMCL: one view-pair InfoNCE ({len(items)} rows)", views * (views - 1) // 2, nce(len(items))))
    if net.user_lm is not None and c.user_fusion == "align":
        parts.append((f"CMCL: user-pair InfoNCE ({len(users)} rows)", 1, nce(len(users))))
    with _kept_blocks():
        rows = [{"part": name, "count": count, "seconds": seconds_per_call(fn, calls, device)}
                for name, count, fn in parts]
    whole = rows[0]["seconds"]
    return [{**r, "share": r["seconds"] * r["count"] / whole, "dim": dim, "dataset": ds.name} for r in rows]


def _best_interleaved(fns: dict[str, Callable[[], object]], calls: int, device: torch.device) -> dict[str, float]:
    """Fastest seconds of each function over `calls` rounds that run every function once in turn (after one
    untimed round), so that load on a shared machine falls on all of them alike."""
    best = {name: math.inf for name in fns}
    for round_ in range(calls + 1):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if round_:
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _csr(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """The [n, n] CSR matrix (ones) of a [2, E] edge list (targets as rows, as the GAT aggregation reads it)."""
    from recgoat_lib.graphs import compact_indices  # here, not above: as in `_chained_spmm`

    values = torch.ones(edge_index.shape[1], device=edge_index.device)
    return compact_indices(torch.sparse_coo_tensor(edge_index.flip(0), values, (n, n)).coalesce().to_sparse_csr())


def _modalities_of(data: dict, dim: int) -> dict:
    """RecGOAT's config for a task's data: the item modalities it names (Sports: text only)."""
    return {"dim": dim, "modalities": tuple(data["item_dims"])}


def recgoat_floor_task(data: dict, dim: int, calls: int, batch_size: int = 4096, seed: int = 2025) -> dict:
    """A RecGOAT training step (`train.train_step`) next to its floor: the dense and sparse products the
    step cannot avoid, as bare torch calls on random tensors of the same shapes, in this process,
    interleaved with the step (best of `calls` rounds each).

    Floor parts (forward and backward): each CMCL InfoNCE logits product and its two gradient
    products at its real row count (user-item: the batch; view pairs: the batch's unique items;
    user pair: its unique users); each modality projection (features x W and the weight gradient,
    items: all, user LM: the batch users' kNN neighbourhood); each GAT layer's d x d linear (3
    products) and its aggregation (the sparse product, its transpose and the sampled product for the
    attention); the OAT products (cost Z^T Z^cf; Z (T + Delta) and its two gradients); the 2L
    LightGCN sparse products. Not in the floor: element-wise work (softmax, LayerNorm, dropout,
    attention scores), Sinkhorn's iterations, the optimizer.
    """
    from recgoat_lib.graphs import in_neighbourhood

    device = resolve_device("auto")
    ds = make_dataset(data)
    seed_everything(seed)
    net = build_model("recgoat", ds, _modalities_of(data, dim)).to(device).train()
    c = net.config
    optimizer = _adam(net, TrainConfig().lr)
    u, p, n = (torch.from_numpy(a[:batch_size]).to(device)
               for a in NegativeSampler(ds).epoch(np.random.default_rng(seed)))
    users, items = torch.unique(u), torch.unique(torch.cat([p, n]))
    rand = lambda *shape: torch.randn(*shape, device=device)  # noqa: E731

    def products(rows: int, inner: int, cols: int, count: int = 1) -> Callable[[], None]:
        """Forward x @ w and both gradients of `count` products [rows, inner] x [inner, cols]."""
        x, w, g = rand(rows, inner), rand(inner, cols), rand(rows, cols)
        return lambda: [(x @ w, g @ w.T, x.T @ g) for _ in range(count)]

    def projection(rows: int, features: int) -> Callable[[], None]:
        """x @ W and the weight gradient x^T G (the features are buffers: no input gradient)."""
        x, w, g = rand(rows, features), rand(features, dim), rand(rows, dim)
        return lambda: (x @ w, x.T @ g)

    def aggregation(edge_index: torch.Tensor, nodes: int) -> Callable[[], None]:
        """The attention-weighted sum over in-edges at width d, its transpose and its sampled gradient."""
        a, at = _csr(edge_index, nodes), _csr(edge_index.flip(0), nodes)
        h, g = rand(nodes, dim), rand(nodes, dim)
        return lambda: (a @ h, at @ g, torch.sparse.sampled_addmm(a, g, h.T, beta=0.0))

    views = len(c.modalities) + 1
    floor = {"InfoNCE user-item": products(len(u), dim, len(u)),
             "InfoNCE view pairs": products(len(items), dim, len(items), views * (views - 1) // 2)}
    branches = {f"item {m}": (b, ds.n_items, b.edge_index) for m, b in net.branches.items()}
    if net.user_lm is not None:
        nodes, edges, _ = in_neighbourhood(net.user_lm.edge_index, users, c.gat_layers, ds.n_users)
        branches["user LM"] = (net.user_lm, len(nodes), edges)
        if c.user_fusion == "align":
            floor["InfoNCE user pair"] = products(len(users), dim, len(users))
    for name, (branch, rows, edges) in branches.items():
        floor[f"projection {name}"] = projection(rows, branch.x.shape[1])
        for layer in range(c.gat_layers):
            floor[f"GAT {name} layer {layer + 1} linear"] = products(rows, dim, dim)
            floor[f"GAT {name} layer {layer + 1} aggregation"] = aggregation(edges, rows)
    if c.fusion == "oat" and c.modalities:
        zm, zcf = rand(ds.n_items, dim), rand(ds.n_items, dim)
        align = products(ds.n_items, dim, dim, len(c.modalities))
        floor["OAT cost + alignment"] = lambda: ([zm.T @ zcf for _ in c.modalities], align())
    adj, x = net.propagate.adj, rand(ds.n_users + ds.n_items, dim)
    floor["LightGCN propagation"] = lambda: _chained_spmm(adj, x, net.propagate.layers)

    fns = {f"floor: {k}": v for k, v in floor.items()}  # plain tensors: no autograd bookkeeping in the floor
    with _kept_blocks():
        best = _best_interleaved({"step": lambda: train_step(net, optimizer, u, p, n), **fns}, calls, device)
    floor_s = sum(v for k, v in best.items() if k != "step")
    return {"dataset": ds.name, "users": ds.n_users, "items": ds.n_items,
            "train_interactions": len(ds.split_pairs("train")[0]), "item_dims": json.dumps(data.get("item_dims", {})),
            "dim": dim, "batch_size": len(u), "unique_items": len(items), "unique_users": len(users),
            "timed_rounds": calls, "step_s": best["step"], "floor_s": floor_s,
            "step_over_floor": best["step"] / floor_s,
            "floor_parts": {k: v for k, v in best.items() if k != "step"}, "peak_rss_mb": peak_memory().rss_mb}


def _kept_blocks() -> contextlib.AbstractContextManager:
    """The allocator setting the imported library's training loop runs its steps under (`memory.kept_blocks`),
    or none under a library from before it (the epoch task also times older versions)."""
    try:
        from recgoat_lib.memory import kept_blocks
    except ImportError:  # no such function, or no memory module at all
        return contextlib.nullcontext()
    return kept_blocks()


def _adam(net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """The optimizer of the imported library's training loop (`train.adam`), or plain Adam under a library
    from before it (the epoch task also times older versions)."""
    from recgoat_lib import train

    make = getattr(train, "adam", None)
    return make(net, lr) if make is not None else torch.optim.Adam(net.parameters(), lr=lr)


def _minor_faults() -> int:
    """Minor page faults of this process so far (first writes to freshly mapped pages)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _peak_rss_mb() -> float:
    """This process's peak RSS: `recgoat_lib.memory`'s reading, or, under a library from before that
    module existed, the kernel's maximum resident set (getrusage, kB on Linux), which it falls back to."""
    if peak_memory is not None:
        return peak_memory().rss_mb
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def epoch_task(data: dict, dim: int, batches: int, eval_calls: int = EVAL_CALLS, seed: int = 2025,
               batch_size: int = TrainConfig().batch_size) -> dict:
    """A RecGOAT epoch and a valid + test evaluation with whichever `recgoat_lib` this process imports
    (benchmarks/floor.py runs it for the code before and after a change, alternately).

    The epoch is `batches` consecutive training batches (after one untimed one) extrapolated to the
    epoch's batch count, plus the negative sampling; their losses are returned so that two library
    versions can be checked to compute the same values. The evaluation is what `train.train` needs
    at a selection epoch, valid and test: `evaluate_splits` where the library has it, else two
    `evaluate` calls; its floor is the score matmul + top-k over the users of either split.
    """
    from recgoat_lib import evaluate as evaluation

    device = resolve_device("auto")
    ds = make_dataset(data)
    seed_everything(seed)
    net = build_model("recgoat", ds, _modalities_of(data, dim)).to(device).train()
    optimizer = _adam(net, TrainConfig().lr)
    t0 = time.perf_counter()
    u, p, n = (torch.from_numpy(a).to(device) for a in NegativeSampler(ds).epoch(np.random.default_rng(seed)))
    sample_s = time.perf_counter() - t0
    losses, times = [], []
    with _kept_blocks():
        for b in range(batches + 1):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            sync(device)
            t0 = time.perf_counter()
            losses.append(float(train_step(net, optimizer, u[sl], p[sl], n[sl])["loss"]))
            sync(device)
            times.append(time.perf_counter() - t0)
    n_batches = math.ceil(len(u) / batch_size)

    splits = ("valid", "test")
    if hasattr(evaluation, "evaluate_splits"):
        run_eval = lambda: evaluation.evaluate_splits(net, ds, splits)  # noqa: E731
    else:
        run_eval = lambda: [evaluation.evaluate(net, ds, s) for s in splits]  # noqa: E731
    users = np.flatnonzero(np.logical_or.reduce([np.diff(ds.csr(s).indptr) > 0 for s in splits]))
    users = torch.from_numpy(users).to(device)
    net.eval()
    with torch.no_grad():
        emb = net()

        def matmul_topk() -> None:
            for start in range(0, len(users), EVAL_BATCH):
                torch.topk(emb.user[users[start:start + EVAL_BATCH]] @ emb.item.T, 21, dim=1)

        best = _best_interleaved({"eval": run_eval, "floor": matmul_topk}, eval_calls, device)
    return {"dataset": ds.name, "users": ds.n_users, "items": ds.n_items, "train_interactions": len(u), "dim": dim,
            "batch_size": batch_size, "batches_per_epoch": n_batches, "timed_batches": batches,
            "batch_s": float(np.mean(times[1:])), "epoch_s": sample_s + n_batches * float(np.mean(times[1:])),
            "losses": losses, "eval_valid_test_s": best["eval"], "eval_floor_s": best["floor"],
            "eval_users": len(users), "peak_rss_mb": _peak_rss_mb()}


def recgoat_precision_task(data: dict, dim: int, calls: int, batch_size: int = 4096, seed: int = 2025) -> dict:
    """A RecGOAT training step (`train.train_step`) in fp32 and under bf16 autocast, interleaved in this
    process (best of `calls` rounds each), on the same batch; and each precision's loss on it."""
    from recgoat_lib.train import training_precision  # here: the epoch task also runs with libraries before it

    device = resolve_device("auto")
    ds = make_dataset(data)
    seed_everything(seed)
    net = build_model("recgoat", ds, _modalities_of(data, dim)).to(device).train()
    optimizer = _adam(net, TrainConfig().lr)
    u, p, n = (torch.from_numpy(a[:batch_size]).to(device)
               for a in NegativeSampler(ds).epoch(np.random.default_rng(seed)))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    losses = {}
    for precision in ("fp32", "bf16"):
        net.load_state_dict(state)
        torch.manual_seed(seed)
        with torch.no_grad(), training_precision(precision, device):
            losses[precision] = float(net.loss(u, p, n)["loss"])
    steps = {precision: lambda precision=precision: train_step(net, optimizer, u, p, n, precision=precision)
             for precision in ("fp32", "bf16")}
    with _kept_blocks():
        best = _best_interleaved(steps, calls, device)
    return {"dataset": ds.name, "dim": dim, "batch_size": len(u), "timed_rounds": calls,
            "fp32_step_s": best["fp32"], "bf16_step_s": best["bf16"], "bf16_speedup": best["fp32"] / best["bf16"],
            "fp32_loss": losses["fp32"], "bf16_loss": losses["bf16"],
            "bf16_rel_loss_diff": abs(losses["bf16"] / losses["fp32"] - 1), "peak_rss_mb": peak_memory().rss_mb}


TASKS = {"model": model_task, "epoch": epoch_task, "oat": oat_task, "lm": lm_task, "recgoat_parts": recgoat_parts_task,
         "recgoat_floor": recgoat_floor_task, "recgoat_precision": recgoat_precision_task}


def main(argv: list[str]) -> None:
    task = json.loads(argv[0])
    kind = task.pop("task")
    if kind not in TASKS:
        raise SystemExit(f"unknown task {kind!r}; choose from {sorted(TASKS)}")
    result = TASKS[kind](**task)
    sync(resolve_device("auto"))
    print(json.dumps({"result": result, "machine": machine()}))


if __name__ == "__main__":
    main(sys.argv[1:])
