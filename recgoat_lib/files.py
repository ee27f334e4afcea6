"""Writing a file so that a crash never leaves it half-written.

Records, model states and training checkpoints are written to a temporary name in the same
folder and renamed over the target (`os.replace`, atomic on POSIX and Windows): a reader, or a
resumed run, sees either the old complete file or the new one, never a torn write.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it to `path`; if `write`
    fails, `path` is left as it was and the temporary file is removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
