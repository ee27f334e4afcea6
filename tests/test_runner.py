"""The runner: honest cache keys, records, bad input, variants, the sequential protocol, Ray."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from recgoat_lib import runner
from recgoat_lib.determinism import configured_threads, cpu_model
from recgoat_lib.models.recgoat import RecGOAT
from recgoat_lib.runner import RunnerError, load_records, run, run_many, run_lineup, spec
from recgoat_lib.models import build_model, make_config
from recgoat_lib.train import TrainConfig, seed_everything, train

from conftest import random_dataset

FAST = TrainConfig(epochs=2, batch_size=512, eval_every=1, patience=2, progress=False)


def test_cache_hit_and_invalidation(toy, tmp_path, one_thread):
    s = spec("toy", "bpr", FAST, 0, dim=16)
    first = run(s, toy, results_dir=tmp_path)
    path = tmp_path / "runs" / "toy" / f"{first['key']}.json"
    mtime = path.stat().st_mtime_ns
    again = run(s, toy, results_dir=tmp_path)
    assert again == json.loads(path.read_text()) and path.stat().st_mtime_ns == mtime  # read back, not retrained
    assert spec("toy", "bpr", FAST, 1, dim=16).key(toy.checksum()) != first["key"]
    assert spec("toy", "bpr", FAST, 0, dim=32).key(toy.checksum()) != first["key"]
    assert s.key("other-data") != first["key"]
    assert s.key(toy.checksum(), code="other-code") != first["key"]
    for changed in (replace(FAST, precision="bf16"), replace(FAST, max_batches=1), replace(FAST, lr=FAST.lr / 2)):
        assert spec("toy", "bpr", changed, 0, dim=16).key(toy.checksum()) != first["key"], changed
    assert spec("toy", "bpr", replace(FAST, progress=True), 0, dim=16).key(toy.checksum()) == first["key"]
    pu = runner.per_user(first, tmp_path)
    assert pu["recall@20"].mean() == pytest.approx(first["test"]["recall@20"], rel=1e-6)
    assert first["dataset_checksum"] == toy.checksum() and first["code"] == runner.code_fingerprint()
    assert first["git_commit"] and first["git_dirty"] in (True, False, None)
    assert first["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert first["cpu_model"] == cpu_model() and cpu_model()


def test_code_fingerprint_follows_every_source_file(tmp_path):
    pkg = tmp_path / "recgoat_lib"
    shutil.copytree(runner.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    before = runner.code_fingerprint.__wrapped__(pkg)
    assert before == runner.code_fingerprint()
    seen = {before}
    for source in ("models/lightgcn.py", "sequential/train.py", "memory.py"):  # every package level
        with (pkg / source).open("a") as fh:
            fh.write("\n# a comment is a change too\n")
        after = runner.code_fingerprint.__wrapped__(pkg)
        assert after not in seen, source
        seen.add(after)


EDITED_RUN = """
import json, sys
from pathlib import Path
from recgoat_lib.runner import run, spec
from recgoat_lib.toy import make_toy
from recgoat_lib.models import build_model, make_config
from recgoat_lib.train import TrainConfig, seed_everything, train
rec = run(spec("toy", "lightgcn", TrainConfig(epochs=2, batch_size=512, progress=False), 0, dim=16),
          make_toy(seed=2025), results_dir=Path(sys.argv[1]), threads=1)
