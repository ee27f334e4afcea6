"""LM features: the feature cache, no valid/test leakage into user texts, missing-text policies,
shapes/dtypes, the generator interface and a real encode with the offline MiniLM model."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pandas as pd
import pytest

from recgoat_lib import feature_cache, lm, lm_analysis
from recgoat_lib.data import DataError, Dataset, data_root, item_texts, load_mmrec


class BagOfWords:
    """A fast deterministic stand-in encoder: sum of fixed random word vectors."""

    def __init__(self, identity: str = "bow-16", dim: int = 16):
        self.identity, self.dim, self.calls = identity, dim, 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            for w in t.lower().split():
                out[r] += np.random.default_rng(zlib.crc32(w.encode())).normal(size=self.dim)
        return out


def tiny(test_items=(5, 3)) -> Dataset:
    """4 users, 6 items; user 0 trains on items 0,1,2 and holds `test_items` as valid/test."""
    meta = pd.DataFrame({
        "title": ["red bike", "blue helmet", "tent", "yoga mat", "", "running shoes"],
        "brand": ["Aco", "Aco", "Camp", "Zen", "", "Run"],
        "categories": ["Sports, Cycling", "Sports, Cycling", "Sports, Camping", "Sports, Yoga", "",
                       "Sports, Running"],
        "description": [""] * 6,
    })
    rows = [(0, 0, 0), (0, 1, 0), (0, 2, 0), (0, test_items[0], 1), (0, test_items[1], 2),
            (1, 3, 0), (1, 5, 0), (1, 0, 1), (1, 1, 2),
            (2, 2, 0), (2, 4, 0), (2, 3, 1), (2, 5, 2),
            (3, 5, 0), (3, 1, 0), (3, 2, 1), (3, 0, 2)]
    df = pd.DataFrame(rows, columns=["user", "item", "split"]).astype(np.int64)
    df["timestamp"] = np.arange(len(df), dtype=np.float64)
    return Dataset(name="tiny", n_users=4, n_items=6, interactions=df, item_meta=meta,
                   item_text=item_texts(meta))


def test_cache_hit_and_invalidation(tmp_path):
    enc, texts = BagOfWords(), ["red bike", "tent", "yoga mat"]
    x1, hit1 = feature_cache.encode_cached(enc, texts, tmp_path)
    x2, hit2 = feature_cache.encode_cached(enc, texts, tmp_path)
    assert (hit1, hit2) == (False, True) and enc.calls == 1
    np.testing.assert_array_equal(x1, x2)
    _, hit3 = feature_cache.encode_cached(enc, ["red bike", "tent", "yoga mats"], tmp_path)
    _, hit4 = feature_cache.encode_cached(BagOfWords("bow-16-v2"), texts, tmp_path)
    _, hit5 = feature_cache.encode_cached(enc, texts[::-1], tmp_path)
    assert not (hit3 or hit4 or hit5)
    assert len(list(tmp_path.glob("*.npy"))) == 4


def test_cache_key_is_unambiguous():
    assert feature_cache.cache_key("e", ["ab", "c"]) != feature_cache.cache_key("e", ["a", "bc"])
    assert feature_cache.cache_key("e", ["a"]) != feature_cache.cache_key("f", ["a"])


def test_with_lm_features_shapes_dtypes_and_copy(tmp_path, capsys):
    ds = tiny()
    out = lm.with_lm_features(ds, BagOfWords(), cache_dir=tmp_path, progress=False)
    assert out.item_features["text"].shape == (6, 16) and out.item_features["text"].dtype == np.float32
    assert out.user_features["text"].shape == (4, 16) and out.user_features["text"].dtype == np.float32
    assert len(out.user_text) == 4 and "text" not in ds.item_features and ds.user_text is None
    assert "1 items without text (placeholder)" in capsys.readouterr().out


def test_user_text_ignores_valid_and_test(tmp_path):
    enc = BagOfWords()
    a = lm.encode_dataset(tiny((5, 3)), enc, cache_dir=tmp_path, progress=False)
    b = lm.encode_dataset(tiny((3, 4)), enc, cache_dir=tmp_path, progress=False)
    assert a.user_text == b.user_text and b.cache_hit["user"]
    np.testing.assert_array_equal(a.user, b.user)
    assert "running shoes" not in a.user_text[0] and "yoga mat" not in a.user_text[0]
    assert "red bike" in a.user_text[0]
    moved = tiny()
    moved.interactions.loc[2, "item"] = 4  # user 0's third training item: tent -> untitled item
    c = lm.encode_dataset(moved, enc, cache_dir=tmp_path, progress=False)
    assert "tent" not in c.user_text[0] and not np.allclose(c.user[0], a.user[0])


def test_summary_orders_recent_first_and_drops_generic_categories():
    text = lm.user_preference_texts(tiny(), progress=False)[0]
    assert text.index("tent") < text.index("blue helmet") < text.index("red bike")
    assert "Cycling" in text and "Sports" not in text and "Aco" in text


def test_missing_text_policies(tmp_path):
    ds, enc = tiny(), BagOfWords()
    np.testing.assert_array_equal(lm.missing_items(ds), [4])
    x, texts, gone, _ = lm.encode_items(ds, enc, "placeholder", tmp_path)
    assert texts[4] == lm.PLACEHOLDER_TEXT and gone.tolist() == [4]
    np.testing.assert_allclose(x[4], enc.encode([lm.PLACEHOLDER_TEXT])[0])
    x, _, _, _ = lm.encode_items(ds, enc, "mean", tmp_path)
    np.testing.assert_allclose(x[4], x[[0, 1, 2, 3, 5]].mean(0), rtol=1e-6)
    with pytest.raises(DataError, match="1 items have no text"):
        lm.encode_items(ds, enc, "error", tmp_path)
    with pytest.raises(ValueError, match="missing="):
        lm.encode_items(ds, enc, "zeros", tmp_path)


def test_no_item_text_is_a_clear_error(tmp_path):
    ds = tiny()
    ds.item_text = None
    with pytest.raises(DataError, match="no item text"):
        lm.with_lm_features(ds, BagOfWords(), cache_dir=tmp_path, progress=False)


def test_generator_interface(tmp_path):
    seen = []

    def fake_llm(prompts):
        seen.extend(prompts)
        return [f"likes item {p.count('- ')} things" for p in prompts]

    f = lm.encode_dataset(tiny(), BagOfWords(), generator=fake_llm, cache_dir=tmp_path, progress=False)
    assert len(seen) == 4 and f.user_text[0] == "likes item 3 things"
    assert "tent" in seen[0] and "running shoes" not in seen[0]
    with pytest.raises(ValueError, match="3 texts for 4 prompts"):
        lm.user_preference_texts(tiny(), generator=lambda p: ["x"] * 3, progress=False)
    with pytest.raises(ValueError, match="empty"):
        lm.user_preference_texts(tiny(), generator=lambda p: [" "] * len(p), progress=False)
    with pytest.raises(FileNotFoundError, match="not a local model folder"):
        lm.TransformersGenerator(tmp_path / "no-such-model")


def test_bad_encoder_argument():
    with pytest.raises(TypeError, match="identity"):
        lm.as_encoder(42)


def test_written_features_load_back(tmp_path, monkeypatch):
    ds = tiny()
    root = tmp_path / "data" / "tiny"
    root.mkdir(parents=True)
    ds.interactions.rename(columns={"user": "userID", "item": "itemID", "split": "x_label"}).to_csv(
        root / "tiny.inter", sep="\t", index=False)
    monkeypatch.setenv("RECGOAT_FEATURE_DIR", str(tmp_path / "features"))
    f = lm.encode_dataset(ds, BagOfWords(), cache_dir=tmp_path / "cache", progress=False)
    lm.write_features("tiny", f)
    back = load_mmrec("tiny", tmp_path / "data")
    np.testing.assert_array_equal(back.item_features["text"], f.item)
    np.testing.assert_array_equal(back.user_features["text"], f.user)


def test_the_encoding_command_uses_the_threads_it_is_given(tmp_path, monkeypatch):
    import torch
    seen, encode_dataset = [], lm.encode_dataset
    def encode(ds, encoder, **kwargs):
        seen.append(torch.get_num_threads())
        return encode_dataset(ds, BagOfWords(), cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setattr(lm, "load_dataset", lambda name: tiny())
    monkeypatch.setattr(lm, "TextEncoder", lambda *args, **kwargs: None)
    monkeypatch.setattr(lm, "encode_dataset", encode)
    summary = lm.main(["tiny", "--threads", "2", "--out", str(tmp_path / "out")])
    assert seen == [2] and (tmp_path / "out" / "text_feat.npy").exists()
    # the manifest ties the features to runs: the data checksum a run on them records, and the encoder's machine
    manifest = json.loads((tmp_path / "out" / "lm_manifest.json").read_text())
    with_features = lm.attach_features(tiny(), lm.encode_dataset(tiny(), BagOfWords(), cache_dir=tmp_path / "cache",
                                                                  progress=False))
    assert manifest["data_checksum"] == summary["data_checksum"] == with_features.checksum() != tiny().checksum()
    assert manifest["encoded_under"]["threads"] == 2 and manifest["encoded_under"]["cpu_model"]
    with pytest.raises(ValueError, match="threads must be positive"):
        lm.main(["tiny", "--threads", "0", "--out", str(tmp_path / "out")])


def test_real_minilm_encode_offline(tmp_path, capfd):
    enc = lm.TextEncoder(progress=False)
    texts = ["red mountain bike", "blue road bicycle", "organic green tea"]
    x, hit = feature_cache.encode_cached(enc, texts, tmp_path)
    assert "%|" not in capfd.readouterr().err  # progress=False: no bar, transformers' weight loading included
    assert not hit and x.shape == (3, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.2
    np.testing.assert_allclose(enc.encode(texts), x, atol=1e-6)
    assert enc.identity.startswith("all-MiniLM-L6-v2@")
    other = lm.TextEncoder(tmp_path / "missing-model", progress=False)
    with pytest.raises(FileNotFoundError, match="offline"):
        other.encode(["x"])


SPORTS = data_root() / "sports"


@pytest.mark.real_data
@pytest.mark.skipif(not (SPORTS / "item_text.tsv").exists(),
                    reason=f"real data absent: {SPORTS}/item_text.tsv not found")
def test_sports_item_text_and_training_histories():
    from recgoat_lib.data import load_dataset
    ds = load_dataset("sports")
    gone = lm.missing_items(ds)
    assert ds.item_text is not None and 0 < ds.n_items - len(gone) <= ds.n_items
    train = ds.csr("train")
    hist = lm.training_histories(ds, progress=False)
    for h in hist[:500]:
        assert sorted(h.items) == sorted(train[h.user].indices.tolist())


def _pictures():
    """A red disk, the same disk with slight noise, and random stripes (HxWx3 uint8)."""
    yy, xx = np.mgrid[:160, :200]
    disk = np.full((160, 200, 3), 255, np.uint8)
    disk[(yy - 80) ** 2 + (xx - 100) ** 2 < 50 ** 2] = (220, 30, 30)
    rng = np.random.default_rng(0)
    noisy = np.clip(disk + rng.normal(0, 8, disk.shape), 0, 255).astype(np.uint8)
    stripes = np.repeat(rng.integers(0, 255, (1, 200, 3), dtype=np.uint8), 160, axis=0)
    return disk, noisy, stripes


def test_efficientnet_image_features(tmp_path):
    import torch
    from PIL import Image
    from recgoat_lib import images
    disk, noisy, stripes = _pictures()
    enc = images.EfficientNetLite0(progress=False)
    inputs = [Image.fromarray(disk), noisy, torch.from_numpy(stripes).permute(2, 0, 1) / 255.0]
    x, hit = feature_cache.encode_cached(enc, inputs, tmp_path, fingerprints=[b"disk", b"noisy", b"stripes"])
    assert not hit and x.shape == (3, 1280) and x.dtype == np.float32
    n = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert n[0] @ n[1] > n[0] @ n[2]
    np.testing.assert_array_equal(images.to_pil(disk), images.to_pil(torch.from_numpy(disk).permute(2, 0, 1) / 255.0))
    with pytest.raises(ValueError, match="HxWx3"):
        images.to_pil(np.zeros((4, 4)))


class MeanColour:
    identity = "mean-colour"

    def encode(self, pics):
        return np.stack([np.asarray(p, np.float32).mean(axis=(0, 1)) for p in pics])


def test_image_feature_hook(tmp_path):
    from recgoat_lib import images
    disk, noisy, stripes = _pictures()
    ds = tiny()
    with pytest.raises(DataError, match="6 items but 2 images"):
        images.with_image_features(ds, [disk, noisy], MeanColour(), tmp_path)
    out = images.with_image_features(ds, [disk, noisy, stripes] * 2, MeanColour(), tmp_path)
    x = out.item_features["image"]
    assert x.shape == (6, 3) and x.dtype == np.float32 and "image" not in ds.item_features
    np.testing.assert_array_equal(x[0], x[3])
    np.testing.assert_allclose(x[2], stripes.mean(axis=(0, 1)), rtol=1e-5)


def test_similarity_pairs_match_brute_force():
    ds = tiny()
    x = BagOfWords().encode(ds.item_text) + 0.1  # item 4 has no text: keep its vector non-zero
    pairs = lm_analysis.similarity_pairs(ds, x, n_pairs=200, seed=1)
    train = ds.csr("train").toarray()
    co = (train[:, pairs["i"]] * train[:, pairs["j"]]).sum(0)
    np.testing.assert_array_equal(pairs["co"], co)
    deg = train.sum(0)
    np.testing.assert_allclose(pairs["cf"], co / np.sqrt(np.maximum(deg[pairs["i"]] * deg[pairs["j"]], 1)))
    a, b = x[pairs["i"]], x[pairs["j"]]
    np.testing.assert_allclose(pairs["lm"], (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1),
                               rtol=1e-5)
    assert (pairs["i"] != pairs["j"]).all() and (pairs["co"] > 0).any()
    gap = lm_analysis.semantic_gap(pairs)
    assert gap["pairs"] == len(pairs) and gap["share_co_occurring"] == pytest.approx((pairs["co"] > 0).mean())


def test_semantic_gap_on_hand_made_pairs():
    pairs = pd.DataFrame({"lm": [0.1, 0.2, 0.3, 0.4, 0.5], "cf": [0.0, 0.5, 0.4, 0.8, 0.9], "co": [0, 2, 1, 3, 4]})
    gap = lm_analysis.semantic_gap(pairs)
    # ranks of cf: 1, 3, 2, 4, 5 against 1..5 -> Spearman 1 - 6 * (0 + 1 + 1 + 0 + 0) / (5 * 24) = 0.9
    assert gap["spearman_lm_cf"] == pytest.approx(0.9) and gap["share_co_occurring"] == pytest.approx(0.8)
    assert gap["spearman_lm_cf_co_occurring"] == pytest.approx(0.8)  # cf ranks 2, 1, 3, 4 among the last four
    assert gap["mean_lm_co_occurring"] == pytest.approx(0.35) and gap["mean_lm_never"] == pytest.approx(0.1)
    assert gap["pearson_lm_cf"] == pytest.approx(np.corrcoef(pairs["lm"], pairs["cf"])[0, 1])
    reversed_cf = lm_analysis.semantic_gap(pairs.assign(cf=[5, 4, 3, 2, 1]))
    assert reversed_cf["spearman_lm_cf"] == pytest.approx(-1.0)


def test_nearest_items_and_pca():
    from sklearn.decomposition import PCA
    x = np.random.default_rng(0).normal(size=(50, 8)) * np.arange(1, 9)
    nn = lm_analysis.nearest_items(x, x[3], k=4, exclude=3)
    assert 3 not in nn["item"].tolist() and nn["cosine"].is_monotonic_decreasing
    np.testing.assert_allclose(np.abs(lm_analysis.pca_2d(x)), np.abs(PCA(2).fit_transform(x)), atol=1e-8)


def test_transformers_generator_runs_a_local_model(tmp_path):
    """The real text-generation pipeline on a tiny randomly initialised GPT-2 written to disk here."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    words = ["<eos>", "<unk>"] + "a shopper likes bikes tents red blue products bought".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>",
                            pad_token="<eos>").save_pretrained(tmp_path)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                               bos_token_id=0, eos_token_id=0, pad_token_id=0)).save_pretrained(tmp_path)
    gen = lm.TransformersGenerator(tmp_path, max_new_tokens=4, batch_size=2)
    prompts = ["a shopper bought red bikes", "blue tents"]
    out = gen(prompts)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert gen(prompts) == out
