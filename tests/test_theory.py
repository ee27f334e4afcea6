"""Tests of recgoat_lib.estimators and recgoat_lib.theory: closed-form Wasserstein cases, POT cross-checks,
the Kantorovich-Rubinstein and Jensen checks, mutual-information estimates, target error, probes."""
from __future__ import annotations

import math

import numpy as np
import ot
import pandas as pd
import pytest
import torch

from dataclasses import dataclass

from recgoat_lib.data import Dataset
from recgoat_lib.models.base import Embeddings, Recommender
from recgoat_lib.estimators import (
    canonical_correlations, evaluation_triples, exact_w1, gaussian_mi, infonce_mi_bound, linear_probe_accuracy,
    projected_w1, random_directions, recgoat_views, sliced_w1, view_target_error,
)
from recgoat_lib.theory import (
    FAILS, HOLDS, UNDECIDED, TheoryRecorder, TheoryViolation, gap_terms, jensen_check, kr_slack, probe_table,
    verdicts, w1_crosscheck,
)


def gaussian(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


# --- Wasserstein ------------------------------------------------------------------------

def test_random_directions_are_unit_and_seeded():
    d = random_directions(7, 50, seed=3)
    assert d.shape == (7, 50)
    torch.testing.assert_close(d.norm(dim=0), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(d, random_directions(7, 50, seed=3))
    assert not torch.equal(d, random_directions(7, 50, seed=4))


def test_1d_shift_gives_exact_w1():
    x = gaussian(300, 1, 0)
    for shift in (0.0, 0.7, -2.5):
        assert sliced_w1(x, x + shift, n_directions=8) == pytest.approx(abs(shift), abs=1e-12)


def test_1d_unequal_sizes_match_quantile_integral():
    # F^-1 of {0, 1} and of {0, 0.5, 1} differ by 0.5 on (1/3, 2/3]: W1 = 1/6
    assert sliced_w1([[0.0], [1.0]], [[0.0], [0.5], [1.0]]) == pytest.approx(1 / 6, abs=1e-12)
    assert exact_w1([[0.0], [1.0]], [[0.0], [0.5], [1.0]]) == pytest.approx(1 / 6, abs=1e-12)


@pytest.mark.parametrize("mu, sigma, expected", [
    (1.5, 1.0, 1.5),                                   # N(0,1) vs N(1.5,1): |mu|
    (0.0, 2.0, math.sqrt(2 / math.pi)),                # N(0,1) vs N(0,4): |1 - sigma| E|Z|
])
def test_1d_gaussians_closed_form(mu, sigma, expected):
    x = gaussian(40_000, 1, 1)
    y = mu + sigma * gaussian(50_000, 1, 2)
    assert sliced_w1(x, y, n_directions=4) == pytest.approx(expected, abs=0.03)


def test_shifted_cloud_per_direction_sliced_and_emd2():
    x = gaussian(200, 5, 3)
    v = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    d = random_directions(5, 64, seed=0)
    # translating a cloud moves every 1-D projection rigidly by <theta, v>
    torch.testing.assert_close(projected_w1(x, x + v, d), (torch.from_numpy(v) @ d).abs())
    # and W1 of a translation is the length of the shift
    assert exact_w1(x, x + v, max_points=None) == pytest.approx(np.linalg.norm(v), rel=1e-9)
    assert sliced_w1(x, x + v, n_directions=64) < exact_w1(x, x + v, max_points=None)


def test_sliced_matches_pot_and_never_exceeds_emd2():
    x, y = gaussian(150, 6, 4), 0.5 + 1.3 * gaussian(110, 6, 5)
    d = random_directions(6, 200, seed=1)
    pot = ot.sliced_wasserstein_distance(x, y, n_projections=200, p=1, projections=d.numpy())
    # the equal-size path (sorted differences) agrees with POT's quantile formula too
    torch.testing.assert_close(projected_w1(x[:100], y[:100], d),
                               ot.wasserstein_1d(torch.from_numpy(x[:100]) @ d, torch.from_numpy(y[:100]) @ d, p=1))
    assert float(projected_w1(x, y, d).mean()) == pytest.approx(float(pot), rel=1e-9)
    full = exact_w1(x, y, max_points=None)
    assert float(projected_w1(x, y, d).max()) <= full + 1e-9
    assert sliced_w1(x, y, n_directions=200, seed=1) <= full
    # in 1-D the exact LP and the quantile formula agree
    assert exact_w1(x[:, :1], y[:, :1], max_points=None) == pytest.approx(sliced_w1(x[:, :1], y[:, :1]), rel=1e-9)


def test_exact_w1_subsample_is_seeded_and_bounded():
    x, y = gaussian(500, 4, 6), gaussian(500, 4, 7) + 1.0
    assert exact_w1(x, y, max_points=100, seed=0) == exact_w1(x, y, max_points=100, seed=0)
    # subsampling changes the value, but it stays near the full-cloud value for a clear shift
    assert exact_w1(x, y, max_points=100, seed=0) == pytest.approx(exact_w1(x, y, max_points=None), rel=0.3)


def test_wasserstein_rejects_bad_input():
    with pytest.raises(ValueError, match="same dimension"):
        sliced_w1(gaussian(5, 2, 0), gaussian(5, 3, 0))
    with pytest.raises(ValueError, match="NaN"):
        sliced_w1(np.full((3, 2), np.nan), gaussian(5, 2, 0))
    with pytest.raises(ValueError, match="non-empty"):
        exact_w1(np.zeros((0, 2)), gaussian(5, 2, 0))


# --- Kantorovich-Rubinstein ---------------------------------------------------------------

def test_kr_slack_non_negative_for_random_and_user_scorers():
    x, y = gaussian(300, 8, 8), 0.3 + 0.8 * gaussian(250, 8, 9)
    scorers = 3.0 * gaussian(100, 8, 10)
    out = kr_slack(x, y, scorers)
    assert list(out.columns) == ["lipschitz", "gap", "w1", "bound", "slack"]
    assert (out["slack"] >= -1e-12).all() and (out["gap"] > 0).all()
    np.testing.assert_allclose(out["lipschitz"], np.linalg.norm(scorers, axis=1))
    # with the full W1 the bound is looser, never tighter
    full = kr_slack(x, y, scorers, w1=exact_w1(x, y, max_points=None))
    assert (full["bound"] >= out["bound"] - 1e-12).all()


def test_kr_is_tight_for_a_translation_along_the_scorer():
    x = gaussian(100, 3, 11)
    v = np.array([[2.0, 0.0, 0.0]])
    out = kr_slack(x, x + v, v)
    assert out["slack"].iloc[0] == pytest.approx(0.0, abs=1e-10)
    assert out["gap"].iloc[0] == pytest.approx(4.0)


def test_kr_raises_on_violation():
    x, y = gaussian(100, 3, 12), gaussian(100, 3, 13) + 1.0
    with pytest.raises(TheoryViolation, match="Kantorovich-Rubinstein violated"):
        kr_slack(x, y, np.eye(3), w1=0.1)  # far below the true W1 (about sqrt(3))
    with pytest.raises(ValueError, match="zero vector"):
        kr_slack(x, y, np.zeros((1, 3)))


# --- Mutual information -----------------------------------------------------------------

def correlated_views(n: int, k: int, rho: float, extra: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k pairs of coordinates with correlation rho, plus `extra` independent noise dimensions each."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    b = rho * z + math.sqrt(1 - rho**2) * rng.normal(size=(n, k))
    return (np.hstack([z, rng.normal(size=(n, extra))]), np.hstack([b, rng.normal(size=(n, extra))]))


def test_gaussian_mi_matches_closed_form_and_is_affine_invariant():
    a, b = correlated_views(20_000, 3, 0.8, 4, seed=14)
    truth = -1.5 * math.log(1 - 0.8**2)
    assert gaussian_mi(a, b, ridge=1e-6) == pytest.approx(truth, rel=0.03)
    rho = canonical_correlations(a, b, ridge=1e-6)
    np.testing.assert_allclose(rho[:3].numpy(), 0.8, atol=0.01)
    assert float(rho[3:].max()) < 0.05
    mix = np.random.default_rng(0).normal(size=(7, 7))
    assert gaussian_mi(a @ mix, b, ridge=1e-6) == pytest.approx(gaussian_mi(a, b, ridge=1e-6), rel=1e-4)
    indep_a, indep_b = gaussian(20_000, 5, 15), gaussian(20_000, 5, 16)
    assert gaussian_mi(indep_a, indep_b) < 0.01


def test_infonce_bound_is_below_log_n_and_the_true_mi():
    n_batch = 128
    a, b = correlated_views(4096, 4, 0.9, 0, seed=17)
    truth = -2.0 * math.log(1 - 0.9**2)
    bound = infonce_mi_bound(a, b, temperature=0.2, batch_size=n_batch)
    assert 0.5 < bound < min(math.log(n_batch), truth)
    wide = gaussian(4096, 32, 24)  # in high dimension distinct rows are far apart in cosine
    same = infonce_mi_bound(wide, wide, temperature=0.05, batch_size=n_batch)
    assert same > 0.9 * math.log(n_batch) and same <= math.log(n_batch)
    # independent views have I = 0; the bound with a fixed critic sits at or below it
    assert infonce_mi_bound(a, gaussian(4096, 4, 18), batch_size=n_batch) < 0.05
    assert infonce_mi_bound(a, b, batch_size=n_batch, seed=1) == pytest.approx(bound, abs=0.05)


def test_mi_rejects_bad_input():
    with pytest.raises(ValueError, match="same number of rows"):
        infonce_mi_bound(gaussian(300, 2, 0), gaussian(299, 2, 0))
    with pytest.raises(ValueError, match="batch_size"):
        infonce_mi_bound(gaussian(10, 2, 0), gaussian(10, 2, 1), batch_size=64)
    with pytest.raises(ValueError, match="same number of rows"):
        gaussian_mi(gaussian(30, 2, 0), gaussian(20, 2, 0))


# --- Target error ------------------------------------------------------------------------

def per_user_split(rng: np.random.Generator, n_users: int, n_items: int, labels: list[int]) -> pd.DataFrame:
    """Each user gets len(labels) distinct random items, labelled 0/1/2 in the given order."""
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=len(labels), replace=False)
        rows += [(u, int(i), s) for i, s in zip(items, labels)]
    return pd.DataFrame(rows, columns=["user", "item", "split"])


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    """12 users, 30 items: each user has 4 train, 1 valid and 2 test items."""
    df = per_user_split(np.random.default_rng(19), 12, 30, [0, 0, 0, 0, 1, 2, 2])
    return Dataset(name="tiny", n_users=12, n_items=30, interactions=df)


def test_evaluation_triples_are_seeded_and_negatives_unseen(tiny):
    u, p, n = evaluation_triples(tiny, "test", seed=0)
    assert len(u) == 24
    seen = set(zip(tiny.interactions["user"], tiny.interactions["item"]))
    assert not any((int(a), int(b)) in seen for a, b in zip(u, n))
    assert all((int(a), int(b)) in seen for a, b in zip(u, p))
    assert torch.equal(n, evaluation_triples(tiny, "test", seed=0)[2])


def test_view_target_error_ranks_an_oracle_view_first(tiny):
    users, items = tiny.split_pairs("test")
    user = torch.eye(12)
    oracle = torch.zeros(30, 12)
    oracle[torch.tensor(items), torch.tensor(users)] = 1.0  # score(u, i) > 0 exactly for u's test items
    noise = torch.from_numpy(gaussian(30, 12, 20)).float()
    scale = torch.rand(30, 1) + 0.5
    out = view_target_error(user, {"oracle": oracle, "scaled": oracle * scale, "noise": noise}, tiny,
                            ks=(5,)).set_index("view")
    assert out.loc["oracle", "recall@5"] == 1.0 and out.loc["oracle", "ndcg@5"] == 1.0
    assert out.loc["noise", "recall@5"] < 1.0
    assert out.loc["oracle", "bpr"] < out.loc["noise", "bpr"]
    # views are normalised per row, so rescaling items changes nothing
    pd.testing.assert_series_equal(out.loc["oracle"], out.loc["scaled"], check_names=False)
    with pytest.raises(ValueError, match="shape"):
        view_target_error(user, {"bad": torch.zeros(29, 12)}, tiny)


def test_jensen_holds_for_convex_fusion(tiny):
    triples = evaluation_triples(tiny, "test", seed=1)
    user = torch.from_numpy(gaussian(12, 6, 21))
    views = {k: torch.from_numpy(gaussian(30, 6, 22 + s)) * (s + 1) for s, k in enumerate("abc")}
    out = jensen_check(user, views, {"a": 0.2, "b": 0.5, "c": 0.3}, triples)
    assert out["slack"] >= 0 and out["fused_bpr"] <= out["bound"]
    u, p, n = triples
    fused = 0.2 * views["a"] + 0.5 * views["b"] + 0.3 * views["c"]
    manual = torch.nn.functional.softplus((user[u] * (fused[n] - fused[p])).sum(1)).mean()
    assert out["fused_bpr"] == pytest.approx(float(manual), rel=1e-12)
    # a single view with weight 1 is its own bound
    assert jensen_check(user, views, {"a": 1.0, "b": 0.0, "c": 0.0}, triples)["slack"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="convex|sum to 1"):
        jensen_check(user, views, {"a": 1.2, "b": -0.5, "c": 0.3}, triples)
    with pytest.raises(ValueError, match="same views"):
        jensen_check(user, views, {"a": 1.0}, triples)


# --- Linear probes -----------------------------------------------------------------------

def test_linear_probe_separates_clusters_and_fails_on_noise():
    rng = np.random.default_rng(23)
    labels = rng.integers(4, size=800)
    centres = 4.0 * rng.normal(size=(4, 10))
    x = centres[labels] + rng.normal(size=(800, 10))
    assert linear_probe_accuracy(x, labels) > 0.95
    assert linear_probe_accuracy(rng.normal(size=(800, 10)), labels) < 0.4  # chance is 0.25
    with pytest.raises(ValueError, match="labels must have shape"):
        linear_probe_accuracy(x, labels[:-1])


# --- Recording a fusion model ------------------------------------------------------------

@dataclass(frozen=True)
class StubConfig:
    modalities: tuple[str, ...] = ("image",)


class StubFusion(Recommender):
    """The extras contract of RecGOAT on random vectors: ID view, one modality before and after
    a linear 'alignment', fusion weight a, fused = normalise((1 - a) id + a aligned)."""

    def __init__(self, ds: Dataset, dim: int = 8, seed: int = 0):
        super().__init__()
        self.config = StubConfig()
        g = torch.Generator().manual_seed(seed)
        self.user = torch.nn.Parameter(torch.randn(ds.n_users, dim, generator=g))
        self.item_cf = torch.nn.Parameter(torch.randn(ds.n_items, dim, generator=g))
        self.image = torch.nn.Parameter(torch.randn(ds.n_items, dim, generator=g) + 2.0)
        self.align = torch.nn.Parameter(0.5 * torch.eye(dim))
        self.a = torch.nn.Parameter(torch.tensor(0.3))

    def forward(self) -> Embeddings:
        aligned = self.image @ self.align
        fused = torch.nn.functional.normalize((1 - self.a) * self.item_cf + self.a * aligned, dim=1)
        return Embeddings(self.user, fused, {"item_cf": self.item_cf, "item_image": self.image,
                                             "item_image_aligned": aligned, "fusion_image": self.a.detach()})

    def loss(self, users, pos, neg):
        raise NotImplementedError


@pytest.fixture(scope="module")
def shop() -> Dataset:
    """60 users, 40 items in 4 topics; 5 train, 2 valid, 3 test items per user."""
    rng = np.random.default_rng(30)
    df = per_user_split(rng, 60, 40, [0] * 5 + [1] * 2 + [2] * 3)
    topic = np.arange(40) % 4
    image = (np.eye(4)[topic] @ rng.normal(size=(4, 6)) + 0.1 * rng.normal(size=(40, 6))).astype(np.float32)
    return Dataset(name="shop", n_users=60, n_items=40, interactions=df, item_features={"image": image},
                   latent={"item_topic": topic})


def test_recgoat_views_reads_the_extras_contract(shop):
    model = StubFusion(shop)
    user, views, weights = recgoat_views(model)
    assert set(views) == {"id", "image", "image_aligned", "fused"}
    assert weights == pytest.approx({"image_aligned": 0.3, "id": 0.7})
    torch.testing.assert_close(views["image_aligned"], model.image.detach() @ model.align.detach())
    assert model.training  # the training mode is restored
    with pytest.raises(TypeError, match="not a RecGOAT"):
        recgoat_views(torch.nn.Linear(2, 2))


def test_recorder_rows_kr_and_crosscheck(shop):
    model = StubFusion(shop)
    rec = TheoryRecorder(shop, label="stub", n_directions=16, mi_batch=16)
    rec(0, model)
    with torch.no_grad():
        model.align.mul_(2.0)
    rec(2, model)
    frame = rec.frame
    assert list(frame["epoch"]) == [0, 2] and (frame["run"] == "stub").all()
    # the stub's image view is shifted by +2 per coordinate: far from the ID view before "alignment"
    assert (frame["w1_image_before"] > 1.0).all()
    # the first alignment halves the image view, the second restores it
    assert frame["w1_image_after"].iloc[0] < frame["w1_image_after"].iloc[1]
    assert frame["w1_image_after"].iloc[1] == pytest.approx(frame["w1_image_before"].iloc[1])
    assert {"nce_id_image", "cca_id_image", "fused_bpr", "id_recall@20", "image_aligned_ndcg@20"} <= set(frame)
    assert (frame["jensen_slack"] >= 0).all()
    kr = rec.kr_frame
    assert len(kr) == 2 * 2 * (16 + shop.n_users) and (kr["slack"] >= -1e-12).all()
    assert len(TheoryRecorder(shop, n_directions=4, kr_users=10).kr_users) == 10
    cc = w1_crosscheck(model, max_points=30, n_directions=16)
    assert (cc["sliced_w1"] <= cc["exact_w1"]).all() and set(cc["stage"]) == {"before", "after"}


def test_probe_table_finds_the_topic_in_the_raw_features(shop):
    probes = probe_table(StubFusion(shop), shop).set_index("view")
    assert probes.loc["raw image", "accuracy"] > 0.9
    assert probes["majority_class"].iloc[0] == pytest.approx(0.25)
    assert probes["held_out"].iloc[0] == round(0.3 * shop.n_items)
    with pytest.raises(ValueError, match="no ground truth"):
        probe_table(StubFusion(shop), shop, label="item_colour")


def test_verdicts_report_what_was_measured(shop):
    model = StubFusion(shop)
    paper, released = (TheoryRecorder(shop, label=k, n_directions=8, mi_batch=16) for k in ("paper", "released"))
    for epoch in (0, 2, 4):
        paper(epoch, model)
        released(epoch, model)
    gaps = gap_terms(paper.frame, ("image",))
    np.testing.assert_allclose(gaps["gap"], paper.frame["image_aligned_bpr"] - paper.frame["fused_bpr"])
    np.testing.assert_allclose(gaps["nce_term"], np.log(16) - paper.frame["nce_id_image"])
    kr = pd.concat([paper.kr_frame, released.kr_frame])
    table = verdicts([paper.frame] * 2, [released.frame] * 2, kr, w1_crosscheck(model, 30, 8),
                     [probe_table(model, shop)] * 2, ("image",), dataset="shop")
    v = table.set_index("claim")["verdict"]
    assert v[v.index.str.startswith("Kantorovich")].iloc[0] == HOLDS
    assert v[v.index.str.startswith("Jensen")].iloc[0] == HOLDS
    # an unchanged model cannot raise (or lower) any mutual information bound: no effect, so no verdict
    assert (v[v.index.str.startswith("InfoNCE")] == UNDECIDED).all()
    assert set(table["verdict"]) <= {HOLDS, FAILS, UNDECIDED, "not applicable"}
    assert (table["seeds"] == 2).all()
    assert (table["dataset"] == "shop").all()


def test_probe_floor_is_the_binomial_noise_of_a_difference():
    from recgoat_lib.theory import accuracy_difference_floor
    # notebook 06's case: ID 0.997 vs fused 1.000 on 300 held-out items, one item apart in every seed
    floor = accuracy_difference_floor(0.9983, 300)
    assert 0.003 < floor == pytest.approx(2 * np.sqrt(2 * 0.9983 * 0.0017 / 300))
    assert accuracy_difference_floor(0.5, 300) > floor and accuracy_difference_floor(1.0, 300) == 0.0
