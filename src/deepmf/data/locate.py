"""Naming the exact line: a file read again in Python, record by record as pyarrow splits it (error path only).

pyarrow's errors carry no line number (the streaming reader's), a row number that skips blank lines, or a
message about its own blocks. ``first_problem`` finds the first line pyarrow cannot parse and says why;
``line_of_row`` turns a row of a parsed table back into its line. Both run only once something is wrong, and
both pass over blocks of plain lines (no quote, blank line or lone CR) by counting line ends, a block at a time,
so naming line 20,000,000 costs a read of the file rather than 20M Python steps.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from deepmf.data import textfile
from deepmf.data.textfile import BOM, TextFormat, is_wide, normal_encoding, open_bytes, read_all
from deepmf.errors import DataError, DataFileError

_CHUNK = 4 << 20


def _line_blocks(handle: BinaryIO, path: Path) -> Iterator[bytes]:
    """The file in blocks of whole lines (ended by \\n, \\r\\n or a lone \\r, as pyarrow ends them); the last
    block may lack its line end."""
    rest = b""
    while True:
        try:
            block = handle.read(_CHUNK)
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip/bz2 stream
            raise DataFileError(f"{path}: cannot read ({exc})") from None
        if not block:
            if rest:
                yield rest
            return
        data = rest + block
        # A \r at the very end may be the first half of a \r\n: keep it for the next block.
        cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
        if cut:
            yield data[:cut]
        rest = data[cut:]


def _plain_lines(block: bytes, quoted: bool, first: bool) -> int | None:
    """How many records ``block`` holds when each line end ends one (no quote, blank line, lone \\r or leading
    BOM-only line); None when the block needs reading line by line."""
    if (quoted and b'"' in block) or b"\n\n" in block or b"\n\r\n" in block or block.startswith((b"\n", b"\r")):
        return None
    if block.count(b"\r") != block.count(b"\r\n") or (first and block.startswith(BOM)):
        return None
    return block.count(b"\n") + (0 if block.endswith(b"\n") else 1)


def _open_quote(body: bytes, sep: bytes, quoted: bool) -> bool:
    """Whether ``body`` ends inside a quoted field (entered open when ``quoted``): a quote opens a field only at
    its start, and "" inside a quoted field is a literal quote (pyarrow's and the csv module's rule)."""
    at_start = not quoted
    i, n = 0, len(body)
    while i < n:
        if quoted:
            j = body.find(b'"', i)
            if j < 0:
                return True
            if body[j + 1 : j + 2] == b'"':
                i = j + 2
                continue
            quoted, at_start, i = False, False, j + 1
        elif at_start and body[i : i + 1] == b'"':
            quoted, i = True, i + 1
        else:
            j = body.find(sep, i)
            if j < 0:
                return False
            at_start, i = True, j + len(sep)
    return quoted


def line_encoding(fmt: TextFormat) -> str:
    """How ``records``' byte lines decode: latin-1 for "auto", UTF-8 for wide text (transcoded first)."""
    if fmt.encoding == "auto":
        return "latin-1"
    return "utf-8" if is_wide(fmt.encoding) else fmt.encoding


def records(
    path: Path, fmt: TextFormat, skip: int = 0, needle: bytes | None = None
) -> Iterator[tuple[int, int, bytes]]:
    """(first line, last line, bytes) of each non-empty record, as pyarrow splits the file: one line, or several
    when a quoted field spans lines. The header is a record too; a leading BOM is dropped. Lines decode with
    ``line_encoding(fmt)``.

    Args:
        path, fmt: the file.
        skip: records to pass over without yielding them (counted a block at a time where possible).
        needle: when given, blocks of plain lines that do not contain it are passed over too.
    """
    sep = fmt.sep.encode("utf-8", errors="replace")
    if is_wide(fmt.encoding):
        source: BinaryIO = io.BytesIO(read_all(path).decode(fmt.encoding, errors="replace").encode("utf-8"))
    else:
        source = open_bytes(path)
    with source as handle:
        number = start = seen = 0
        pending: list[bytes] | None = None
        for block in _line_blocks(handle, path):
            if pending is None:
                count = _plain_lines(block, fmt.quoted, first=number == 0)
                if count is not None and (seen + count <= skip or (needle is not None and needle not in block)):
                    seen, number = seen + count, number + count
                    continue
            for line in block.splitlines(keepends=True):
                number += 1
                body = line.rstrip(b"\r\n")
                if number == 1 and body.startswith(BOM):
                    body = body[len(BOM) :]
                if pending is not None:
                    pending.append(body)
                    if _open_quote(body, sep, quoted=True):
                        continue
                    found, pending = (start, number, b"\n".join(pending)), None
                elif fmt.quoted and b'"' in body and _open_quote(body, sep, quoted=False):
                    pending, start = [body], number
                    continue
                elif body:
                    found = (number, number, body)
                else:
                    continue
                seen += 1
                if seen > skip:
                    yield found
        if pending is not None and seen >= skip:
            yield start, number, b"\n".join(pending)


def split_fields(text: str, fmt: TextFormat) -> list[str]:
    """The fields of one decoded record."""
    if not (fmt.quoted and len(fmt.sep) == 1 and '"' in text):
        return text.split(fmt.sep)
    limit = csv.field_size_limit()
    # The csv module refuses fields over 128 KiB; pyarrow reads longer ones, so lift the limit for this record.
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        return next(csv.reader([text], delimiter=fmt.sep, quotechar='"', doublequote=True, strict=False), [""])
    finally:
        csv.field_size_limit(limit)


