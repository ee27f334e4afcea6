"""Every named budget, grid, sweep and profile of the companion, in one place.

A profile (`PROFILES`) is a named set of parameter values shared by every notebook: datasets,
seeds, the training budget, the embedding size, and per-dataset settings of single models (the
paper's released RecGOAT settings under `paper`). The benchmark's tuning grids (`GRIDS`), the
ablations' sensitivity sweeps (`SWEEPS`, `SWEEP_SEEDS`, `TRAIN_OVERRIDES`) and the reduced budgets
of the real-data checks (`SPORTS_TEXT_CHECK`, `REAL_TEXT_SEEDS`) are keyed or built on them.
`NOTEBOOK_PARAMETERS` is the one vocabulary of the notebooks' papermill parameters.

Values only: this module imports nothing of the library but `TrainConfig`, so every other
module (runner, benchmark, ablations, dry run) can read it without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .train import TrainConfig


@dataclass(frozen=True)
class ModelSettings:
    """One model's settings on one dataset under a profile: config overrides applied on top of the
    profile's `dim`, TrainConfig overrides applied on top of its `train`, and whose values they are
    (`source`), so that tables and the README can tell the paper's settings from ours."""

    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    source: str = "ours"


# The profile's own `dim` and `train` (no per-dataset settings).
PROFILE_DEFAULTS = ModelSettings()


@dataclass(frozen=True)
class Profile:
    """What a notebook runs under a profile: datasets, seeds, training budget, cache use, and the
    per-dataset settings of single models (`settings[model][dataset]`; models and datasets absent
    there use `dim` and `train`).

    With the cache on, a spec that several notebooks train (RecGOAT's defaults on toy appear in
    03, 04, 05, 07 and 08) trains once per reproduction; the key includes the library's code
    fingerprint, so an edited library never reads an older record (see `runner`)."""

    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    train: TrainConfig
    dim: int
    use_cache: bool
    settings: Mapping[str, Mapping[str, ModelSettings]] = field(default_factory=dict)

    def model_settings(self, model: str, dataset: str) -> ModelSettings:
        """The settings of `model` on `dataset` (a dataset name such as "baby"; a suffixed copy such
        as "baby-timing-only" does not match), or the profile's own defaults."""
        return self.settings.get(model, {}).get(dataset, PROFILE_DEFAULTS)

    def model_train(self, model: str, dataset: str) -> TrainConfig:
        """The TrainConfig of `model` on `dataset`: the profile's with the model's per-dataset overrides."""
        return replace(self.train, **self.model_settings(model, dataset).train)


# RecGOAT as the paper's released code trains it (Adam lr 8e-4, batch 4096, 1000-2000 epochs: we
# take 1000), with its per-dataset embedding size, kNN k and CMCL weight. Clothing is not in the
# paper: RecGOAT there uses the profile's (MMRec baseline) settings.
PAPER_RECGOAT_TRAIN = {"lr": 8e-4, "batch_size": 4096, "epochs": 1000}
PAPER_RECGOAT: Mapping[str, ModelSettings] = {
    name: ModelSettings({"dim": dim, "knn_k": k, "cl_weight": cl}, PAPER_RECGOAT_TRAIN, "paper (released code)")
    for name, dim, k, cl in (("baby", 800, 20, 0.032), ("sports", 600, 30, 0.005), ("electronics", 200, 20, 0.05))
}

PROFILES: Mapping[str, Profile] = {
    "quick": Profile(
        name="quick", datasets=("toy",), seeds=(2025, 2026, 2027),
        train=TrainConfig(epochs=40, batch_size=2048, lr=1e-3, eval_every=2, patience=5, progress=False),
        dim=64, use_cache=True,
    ),
    # Baselines: MMRec's published settings (d = 64, lr 1e-3, batch 2048, 1000 epochs, early
    # stopping after 20 evaluations without a better validation Recall@20); RecGOAT: PAPER_RECGOAT.
    "paper": Profile(
        name="paper", datasets=("baby", "sports", "clothing"), seeds=(2025, 2026, 2027, 2028, 2029),
        train=TrainConfig(epochs=1000, batch_size=2048, lr=1e-3, eval_every=1, patience=20),
        dim=64, use_cache=True, settings={"recgoat": PAPER_RECGOAT},
    ),
}


