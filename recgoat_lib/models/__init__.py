"""Model registry: a name -> class map so configs, tables and notebooks refer to models by name."""
from __future__ import annotations

import importlib
from dataclasses import fields, is_dataclass
from typing import Any

from ..data import Dataset
from .base import Embeddings, Recommender

_REGISTRY = {
    "bpr": "recgoat_lib.models.mf:BPRMF",
    "lightgcn": "recgoat_lib.models.lightgcn:LightGCN",
    "vbpr": "recgoat_lib.models.vbpr:VBPR",
    "freedom": "recgoat_lib.models.freedom:FREEDOM",
    "bm3": "recgoat_lib.models.bm3:BM3",
    "lgmrec": "recgoat_lib.models.lgmrec:LGMRec",
    "lm_inject": "recgoat_lib.models.lm_inject:NaiveLMInjection",
    "recgoat": "recgoat_lib.models.recgoat:RecGOAT",
    "dprec": "recgoat_lib.models.dprec:DPRec",
}


def model_names() -> tuple[str, ...]:
    """Every registered model name, in registry order (benchmarks iterate over these)."""
    return tuple(_REGISTRY)


def model_class(name: str) -> type[Recommender]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {sorted(_REGISTRY)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_config(name: str, **overrides: Any):
    """The model's frozen config with `overrides` applied; unknown keys are an error."""
    cfg_cls = model_class(name).Config
    known = {f.name for f in fields(cfg_cls)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(f"{name}: unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    return cfg_cls(**overrides)


def build_model(name: str, ds: Dataset, config: Any = None) -> Recommender:
    """Instantiate a registered model on a dataset, checking its required modality features first."""
    cls = model_class(name)
    config = config if config is not None else cls.Config()
    if not is_dataclass(config):
        config = make_config(name, **config)
    ds.require_features(getattr(config, "modalities", cls.required_features), cls.__name__)
    return cls(ds, config)


__all__ = ["Embeddings", "Recommender", "build_model", "make_config", "model_class", "model_names"]
