"""The one peak-memory mechanism (`recgoat_lib.memory`): readings, the high-water mark and its reset; and the
allocator setting it makes while training steps run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recgoat_lib.data import REPO_ROOT
from recgoat_lib.memory import MALLOC_ENV, current_memory, kept_blocks, peak_memory, reset_peak_memory

# LightGCN batches at Baby's graph size ([26495, 64] blocks of 6.8 MB): minor page faults per batch, after warm-up
_FAULTS = """
import json, resource, sys
import numpy as np, torch
from recgoat_lib.memory import kept_blocks
from recgoat_lib.models import build_model
from recgoat_lib.train import NegativeSampler, adam, seed_everything, train_step
from benchmarks.measure import synthetic_dataset
ds = synthetic_dataset(19445, 7050, 118000)
seed_everything(0)
net = build_model("lightgcn", ds, {"dim": 64}).train()
optimizer = adam(net, 1e-3)
u, p, n = (torch.from_numpy(a) for a in NegativeSampler(ds).epoch(np.random.default_rng(0)))
faults = []
with kept_blocks():  # as train.fit runs its batches
    for b in range(20):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        rows = slice(256 * b, 256 * (b + 1))
        train_step(net, optimizer, u[rows], p[rows], n[rows])
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults[4:], "loss": float(net.loss(u[:256], p[:256], n[:256])["loss"])}))
"""


def test_peak_rss_is_positive_and_sees_an_allocation():
    before = peak_memory().rss_mb
    assert before > 0
    # the peak is a high-water mark: only a block larger than the process's peak so far must raise it
    block = np.ones(int((before + 64) * 2**20) // 8)
    assert peak_memory().rss_mb >= before + 32
    del block


def test_reset_starts_a_new_peak_at_the_current_rss():
    block = np.ones(64 * 2**20 // 8)  # 64 MB resident
    del block
    reset_peak_memory(release_heap=True)
    now, peak = current_memory(), peak_memory()
    assert now.rss_mb <= peak.rss_mb < now.rss_mb + 32  # the freed block is no longer part of the peak
    block = np.ones(64 * 2**20 // 8)
    assert peak_memory().rss_mb - now.rss_mb >= 48  # the extra peak of what ran after the reset
    del block


def _lightgcn_faults(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != MALLOC_ENV and not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env={**clean, "PYTHONPATH": str(REPO_ROOT), **env},
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc: Linux only")
def test_kept_blocks_stop_the_per_batch_page_faults_and_change_no_value():
    kept, default = _lightgcn_faults(), _lightgcn_faults(**{MALLOC_ENV: "default"})
    assert sum(default["faults"]) > 10_000  # glibc's defaults: blocks are mapped afresh, batch after batch
    # kept: the typical batch maps no new block (one block is 1656 pages or more); the heap still grows
    # now and then by a block, a few times in 16 batches on a busy machine. Under the defaults, how many
    # batches map afresh varies with the machine and its load (on an AVX2 CPU under a parallel test run,
    # more than half of them mapped nothing), so the comparison is of the totals, not of the medians.
    assert np.median(kept["faults"]) < 100
    assert sum(kept["faults"]) < sum(default["faults"]) / 2
    assert kept["loss"] == default["loss"]


@pytest.mark.parametrize("name, value", [(MALLOC_ENV, "default"), ("MALLOC_TRIM_THRESHOLD_", "1048576"),
                                         ("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")])
def test_kept_blocks_leaves_malloc_alone_when_told_or_configured_by_the_user(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with kept_blocks() as kept:
        assert kept is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc: Linux only")
def test_leaving_kept_blocks_hands_the_freed_heap_back():
    reset_peak_memory(release_heap=True)
    before = current_memory().rss_mb
    with kept_blocks() as kept:
        assert kept
        blocks = [np.ones(2**20) for _ in range(96)]  # 96 blocks of 8 MB from the heap (no block mapped on its own)
        blocks = blocks[1::2]  # free every other one: holes the heap keeps resident
        held = current_memory().rss_mb
    assert held > before + 500
    assert current_memory().rss_mb < held - 300  # malloc_trim on leaving returned the holes' pages
    del blocks