def line_of_row(path: Path, fmt: TextFormat, row: int) -> tuple[int, list[str]]:
    """(1-based line, fields) of data row ``row`` (0-based) of a parsed table; (0, []) past the end."""
    for line, _, body in records(path, fmt, skip=row + (1 if fmt.header else 0)):
        return line, split_fields(body.decode(line_encoding(fmt), errors="replace"), fmt)
    return 0, []


_INT = re.compile(r"\s*-?\d+\s*")
_FLOAT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*|\s*[-+]?(inf|infinity)\s*", re.IGNORECASE)
_NULLS = frozenset(pacsv.ConvertOptions().null_values)
_INT64 = (-(2**63), 2**63 - 1)
# The value pyarrow names when a conversion or the field count fails: where to look first.
_HINTS = (re.compile(r"invalid value '(.+)'$"), re.compile(r"Expected \d+ columns, got \d+: (.+)$"))


def _why_not(value: str, kind: pa.DataType) -> str | None:
    """Why pyarrow cannot convert ``value`` to ``kind`` (None: it can, or reads it as missing)."""
    if value in _NULLS:
        return None
    if pa.types.is_integer(kind):
        if not _INT.fullmatch(value):
            return "is not an integer"
        if not _INT64[0] <= int(value) <= _INT64[1]:
            return "does not fit in a 64-bit integer"
        return None
    if pa.types.is_floating(kind) and not _FLOAT.fullmatch(value):
        return "is not a number"
    return None


def _hint(message: str) -> bytes | None:
    """The text pyarrow's message quotes from the bad line, to find that line without checking every other."""
    for pattern in _HINTS:
        found = pattern.search(message.splitlines()[0] if message else "")
        if found and found.group(1):
            return found.group(1).encode("utf-8", errors="replace")
    return None


def first_problem(
    path: Path, fmt: TextFormat, column_types: dict[str, pa.DataType], labels: dict[str, str], message: str = ""
) -> DataError | None:
    """The first line pyarrow cannot parse, and why: encoding, length, field count, a value of a typed column.

    Reads the file in Python: call it only once pyarrow has failed. Lines holding the text pyarrow's
    ``message`` quotes are checked first; when none is wrong, every line is.
    """
    needle = _hint(message)
    if needle is not None and len(fmt.sep) > 1:
        needle = needle.replace(b"\x1f", fmt.sep.encode())  # parsing's stand-in for a multi-byte separator
    found = _scan(path, fmt, column_types, labels, needle) if needle else None
    return found or _scan(path, fmt, column_types, labels, None)


def _scan(
    path: Path, fmt: TextFormat, column_types: dict[str, pa.DataType], labels: dict[str, str], needle: bytes | None
) -> DataError | None:
    names: list[str] | None = list(fmt.names) if fmt.names else None
    expected = len(names) if names else None
    hint = "; if the file is Latin-1, pass --encoding latin-1" if normal_encoding(fmt.encoding) == "utf8" else ""
    header_due = fmt.header
    for first, last, body in records(path, fmt):
        if not header_due and expected is not None and needle is not None:
            # The header (or the first line, which fixes the field count) is read; now only the quoted text.
            return _scan_rest(path, fmt, column_types, labels, needle, names, expected, hint, first)
        problem, fields = _check(path, fmt, first, last, body, column_types, labels, names, expected, hint,
                                 header_due)
        if problem is not None:
            return problem
        if header_due:
            header_due = False
            names, expected = fields, len(fields)
        elif expected is None:
            names, expected = [f"f{i}" for i in range(len(fields))], len(fields)
    return None


def _scan_rest(
    path: Path, fmt: TextFormat, column_types: dict[str, pa.DataType], labels: dict[str, str], needle: bytes,
    names: list[str] | None, expected: int, hint: str, from_line: int,
) -> DataError | None:
    for first, last, body in records(path, fmt, needle=needle):
        if first < from_line:
            continue
        problem, _ = _check(path, fmt, first, last, body, column_types, labels, names, expected, hint, False)
        if problem is not None:
            return problem
    return None


def _check(
    path: Path, fmt: TextFormat, first: int, last: int, body: bytes, column_types: dict[str, pa.DataType],
    labels: dict[str, str], names: list[str] | None, expected: int | None, hint: str, header: bool,
) -> tuple[DataError | None, list[str]]:
    """(the problem of one record or None, its fields)."""
    where = f"{path}:{first}"
    if len(body) >= textfile.BLOCK_BYTES:
        return DataError(
            f"{where}: a line of {len(body):,} bytes, longer than the {textfile.BLOCK_BYTES:,}-byte blocks the "
            "file is parsed in: not a ratings file?"
        ), []
    try:
        text = body.decode(line_encoding(fmt))
    except UnicodeDecodeError as exc:
        return DataError(f"{where}: not valid {fmt.encoding} text (byte 0x{body[exc.start]:02x}){hint}"), []
    fields = split_fields(text, fmt)
    if header or expected is None:
        return None, fields
    if len(fields) != expected:
        if last > first:
            return DataError(f"{where}: a quote (\") opens a field that runs on to line {last}"), fields
        return DataError(f"{where}: expected {expected} fields, found {len(fields)}"), fields
    for name, kind in column_types.items():
        if names is None or name not in names:
            continue
        value = fields[names.index(name)]
        reason = _why_not(value, kind)
        if reason:
            return DataError(f"{where}: {labels.get(name, f'column {name!r}')} {value!r} {reason}"), fields
    return None, fields