print(json.dumps({"key": rec["key"], "recall": rec["test"]["recall@20"]}))
"""


def test_edited_library_is_a_cache_miss(tmp_path):
    """The bug this key fixes: with LightGCN's propagation patched out, the old key served the
    unpatched Recall@20. The same spec run by an edited copy of the library must train anew."""
    code = tmp_path / "code"
    shutil.copytree(runner.PACKAGE_DIR, code / "recgoat_lib", ignore=shutil.ignore_patterns("__pycache__"))
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}

    def run_copy() -> dict:
        out = subprocess.run([sys.executable, "-c", EDITED_RUN, str(results)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    original = run_copy()
    lgcn = code / "recgoat_lib" / "models" / "lightgcn.py"
    source = lgcn.read_text()
    assert "out = self.propagate(self.embedding.weight)" in source
    lgcn.write_text(source.replace("out = self.propagate(self.embedding.weight)", "out = self.embedding.weight"))
    patched = run_copy()
    assert patched["key"] != original["key"]
    assert patched["recall"] != original["recall"]
    assert len(list((results / "runs" / "toy").glob("*.json"))) == 2


def test_corrupt_record_is_named_and_kept(tiny, tmp_path):
    s = spec("tiny", "bpr", FAST, 0, dim=8)
    path = runner.record_path(tmp_path, "tiny", s.key(tiny.checksum()))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(RunnerError, match="corrupt run record .*" + path.name):
        run(s, tiny, results_dir=tmp_path)
    assert path.read_text() == "{not json"


def test_bad_specs_fail_before_training(toy, tiny, tmp_path):
    with pytest.raises(KeyError, match="unknown model"):
        spec("tiny", "nope", FAST, 0)
    with pytest.raises(TypeError, match="unknown config keys"):
        spec("tiny", "lightgcn", FAST, 0, width=3)
    good = spec("tiny", "bpr", FAST, 0, dim=8)
    needs_text = spec("tiny", "freedom", FAST, 0, dim=8, modalities=("text",))
    wrong_data = spec("toy", "bpr", FAST, 0, dim=8)
    with pytest.raises(RunnerError) as err:
        run_many([good, needs_text, wrong_data], tiny, results_dir=tmp_path)
    assert "text" in str(err.value) and "'toy'" in str(err.value)
    assert not (tmp_path / "runs").exists()  # nothing trained, not even the good spec
    with pytest.raises(RunnerError, match="unknown executor"):
        run_many([good], tiny, results_dir=tmp_path, executor="dask")


def test_equal_specs_train_once_and_a_held_spec_waits_for_its_record(toy, tmp_path, one_thread):
    s = spec("toy", "bpr", replace(FAST, epochs=1), 0, dim=8)
    a, b = run_many([s, s], toy, cache=False, results_dir=tmp_path / "first")
    assert a is b and len(list((tmp_path / "first").rglob("*.json"))) == 1
    key = s.key(toy.checksum())
    with runner.spec_lock(tmp_path, "toy", key):
        with pytest.raises(RunnerError, match="being trained by another process"):
            with runner.spec_lock(tmp_path, "toy", key, wait=0.3):
                pass
    # a second caller waits for the holder, then reads the record it wrote instead of training
    arrays = runner.per_user(a, tmp_path / "first")
    got = {}
    with runner.spec_lock(tmp_path, "toy", key):
        waiter = threading.Thread(target=lambda: got.update(rec=run(s, toy, results_dir=tmp_path)))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()  # blocked on the lock
        runner.save_record({**a, "written_by": "holder"}, arrays, tmp_path)
    waiter.join(30)
    assert got["rec"]["written_by"] == "holder"


def test_run_lineup_keeps_models_and_serves_them_from_the_cache(tmp_path):
    ds_small = random_dataset()
    cfg = TrainConfig(epochs=1, batch_size=128, progress=False)
    variants = {"lightgcn": ("lightgcn", {"dim": 16}),
                "recgoat text": ("recgoat", {"dim": 16, "knn_k": 4, "modalities": ("text",)})}
    first = run_lineup(ds_small, variants, cfg, seeds=(0, 1), results_dir=tmp_path, keep_seed=1)
    table, kept = first.frame(), first.models
    assert table[["variant", "seed"]].values.tolist() == [["lightgcn", 0], ["lightgcn", 1],
                                                          ["recgoat text", 0], ["recgoat text", 1]]
    assert isinstance(kept["recgoat text"], RecGOAT) and not kept["recgoat text"].training
    seed_everything(1)  # a row is what training that variant directly from its seed gives
    direct = train(build_model("recgoat", ds_small, make_config("recgoat", **variants["recgoat text"][1])),
                   ds_small, cfg, 1)
    assert table.iloc[3]["recall@20"] == direct.test["recall@20"] and table.iloc[3]["ndcg@20"] == direct.test["ndcg@20"]
    second = run_lineup(ds_small, variants, cfg, seeds=(0, 1), results_dir=tmp_path, keep_seed=1)
    again, kept2 = second.frame(), second.models
    assert again.equals(table) and second.records == first.records
    assert torch.equal(kept["lightgcn"].embedding.weight, kept2["lightgcn"].embedding.weight)
    assert torch.equal(kept["recgoat text"].embedding.weight, kept2["recgoat text"].embedding.weight)


def test_sequential_models_run_through_the_runner(toy, tmp_path, one_thread):
    from recgoat_lib.sequential.data import SequenceData, leave_one_out
    data = SequenceData(leave_one_out(toy), max_len=10)
    s = spec("toy", "sasrec", TrainConfig(epochs=1, batch_size=256, progress=False), 0, dim=16)
    rec = run(s, data, results_dir=tmp_path)
    assert rec["protocol"] == "sequential" and rec["dataset_checksum"] == data.checksum()
    assert runner.per_user(rec, tmp_path)["users"].shape[0] > 0
    with pytest.raises(RunnerError, match="needs a SequenceData"):
        run(s, toy, results_dir=tmp_path)


def test_cli_takes_model_and_train_overrides(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "RESULTS_DIR", tmp_path)
    with pytest.raises(SystemExit, match="unknown config keys"):
        runner.main(["--dataset", "toy", "--models", "lightgcn", "--set", "width=2"])
    with pytest.raises(SystemExit, match="epochs"):
        runner.main(["--dataset", "toy", "--models", "lightgcn", "--train", "epochs=0"])
    assert runner.parse_overrides(['modalities=["text"]', "lr=5e-3", "sinkhorn=log"]) == {
        "modalities": ("text",), "lr": 0.005, "sinkhorn": "log"}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for this module's Ray tests. Without the ray extra they skip, unless
    $RECGOAT_REQUIRE_RAY=1 (set by `./reproduce.sh test`, which installs it): then a broken Ray fails.
    A node that cannot start in time on an overloaded machine (Ray's own startup timeout) skips them
    with that reason: it says nothing about the runner."""
    if os.environ.get("RECGOAT_REQUIRE_RAY") == "1":
        import ray
    else:
        ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:
        if "timed out during startup" in str(exc):
            pytest.skip(f"a local Ray node could not start on this machine: {exc}")
        raise
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_parallel_executors_give_the_serial_records(toy, tmp_path, executor, request):
    """Four toy specs on two workers (local processes, or a local Ray) equal the serial run (one thread each)."""
    specs = [spec("toy", m, FAST, seed, dim=16) for m in ("bpr", "lightgcn") for seed in (0, 1)]
    serial = run_many(specs, toy, results_dir=tmp_path / "serial", threads=1)
    if executor == "ray":
        request.getfixturevalue("local_ray")
    parallel = run_many(specs, toy, results_dir=tmp_path / executor, executor=executor, threads=1, workers=2)
    for a, b in zip(serial, parallel):
        assert a["key"] == b["key"] and a["test"] == b["test"] and a["valid"] == b["valid"]
        assert np.array_equal(runner.per_user(a, tmp_path / "serial")["recall@20"],
                              runner.per_user(b, tmp_path / executor)["recall@20"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a run that fails: CUDA asked for where there is none")
@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_parallel_executors_save_the_runs_that_finish_and_name_the_one_that_failed(toy, tmp_path, executor,
                                                                                  request):
    good = spec("toy", "bpr", FAST, 0, dim=16)
    bad = spec("toy", "bpr", replace(FAST, device="cuda"), 0, dim=16)
    if executor == "ray":
        request.getfixturevalue("local_ray")
    with pytest.raises(RunnerError, match=r"1 of 2 runs failed: " + bad.key(toy.checksum())):
        run_many([bad, good], toy, results_dir=tmp_path, executor=executor, workers=2)
    assert [r["key"] for r in load_records(tmp_path)] == [good.key(toy.checksum())]


def test_ray_missing_says_how_to_install(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RunnerError, match=r'pip install -e "\.\[ray\]"'):
        run_many([spec("tiny", "bpr", FAST, 0, dim=8)], tiny, results_dir=tmp_path, executor="ray")


def test_on_eval_always_trains_and_rewrites_the_record(toy, tmp_path, one_thread):
    """A callback cannot be replayed from a cached record: the spec trains again and its record is rewritten."""
    s = spec("toy", "bpr", FAST, 0, dim=16)
    first = run(s, toy, results_dir=tmp_path)
    seen: list[int] = []
    again = run(s, toy, results_dir=tmp_path, on_eval=lambda epoch, model: seen.append(epoch))
    assert seen == [0, 1, 2]  # the fresh model, then every evaluation
    assert again["key"] == first["key"] and again["date"] >= first["date"]
    assert again["test"] == pytest.approx(first["test"])  # same seed, same numbers
    with pytest.raises(RunnerError, match="serial"):
        run_many([s], toy, results_dir=tmp_path, executor="ray", on_eval=lambda epoch, model: None)


def test_a_run_resumed_under_another_context_keeps_both_parts_in_its_record(toy, tmp_path, one_thread):
    s = spec("toy", "bpr", replace(FAST, epochs=4, patience=4), 0, dim=16)
    plain = run(s, toy, results_dir=tmp_path / "plain")
    assert "execution_segments" not in plain  # one context: the record's own fields say it all
    ckpt = tmp_path / "checkpoints" / f"{s.key(toy.checksum())}.pt"
    seed_everything(s.seed)
    train(build_model("bpr", toy, s.model_config), toy, replace(s.train, epochs=2), s.seed, checkpoint=ckpt)
    now = configured_threads()  # what the training loop pins
    saved = torch.load(ckpt, weights_only=False)  # an interrupted run, as if made with one more thread
    saved["state"]["segments"] = [{**saved["state"]["segments"][0], "threads": now + 1}]
    torch.save(saved, ckpt)
    record = run(s, toy, results_dir=tmp_path)
    assert record["epochs_run"] == 4 and record["threads"] == now and not ckpt.exists(), record
    assert [(p["from_epoch"], p["threads"]) for p in record.get("execution_segments", [])] == [(0, now + 1), (2, now)]
    last = record["execution_segments"][-1]  # the record's own context fields are the last part's
    assert {k: record[k] for k in last if k != "from_epoch"} == {k: v for k, v in last.items() if k != "from_epoch"}


def test_a_requested_thread_count_survives_the_training_loops_pin(monkeypatch):
    """`run(..., threads=n)` trains on n threads: the training loop pins the configured count
    (`determinism.pin_threads`), so `torch_threads` must configure it, not only set torch's."""
    from recgoat_lib.determinism import THREADS_ENV, pin_threads

    monkeypatch.setenv(THREADS_ENV, "1")
    before = torch.get_num_threads()
    with runner.torch_threads(2):
        pin_threads()  # what train.fit does first
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before and os.environ[THREADS_ENV] == "1"
