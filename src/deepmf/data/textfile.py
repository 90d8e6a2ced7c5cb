"""Delimited text files: open them (plain, gzip, bz2), sniff the separator, parse them with pyarrow, and name the
exact line of any problem.

pyarrow parses the bytes (multi-threaded, no per-row Python). Its errors carry no line number (the streaming
reader's), a row number that skips blank lines, or a message about its own blocks, so on any failure
``first_problem`` reads the file again in Python, record by record as pyarrow splits it, and names the first
line that is wrong and why. That slow pass runs only on the error path; ``line_of_row`` (also error path only)
turns a row of a parsed table back into its line.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from deepmf.errors import ConfigError, DataError, DataFileError

# CSV block: pyarrow's default (1 MiB) makes ~500 chunks of a 485 MiB file; bigger blocks also make the
# streaming reader's type inference (first block) see more rows. A record longer than a block cannot be parsed.
BLOCK_BYTES = 8 << 20
# A byte never found in MovieLens text: "::" is rewritten to it because pyarrow takes one-byte delimiters.
_MULTI_SEP_STANDIN = "\x1f"
_BOM = b"\xef\xbb\xbf"
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


def _read_all(path: Path) -> bytes:
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
    if normal_encoding(encoding).startswith("utf16") or normal_encoding(encoding).startswith("utf32"):
        return
    if head.startswith(_UTF16_BOMS):
        raise DataError(f"{path}: is UTF-16 text: save it as UTF-8, or pass --encoding utf-16")
    nul = head.find(b"\x00")
    if nul >= 0:
        line = len(head[: nul + 1].splitlines())  # lines end at \n, \r\n or \r, as everywhere here
        raise DataError(f"{path}:{line}: NUL byte: not a text ratings file (binary or corrupted)")


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


# ---- parsing --------------------------------------------------------------------------------------------------
def read_table(
    path: Path,
    fmt: TextFormat,
    column_types: dict[str, pa.DataType] | None = None,
    labels: dict[str, str] | None = None,
) -> pa.Table:
    """Parse a delimited file with pyarrow (multi-threaded). Any problem raises DataError naming its line.

    Args:
        path: the file (plain, gzip or bz2).
        fmt: its layout.
        column_types: types to parse columns as (values that do not convert are errors); others inferred.
        labels: how messages call a column ("user id" for "user"); default: column 'name'.

    Raises:
        DataError: missing/unreadable/empty file, a line with the wrong number of fields, a value that does not
            convert, text that is not in the encoding, a line longer than a parse block.
    """
    check_file(path)
    codec = compression(path)
    sep = fmt.sep
    source: str | pa.Buffer = str(path)
    encoding = normal_encoding(fmt.encoding)
    if encoding != "utf8" or len(sep) > 1:
        data = _read_all(path)
        # Transcode here rather than with pyarrow's ``encoding`` option: that one runs a Python codec on
        # pyarrow's reader threads, which intermittently aborts the interpreter at exit.
        if fmt.encoding == "auto":
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                data = data.decode("latin-1").encode("utf-8")
        elif encoding != "utf8":
            try:
                data = data.decode(fmt.encoding).encode("utf-8")
            except UnicodeDecodeError as exc:
                line = data.count(b"\n", 0, exc.start) + 1
                raise DataError(
                    f"{path}:{line}: not valid {fmt.encoding} text (byte 0x{data[exc.start]:02x})"
                ) from None
        if len(sep) > 1:
            # pyarrow's delimiter is one byte: rewrite the multi-byte separator in memory (one C-speed pass).
            data = data.replace(sep.encode(), _MULTI_SEP_STANDIN.encode())
            sep = _MULTI_SEP_STANDIN
        # Hand pyarrow a buffer it owns: reading threads that hold a Python ``bytes`` object can abort the
        # interpreter at exit when torch is loaded (seen with pyarrow 26 + torch 2.13).
        sink = pa.BufferOutputStream()
        sink.write(data)
        del data
        source = sink.getvalue()
    read_options = pacsv.ReadOptions(
        column_names=None if fmt.header else (list(fmt.names) if fmt.names else None),
        autogenerate_column_names=not fmt.header and not fmt.names,
        block_size=BLOCK_BYTES,
    )
    parse_options = pacsv.ParseOptions(delimiter=sep, quote_char='"' if fmt.quoted else False)
    convert_options = pacsv.ConvertOptions(column_types=column_types or {}, strings_can_be_null=True)
    options = {"read_options": read_options, "parse_options": parse_options, "convert_options": convert_options}

    def reopen() -> pa.NativeFile | str:
        if isinstance(source, pa.Buffer):
            return pa.BufferReader(source)
        return pa.input_stream(source, compression=codec) if codec else source

    try:
        try:
            # Block by block: the peak is about the table itself. ``read_csv`` held the whole file and its
            # parse at once (1.3 GiB of pyarrow memory for a 20M-row, 485 MiB CSV whose table is 0.6 GiB).
            table = pacsv.open_csv(reopen(), **options).read_all()
        except pa.ArrowInvalid:
            # The streaming reader fixes each column's type from the first block, so a column that changes
            # type further down (integer ratings, then a 3.5) fails there; read_csv types whole columns.
            table = pacsv.read_csv(reopen(), **options)
        table.column_names  # noqa: B018  (a header that is not UTF-8 fails only when its names are read)
        return table
    except (pa.ArrowInvalid, UnicodeDecodeError, EOFError, OSError) as exc:
        found = first_problem(path, fmt, column_types or {}, labels or {})
        if found is not None:
            raise found from None
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot be parsed ({detail})") from None
    finally:
        # pyarrow's allocator keeps freed parse buffers for reuse; nothing here reuses them: give them back.
        release_arrow_memory()


def release_arrow_memory() -> None:
    """Return the memory pyarrow's allocator keeps cached after tables are freed to the OS.

    Its pool (mimalloc) keeps freed buffers for reuse; after loading, nothing reuses them, and at 20M ratings
    they held over 1 GiB of resident memory for the rest of the process.
    """
    pa.default_memory_pool().release_unused()


# ---- the slow pass: records as pyarrow sees them, with their line numbers ----------------------------------------
def _physical_lines(handle: BinaryIO, path: Path, chunk: int = 1 << 20) -> Iterator[bytes]:
    """Lines ended by \\n, \\r\\n or a lone \\r (as pyarrow ends them), terminators kept, read in chunks."""
    rest = b""
    while True:
        try:
            block = handle.read(chunk)
        except (OSError, EOFError) as exc:  # a truncated or corrupt gzip/bz2 stream
            raise DataFileError(f"{path}: cannot read ({exc})") from None
        if not block:
            if rest:
                yield rest
            return
        lines = (rest + block).splitlines(keepends=True)
        # The last piece may be cut mid-line, or end in a \r whose \n starts the next chunk.
        rest = b"" if lines[-1].endswith(b"\n") else lines.pop()
        yield from lines


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


def _wide(fmt: TextFormat) -> bool:
    """Whether the encoding is not a superset of ASCII (UTF-16/32): lines cannot be split as bytes."""
    return normal_encoding(fmt.encoding).startswith(("utf16", "utf32"))


def _line_encoding(fmt: TextFormat) -> str:
    """How ``records``' byte lines decode: latin-1 for "auto", UTF-8 for wide text (transcoded first)."""
    if fmt.encoding == "auto":
        return "latin-1"
    return "utf-8" if _wide(fmt) else fmt.encoding


