"""Published reference numbers on MMRec's splits (full ranking, test at best validation Recall@20).

Source: MMRec's evaluation table (Zhou et al., "A Comprehensive Survey on Multimodal Recommender
Systems"; MMRec's `evaluation/README.md`) for the Baby and Sports rows of BPR, LightGCN, VBPR and FREEDOM
and for BM3 on Sports (Recall@20 only); LGMRec on Sports (Recall@20 only) as later papers quote its
table, 0.0001 above the authors' released training log; the Clothing rows from published tables on
the same split, not checked against a primary source (docs/paper.md#reference-numbers-cited-not-measured).
Cited, not measured; tables put them next to what this code measures so the gap is visible.
"""
from __future__ import annotations

import pandas as pd

_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
_TABLE = {
    ("baby", "bpr"): (.0357, .0575, .0192, .0249),
    ("baby", "lightgcn"): (.0479, .0754, .0257, .0328),
    ("baby", "vbpr"): (.0423, .0663, .0223, .0284),
    ("baby", "freedom"): (.0627, .0992, .0330, .0424),
    ("sports", "bpr"): (.0432, .0653, .0241, .0298),
    ("sports", "lightgcn"): (.0569, .0864, .0311, .0387),
    ("sports", "vbpr"): (.0558, .0856, .0307, .0384),
    ("sports", "freedom"): (.0717, .1089, .0385, .0481),
    ("sports", "bm3"): (None, .0980, None, None),
    ("sports", "lgmrec"): (None, .1068, None, None),
    ("clothing", "bpr"): (.0187, .0279, .0103, .0126),
    ("clothing", "lightgcn"): (.0340, .0526, .0188, .0236),
    ("clothing", "vbpr"): (.0281, .0415, .0158, .0192),
    ("clothing", "freedom"): (.0629, .0941, .0341, .0420),
}


def published(dataset: str, model: str) -> dict[str, float] | None:
    """MMRec's published test metrics for a (dataset, model), or None when there is none."""
    values = _TABLE.get((dataset, model))
    return {m: v for m, v in zip(_METRICS, values) if v is not None} if values else None


def compare(measured: pd.DataFrame) -> pd.DataFrame:
    """Add published Recall@20 and the relative gap to a frame with dataset, model, recall@20 columns."""
    ref = [(published(d, m) or {}).get("recall@20") for d, m in zip(measured["dataset"], measured["model"])]
    out = measured.assign(published_recall_at_20=ref)
    return out.assign(relative_gap=(out["recall@20"] / out["published_recall_at_20"] - 1).round(3))
