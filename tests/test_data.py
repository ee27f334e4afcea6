"""The data layer: MMRec reader, every bad-input error, k-core, the MMRec split, the toy dataset."""
from __future__ import annotations

import numpy as np
import pytest

from recgoat_lib.data import (MMREC_SIZES, Dataset, DataError, kcore, load_dataset, load_mmrec, mmrec_split,
                              prepare_interactions, read_inter)
from conftest import real_data_or_skip


def write_inter(folder, name, text):
    (folder / name).mkdir(parents=True, exist_ok=True)
    path = folder / name / f"{name}.inter"
    path.write_text(text)
    return path


GOOD = "userID\titemID\tx_label\trating\n0\t0\t0\t5\n0\t1\t1\t4\n0\t2\t2\t3\n1\t1\t0\t5\n1\t2\t1\t1\n1\t0\t2\t2\n"


def test_reads_mmrec_format_with_extra_columns(tmp_path):
    write_inter(tmp_path, "shop", GOOD)
    ds = load_mmrec("shop", tmp_path)
    assert (ds.n_users, ds.n_items) == (2, 3)
    assert ds.stats()["train_rows"] == 2 and ds.stats()["test_rows"] == 2
    assert ds.csr("train").toarray().tolist() == [[1, 0, 0], [0, 1, 0]]


@pytest.mark.parametrize("text, message", [
    ("user\titem\tx_label\n0\t0\t0\n", "missing columns"),
    ("userID\titemID\tx_label\n0\tabc\t0\n", "not an integer"),
    ("userID\titemID\tx_label\n0\t1.5\t0\n", "not an integer"),
    ("userID\titemID\tx_label\n0\t-1\t0\n", "negative item"),
    ("userID\titemID\tx_label\n0\t0\t0\n0\t1\t1\n0\t2\t3\n", "split label"),
    ("userID\titemID\tx_label\n0\t0\t0\n0\t0\t1\n0\t1\t2\n", "duplicate"),
    ("userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n0\t2\t2\n", "valid split is empty"),
    ("userID\titemID\tx_label\n0\t0\t0\n1\t1\t1\n0\t2\t2\n", "no training"),
])
def test_bad_inter_files_raise_naming_file_and_problem(tmp_path, text, message):
    path = write_inter(tmp_path, "bad", text)
    with pytest.raises(DataError, match=message) as err:
        load_mmrec("bad", tmp_path)
    assert str(path) in str(err.value)


TIMED = GOOD.replace("rating", "timestamp").replace("\t4\n", "\tyesterday\n")  # row 3: an unreadable time


@pytest.mark.parametrize("file, text, message", [
    ("shop.inter", TIMED, r"column timestamp: 1 value not a number \(unix time\): row 3 'yesterday'$"),
    ("item_text.tsv", "itemID\ttitle\n0\tbike\nx1\ttent\n", r"column itemID: 1 value not an integer: row 3 'x1'$"),
    ("item_text.tsv", "itemID\ttitle\n0\tbike\n3\ttent\n-1\tlamp\n9\tmug\n10\tcap\n",
     r"column itemID: 4 values not an item id of shop\.inter \(an integer in \[0, 3\)\): "
     r"row 3 '3', row 4 '-1', row 5 '9', \.\.\.$"),
    ("item_text.tsv", "itemID\ttitle\n0\tbike\n1\ttent\n0\tlamp\n",
     r"column itemID: 1 value not unique \(an item has one text row; this repeats one\): row 4 '0'$"),
], ids=["unreadable-timestamp", "non-integer-item-id", "unknown-item-ids", "repeated-item-id"])
def test_bad_values_raise_naming_file_column_and_values(tmp_path, file, text, message):
    """Nothing is coerced to NaN or dropped: an unreadable timestamp, a non-integer item id in
    item_text.tsv, a text row for an item not in the interactions and a second text row for an
    item each raise DataError."""
    write_inter(tmp_path, "shop", GOOD)
    path = tmp_path / "shop" / file
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_mmrec("shop", tmp_path)
    assert str(err.value).startswith(f"{path}: ")


def test_items_without_text_get_empty_text(tmp_path):
    """An item with no row in item_text.tsv is legitimate: its text is "" (the LM layer counts those)."""
    write_inter(tmp_path, "shop", GOOD)
    (tmp_path / "shop" / "item_text.tsv").write_text("itemID\ttitle\n2\ttent\n0\tbike\n")
    assert load_mmrec("shop", tmp_path).item_text == ["bike", "", "tent"]


def test_missing_file_names_the_path_and_lists_datasets(tmp_path):
    write_inter(tmp_path, "shop", GOOD)
    with pytest.raises(DataError, match=r"nope\.inter: file not found.*\['shop'\]"):
        load_dataset("nope", root=tmp_path)


def test_out_of_range_ids(tiny):
    df = tiny.interactions.copy()
    df.loc[0, "item"] = 6
    with pytest.raises(DataError, match=r"item ids outside \[0, 6\)"):
        Dataset("t", 4, 6, df)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 3), np.float32), "shape"),
    (np.full((6, 3), np.nan, np.float32), "NaN/inf"),
    (np.full((6, 3), np.inf, np.float32), "NaN/inf"),
])
def test_bad_features(tiny, bad, message):
    with pytest.raises(DataError, match=message):
        tiny.with_features(item={"image": bad})