def records(path: Path, fmt: TextFormat) -> Iterator[tuple[int, int, bytes]]:
    """(first line, last line, bytes) of each non-empty record, as pyarrow splits the file: one line, or several
    when a quoted field spans lines. The header is a record too; a leading BOM is dropped. Lines decode with
    ``_line_encoding(fmt)``."""
    sep = fmt.sep.encode("utf-8", errors="replace")
    if _wide(fmt):
        source: BinaryIO = io.BytesIO(_read_all(path).decode(fmt.encoding, errors="replace").encode("utf-8"))
    else:
        source = open_bytes(path)
    with source as handle:
        number = start = 0
        pending: list[bytes] | None = None
        for line in _physical_lines(handle, path):
            number += 1
            body = line.rstrip(b"\r\n")
            if number == 1 and body.startswith(_BOM):
                body = body[len(_BOM) :]
            if pending is not None:
                pending.append(body)
                if not _open_quote(body, sep, quoted=True):
                    yield start, number, b"\n".join(pending)
                    pending = None
            elif fmt.quoted and b'"' in body and _open_quote(body, sep, quoted=False):
                pending, start = [body], number
            elif body:
                yield number, number, body
        if pending is not None:
            yield start, number, b"\n".join(pending)


def split_fields(text: str, fmt: TextFormat) -> list[str]:
    """The fields of one decoded record."""
    if not (fmt.quoted and len(fmt.sep) == 1):
        return text.split(fmt.sep)
    limit = csv.field_size_limit()
    # The csv module refuses fields over 128 KiB; pyarrow reads longer ones, so lift the limit for this record.
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        return next(csv.reader([text], delimiter=fmt.sep, quotechar='"', doublequote=True, strict=False), [""])
    finally:
        csv.field_size_limit(limit)


