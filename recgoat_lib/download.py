"""Optional download helper for users with internet: fetch a file into the data root, verified by sha256.

Downloads resume from a `.part` file when the server supports ranges; the file only
appears under its final name once its checksum matches, so an interrupted or corrupt
download never leaves a half file where the data layer would read it.
"""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """The downloaded bytes do not have the expected sha256."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | Path, sha256: str, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download `url` to `dest` unless a file with the right checksum is already there."""
    dest = Path(dest)
    if dest.exists() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if done and response.status != 206:  # server ignored the range: start over
            done = 0
        total = int(response.headers.get("Content-Length", 0)) + done
        with open(part, "ab" if done else "wb") as f, tqdm(total=total or None, initial=done, unit="B",
                                                           unit_scale=True, desc=dest.name,
                                                           disable=not progress) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
    got = sha256_file(part)
    if got != sha256:
        part.unlink()
        raise ChecksumError(f"{url}: sha256 {got} does not match the expected {sha256}; nothing was kept")
    part.replace(dest)
    return dest
