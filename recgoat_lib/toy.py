"""The embedded `toy` dataset: a small synthetic baby-products shop with known ground truth.

Generated from a seed in a few seconds with no download, so every notebook runs
on any machine. Items have a latent topic and visual/material attributes; their
English titles and descriptions are written from those attributes (so a real
text encoder has something meaningful to read), and an image-like vector is a
noisy linear function of the visual attributes. Users prefer a few topics and
colours; they interact in sessions that tend to stay on a topic, which also
gives a time order for sequential models. The latent variables are kept in
`Dataset.latent` so the theory notebook can ask what each view recovers. Topic, colour and style
drive the interactions; brand and material are content that users ignore (the semantic-gap dials
of `semantic_gap` dilute the features' preference signal with them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .dataset import Dataset, item_texts, prepare_interactions

TOPICS = {
    "stroller": ("stroller", "pushchair", ["foldable frame", "all-terrain wheels", "reclining seat", "sun canopy"]),
    "bottle": ("feeding bottle", "baby bottle",
               ["anti-colic valve", "slow-flow nipple", "BPA-free body", "easy-grip shape"]),
    "toy": ("plush toy", "soft toy", ["crinkle ears", "rattle inside", "embroidered eyes", "machine washable fabric"]),
    "blanket": ("swaddle blanket", "baby blanket", ["breathable weave", "velcro wings", "zip closure", "double layer"]),
    "car_seat": ("car seat", "infant car seat",
                 ["side-impact protection", "five-point harness", "isofix base", "removable cover"]),
    "diaper": ("diaper bag", "changing backpack",
               ["insulated bottle pockets", "changing pad", "stroller straps", "wipe dispenser"]),
    "bath": ("bath tub", "baby bath seat", ["non-slip base", "temperature indicator", "drain plug", "foldable design"]),
    "monitor": ("baby monitor", "video monitor",
                ["night vision", "two-way talk", "room temperature sensor", "long-range signal"]),
}
COLORS = ["red", "blue", "green", "yellow", "pink", "grey", "white", "black"]
MATERIALS = ["cotton", "plastic", "bamboo", "silicone", "polyester"]
STYLES = ["classic", "modern", "cartoon", "minimalist"]
BRANDS = ["Lumi", "Nestly", "Pebble", "Cubby", "Sprout", "Hushaby", "Tiny Tide", "Wren & Co"]


@dataclass(frozen=True)
class ToyConfig:
    """Size and difficulty of the synthetic shop."""

    n_users: int = 1800
    n_items: int = 1200
    image_dim: int = 64
    mean_interactions: float = 14.0
    topic_stickiness: float = 0.6
    image_noise: float = 0.6
    kcore: int = 5


def make_toy(seed: int = 2025, config: ToyConfig = ToyConfig()) -> Dataset:
    """Generate the toy dataset deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    c = config
    topics = list(TOPICS)
    n_t, n_c, n_s, n_m = len(topics), len(COLORS), len(STYLES), len(MATERIALS)

    item_topic = rng.integers(n_t, size=c.n_items)
    item_color = rng.integers(n_c, size=c.n_items)
    item_style = rng.integers(n_s, size=c.n_items)
    item_material = rng.integers(n_m, size=c.n_items)
    item_brand = rng.integers(len(BRANDS), size=c.n_items)
    quality = rng.normal(0.0, 1.0, size=c.n_items)

    visual = np.concatenate([np.eye(n_t)[item_topic], np.eye(n_c)[item_color], np.eye(n_s)[item_style]], axis=1)
    projection = rng.normal(0.0, 1.0, size=(visual.shape[1], c.image_dim)) / np.sqrt(3.0)
    image = visual @ projection + c.image_noise * rng.normal(size=(c.n_items, c.image_dim))

    user_topic_pref = rng.dirichlet(np.full(n_t, 0.3), size=c.n_users)
    user_color_pref = rng.normal(0.0, 1.0, size=(c.n_users, n_c))
    user_style_pref = rng.normal(0.0, 1.0, size=(c.n_users, n_s))
    n_inter = 3 + rng.poisson(c.mean_interactions - 3, size=c.n_users)

    items_by_topic = [np.flatnonzero(item_topic == t) for t in range(n_t)]
    users, items, times = [], [], []
    for u in range(c.n_users):
        topic = rng.choice(n_t, p=user_topic_pref[u])
        for step in range(n_inter[u]):
            if step and rng.random() > c.topic_stickiness:
                topic = rng.choice(n_t, p=user_topic_pref[u])
            cand = items_by_topic[topic]
            logits = (user_color_pref[u, item_color[cand]] + user_style_pref[u, item_style[cand]]
                      + 0.7 * quality[cand])
            p = np.exp(logits - logits.max())
            users.append(u)
            items.append(cand[rng.choice(len(cand), p=p / p.sum())])
            times.append(step + rng.random())

    df, uid, iid = prepare_interactions(np.array(users), np.array(items), seed, k=c.kcore,
                                        timestamps=np.array(times))
    meta = _item_meta(iid, item_topic, item_color, item_style, item_material, item_brand, rng)
    latent = {
        "item_topic": item_topic[iid], "item_color": item_color[iid], "item_style": item_style[iid],
        "item_material": item_material[iid], "item_brand": item_brand[iid], "item_quality": quality[iid],
        "user_topic_pref": user_topic_pref[uid], "user_color_pref": user_color_pref[uid],
        "user_style_pref": user_style_pref[uid],
    }
    return Dataset(
        name="toy", n_users=len(uid), n_items=len(iid), interactions=df,
        item_features={"image": image[iid].astype(np.float32)},
        item_text=item_texts(meta), item_meta=meta,
        latent=latent, source=f"recgoat_lib.toy(seed={seed})",
    )


def _item_meta(iid, topic, color, style, material, brand, rng) -> pd.DataFrame:
    """Titles, brands, categories and descriptions written from the latent attributes.

    `image_description` plays the MLLM caption the paper asks a vision-language model
    to write from the product image: it mentions only what is visible.
    """
    rows = []
    for i in iid:
        name, alt, features = TOPICS[list(TOPICS)[topic[i]]]
        feats = rng.choice(len(features), size=2, replace=False)
        col, sty, mat = COLORS[color[i]], STYLES[style[i]], MATERIALS[material[i]]
        rows.append({
            "title": f"{BRANDS[brand[i]]} {sty} {col} {name}",
            "brand": BRANDS[brand[i]],
            "categories": f"Baby Products, {alt.title()}",
            "description": (f"A {mat} {alt} with {features[feats[0]]} and {features[feats[1]]}. "
                            f"{sty.capitalize()} design in {col}."),
            "image_description": f"A photo of a {col} {name} in a {sty} style.",
        })
    return pd.DataFrame(rows)
