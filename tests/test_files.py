"""A write that fails leaves the previous file whole (records, model states, training checkpoints)."""
from __future__ import annotations

import pytest
import torch

from recgoat_lib.files import atomic_write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3}, path)

    def torn(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # the process stopped mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, torn)
    assert torch.load(path) == {"epoch": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_completed_write_replaces_the_file(tmp_path):
    path = tmp_path / "record.json"
    path.write_text("old")
    atomic_write(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["record.json"]