def test_feature_file_rows_must_match_items(tmp_path):
    write_inter(tmp_path, "shop", GOOD)
    np.save(tmp_path / "shop" / "text_feat.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(DataError, match="text_feat.npy: shape"):
        load_mmrec("shop", tmp_path)
    np.save(tmp_path / "shop" / "text_feat.npy", np.ones((3, 4), np.float64))
    assert load_mmrec("shop", tmp_path).item_features["text"].dtype == np.float32


def test_missing_features_error_names_model_and_files(tiny):
    with pytest.raises(DataError, match=r"VBPR needs item features \['image'\].*image_feat.npy"):
        tiny.require_features(("image",), "VBPR")


def test_kcore_is_a_fixed_point():
    rng = np.random.default_rng(0)
    u, i = rng.integers(50, size=600), rng.integers(40, size=600)
    pairs = np.unique(np.stack([u, i], 1), axis=0)
    keep = kcore(pairs[:, 0], pairs[:, 1], 5)
    ku, ki = pairs[keep, 0], pairs[keep, 1]
    assert keep.any() and not keep.all()
    assert np.bincount(ku)[np.unique(ku)].min() >= 5 and np.bincount(ki)[np.unique(ki)].min() >= 5
    assert (keep == peeled_kcore(pairs[:, 0], pairs[:, 1], 5)).all()  # the largest such set, not a smaller one


def peeled_kcore(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The k-core by its definition: drop one user or item with fewer than k interactions left (all
    its rows) at a time until none is left; what remains is the unique largest set of rows in which
    every user and item has at least k."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        for ids in (users, items):
            counts = np.bincount(ids[keep], minlength=ids.max() + 1)
            short = [x for x in np.unique(ids[keep]) if counts[x] < k]
            if short:
                keep &= ids != short[0]
                break
        else:
            return keep


def test_kcore_keeps_a_user_with_exactly_k_and_cascades_the_rest():
    # users 0 and 1 have exactly 2 items, items 0 and 1 at least 2 buyers: they stay; user 2's one item
    # drops it, so item 2 (one buyer left) and then user 3 (one item left) go too.
    users = np.array([0, 0, 1, 1, 2, 3, 3])
    items = np.array([0, 1, 0, 1, 2, 2, 0])
    keep = kcore(users, items, 2)
    assert keep.tolist() == [True, True, True, True, False, False, False]
    assert (keep == peeled_kcore(users, items, 2)).all()


def test_mmrec_split_ratios_and_small_users():
    users = np.repeat(np.arange(3), [20, 5, 2])
    labels = mmrec_split(users, seed=0)
    assert np.bincount(labels[users == 0]).tolist() == [16, 2, 2]
    assert np.bincount(labels[users == 1]).tolist() == [3, 1, 1]
    assert (labels[users == 2] == 0).all()
    assert (mmrec_split(users, seed=0) == labels).all()
    assert not (mmrec_split(users, seed=1) == labels).all()


def test_prepare_interactions_reindexes_densely():
    rng = np.random.default_rng(0)
    u, i = rng.integers(100, 160, size=3000), rng.integers(1000, 1030, size=3000)
    df, uid, iid = prepare_interactions(u, i, seed=0, k=5)
    assert df["user"].max() + 1 == len(uid) and df["item"].max() + 1 == len(iid)
    assert set(uid) <= set(u) and set(iid) <= set(i)
    assert not df.duplicated(["user", "item"]).any()


def test_toy_is_deterministic_and_has_ground_truth(toy):
    again = load_dataset("toy", seed=2025)
    assert again.checksum() == toy.checksum()
    assert load_dataset("toy", seed=7).checksum() != toy.checksum()
    assert 1000 <= toy.n_users <= 3000 and 1000 <= toy.n_items <= 2000
    assert toy.item_features["image"].shape == (toy.n_items, 64)
    assert len(toy.item_text) == toy.n_items and all(toy.item_text)
    assert toy.latent["item_topic"].shape == (toy.n_items,)
    assert "timestamp" in toy.interactions


def test_toy_interactions_follow_the_latent_topics(toy):
    """Users should mostly buy within their preferred topics (the signal the models learn)."""
    u, i = toy.split_pairs("train")
    pref = toy.latent["user_topic_pref"][u, toy.latent["item_topic"][i]]
    assert pref.mean() > 2 * (1 / toy.latent["user_topic_pref"].shape[1])


@pytest.mark.real_data
@pytest.mark.parametrize("name", sorted(MMREC_SIZES))
def test_real_datasets_have_the_published_sizes(name):
    real_data_or_skip(name)
    s = load_dataset(name).stats()
    assert (s["users"], s["items"]) == MMREC_SIZES[name]


@pytest.mark.real_data
def test_real_baby_matches_published_statistics():
    real_data_or_skip("baby")
    ds = load_dataset("baby")
    s = ds.stats()
    assert (s["users"], s["items"], s["interactions"]) == (19445, 7050, 160792)
    assert (s["train_rows"], s["valid_rows"], s["test_rows"]) == (118551, 20559, 21682)
    assert ds.item_features == {}


def test_read_inter_reports_unparseable_file(tmp_path):
    p = tmp_path / "x.inter"
    p.write_bytes(b"\x00\x01binary")
    with pytest.raises(DataError):
        read_inter(p)
