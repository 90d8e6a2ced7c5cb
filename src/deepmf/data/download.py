"""Download a MovieLens edition: official zip, checksum verified, written atomically, extracted safely.

Nothing half-done is ever left behind: the zip streams into a temp file beside the data folder, is verified
(sha256, else GroupLens' md5, else reported as unverified), every member name is checked (no absolute paths,
no ``..``, no links, all inside the edition's folder), the archive is extracted into a temp folder, and only
then does that folder take the edition folder's place (``fsutil.replace_directory``). Any failure removes the
temp files and leaves the data folder as it was. An existing edition folder is replaced (``--force``) only when
every file in it is one the archive holds, so a user's own file there is never deleted.

Work is bounded, whoever serves the file: the download stops at the edition's known size (else at
``MAX_DOWNLOAD_BYTES``); the archive may hold at most ``MAX_MEMBERS`` members, each expanding at most
``MAX_RATIO`` times its compressed size, ``MAX_EXTRACTED_BYTES`` in all and no more than the disk has free;
and each member's actual bytes are counted while extracting, so one that expands past its declared size stops
the extraction (a zip bomb is refused before or while it is read, never after filling the disk).

The base URL can be overridden (``base_url=`` or ``$DEEPMF_DOWNLOAD_URL``) for mirrors and tests; it must be an
http(s) or file URL.

Why not pooch (issue 16 suggested it): it would replace only the streaming and hashing (~40 lines) while
adding ``requests`` as a runtime dependency; its ``Unzip`` processor extracts with ``extractall`` and none of
the limits above, so extraction, the member checks, the atomic swap and the error messages stay ours anyway,
and its single ``known_hash`` does not express GroupLens' "sha256, else md5, else unverified".
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
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deepmf.data.loading import data_dir as resolve_data_dir
from deepmf.data.movielens import BASE_URL, Edition, detect_layout, edition
from deepmf.errors import DeepMFError, DownloadError
from deepmf.fsutil import MARKER, replace_directory
from deepmf.memory import format_bytes

DOWNLOAD_URL_ENV = "DEEPMF_DOWNLOAD_URL"
CHUNK = 1 << 20
# Limits for archives whatever their source. The largest official edition (ml-latest, 335 MB zipped) holds 7
# files that expand ~4x; CSV of ratings never expands 100x, a zip bomb expands 1000x and more.
MAX_DOWNLOAD_BYTES = 4 << 30  # when the edition's size is unknown
MAX_MEMBERS = 1_000
MAX_RATIO = 100
RATIO_FLOOR = 1 << 20  # members smaller than this expand as they like (a 10 kB README of spaces is harmless)
MAX_EXTRACTED_BYTES = 16 << 30

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
    """``explicit``, else ``$DEEPMF_DOWNLOAD_URL``, else the GroupLens server.

    Raises:
        DownloadError: the URL is not an http(s) URL with a host, or a file URL.
    """
    url = (explicit or os.environ.get(DOWNLOAD_URL_ENV) or BASE_URL).rstrip("/")
    try:
        parts = urllib.parse.urlsplit(url)
        has_host = bool(parts.hostname)
    except ValueError:  # "http://[::1" and the like
        parts, has_host = None, False
    if parts is None or parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not has_host):
        raise DownloadError(f"malformed download URL {url!r}: expected http://HOST/..., https://HOST/... or "
                            "file:///PATH")
    return url


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
        fd, tmp_name = tempfile.mkstemp(prefix=f".{ed.zip_name}.", suffix=".part", dir=root)
    except OSError as exc:
        raise DownloadError(f"cannot write to the data folder {root}: {exc.strerror or exc}") from None
    tmp_zip = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            n_bytes, digests = _stream(url, handle, timeout, progress, ed.size or MAX_DOWNLOAD_BYTES)
        verified = _verify(ed, n_bytes, digests)
        _extract(tmp_zip, ed, target)
    except OSError as exc:  # disk full, read-only, permission denied while writing the zip
        if isinstance(exc, DeepMFError):
            raise
        raise DownloadError(f"cannot write to the data folder {root}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_zip.unlink()
    return DownloadResult(ed.name, target, url, verified, n_bytes, False)


def _stream(
    url: str, handle, timeout: float, progress: ProgressCallback | None, limit: int
) -> tuple[int, dict[str, str]]:
    """Copy ``url`` into ``handle``, hashing as it goes; returns (bytes, {"sha256": hex, "md5": hex}).

    More than ``limit`` bytes (announced or received) is an error: the download stops there.
    """
    host = urllib.parse.urlsplit(url).netloc or url
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    done = 0
    too_big = f"{url}: larger than the {format_bytes(limit)} expected; download stopped"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > limit:
                raise DownloadError(too_big)
            while chunk := response.read(CHUNK):
                if done + len(chunk) > limit:
                    raise DownloadError(too_big)
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
    except ValueError as exc:  # urllib's "unknown url type", http.client.InvalidURL
        raise DownloadError(f"malformed download URL {url!r} ({exc})") from None
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
    if MARKER in path.parts:  # it would pass for deepmf's own marker, which lets deepmf remove a folder
        raise DownloadError(f"{ed.zip_name}: member {name!r} is named like deepmf's marker file; nothing "
                            "extracted")


def _check_archive(members: list[zipfile.ZipInfo], ed: Edition, free: int | None) -> None:
    """Refuse unsafe names and archives that would expand past the limits, before extracting anything."""
    if len(members) > MAX_MEMBERS:
        raise DownloadError(f"{ed.zip_name}: {len(members)} members, more than the {MAX_MEMBERS} allowed; "
                            "nothing extracted")
    total, names = 0, set()
    for info in members:
        _check_member(info, ed)
        # Two members of one name: which one lands depends on the tool (a way to smuggle a file past review).
        if info.filename in names:
            raise DownloadError(f"{ed.zip_name}: member {info.filename!r} appears twice in the archive; "
                                "nothing extracted")
        names.add(info.filename)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise DownloadError(
                f"{ed.zip_name}: member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):,.0f}"
                f" times (limit {MAX_RATIO}): a zip bomb or not a MovieLens archive; nothing extracted")
        total += info.file_size
    if total > MAX_EXTRACTED_BYTES:
        raise DownloadError(f"{ed.zip_name}: expands to {format_bytes(total)}, more than the "
                            f"{format_bytes(MAX_EXTRACTED_BYTES)} allowed; nothing extracted")
    if free is not None and total > free:
        raise DownloadError(f"{ed.zip_name}: expands to {format_bytes(total)} but only {format_bytes(free)} "
                            "is free on the disk; nothing extracted")


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, destination: Path, ed: Edition) -> None:
    """Extract one member, counting its bytes: more than it declared stops everything."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with archive.open(info) as source, open(destination, "xb") as sink:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise DownloadError(f"{ed.zip_name}: member {info.filename!r} holds more than the "
                                    f"{info.file_size} bytes it declares; nothing extracted")
            sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())


