"""Sports investigations of issue #17 (items 8-10), short one-seed runs read against the converged LightGCN record.

8. Why RecGOAT's ID-only scaffolding trails LightGCN: RecGOAT ID-only (the study's
   "recgoat ID-only": no LM views, no user branch) at its defaults, and one change at a time
   (initialisation scale, the item normalisation, the user-item InfoNCE term, the learning rate).
9. The released Sinkhorn on real text: RecGOAT on Sports item text with `sinkhorn="released"` (and no
   user branch, as the released code; user LM features are not encoded here), with the transport plan's
   mass per epoch (training history, mean over batches) and, in eval mode at initialisation and after
   every epoch, its mass, row-marginal error and the share of kernel entries exp(-C/eps) that are 0 in fp32.
10. Naive LM injection (`lm_inject`, item text) at the same budget as item 8.

Every variant trains with the study's settings (`study.SPORTS_CONVERGED`: d=64, lr 1e-3, batch 2048,
validation Recall@20 every epoch) for a fixed short budget, one seed (2025). The reference is the
study's converged LightGCN record of seed 2025: variants are compared with its validation Recall@20 at
the same epoch. A difference is called only when it exceeds `CALL_SE` standard errors of an unpaired
difference of two means over users (the standard error from the per-user test Recall@20 of that
LightGCN record, as a proxy for validation's user sampling noise); seed-to-seed variation is not in it,
so every call is one-seed.

`python -m recgoat_lib.investigations` trains the missing runs and writes
`results/tables/sports_investigations.csv` (and .md), the answer sentences
(`results/tables/sports_investigations_answers.md`, which the README copies) and
`figures/sports_investigations.png`; `--table-only` rebuilds them from the committed records.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .runner import RESULTS_DIR, Record, RunSpec, load_records, per_user, record_path, spec
from .study import SPORTS_CONVERGED, Study, latest_record

METRIC = "recall@20"
SEED = 2025
BUDGET_EPOCHS = 15  # measured on Sports, one thread: ~27 s per ID-only epoch (train + eval), ~30 s lm_inject
PLAN_EPOCHS = 3  # the first item 9 run, made when the CPU was shared 4 ways (~130 s per epoch on a free core)
CALL_SE = 2.0
SLOPE_EPOCHS = 5  # item 8 reports each curve's gain over its last epochs: still rising or flat?
COLLAPSED_MASS = 1e-3  # a plan with less total mass than this (a valid plan has 1) has collapsed


@dataclass(frozen=True)
class Variant:
    """One run of the investigation: the item it answers, the model and overrides, what it changes."""

    label: str
    item: int
    model: str
    overrides: dict[str, Any]
    change: str
    train: dict[str, Any] = field(default_factory=dict)
    epochs: int = BUDGET_EPOCHS

    def spec(self, study: Study = SPORTS_CONVERGED, seed: int = SEED) -> RunSpec:
        t = replace(study.train, epochs=self.epochs, **self.train)
        return spec(study.dataset, self.model, t, seed, **{"dim": study.dim, **self.overrides})

    @property
    def uses_text(self) -> bool:
        return bool(self.overrides.get("modalities", ()))

    @property
    def uses_user_text(self) -> bool:
        """Whether the model as configured has a user LM branch (RecGOAT's default, unless turned off)."""
        return bool(getattr(self.spec().model_config, "user_branch", False))


ID_ONLY = SPORTS_CONVERGED.models["recgoat ID-only"][1]  # modalities=(), user_branch=False
DEFAULT = "ID-only default"
VARIANTS: tuple[Variant, ...] = (
    Variant(DEFAULT, 8, "recgoat", ID_ONLY,
            "none: Xavier init, LN + dropout + L2 items, user-item InfoNCE, lr 1e-3"),
    Variant("init N(0, 0.1^2)", 8, "recgoat", {**ID_ONLY, "init": "normal"},
            'init="normal" (released code; the paper states no init, the default reads Xavier)'),
    Variant("items unnormalised", 8, "recgoat", {**ID_ONLY, "item_norm": "none"},
            'item_norm="none": no LN, dropout or L2 on items (the paper and released code have them)'),
    Variant("no user-item InfoNCE", 8, "recgoat", {**ID_ONLY, "cl_weight": 0.0},
            "cl_weight=0 (ID-only CMCL is the user-item InfoNCE term alone)"),
    Variant("lr 5e-3", 8, "recgoat", ID_ONLY, "lr 5e-3 instead of 1e-3", train={"lr": 5e-3}),
    Variant("RecGOAT text, released Sinkhorn", 9, "recgoat",
            {"modalities": ("text",), "user_branch": False, "sinkhorn": "released"},
            'sinkhorn="released", item text, no user branch', epochs=PLAN_EPOCHS),
    Variant("RecGOAT text + user LM, released Sinkhorn", 9, "recgoat",
            {"modalities": ("text",), "sinkhorn": "released"},
            'sinkhorn="released", item text, user LM branch (the model of the Sports ablation row)'),
    Variant("lm_inject text", 10, "lm_inject", {"modalities": ("text",)}, "naive LM injection (concat), item text"),
)
LIGHTGCN = "lightgcn"


def reference_spec(study: Study = SPORTS_CONVERGED, seed: int = SEED) -> RunSpec:
    """The converged LightGCN run of the study that every variant is read against."""
    return next(s for s in study.specs(LIGHTGCN) if s.seed == seed)


def investigation_records(variants: tuple[Variant, ...] = VARIANTS, study: Study = SPORTS_CONVERGED,
                          results_dir: Path = RESULTS_DIR) -> tuple[dict[str, Record], Record | None]:
    """(label -> latest record of that variant, the LightGCN reference record or None)."""
    records = load_records(results_dir, study.dataset)
    found = {v.label: r for v in variants if (r := latest_record(records, v.spec(study))) is not None}
    return found, latest_record(records, reference_spec(study))


def valid_curve(record: Record) -> dict[int, float]:
    """epoch -> validation Recall@20 (the selection score of every evaluated epoch)."""
    return {int(h["epoch"]): float(h["select_score"]) for h in record["history"] if "select_score" in h}


def call_threshold(reference: Record, results_dir: Path = RESULTS_DIR) -> float:
    """`CALL_SE` standard errors of an unpaired difference of two means over users, from the
    reference record's per-user test Recall@20."""
    x = per_user(reference, results_dir)[METRIC]
    return CALL_SE * math.sqrt(2.0) * float(np.std(x, ddof=1)) / math.sqrt(len(x))


def call(diff: float, threshold: float, above: str = "above", below: str = "below", tie: str = "level with") -> str:
    return above if diff > threshold else below if diff < -threshold else tie


def plan_log_path(record_or_key: Record | str, dataset: str = SPORTS_CONVERGED.dataset,
                  results_dir: Path = RESULTS_DIR) -> Path:
    """`<key>.plan.csv` beside a record: the eval-mode plan diagnostics of item 9's run."""
    key = record_or_key if isinstance(record_or_key, str) else record_or_key["key"]
    return record_path(results_dir, dataset, key).with_name(f"{key}.plan.csv")


def read_plan_log(record: Record, results_dir: Path = RESULTS_DIR) -> pd.DataFrame | None:
    path = plan_log_path(record, record["dataset"], results_dir)
    return pd.read_csv(path) if path.exists() else None


def investigation_table(variants: tuple[Variant, ...] = VARIANTS, study: Study = SPORTS_CONVERGED,
                        results_dir: Path = RESULTS_DIR) -> pd.DataFrame:
    """One row per variant (and the LightGCN reference): validation Recall@20 at its last budget
    epoch, LightGCN's at that epoch, the difference and its call, the difference from the ID-only
    default at that epoch, its best validation epoch within the budget, plan mass (item 9), s/epoch."""
    found, ref = investigation_records(variants, study, results_dir)
    if ref is None:
        raise FileNotFoundError("no LightGCN reference record (the study's seed-2025 LightGCN run)")
    ref_curve = valid_curve(ref)
    threshold = call_threshold(ref, results_dir)
    default = valid_curve(found[DEFAULT]) if DEFAULT in found else {}
    rows = []
    for v in variants:
        row: dict[str, Any] = {"item": v.item, "variant": v.label, "change": v.change, "seed": SEED}
        rec = found.get(v.label)
        if rec is None:
            rows.append({**row, "epochs": f"not run yet ({v.epochs} planned)"})
            continue
        curve = valid_curve(rec)
        last = max(curve)
        best = max(curve, key=curve.get)
        diff = curve[last] - ref_curve[last]
        row.update({"epochs": last, f"valid {METRIC}": curve[last], "lightgcn valid at epoch": ref_curve[last],
                    "diff vs lightgcn": diff, "call vs lightgcn": call(diff, threshold)})
        if v.label != DEFAULT and last in default:
            d = curve[last] - default[last]
            row.update({"diff vs ID-only default": d, "call vs default": call(d, threshold)})
        row.update({"best valid epoch": best, f"best valid {METRIC}": curve[best]})
        masses = [h[k] for h in rec["history"] for k in h if k.startswith("plan_mass_")]
        if masses:
            row["plan mass, epochs (min / max)"] = f"{min(masses):.3g} / {max(masses):.3g}"
        row["s per epoch"] = rec["train_seconds_per_epoch"] + rec["eval_seconds"]
        row["commit"] = f"`{rec['git_commit']}{'+dirty' if rec.get('git_dirty') else ''}`"
        rows.append(row)
    rows.append({"item": 0, "variant": f"lightgcn (converged record, best epoch {ref['best_epoch']})",
                 "change": "reference", "seed": ref["seed"], "epochs": ref["epochs_run"],
                 "best valid epoch": ref["best_epoch"], f"best valid {METRIC}": ref["valid"][METRIC],
                 "s per epoch": ref["train_seconds_per_epoch"] + ref["eval_seconds"],
                 "commit": f"`{ref['git_commit']}{'+dirty' if ref.get('git_dirty') else ''}`"})
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    return f"{x:+.4f}"


def answers(variants: tuple[Variant, ...] = VARIANTS, study: Study = SPORTS_CONVERGED,
            results_dir: Path = RESULTS_DIR) -> dict[int, str]:
    """One computed sentence per item (8, 9, 10), from the records."""
    found, ref = investigation_records(variants, study, results_dir)
    if ref is None:
        return {i: "No answer: the LightGCN reference record is missing." for i in (8, 9, 10)}
    ref_curve = valid_curve(ref)
    threshold = call_threshold(ref, results_dir)
    rule = (f"one seed ({SEED}); a difference is called when it exceeds {threshold:.4f} "
            f"({CALL_SE:g} standard errors of a difference over users; seed variation not included)")
    out: dict[int, str] = {}
    item8 = [v for v in variants if v.item == 8]
    if DEFAULT not in found:
        out[8] = f"No answer yet: the {DEFAULT} run is missing."
    else:
        base = valid_curve(found[DEFAULT])
        e = max(base)
        gap = base[e] - ref_curve[e]
        parts = []
        for v in item8:
            if v.label == DEFAULT:
                continue
            if v.label not in found:
                parts.append(f"{v.label}: not run yet")
                continue
            c = valid_curve(found[v.label])
            if e not in c:
                parts.append(f"{v.label}: no epoch {e}")
                continue
            d, g = c[e] - base[e], c[e] - ref_curve[e]
            effect = call(d, threshold, "raises", "lowers", "no change")
            parts.append(f"{v.label} {c[e]:.4f} ({_fmt(d)} vs default, {effect}; {call(g, threshold)} LightGCN)")
        ranked = [(valid_curve(found[v.label]).get(e, -1.0), v.label) for v in item8 if v.label in found]
        top_value, top = max(ranked)
        w = min(SLOPE_EPOCHS, e - 1)
        out[8] = (f"At epoch {e} RecGOAT ID-only's default reaches validation Recall@20 {base[e]:.4f}, "
                  f"{call(gap, threshold)} LightGCN's {ref_curve[e]:.4f} at the same epoch ({_fmt(gap)}), gaining "
                  f"{_fmt(base[e] - base[e - w])} over its last {w} epochs against LightGCN's "
                  f"{_fmt(ref_curve[e] - ref_curve[e - w])} (LightGCN's converged best: {ref['valid'][METRIC]:.4f} at "
                  f"epoch {ref['best_epoch']}); one change at a time: {'; '.join(parts)}; the best at epoch {e} is "
                  f"{top} ({top_value:.4f}) [{rule}].")
    out[9] = " ".join(_plan_sentence(v, found.get(v.label), study, results_dir) for v in variants if v.item == 9)
    v10 = next((v for v in variants if v.item == 10), None)
    rec10 = found.get(v10.label) if v10 else None
    if rec10 is None:
        out[10] = "No answer yet: the lm_inject run is missing."
    else:
        c = valid_curve(rec10)
        e = max(c)
        g = c[e] - ref_curve[e]
        s = (f"Naive LM injection (item text, concat) reaches validation Recall@20 {c[e]:.4f} at epoch {e}, "
             f"{call(g, threshold)} LightGCN's {ref_curve[e]:.4f} ({_fmt(g)})")
        if DEFAULT in found and e in valid_curve(found[DEFAULT]):
            b = valid_curve(found[DEFAULT])[e]
            s += f" and {call(c[e] - b, threshold)} RecGOAT ID-only's default {b:.4f} ({_fmt(c[e] - b)})"
        out[10] = s + f" [{rule}]."
    return out


def _plan_sentence(v: Variant, rec: Record | None, study: Study, results_dir: Path) -> str:
    """Item 9's answer for one released-Sinkhorn run: the plan mass over training, and in eval mode at
    initialisation and at the end (marginal error, empty rows, underflowed kernel entries)."""
    if rec is None:
        return f"No answer yet for {v.label}: its run is missing."
    masses = [(int(h["epoch"]), h[k]) for h in rec["history"] for k in h if k.startswith("plan_mass_")]
    collapsed = sum(m < COLLAPSED_MASS for _, m in masses)
    log = read_plan_log(rec, results_dir)
    init = ""
    if log is not None and len(log):
        first, final = log.iloc[0], log.iloc[-1]
        n_rows = int(round(1 / first["row_mass_target"]))
        init = (f"; in eval mode its mass is {first['mass']:.5f} at initialisation and {final['mass']:.5f} after "
                f"epoch {int(final['epoch'])}, its largest row-marginal error {first['row_error']:.3g} and "
                f"{final['row_error']:.3g} (a uniform row holds 1/{n_rows}), with "
                f"{first['zero_rows']:.0f} and {final['zero_rows']:.0f} of the rows empty and "
                f"{first['kernel_zero_share']:.1%} and {final['kernel_zero_share']:.1%} of exp(-C/eps) 0 in fp32 "
                f"(median C/eps {first['cost_over_eps_median']:.3g} and {final['cost_over_eps_median']:.3g}; "
                f"fp32 exp underflows to 0 beyond about 104)")
    branch = "with the user LM branch" if v.uses_user_text else "no user branch"
    return (f"With the released Sinkhorn on {study.dataset} item text ({rec['epochs_run']} epochs, one seed, "
            f"{branch}), the plan's mass per epoch (training, mean over batches; a valid plan has 1) runs "
            f"from {masses[0][1]:.5f} to {masses[-1][1]:.5f} and is below {COLLAPSED_MASS:g} in {collapsed} of "
            f"{len(masses)} epochs{init}.")


def answers_markdown(sentences: dict[int, str]) -> str:
    """The answer sentences as a Markdown list (the README copies it like a table)."""
    return "\n".join(f"- **Item {item}.** {text}" for item, text in sentences.items()) + "\n"


def plot_investigations(variants: tuple[Variant, ...] = VARIANTS, study: Study = SPORTS_CONVERGED,
                        results_dir: Path = RESULTS_DIR):
    """Validation Recall@20 against epoch for every recorded variant and, over the same epochs, LightGCN."""
    import matplotlib.pyplot as plt

    found, ref = investigation_records(variants, study, results_dir)
    if ref is None or not found:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    last = max(max(valid_curve(r)) for r in found.values())
    rc = {e: v for e, v in valid_curve(ref).items() if e <= last}
    ax.plot(list(rc), list(rc.values()), "k--", lw=2, label="LightGCN (converged record, first epochs)")
    ax.axhline(ref["valid"][METRIC], color="k", ls=":", lw=1,
               label=f"LightGCN converged best (epoch {ref['best_epoch']})")
    for i, v in enumerate(variants):
        if v.label in found:
            c = valid_curve(found[v.label])
            ax.plot(list(c), list(c.values()), marker="o", ms=3, color=f"C{i}", label=f"[{v.item}] {v.label}")
    ax.set(xlabel="epoch", ylabel=f"validation {METRIC}",
           title=f"{study.dataset}: issue #17 investigations, one seed ({SEED}), lr/batch as the study")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


class PlanLogger:
    """`on_eval` callback for item 9: eval-mode plan diagnostics at initialisation and after every epoch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def __call__(self, epoch: int, model: Any) -> None:
        import torch

        was = model.training
        model.eval()
        with torch.no_grad():
            ex = model(user_lm=False).extras
        model.train(was)
        eps = model.config.ot_eps
        for m in model.config.modalities:
            plan, cost = ex[f"plan_{m}"], ex[f"cost_{m}"]
            rows = plan.sum(-1)
            self.rows.append({"epoch": epoch, "modality": m, "mass": float(plan.sum()),
                              "row_error": float((rows - 1.0 / plan.shape[0]).abs().max()),
                              "row_mass_target": 1.0 / plan.shape[0], "zero_rows": int((rows == 0).sum()),
                              "kernel_zero_share": float((torch.exp(-cost / eps) == 0).float().mean()),
                              "cost_over_eps_min": float(cost.min() / eps),
                              "cost_over_eps_median": float(cost.median() / eps)})
        print(f"plan epoch {epoch}: {self.rows[-1]}", flush=True)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(self.rows[0]))
            w.writeheader()
            w.writerows(self.rows)


def sports_with_item_text(ds):
    """Sports with its cached item text features only, for the runs without a user LM branch (user LM
    features cost ~15 minutes of one core to encode when not cached)."""
    import dataclasses

    from .lm import as_encoder, encode_items

    x, _, _, hit = encode_items(ds, as_encoder(None))
    print(f"{ds.name}: item text features {x.shape} (cache hit {hit})")
    return dataclasses.replace(ds, item_features={**ds.item_features, "text": x})


def train_missing(variants: tuple[Variant, ...] = VARIANTS, study: Study = SPORTS_CONVERGED,
                  results_dir: Path = RESULTS_DIR, only: list[str] | None = None) -> None:
    """Train the variants without a record, in the order given (item 9's with its plan log)."""
    from .data import load_dataset
    from .lm import with_lm_features
    from .runner import run, run_many

    found, _ = investigation_records(variants, study, results_dir)
    ds = load_dataset(study.dataset)
    text = users = None
    for v in variants:
        if v.label in found or (only and v.label not in only):
            continue
        print(f"training [{v.item}] {v.label}", flush=True)
        data = ds
        if v.uses_user_text:
            users = users or with_lm_features(ds)
            data = users
        elif v.uses_text:
            text = text or sports_with_item_text(ds)
            data = text
        if v.item == 9:
            logger = PlanLogger()
            rec = run(v.spec(study), data, results_dir=results_dir, on_eval=logger)
            logger.save(plan_log_path(rec, study.dataset, results_dir))
        else:
            run_many([v.spec(study)], data, results_dir=results_dir, progress=False)


def main(argv: list[str] | None = None) -> None:
    """Train the missing investigation runs (unless --table-only), then write the table, figure and answers."""
    import argparse

    from .data import repo_relative
    from .tables import TABLES_DIR, save_figure, save_table, set_style

    ap = argparse.ArgumentParser(prog="python -m recgoat_lib.investigations", description=main.__doc__)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--only", nargs="*", help="train only these variant labels")
    args = ap.parse_args(argv)
    if not args.table_only:
        train_missing(only=args.only)
    table = investigation_table()
    print(table.to_markdown(index=False))
    print("wrote", save_table(table, "sports_investigations", None))
    set_style()
    fig = plot_investigations()
    if fig is not None:
        print("wrote", save_figure(fig, "sports_investigations", None))
    text = answers_markdown(answers())
    path = TABLES_DIR / "sports_investigations_answers.md"
    path.write_text(text)
    print("wrote", repo_relative(path))
    print(text)


if __name__ == "__main__":
    main()
