"""The download helper against a local HTTP server on 127.0.0.1 (no internet needed)."""
from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from recgoat_lib.download import ChecksumError, download

PAYLOAD = b"userID\titemID\tx_label\n" + b"0\t0\t0\n" * 50_000


RANGES: list[str | None] = []  # the Range header of every request the server saw


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves PAYLOAD at /good.inter, honouring simple 'bytes=N-' ranges (at /norange.inter it
    ignores them and sends the whole file, as some servers do)."""

    def do_GET(self):
        start = 0
        RANGES.append(self.headers.get("Range"))
        if self.headers.get("Range") and self.path != "/norange.inter":
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    handler = partial(RangeHandler, directory=str(tmp_path_factory.mktemp("www")))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_verifies_and_places_file(server, tmp_path):
    dest = download(f"{server}/good.inter", tmp_path / "baby" / "baby.inter", GOOD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "baby" / "baby.inter.part").exists()


def test_corrupt_download_leaves_nothing(server, tmp_path):
    dest = tmp_path / "baby.inter"
    with pytest.raises(ChecksumError, match="does not match"):
        download(f"{server}/good.inter", dest, "0" * 64, progress=False)
    assert not dest.exists() and not dest.with_name("baby.inter.part").exists()


@pytest.mark.parametrize("path", ["good.inter", "norange.inter"])
def test_download_resumes_from_partial_file(server, tmp_path, path):
    dest = tmp_path / "baby.inter"
    dest.with_name("baby.inter.part").write_bytes(PAYLOAD[:1000])
    RANGES.clear()
    download(f"{server}/{path}", dest, GOOD_SHA, progress=False)
    assert RANGES == ["bytes=1000-"]  # asked for the missing bytes only
    assert dest.read_bytes() == PAYLOAD  # and, where the server sent everything, started over