def get_profile(name: str, **train_overrides: Any) -> Profile:
    """The named profile, its TrainConfig changed by `train_overrides` (e.g. epochs=20 on a busy machine)."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    p = PROFILES[name]
    return replace(p, train=replace(p.train, **train_overrides)) if train_overrides else p


def recgoat_settings(dataset: str, profile: str = "paper") -> ModelSettings:
    """RecGOAT's settings on `dataset` under `profile` (by default the paper's released ones)."""
    return get_profile(profile).model_settings("recgoat", dataset)


@dataclass(frozen=True)
class Budget:
    """A reduced, stated budget for a benchmark too expensive to run in full on a CPU.

    A budget states its whole training setting: `profile` drops the base profile's per-dataset
    model settings, so every entry runs with `train` on top of the base TrainConfig at the base dim."""

    dataset: str
    labels: tuple[str, ...]
    seeds: tuple[int, ...]
    train: Mapping[str, Any]
    tune: bool

    def profile(self, base: Profile) -> Profile:
        return replace(base, seeds=self.seeds, train=replace(base.train, **self.train), settings={})


# Real Sports with its real title-text item features only (no image modality) and the user LM
# features built from training interactions: RecGOAT (text view + user branch) against LightGCN
# and FREEDOM (text only), default hyper-parameters (no tuning), 10 epochs at batch 4096.
SPORTS_TEXT_CHECK = Budget(
    dataset="sports", labels=("lightgcn", "freedom", "recgoat"), seeds=(2025, 2026, 2027),
    train={"epochs": 10, "batch_size": 4096, "lr": 5e-3, "eval_every": 5, "patience": 2},
    tune=False,
)

# The benchmark's tuning grids, per profile and entry label (validation only). Equal budget:
# 2 grid points per entry under `quick`, 4 under `paper`.
GRIDS: Mapping[str, Mapping[str, Mapping[str, tuple]]] = {
    "quick": {
        "bpr": {"reg": (1e-4, 1e-2)},
        "lightgcn": {"reg": (1e-4, 1e-2)},
        "vbpr": {"reg": (1e-4, 1e-2)},
        "freedom": {"edge_dropout": (0.5, 0.8)},
        "bm3": {"dropout": (0.3, 0.5)},
        "lgmrec": {"alpha": (0.3, 0.6)},
        "lm_inject": {"mode": ("concat", "replace")},
        "dprec*": {"align_weight": (0.01, 0.05)},
        "recgoat": {"cl_weight": (0.005, 0.032)},
    },
    "paper": {
        "bpr": {"reg": (1e-5, 1e-4, 1e-3, 1e-2)},
        "lightgcn": {"reg": (1e-5, 1e-4, 1e-3, 1e-2)},
        "vbpr": {"reg": (1e-5, 1e-4, 1e-3, 1e-2)},
        "freedom": {"edge_dropout": (0.8, 0.9), "reg": (1e-5, 1e-3)},
        "bm3": {"layers": (1, 2), "dropout": (0.3, 0.5)},
        "lgmrec": {"alpha": (0.3, 0.6), "keep_rate": (0.4, 0.5)},
        "lm_inject": {"mode": ("concat", "replace"), "reg": (1e-4, 1e-3)},
        "dprec*": {"align_weight": (0.01, 0.05), "reg": (1e-4, 1e-3)},
        "recgoat": {"cl_weight": (0.005, 0.032), "reg": (1e-4, 1e-3)},
    },
}

# The converged Sports study's tuning grids (study.SPORTS_CONVERGED): 2 points per model, one hyper-
# parameter each, MMRec's (or the paper's) default always one of them; chosen on validation Recall@20
# with the study's first seed. DPRec* runs without its alignment there (text only), so its reg is tuned.
STUDY_GRIDS: Mapping[str, Mapping[str, tuple]] = {
    **{k: v for k, v in GRIDS["quick"].items() if k != "dprec*"},
    "dprec*": {"reg": (1e-4, 1e-3)},
    "recgoat released": GRIDS["quick"]["recgoat"],
    "recgoat ID-only": GRIDS["quick"]["recgoat"],
}

# The ablations on real Sports text: one seed, since a full-cost variant takes about 20 min per
# seed on one CPU thread (CMCL is most of it).
REAL_TEXT_SEEDS = SPORTS_TEXT_CHECK.seeds[:1]

# One-at-a-time sweeps around the default (`dim` around the profile's dim; the default value is
# always added). Quick: one other value per parameter, to fit CI's CPU budget.
SWEEPS: Mapping[str, Mapping[str, tuple]] = {
    "quick": {
        "knn_k": (5,), "cl_weight": (0.2,), "cl_temperature": (0.05,), "dim": (32,), "ot_eps": (0.1,),
        "ot_scale": (10.0,), "gat_layers": (2,),
    },
    "paper": {
        "knn_k": (5, 10, 20, 30, 50), "cl_weight": (0.0, 0.005, 0.032, 0.05, 0.2),
        "cl_temperature": (0.05, 0.1, 0.2, 0.5, 1.0), "dim": (32, 64, 128, 256),
        "ot_eps": (0.001, 0.005, 0.01, 0.05, 0.1), "ot_scale": (1.0, 10.0, 100.0, 1000.0),
        "gat_layers": (0, 1, 2, 3),
    },
}
SWEEP_SEEDS: Mapping[str, int] = {"quick": 2, "paper": 3}
# The ablations' training budget on top of the profile's TrainConfig. Under `quick` about 75 RecGOAT
# runs must fit CI's few CPU minutes, so each trains 3 epochs at a 10x larger learning rate: its
# numbers show that the pipeline works, not which component matters. `paper` trains with the
# profile's full budget.
TRAIN_OVERRIDES: Mapping[str, Mapping[str, Any]] = {"quick": {"epochs": 3, "eval_every": 1, "lr": 1e-2}, "paper": {}}

# The notebooks' papermill parameters: every name a notebook's `parameters` cell may assign, with
# its meaning (tests/test_notebooks_clean.py checks each cell against this list). One name, one
# meaning in every notebook.
NOTEBOOK_PARAMETERS: Mapping[str, str] = {
    "PROFILE": "profile name (quick or paper); every notebook has it",
    "DATASET": "the dataset a notebook runs on (toy or an MMRec dataset name)",
    "DATASETS": "several datasets (None: the profile's datasets)",
    "DATA_SEED": "seed of the toy data generator (ignored for real datasets)",
    "KEEP_SEED": "the training seed whose trained model the analyses inspect",
    "ANALYSIS_SEED": "seed of an analysis's own sampling (item pairs, directions, users, probes)",
    "EPOCHS": "epoch cap (None: the profile's training budget)",
    "THREADS": "torch threads; results depend on it (recgoat_lib.determinism)",
    "MODELS": "benchmark entries to run (None: every entry)",
    "KNN_K": "k of the modality kNN graphs (None: the profile's setting, else the model default)",
    "ENCODER": "sentence encoder (None: the offline default)",
    "MISSING": "policy for items without text",
    "N_PAIRS": "item pairs sampled for the semantic-gap analysis",
    "N_DIRECTIONS": "random unit directions for sliced W1 and the KR check",
    "KR_USERS": "trained users used as KR scorers",
    "MI_BATCH": "N of the InfoNCE bound",
    "EXACT_W1_POINTS": "items subsampled for the exact W1 cross-check",
    "SPORTS_TEXT_CHECK": "load/run the real Sports text-only benchmark check",
    "FULL_BUDGET": "ablations with the profile's own budget instead of TRAIN_OVERRIDES",
    "REAL_TEXT_CHECK": "load/run the ablations on real Sports text",
    "MAX_LEN": "sequence length of the next-item protocol",
    "SEQ_BATCH": "batch size of the sequential models",
    "SEQ_LR": "learning rate of the sequential models",
    "SEQ_LAYERS": "layers of the sequential models",
    "SEQ_SELECT": "validation metric that picks the sequential models' best epoch",
    "BENCHMARK": "which results/benchmarks/<label>.json to plot",
    "REAL_DATA": "recompute the real-data statistics (minutes) instead of showing the stored table",
}
