"""Delimited text files before parsing: their layout (``TextFormat``), opening them (plain, gzip, bz2; archives
and other compressions refused in one line), their first lines (text or binary?), their encoding and separator.

``parsing.read_table`` parses them with pyarrow; ``locate`` names the exact line of anything that goes wrong.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from deepmf.errors import ConfigError, DataError, DataFileError

# CSV block: pyarrow's default (1 MiB) makes ~500 chunks of a 485 MiB file; bigger blocks also make the
# streaming reader's type inference (first block) see more rows. A record that spans more than two blocks
# cannot be parsed.
BLOCK_BYTES = 8 << 20
BOM = b"\xef\xbb\xbf"
# Separators tried when sniffing, most specific first ("::" before ":" never arises: ":" is not a candidate).
SNIFF_SEPARATORS: tuple[str, ...] = ("::", "\t", ",", ";", "|")
# Compressed files pyarrow and the standard library both read, by their first bytes.
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2"}
# Files that are not delimited text, by their first bytes: what to tell the user.
_NOT_TEXT = (
    (b"PK\x03\x04", "is a zip archive (an .xlsx workbook is one too): extract it, or save the sheet as CSV"),
    (b"\xfd7zXZ\x00", "is xz-compressed: decompress it first (gzip and bz2 files are read as they are)"),
    (b"\x28\xb5\x2f\xfd", "is zstd-compressed: decompress it first (gzip and bz2 files are read as they are)"),
    (b"7z\xbc\xaf\x27\x1c", "is a 7-Zip archive: extract it first"),
    (b"\xd0\xcf\x11\xe0", "is an old Office (.xls) file: save the sheet as CSV"),
)
PARQUET_MAGIC = b"PAR1"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class TextFormat:
    """How a delimited text file is laid out.

    Attributes:
        sep: field separator (one character, or a longer string such as "::").
        header: whether the first line names the columns.
        names: column names to use when there is no header (None: "f0", "f1", ...).
        encoding: text encoding ("utf-8", "latin-1", any Python codec; "auto": UTF-8, else latin-1).
        quoted: whether fields may be quoted (False for MovieLens ``::`` files, where titles contain quotes).
    """

    sep: str
    header: bool
    names: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    quoted: bool = True


# ---- opening ------------------------------------------------------------------------------------------------
def check_file(path: Path) -> None:
    """Refuse, in one line, what is not a regular, non-empty file (a folder, a pipe, a device, a bad path)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataFileError(f"{path}: is a folder, not a ratings file")
    if not stat.S_ISREG(info.st_mode):
        # Reading a pipe or a device could block or never end.
        raise DataFileError(f"{path}: not a regular file (a pipe, socket or device)")
    if info.st_size == 0:
        raise DataError(f"{path}: empty file")


def magic(path: Path) -> bytes:
    """The first 8 bytes of a file."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def compression(path: Path) -> str | None:
    """"gzip" or "bz2" when the file is compressed so; None for plain text.

    Raises:
        DataFileError: an archive or a compression deepmf does not read.
    """
    head = magic(path)
    for prefix, codec in _COMPRESSED.items():
        if head.startswith(prefix):
            return codec
    for prefix, what in _NOT_TEXT:
        if head.startswith(prefix):
            raise DataFileError(f"{path}: {what}")
    return None


def open_bytes(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzip or bz2."""
    codec = compression(path)
    try:
        if codec == "gzip":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        if codec == "bz2":
            return bz2.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_all(path: Path) -> bytes:
    """The whole file, decompressed."""
    try:
        with open_bytes(path) as handle:
            return handle.read()
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip/bz2 stream
        raise DataFileError(f"{path}: cannot read ({exc})") from None


def _head_bytes(path: Path, n_bytes: int = 65536) -> bytes:
    try:
        with open_bytes(path) as handle:
            return handle.read(n_bytes)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip/bz2 stream
        raise DataFileError(f"{path}: cannot read ({exc})") from None


def head_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """The non-blank lines of the first 64 KiB, split where pyarrow splits them (\\n, \\r\\n, \\r: not at the
    other line breaks ``str.splitlines`` knows, such as \\x85, which may sit inside a field)."""
    return [line for line in re.split(r"\r\n|\r|\n", read_head(path, encoding=encoding)) if line.strip()]


def read_head(path: Path, n_bytes: int = 65536, encoding: str = "utf-8") -> str:
    """First bytes of a text file decoded leniently (BOM removed), for sniffing."""
    head = _head_bytes(path, n_bytes)
    codec = "utf-8" if encoding == "auto" else encoding
    return head.decode(codec, errors="replace").lstrip("\ufeff")


def check_text_head(path: Path, encoding: str) -> None:
    """Refuse, naming the line, a file whose first 64 KiB are not text: NUL bytes, or UTF-16 not asked for."""
    head = _head_bytes(path)
    if is_wide(encoding):
        return
    if head.startswith(_UTF16_BOMS):
        raise DataError(f"{path}: is UTF-16 text: save it as UTF-8, or pass --encoding utf-16")
    nul = head.find(b"\x00")
    if nul >= 0:
        line = len(head[: nul + 1].splitlines())  # lines end at \n, \r\n or \r, as everywhere here
        raise DataError(f"{path}:{line}: NUL byte: not a text ratings file (binary or corrupted)")


def is_wide(encoding: str) -> bool:
    """Whether the encoding is not a superset of ASCII (UTF-16/32): its lines cannot be split as bytes."""
    return normal_encoding(encoding).startswith(("utf16", "utf32"))


def normal_encoding(encoding: str) -> str:
    """"utf-8", "UTF8", "utf_8" -> "utf8": the form compared against."""
    return encoding.lower().replace("-", "").replace("_", "")


def check_encoding(encoding: object) -> str:
    """The encoding itself when Python knows it; ConfigError otherwise."""
    if not isinstance(encoding, str) or not encoding:
        raise ConfigError(f"encoding must be a codec name such as 'utf-8' or 'latin-1', not {encoding!r}")
    if encoding == "auto":
        return encoding
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}; try utf-8, latin-1 or cp1252") from None
    return encoding


# ---- the separator --------------------------------------------------------------------------------------------
def sniff_separator(path: Path, encoding: str = "utf-8") -> str:
    """Guess the field separator from the first lines: the candidate found the same number of times in the most
    lines (at least half of them), so one malformed line does not hide the separator and is reported by line.

    Raises:
        DataError: the file is empty or no candidate separator is consistent.
    """
    lines = head_lines(path, encoding)[:50]
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut mid-way
    if not lines:
        raise DataError(f"{path}: empty file")
    best, agreeing = None, 0
    for sep in SNIFF_SEPARATORS:
        counts = [line.count(sep) for line in lines]
        mode = max(set(counts), key=counts.count)
        share = counts.count(mode)
        if mode >= 1 and share * 2 >= len(lines) and share > agreeing:
            best, agreeing = sep, share
    if best is not None:
        return best
    # No candidate agrees in half the lines (quoted fields full of commas?): let the csv module decide.
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|").delimiter
    except csv.Error:
        raise DataError(f"{path}: cannot detect the column separator; pass --sep") from None
