"""Every known difference between the paper, the released RecGOAT code and this companion, as data.

Each `Departure` names the switch that reproduces the other side and the notebook-08 ablation
variant that measures it; `report.departure_table` turns them, with the measured effects read
from the ablation table, into the README's departure table. Plain data, no imports of the
library, so any module may read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Departure:
    """One place where the paper, the released code and this companion differ: what each does, the
    switch, and the ablation variant that measures it (`variant=None`: nothing here can train the
    other side, and `note` says why). README's departure table is built from these by `report`."""

    what: str
    paper: str
    released: str
    default: str
    switch: str
    variant: str | None = None
    note: str = ""


DEPARTURES: tuple[Departure, ...] = (
    Departure("CMCL sign, item modality pairs", "minimise InfoNCE", "minimise 1 - InfoNCE (pushes views apart)",
              "minimise InfoNCE", '`cl_sign="released"`', "released CMCL sign"),
    Departure("CMCL sign, user pair (z_u^cf, z_u^lm)", "minimise InfoNCE (the pair is our reading of the "
              "user branch)", "no user pair", "minimise InfoNCE", '`cl_user_sign="flipped"`',
              "flipped user-pair sign"),
    Departure("InfoNCE direction", "InfoNCE with in-batch negatives, direction not stated", "one way (a->b)",
              "symmetric (a->b and b->a averaged)", '`infonce="one_way"`', "one-way InfoNCE"),
    Departure("rows of the modality pairs", "the batch's positive and negative items",
              "positives, then negatives, duplicates kept", "unique items of both", '`cl_items="batch"`',
              "modality pairs on batch rows"),
    Departure("GAT layer", "LeakyReLU(0.2), dropout 0.1", "feature and attention dropout 0.1, then "
              "LeakyReLU(0.2) and dropout 0.1", "as the released code",
              '`gat_feat_dropout=0, gat_activation="none", gat_out_dropout=0`', "GAT without dropout/activation"),
    Departure("ID embedding initialisation", "not stated", "N(0, 0.1^2)", "Xavier-uniform", '`init="normal"`',
              "normal init (std 0.1)"),
    Departure("Sinkhorn arithmetic", "entropic OT, eps = 0.01, 100 iterations",
              "fp32 scaling iterations: the plan underflows to 0", "log domain", '`sinkhorn="released"`',
              "released Sinkhorn"),
    Departure("OT cost memory", "C_pq = s mean_i (Z^m_ip - Z^cf_iq)^2", "I x d x d tensor",
              "O(d^2) identity, same matrix", "`ot.naive_dimension_cost` (never used in training)",
              note="same matrix: memory only, measured in notebooks 05 and 10"),
    Departure("user LM branch", "user-user GAT on user LM features", "none (its code crashes, unused)",
              "on", "`user_branch=False`", "w/o user LM branch"),
    Departure("how the user LM vector enters", "not stated", "no user branch",
              "aligned with z_u^cf by one more CMCL pair; score z_u^cf . z_i", '`user_fusion="sum"`',
              "user LM summed"),
    Departure("training negatives", "uniform negatives", "uniform, may be the user's positives",
              "training positives excluded", "`TrainConfig(exclude_train_negatives=False)`",
              "negatives not excluded"),
    Departure("model selection", "not stated", "best test NDCG@10, evaluated every 20 epochs, dropout on",
              "best validation Recall@20, eval mode", '`TrainConfig(selection="released", eval_every=20)`',
              "released selection"),
    Departure("user preference texts", "LLM-inferred from training interactions", "none (no user branch)",
              "template preference texts built from training interactions (no LLM ran)",
              "`lm.user_preference_texts(generator=...)`, `python -m recgoat_lib.lm --llm`",
              note="not measured: no LLM is available offline here"),
    Departure("item text", "title, brand, categories, description and an MLLM-written image description",
              "precomputed feature files", "MMRec recipe, no MLLM image description", "none (`data.TEXT_FIELDS`)",
              note="not measured: no MLLM is available offline here (toy's stand-in image description is "
                   "left out of the recipe)"),
)
