"""Parsing delimited text with pyarrow: multi-threaded, no per-row Python, block by block.

Any failure is handed to ``locate.first_problem``, which reads the file again to name the exact line and value,
so pyarrow's own messages (no line, another row's value, "straddles two block boundaries") never reach the user.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from deepmf.data import textfile
from deepmf.data.locate import first_problem
from deepmf.data.textfile import TextFormat, check_file, compression, normal_encoding, read_all
from deepmf.errors import DataError

# A byte never found in MovieLens text: "::" is rewritten to it because pyarrow takes one-byte delimiters.
_MULTI_SEP_STANDIN = "\x1f"


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
        data = read_all(path)
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
        block_size=textfile.BLOCK_BYTES,
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
            reader = None
            reader = pacsv.open_csv(reopen(), **options)  # reads and converts the first block
            table = reader.read_all()
        except pa.ArrowInvalid as exc:
            names = reader.schema.names if reader is not None else list(fmt.names or ())
            if _typed_column_failed(str(exc), names, column_types or {}):
                raise  # a value of a column whose type was given: no other reader would take it
            # The streaming reader fixes each column's type from the first block, so a column that changes
            # type further down (integer ratings, then a 3.5) fails there; read_csv types whole columns.
            table = pacsv.read_csv(reopen(), **options)
        table.column_names  # noqa: B018  (a header that is not UTF-8 fails only when its names are read)
        return table
    except (pa.ArrowInvalid, UnicodeDecodeError, EOFError, OSError) as exc:
        found = first_problem(path, fmt, column_types or {}, labels or {}, str(exc))
        if found is not None:
            raise found from None
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot be parsed ({detail})") from None
    finally:
        # pyarrow's allocator keeps freed parse buffers for reuse; nothing here reuses them: give them back.
        release_arrow_memory()


def _typed_column_failed(message: str, names: list[str], column_types: dict[str, pa.DataType]) -> bool:
    """Whether pyarrow's ``message`` is about a column whose type was given (not one it inferred)."""
    found = re.search(r"In CSV column #(\d+)", message)
    return found is not None and int(found.group(1)) < len(names) and names[int(found.group(1))] in column_types


def release_arrow_memory() -> None:
    """Return the memory pyarrow's allocator keeps cached after tables are freed to the OS.

    Its pool (mimalloc) keeps freed buffers for reuse; after loading, nothing reuses them, and at 20M ratings
    they held over 1 GiB of resident memory for the rest of the process.
    """
    pa.default_memory_pool().release_unused()


