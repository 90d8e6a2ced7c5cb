"""Downloader: zips made here, served from a local http.server; every failure leaves no partial files."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from deepmf.data import load, movielens
from deepmf.data.download import download, fetch_edition
from deepmf.data.movielens import EDITIONS
from deepmf.errors import DownloadError

U_DATA = "1\t10\t4\t881250949\n2\t10\t3\t881250950\n2\t11\t5\t881250951\n"


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


GOOD = _zip({"ml-100k/u.data": U_DATA, "ml-100k/README": "test archive\n"})


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    truncate: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # A truncated transfer: announce the full length, send half, close the connection.
        self.wfile.write(body[: len(body) // 2] if self.path in self.truncate else body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"files": {}, "truncate": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/files", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def _edition(body: bytes, **changes: object) -> movielens.Edition:
    return dataclasses.replace(
        EDITIONS["ml-100k"], sha256=hashlib.sha256(body).hexdigest(), md5=None, size=len(body), **changes
    )


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_verifies_and_extracts(tmp_path: Path, server) -> None:
    base, handler = server
    handler.files["/files/ml-100k.zip"] = GOOD
    result = fetch_edition(_edition(GOOD), tmp_path, url_base=base)
    assert result.verified == "sha256" and result.n_bytes == len(GOOD) and not result.already_present
    assert (tmp_path / "ml-100k" / "u.data").read_text() == U_DATA
    assert _leftovers(tmp_path) == ["ml-100k"]  # no zip, no temp files
    assert len(load("ml-100k", data_dir=tmp_path)) == 3
    again = fetch_edition(_edition(GOOD), tmp_path, url_base=base)
    assert again.already_present and again.verified == "present"


def test_force_replaces_and_md5_or_no_checksum(tmp_path: Path, server) -> None:
    base, handler = server
    handler.files["/files/ml-100k.zip"] = GOOD
    md5_only = dataclasses.replace(_edition(GOOD), sha256=None, md5=hashlib.md5(GOOD).hexdigest())
    assert fetch_edition(md5_only, tmp_path, url_base=base).verified == "md5"
    unknown = dataclasses.replace(_edition(GOOD), sha256=None, size=None)
    assert fetch_edition(unknown, tmp_path, url_base=base, force=True).verified == "unverified"
    assert _leftovers(tmp_path) == ["ml-100k"]


def test_bad_checksum(tmp_path: Path, server) -> None:
    base, handler = server
    handler.files["/files/ml-100k.zip"] = GOOD
    wrong = dataclasses.replace(_edition(GOOD), sha256="0" * 64)
    with pytest.raises(DownloadError, match="sha256 checksum mismatch"):
        fetch_edition(wrong, tmp_path, url_base=base)
    assert _leftovers(tmp_path) == []


def test_truncated_download(tmp_path: Path, server) -> None:
    base, handler = server
    handler.files["/files/ml-100k.zip"] = GOOD
    handler.truncate.add("/files/ml-100k.zip")
    with pytest.raises(DownloadError, match="truncated"):
        fetch_edition(_edition(GOOD), tmp_path, url_base=base)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("member", ["ml-100k/../../evil.txt", "/tmp/evil.txt", "../evil.txt", "other/u.data"])
def test_unsafe_members_are_refused(tmp_path: Path, server, member: str) -> None:
    base, handler = server
    body = _zip({"ml-100k/u.data": U_DATA, member: "pwned"})
    handler.files["/files/ml-100k.zip"] = body
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="nothing extracted"):
        fetch_edition(_edition(body), root, url_base=base)
    assert _leftovers(root) == []
    assert not (tmp_path / "evil.txt").exists()


def test_not_a_zip_and_wrong_contents(tmp_path: Path, server) -> None:
    base, handler = server
    junk = b"this is not a zip archive"
    handler.files["/files/ml-100k.zip"] = junk
    with pytest.raises(DownloadError, match="not a valid zip"):
        fetch_edition(_edition(junk), tmp_path, url_base=base)
    wrong = _zip({"ml-100k/README": "no ratings here"})
    handler.files["/files/ml-100k.zip"] = wrong
    with pytest.raises(DownloadError, match="does not hold the expected ml-100k files"):
        fetch_edition(_edition(wrong), tmp_path, url_base=base)
    assert _leftovers(tmp_path) == []


def test_http_error_and_unreachable_network(tmp_path: Path, server) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_edition(_edition(GOOD), tmp_path, url_base=base)
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(DownloadError, match=r"cannot reach 127\.0\.0\.1:9 .*network"):
        fetch_edition(_edition(GOOD), tmp_path, url_base="http://127.0.0.1:9", timeout=5)
    assert _leftovers(tmp_path) == []


def test_download_by_name_with_env_base_url(tmp_path: Path, server, monkeypatch: pytest.MonkeyPatch) -> None:
    base, handler = server
    handler.files["/files/ml-100k.zip"] = GOOD
    monkeypatch.setitem(EDITIONS, "ml-100k", _edition(GOOD))
    monkeypatch.setenv("DEEPMF_DOWNLOAD_URL", base)
    monkeypatch.setenv("DEEPMF_DATA", str(tmp_path / "env-data"))
    progress: list[tuple[int, int | None]] = []
    result = download("ml-100k", progress=lambda done, total: progress.append((done, total)))
    assert result.path == tmp_path / "env-data" / "ml-100k" and result.url == f"{base}/ml-100k.zip"
    assert progress[-1] == (len(GOOD), len(GOOD))