def data_records(path: Path, fmt: TextFormat) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of each data record (header skipped), decoded leniently: for error messages only."""
    first = True
    for line, _, body in records(path, fmt):
        if first and fmt.header:
            first = False
            continue
        first = False
        yield line, split_fields(body.decode(_line_encoding(fmt), errors="replace"), fmt)


def line_of_row(path: Path, fmt: TextFormat, row: int) -> tuple[int, list[str]]:
    """(1-based line, fields) of data row ``row`` (0-based) of a parsed table; (0, []) past the end."""
    for index, found in enumerate(data_records(path, fmt)):
        if index == row:
            return found
    return 0, []


_INT = re.compile(r"\s*-?\d+\s*")
_FLOAT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*|\s*[-+]?(inf|infinity)\s*", re.IGNORECASE)
_NULLS = frozenset(pacsv.ConvertOptions().null_values)
_INT64 = (-(2**63), 2**63 - 1)


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


def first_problem(
    path: Path, fmt: TextFormat, column_types: dict[str, pa.DataType], labels: dict[str, str]
) -> DataError | None:
    """The first line pyarrow cannot parse, and why: encoding, length, field count, a value of a typed column.

    Reads the whole file in Python: call it only once pyarrow has failed.
    """
    names: list[str] | None = list(fmt.names) if fmt.names else None
    expected = len(names) if names else None
    hint = "; if the file is Latin-1, pass --encoding latin-1" if normal_encoding(fmt.encoding) == "utf8" else ""
    header_due = fmt.header
    for first, last, body in records(path, fmt):
        where = f"{path}:{first}"
        if len(body) >= BLOCK_BYTES:
            return DataError(
                f"{where}: a line of {len(body):,} bytes, longer than the {BLOCK_BYTES:,}-byte blocks the file "
                "is parsed in: not a ratings file?"
            )
        try:
            text = body.decode(_line_encoding(fmt))
        except UnicodeDecodeError as exc:
            return DataError(f"{where}: not valid {fmt.encoding} text (byte 0x{body[exc.start]:02x}){hint}")
        fields = split_fields(text, fmt)
        if header_due:
            header_due = False
            names, expected = fields, len(fields)
            continue
        if expected is None:
            names = [f"f{i}" for i in range(len(fields))]
            expected = len(fields)
        if len(fields) != expected:
            if last > first:
                return DataError(f"{where}: a quote (\") opens a field that runs on to line {last}")
            return DataError(f"{where}: expected {expected} fields, found {len(fields)}")
        for name, kind in column_types.items():
            if names is None or name not in names:
                continue
            value = fields[names.index(name)]
            reason = _why_not(value, kind)
            if reason:
                return DataError(f"{where}: {labels.get(name, f'column {name!r}')} {value!r} {reason}")
    return None
