"""The semantic-gap dials (recgoat_lib.semantic_gap): zero is today's toy data, a larger gap leaves
less to recover, linear distortions leave what a linear probe recovers, the warp does not."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools

import numpy as np
import pandas as pd
import pytest

from recgoat_lib import semantic_gap as sg
from recgoat_lib.estimators import gaussian_mi, linear_probe_accuracy

# make_toy(2025) before the dials existed (commit bbc3f55): Dataset.checksum, latent arrays, item texts
TODAY = {"checksum": "a296568530b1729e", "latent": "79a965b12dce3c7d", "text": "5d7541dff7371b2a"}


def _latent_hash(ds, keys) -> str:
    h = hashlib.sha256()
    for k in sorted(keys):
        h.update(k.encode())
        h.update(np.ascontiguousarray(ds.latent[k]).tobytes())
    return h.hexdigest()[:16]


def test_zero_dial_is_todays_generator(toy):
    assert toy.checksum() == TODAY["checksum"]
    assert _latent_hash(toy, set(toy.latent) - {"item_brand"}) == TODAY["latent"]
    assert hashlib.sha256("\n".join(toy.item_text).encode()).hexdigest()[:16] == TODAY["text"]
    same = sg.dial_dataset(toy, sg.Dials())
    assert same is toy and same.checksum() == TODAY["checksum"]
    for kind in sg.DISTORTIONS:  # every kind is the identity at gap 0
        assert sg.dial_dataset(toy, sg.Dials(0.0, 0.0, kind)) is toy


def test_dials_validate():
    with pytest.raises(ValueError, match="lie in"):
        sg.Dials(gap=1.5)
    with pytest.raises(ValueError, match="unknown distortion"):
        sg.Dials(distortion="shear")


def test_dials_are_deterministic_and_keep_the_interactions(toy):
    a, b = (sg.dial_dataset(toy, sg.Dials(0.5, 0.5)) for _ in range(2))
    assert a.checksum() == b.checksum() != toy.checksum()
    pd.testing.assert_frame_equal(a.interactions, toy.interactions)
    assert a.item_features["image"].dtype == np.float32


def _topic_probe(ds) -> float:
    return linear_probe_accuracy(ds.item_features["image"], ds.latent["item_topic"])


def test_larger_warp_lowers_probe_and_mi_monotonically(toy):
    onehots = sg.factor_one_hots(toy, sg.PREFERENCE_FACTORS)
    acc, mi = [], []
    for gap in (0.0, 0.5, 0.75, 1.0):
        ds = sg.dial_dataset(toy, sg.Dials(gap=gap))
        acc.append(_topic_probe(ds))
        mi.append(gaussian_mi(sg.principal_components(ds.item_features["image"]), onehots))
    assert all(x > y for x, y in itertools.pairwise(mi)), mi
    assert all(x >= y for x, y in itertools.pairwise(acc)) and acc[0] - acc[-1] > 0.5, acc


def test_dilution_moves_the_signal_to_the_nuisance_factors(toy):
    ds = sg.dial_dataset(toy, sg.Dials(dilution=1.0))
    majority = np.bincount(toy.latent["item_topic"]).max() / toy.n_items
    assert _topic_probe(toy) > 0.95 and _topic_probe(ds) < majority + 0.05
    brand = [linear_probe_accuracy(d.item_features["image"], d.latent["item_brand"]) for d in (toy, ds)]
    assert brand[1] > brand[0] + 0.5, brand


def test_linear_distortions_keep_what_a_linear_probe_recovers_the_warp_does_not(toy):
    labels = toy.latent["item_color"]  # the hardest preference factor for the image view
    base = linear_probe_accuracy(toy.item_features["image"], labels)
    for kind in sg.LINEAR_DISTORTIONS:
        ds = sg.dial_dataset(toy, sg.Dials(gap=1.0, distortion=kind))
        assert abs(linear_probe_accuracy(ds.item_features["image"], labels) - base) <= 0.02, kind
    warped = sg.dial_dataset(toy, sg.Dials(gap=1.0, distortion="warp"))
    assert linear_probe_accuracy(warped.item_features["image"], labels) < base - 0.3


def test_rotation_keeps_canonical_correlations_exactly(toy):
    x = toy.item_features["image"]
    rotated = sg.dial_dataset(toy, sg.Dials(gap=1.0, distortion="rotation")).item_features["image"]
    onehots = sg.factor_one_hots(toy, sg.PREFERENCE_FACTORS)
    assert not np.allclose(x, rotated)
    assert np.allclose(np.linalg.norm(x, axis=1), np.linalg.norm(rotated, axis=1), rtol=1e-5)
    assert gaussian_mi(x, onehots) == pytest.approx(gaussian_mi(rotated, onehots), rel=1e-3)


def test_the_text_distortion_maps_user_features_too(toy):
    rng = np.random.default_rng(0)
    ds = toy.with_features(item={"text": rng.normal(size=(toy.n_items, 8)).astype(np.float32)},
                           user={"text": rng.normal(size=(toy.n_users, 8)).astype(np.float32)})
    out = sg.dial_dataset(ds, sg.Dials(gap=1.0, distortion="rotation"))
    for group in ("item_features", "user_features"):
        before, after = getattr(ds, group)["text"], getattr(out, group)["text"]
        assert np.allclose(before @ before.T, after @ after.T, atol=1e-4)  # one rotation, Gram matrix kept
    assert not np.allclose(ds.user_features["text"], out.user_features["text"])


def test_canonical_excess_is_near_zero_for_independent_views_and_high_for_shared_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, sg.N_COMPONENTS))
    assert abs(sg.canonical_excess(a, rng.normal(size=(2000, 20)))) < 0.05
    assert sg.canonical_excess(a, a @ rng.normal(size=(16, 16)) + 0.1 * rng.normal(size=a.shape)) > 0.8


def test_verdicts_follow_the_rule_on_the_seed_spread():
    rows = []
    for variant, means in {"LightGCN": (0.30, 0.30), "LM inject": (0.40, 0.20), "RecGOAT": (0.301, 0.30),
                           "RecGOAT w/o CMCL": (0.30, 0.30), "RecGOAT w/o OAT": (0.30, 0.30)}.items():
        for gap, mean in zip((0.0, 1.0), means):
            for seed, noise in enumerate((-0.01, 0.0, 0.01)):
                rows.append({"distortion": "none" if gap == 0 else "warp", "gap": gap, "dilution": 0.0,
                             "variant": variant, "seed": seed, "recall@20": mean + noise})
    table = sg.verdicts(pd.DataFrame(rows))
    by = table.set_index(["gap", "comparison"])["verdict"]
    assert by[(0.0, "LM inject - LightGCN")] == "higher" and by[(1.0, "LM inject - LightGCN")] == "lower"
    assert by[(0.0, "RecGOAT - LightGCN")] == "tie"
    assert sg.first_gap(table, "LM inject - LightGCN", "lower", 0.0) == 1.0
    assert sg.first_gap(table, "RecGOAT - LightGCN", "lower", 0.0) is None
    hurts = sg.where_injection_hurts(pd.DataFrame(rows), table)
    assert hurts[sg.SETTING].values.tolist() == [["warp", 1.0, 0.0]]  # only where injection is lower
    row = hurts.iloc[0]
    assert (row["LM inject"], row["LightGCN"], row["RecGOAT"]) == pytest.approx((0.20, 0.30, 0.30))
    assert row["RecGOAT - LightGCN"] == "tie" and row["OAT: RecGOAT - w/o OAT"] == "tie"


def test_on_axis_interpolates_within_the_curve():
    stats = pd.DataFrame({"distortion": ["none", "warp", "warp"], "gap": [0.0, 0.5, 1.0], "dilution": 0.0,
                          "text-ID canonical excess": [0.3, 0.2, 0.1]})
    placed = sg.on_axis(stats, 0.15)
    assert placed["gap"].iloc[0] == pytest.approx(0.75)
    outside = sg.on_axis(stats, 0.5).iloc[0]
    assert np.isnan(outside["gap"]) and outside["position"] == "above"


def test_placement_map_covers_the_grid_and_dilution_removes_what_the_views_share(toy):
    """The map measures the text view against a fixed ID view: here the undistorted view itself (the
    toy's image vector standing in for text), which shares everything with itself at (0, 0) and less as
    the preference signal is diluted."""
    as_text = dataclasses.replace(toy, item_features={"text": toy.item_features["image"]})
    id_view = as_text.item_features["text"]
    values = (0.0, 0.5, 1.0)
    m = sg.placement_map(as_text, id_view, values)
    assert len(m) == 9 and set(m["gap"]) == set(values) and set(m["dilution"]) == set(values)
    at = m.set_index(["dilution", "gap"])["text-ID canonical excess"]
    assert at[(0.0, 0.0)] == pytest.approx(sg.canonical_excess(id_view, id_view), abs=1e-9)
    assert at[(0.0, 0.0)] > at[(0.5, 0.0)] > at[(1.0, 0.0)]
    fig = sg.plot_placement(m, float(at[(0.5, 0.0)]), label="probe")
    assert fig.axes[0].collections  # the filled map and the level set were drawn


def test_stored_or_recomputed_statistics_recomputes_only_when_asked_and_possible(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("recgoat_lib.tables.TABLES_DIR", tmp_path)
    monkeypatch.setattr(sg, "available_datasets", lambda: [])
    assert sg.stored_or_recomputed_statistics(recompute=True) is None  # not under the data root, nothing stored
    out = capsys.readouterr().out
    assert "recomputation skipped" in out and "no stored sports statistics" in out
    measured = pd.DataFrame({"dataset": ["sports"], "text-ID canonical excess": [0.25]})
    monkeypatch.setattr(sg, "available_datasets", lambda: ["sports"])
    monkeypatch.setattr(sg, "real_statistics", lambda name: measured)
    pd.testing.assert_frame_equal(sg.stored_or_recomputed_statistics(recompute=True), measured)
    assert (tmp_path / "sports_semantic_gap.csv").exists()
    monkeypatch.setattr(sg, "real_statistics", lambda name: pytest.fail("recomputed without being asked"))
    pd.testing.assert_frame_equal(sg.stored_or_recomputed_statistics(recompute=False), measured)


def test_command_line_writes_the_table_notebook_12_reads(tmp_path, monkeypatch):
    monkeypatch.setattr("recgoat_lib.tables.TABLES_DIR", tmp_path)
    measured = pd.DataFrame({"dataset": ["baby"], "text-ID canonical excess": [0.5]})
    monkeypatch.setattr(sg, "real_statistics", lambda name: measured.assign(dataset=[name]))
    sg.main(["--dataset", "baby"])
    monkeypatch.setattr(sg, "available_datasets", lambda: [])
    stored = sg.stored_or_recomputed_statistics(recompute=False, name="baby")
    pd.testing.assert_frame_equal(stored, measured)
