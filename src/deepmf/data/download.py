"""Download a MovieLens edition: official zip, checksum verified, written atomically, extracted safely.

Nothing half-done is ever left behind: the zip streams into a temp file beside the data folder, is verified
(sha256, else GroupLens' md5, else reported as unverified), every member name is checked (no absolute paths,
no ``..``, no links, all inside the edition's folder), the archive is extracted into a temp folder, and only
then is that folder renamed into place. Any failure removes the temp files and leaves the data folder as it
was.

The base URL can be overridden (``base_url=`` or ``$DEEPMF_DOWNLOAD_URL``) for mirrors and tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deepmf.data.loading import data_dir as resolve_data_dir
from deepmf.data.movielens import BASE_URL, Edition, detect_layout, edition
from deepmf.errors import DownloadError

DOWNLOAD_URL_ENV = "DEEPMF_DOWNLOAD_URL"
CHUNK = 1 << 20

ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class DownloadResult:
    """What ``download`` did.

    Attributes:
        name: edition name.
        path: the extracted edition folder.
        url: where it came from ("" when it was already present).
        verified: "sha256", "md5", "unverified" (no checksum known) or "present" (nothing downloaded).
        n_bytes: size of the downloaded zip (0 when already present).
        already_present: True when the folder existed and nothing was downloaded.
    """

    name: str
    path: Path
    url: str
    verified: str
    n_bytes: int
    already_present: bool


def base_url(explicit: str | None = None) -> str:
    """``explicit``, else ``$DEEPMF_DOWNLOAD_URL``, else the GroupLens server."""
    return (explicit or os.environ.get(DOWNLOAD_URL_ENV) or BASE_URL).rstrip("/")


def download(
    name: str,
    data_dir: str | Path | None = None,
    *,
    url_base: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: ProgressCallback | None = None,
) -> DownloadResult:
    """Fetch, verify and extract edition ``name`` into the data folder.

    Args:
        name: edition name ("ml-100k", ...).
        data_dir: the data folder (``--dir``); None uses ``$DEEPMF_DATA`` or the user cache dir.
        url_base: base URL holding ``<name>.zip``; None uses ``$DEEPMF_DOWNLOAD_URL`` or GroupLens.
        force: download again even when the edition is already present.
        timeout: socket timeout in seconds.
        progress: called as ``progress(bytes_done, bytes_total_or_None)`` while downloading.

    Raises:
        DataError: unknown edition name.
        DownloadError: network unreachable, HTTP error, truncated file, checksum mismatch, unsafe archive.
    """
    return fetch_edition(
        edition(name),
        resolve_data_dir(data_dir),
        url_base=url_base,
        force=force,
        timeout=timeout,
        progress=progress,
    )


def fetch_edition(
    ed: Edition,
    root: Path,
    *,
    url_base: str | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: ProgressCallback | None = None,
) -> DownloadResult:
    """``download`` for an ``Edition`` object (tests pass editions whose checksums match their own zips)."""
    target = root / ed.folder
    if not force and detect_layout(target) == ed.layout:
        return DownloadResult(ed.name, target, "", "present", 0, True)
    url = f"{base_url(url_base)}/{ed.zip_name}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the data folder {root}: {exc.strerror or exc}") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{ed.zip_name}.", suffix=".part", dir=root)
    tmp_zip = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            n_bytes, digests = _stream(url, handle, timeout, progress)
        verified = _verify(ed, n_bytes, digests)
        _extract(tmp_zip, ed, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_zip.unlink()
    return DownloadResult(ed.name, target, url, verified, n_bytes, False)


def _stream(
    url: str, handle, timeout: float, progress: ProgressCallback | None
) -> tuple[int, dict[str, str]]:
    """Copy ``url`` into ``handle``, hashing as it goes; returns (bytes, {"sha256": hex, "md5": hex})."""
    host = urllib.parse.urlsplit(url).netloc or url
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(
            f"cannot reach {host} ({_reason(exc.reason)}): is the network up? You can also "
            f"download {url} by hand and unzip it into the data folder"
        ) from None
    except http.client.IncompleteRead as exc:
        raise DownloadError(f"{url}: download truncated after {done + len(exc.partial)} bytes") from None
    except TimeoutError:
        raise DownloadError(f"{url}: timed out after {timeout:g} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: connection lost ({_reason(exc)})") from None
    if total is not None and done != total:
        raise DownloadError(f"{url}: download truncated: got {done} of {total} bytes")
    handle.flush()
    os.fsync(handle.fileno())
    return done, {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _verify(ed: Edition, n_bytes: int, digests: dict[str, str]) -> str:
    """Compare size and checksum with the edition's; returns which checksum was verified."""
    if ed.size is not None and n_bytes != ed.size:
        raise DownloadError(
            f"{ed.zip_name}: {n_bytes} bytes, expected {ed.size} (truncated or changed upstream)"
        )
    for kind in ("sha256", "md5"):
        expected = getattr(ed, kind)
        if expected:
            if digests[kind] != expected.lower():
                raise DownloadError(
                    f"{ed.zip_name}: {kind} checksum mismatch (got {digests[kind]}, expected "
                    f"{expected}); the download is corrupt or was tampered with"
                )
            return kind
    return "unverified"


def _check_member(info: zipfile.ZipInfo, ed: Edition) -> None:
    """Refuse member names that could write outside the edition folder, and links."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or path.is_absolute():
        raise DownloadError(f"{ed.zip_name}: unsafe absolute path {name!r} in the archive; nothing extracted")
    if ".." in path.parts:
        raise DownloadError(f"{ed.zip_name}: unsafe member {name!r} ('..') in the archive; nothing extracted")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DownloadError(f"{ed.zip_name}: link {name!r} in the archive; nothing extracted")
    if not path.parts or path.parts[0] != ed.folder:
        raise DownloadError(f"{ed.zip_name}: member {name!r} is outside {ed.folder}/; nothing extracted")


def _extract(zip_path: Path, ed: Edition, target: Path) -> None:
    """Extract into a temp folder beside ``target``, check the layout, then rename it into place."""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{ed.folder}.", suffix=".tmp", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                members = archive.infolist()
                for info in members:
                    _check_member(info, ed)
                archive.extractall(tmp_dir, members)  # CRCs are checked while reading each member
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise DownloadError(
                f"{ed.zip_name}: not a valid zip archive ({exc}); nothing extracted"
            ) from None
        extracted = tmp_dir / ed.folder
        if detect_layout(extracted) != ed.layout:
            raise DownloadError(f"{ed.zip_name}: the archive does not hold the expected {ed.name} files")
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(extracted, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(extracted, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