def _check_edition_folder(folder: Path, names: set[str], ed: Edition) -> None:
    """An existing edition folder may be replaced only when every file in it is one the archive holds."""
    if folder.is_symlink() or not folder.is_dir():
        raise DownloadError(f"{folder} exists and is not a folder; move it away to download {ed.name}")
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or (not path.is_dir() and relative not in names and relative != MARKER):
            raise DownloadError(f"{folder} holds {relative}, which is not part of {ed.zip_name}; move it away "
                                "before downloading again")


def _extract(zip_path: Path, ed: Edition, target: Path) -> None:
    """Extract into a temp folder beside ``target``, check the layout, then swap it into place."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            _check_archive(members, ed, shutil.disk_usage(target.parent).free)
            files = {info.filename.split("/", 1)[1]: info for info in members
                     if not info.is_dir() and "/" in info.filename}
            with replace_directory(
                target, check=lambda folder: _check_edition_folder(folder, set(files), ed)
            ) as tmp:
                for relative, info in files.items():
                    _copy_member(archive, info, tmp / relative, ed)  # CRCs are checked while reading
                if detect_layout(tmp) != ed.layout:
                    raise DownloadError(f"{ed.zip_name}: the archive does not hold the expected {ed.name} files")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError,
            RuntimeError) as exc:  # RuntimeError: an encrypted member
        raise DownloadError(f"{ed.zip_name}: not a valid zip archive ({exc}); nothing extracted") from None
