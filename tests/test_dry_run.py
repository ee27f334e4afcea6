"""The paper profile's dry run (real interactions, random MMRec-shaped features, timing only) and
the feature check that stops a paper run before training when a feature file is missing or mis-shaped."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recgoat_lib import dry_run as dr
from recgoat_lib.data import DataError, check_mmrec_features, mmrec_split
from recgoat_lib.runner import load_records, spec
from recgoat_lib.train import TrainConfig


def write_small_mmrec(root, name: str, n_users: int = 32, n_items: int = 24, per_user: int = 6) -> None:
    """A small synthetic dataset in MMRec's layout: `<root>/<name>/<name>.inter` (no features)."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    items[:n_items] = np.arange(n_items)  # every item occurs
    frame = pd.DataFrame({"userID": users, "itemID": items, "x_label": mmrec_split(users, 0)})
    (root / name).mkdir(parents=True)
    frame.to_csv(root / name / f"{name}.inter", sep="\t", index=False)


def test_dry_run_trains_the_paper_settings_on_a_timing_only_copy(tmp_path, monkeypatch, one_thread):
    data, out = tmp_path / "data", tmp_path / "results"
    write_small_mmrec(data, "baby")
    monkeypatch.setenv("RECGOAT_DATA_ROOT", str(data))
    result = dr.dry_run("baby", epochs=1, max_batches=1, results_dir=out, root=tmp_path / "timing")
    assert result.dataset == "baby-timing-only"
    assert result.row()["features"] == "random (timing-only)" and result.batches_run == 1
    assert result.projected_hours == pytest.approx(1000 * (result.s_per_epoch + result.eval_s) / 3600)
    (rec,) = load_records(out, "baby-timing-only")
    config = rec["model_config"]
    assert (config["dim"], config["knn_k"], config["cl_weight"]) == (800, 20, 0.032)
    assert (rec["train"]["batch_size"], rec["train"]["lr"], rec["train"]["max_batches"]) == (4096, 8e-4, 1)
    assert load_records(out, "baby") == []  # never recorded under the real dataset's name
    assert np.load(tmp_path / "timing" / "baby-timing-only" / "image_feat.npy").shape == (24, 4096)


def test_max_batches_is_absent_from_the_specs_of_full_epoch_runs():
    assert "max_batches" not in spec("toy", "lightgcn", TrainConfig(), 0).to_dict()["train"]
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(max_batches=0)


def test_missing_or_misshaped_features_fail_before_training_naming_file_and_shape(tmp_path):
    write_small_mmrec(tmp_path, "shop")
    with pytest.raises(DataError, match=r"shop/image_feat\.npy: file not found; expected .* shape \[24, 4096\]"):
        check_mmrec_features("shop", ("image", "text"), tmp_path)
    np.save(tmp_path / "shop" / "image_feat.npy", np.zeros((24, 512), np.float32))
    np.save(tmp_path / "shop" / "text_feat.npy", np.zeros((23, 384), np.float32))
    with pytest.raises(DataError) as err:
        check_mmrec_features("shop", ("image", "text"), tmp_path)
    assert "image_feat.npy: shape [24, 512], expected [24, 4096]" in str(err.value)
    assert "text_feat.npy: shape [23, 384], expected [24, 384]" in str(err.value)
    np.save(tmp_path / "shop" / "image_feat.npy", np.zeros((24, 4096), np.float32))
    np.save(tmp_path / "shop" / "text_feat.npy", np.zeros((24, 384), np.float32))
    check_mmrec_features("shop", ("image", "text"), tmp_path)
