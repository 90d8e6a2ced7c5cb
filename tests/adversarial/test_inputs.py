"""Adversarial inputs: what a careless user or an attacker hands the loader, generated here, one case each.

Every bad input must give ONE clean line naming the file (and the line, where there is one) with exit code 2
through the real CLI, and a typed DeepMFError (a ValueError or OSError too) with the same line through the
Python API; never a traceback, never a silently different answer. Inputs deepmf tolerates are loaded and their
values checked. The counts of each class are in the README's "Reliability" section (``test_readme_counts``).
No device is involved: everything here runs on the CPU.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import re
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import deepmf
from deepmf.data import load
from deepmf.errors import DataWarning, DeepMFError

README = Path(__file__).resolve().parents[2] / "README.md"
Build = Callable[[Path], tuple[str, tuple[str, ...], dict[str, Any]]]


@dataclass(frozen=True)
class Bad:
    """One bad input: ``build(folder)`` writes it and returns (DATA, CLI flags, ``load()`` keyword arguments).

    ``message`` is a regex the one error line must match (after ``error: ``); ``command`` the CLI command that
    reads it; ``api`` whether ``deepmf.load`` is also checked (commands such as ``train --test`` have no
    single-call equivalent).
    """

    kind: str
    name: str
    build: Build
    message: str
    command: tuple[str, ...] = ("info",)
    api: bool = True


# ---- builders ---------------------------------------------------------------------------------------------
def _lines(n: int = 40, seed: int = 0) -> list[str]:
    """``n`` distinct (user, item) ratings on 1..5 stars as CSV lines (no header)."""
    rng = np.random.default_rng(seed)
    return [f"{k % 13 + 1},{k // 13 + 1},{rng.integers(1, 6)}" for k in range(n)]


def text(name: str, content: str | bytes, *flags: str, **kwargs: Any) -> Build:
    """A file named ``name`` holding ``content``, read with CLI ``flags`` / ``load(**kwargs)``."""

    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        return str(path), flags, kwargs

    return build


def csv_with(line_number: int, line: str, *flags: str, header: str = "user,item,rating", n: int = 40,
             name: str = "r.csv", **kwargs: Any) -> Build:
    """A header plus ``n`` good lines, with file line ``line_number`` (1-based, header = 1) replaced."""
    lines = [header, *_lines(n)]
    lines[line_number - 1] = line
    return text(name, "\n".join(lines) + "\n", *flags, **kwargs)


def udata(line_number: int, line: str, n: int = 600) -> Build:
    """A folder ``ml-100k`` whose ``u.data`` (tab-separated, 1..5 stars) has file line ``line_number`` replaced."""

    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        edition = folder / "ml-100k"
        edition.mkdir()
        lines = [f"{k % 29 + 1}\t{k // 29 + 1}\t{k % 5 + 1}\t{881250949 + k}" for k in range(n)]
        lines[line_number - 1] = line
        (edition / "u.data").write_text("\n".join(lines) + "\n")
        return str(edition), (), {}

    return build


def csv_edition(line_number: int, line: str, folder_name: str = "ml-latest-small") -> Build:
    """A CSV edition folder (``ratings.csv``, half stars) with file line ``line_number`` replaced."""

    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        edition = folder / folder_name
        edition.mkdir()
        lines = ["userId,movieId,rating,timestamp"] + [
            f"{k % 17 + 1},{k // 17 + 1},{(k % 10 + 1) / 2:g},{964982703 + k}" for k in range(200)
        ]
        lines[line_number - 1] = line
        (edition / "ratings.csv").write_text("\n".join(lines) + "\n")
        return str(edition), (), {}

    return build


def dat_edition(line_number: int, line: str) -> Build:
    """An ``ml-1m`` folder (``::`` separated ratings.dat and users.dat) with file line ``line_number`` replaced."""

    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        edition = folder / "ml-1m"
        edition.mkdir()
        lines = [f"{k % 11 + 1}::{k // 11 + 1}::{k % 5 + 1}::{978300760 + k}" for k in range(100)]
        lines[line_number - 1] = line
        (edition / "ratings.dat").write_text("\n".join(lines) + "\n")
        (edition / "users.dat").write_text("".join(f"{u}::F::1::10::48067\n" for u in range(1, 12)))
        return str(edition), (), {}

    return build


def parquet(columns: dict[str, Any], name: str = "r.parquet") -> Build:
    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        path = folder / name
        pq.write_table(pa.table(columns), path)
        return str(path), (), {}

    return build


def special(make: Callable[[Path], Path | str], *flags: str, **kwargs: Any) -> Build:
    """Whatever ``make(folder)`` creates (a pipe, a link loop, a device path), read as DATA."""

    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        return str(make(folder)), flags, kwargs

    return build


def _fifo(folder: Path) -> Path:
    path = folder / "ratings.csv"
    os.mkfifo(path)
    return path


def _link_loop(folder: Path) -> Path:
    (folder / "a.csv").symlink_to(folder / "b.csv")
    (folder / "b.csv").symlink_to(folder / "a.csv")
    return folder / "a.csv"


def _training_file(folder: Path) -> Path:
    (folder / "train.csv").write_text(_good_csv())
    return folder / "train.csv"


def _good_csv() -> str:
    return "user,item,rating\n" + "\n".join(_lines()) + "\n"


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ratings.csv", _good_csv())
    return buffer.getvalue()


def _two_files(train: str, test: str, how: str = "--test") -> Build:
    """``train.csv`` and ``t.csv`` for ``train``: DATA is the training file; ``--test t.csv`` or
    ``--split files:train.csv,t.csv`` names the test file."""

    def build(folder: Path) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        (folder / "train.csv").write_text(train)
        (folder / "t.csv").write_text(test)
        target = ("--test", str(folder / "t.csv")) if how == "--test" else (
            "--split", f"files:{folder / 'train.csv'},{folder / 't.csv'}")
        return str(folder / "train.csv"), target, {}

    return build


_TRAIN = ("train", "--epochs", "1", "--quiet")
_HALF = "\n".join(["user,item,rating", *(f"{k % 13 + 1},{k // 13 + 1},{(k % 10 + 1) / 2:g}" for k in range(40))])

CASES: list[Bad] = [
    # ---- scale: an edition's scale is known; a declared scale is a contract; test ratings follow the model's
    Bad("scale", "ml-100k u.data: a 7 on line 100", udata(100, "1\t2\t7\t881250949"),
        r"u\.data:100: rating 7 is outside the scale 1\.\.5"),
    Bad("scale", "ml-100k u.data: a 0", udata(3, "1\t2\t0\t881250949"), r"u\.data:3: rating 0 is outside the scale"),
    Bad("scale", "ml-100k u.data: a negative rating", udata(7, "1\t2\t-1\t881250949"),
        r"u\.data:7: rating -1 is outside"),
    Bad("scale", "ml-100k u.data: a half star", udata(42, "1\t2\t3.5\t881250949"),
        r"u\.data:42: rating 3\.5 is not a multiple of the scale step 1"),
    Bad("scale", "ml-latest-small: a 5.5", csv_edition(5, "1,99,5.5,964982703"),
        r"ratings\.csv:5: rating 5\.5 is outside the scale 0\.5\.\.5"),
    Bad("scale", "ml-latest-small: a 0", csv_edition(9, "1,99,0,964982703"), r"ratings\.csv:9: rating 0 is outside"),
    Bad("scale", "ml-latest-small: a quarter star", csv_edition(12, "1,99,4.25,964982703"),
        r"ratings\.csv:12: rating 4\.25 is not a multiple of the scale step 0\.5"),
    Bad("scale", "ml-1m ratings.dat: a 6", dat_edition(4, "1::99::6::978300760"),
        r"ratings\.dat:4: rating 6 is outside the scale 1\.\.5"),
    Bad("scale", "--scale 1,5 and a 7", csv_with(9, "1,99,7", "--scale", "1,5", scale="1,5"),
        r"r\.csv:9: rating 7 is outside the scale 1\.\.5"),
    Bad("scale", "--scale 1,5 and a -3", csv_with(4, "1,99,-3", "--scale", "1,5", scale=(1, 5)),
        r"r\.csv:4: rating -3 is outside the scale 1\.\.5"),
    Bad("scale", "--scale 0.5,5,0.5 and a 4.3", text("r.csv", _HALF + "\n1,99,4.3\n", "--scale", "0.5,5,0.5",
                                                     scale="0.5,5,0.5"),
        r"r\.csv:42: rating 4\.3 is not a multiple of the scale step 0\.5 from 0\.5"),
    Bad("scale", "--scale 1,10 and an 11", csv_with(3, "1,99,11", "--scale", "1,10", scale="1,10"),
        r"r\.csv:3: rating 11 is outside the scale 1\.\.10"),
    Bad("scale", "--scale 5,1", csv_with(2, "1,99,3", "--scale", "5,1", scale="5,1"),
        r"scale '5,1': the minimum must be below the maximum"),
    Bad("scale", "--scale abc", csv_with(2, "1,99,3", "--scale", "abc", scale="abc"),
        r"a scale is MIN,MAX or MIN,MAX,STEP"),
    Bad("scale", "--scale 1,5,0.3", csv_with(2, "1,99,3", "--scale", "1,5,0.3", scale="1,5,0.3"),
        r"the step must be positive, divide 5 - 1 evenly"),
    Bad("scale", "--scale 1,5,0", csv_with(2, "1,99,3", "--scale", "1,5,0", scale="1,5,0"),
        r"the step must be positive"),
    Bad("scale", "--scale nan,5", csv_with(2, "1,99,3", "--scale", "nan,5", scale="nan,5"), r"with finite numbers"),
    Bad("scale", "--scale 1,2,3,4", csv_with(2, "1,99,3", "--scale", "1,2,3,4", scale="1,2,3,4"),
        r"a scale is MIN,MAX or MIN,MAX,STEP"),
    Bad("scale", "train --test: a 7 against 1..5 training ratings",
        _two_files(_good_csv(), "user,item,rating\n1,1,3\n2,2,7\n"),
        r"t\.csv:3: rating 7 is outside the training data's scale 1\.\.5", command=_TRAIN, api=False),
    Bad("scale", "train --split files:TRAIN,TEST: a 0 in the test file",
        _two_files(_good_csv(), "user,item,rating\n1,1,0\n", how="--split"),
        r"t\.csv:2: rating 0 is outside the training data's scale 1\.\.5", command=_TRAIN, api=False),
    # ---- ids: overflow, undecodable bytes, empty, missing, control characters, wrong types
    Bad("ids", "user id beyond int64", csv_with(5, "99999999999999999999,1,3"),
        r"r\.csv:5: user id 99999999999999999999 does not fit in a 64-bit integer"),
    Bad("ids", "user id 2**63", csv_with(6, "9223372036854775808,1,3"),
        r"r\.csv:6: user id 9223372036854775808 does not fit in a 64-bit integer"),
    Bad("ids", "user id below -2**63", csv_with(7, "-9223372036854775809,1,3"),
        r"r\.csv:7: user id -9223372036854775809 does not fit"),
    Bad("ids", "item id beyond int64", csv_with(8, "1,123456789012345678901234567890,3"),
        r"r\.csv:8: item id 123456789012345678901234567890 does not fit"),
    Bad("ids", "ml-100k u.data: user id beyond int64", udata(10, "99999999999999999999\t2\t3\t881250949"),
        r"u\.data:10: user id '99999999999999999999' does not fit in a 64-bit integer"),
    Bad("ids", "ids 1.0 next to one past 2**53", text("r.csv", "user,item,rating\n1.0,1,3\n9007199254740993,1,4\n"),
        r"r\.csv:3: user id 9007199254740993 is too large to be read exactly"),
    Bad("ids", "invalid UTF-8 in a user id", text("r.csv", b"user,item,rating\nann,1,3\nbob,1,4\na\xffnn,2,3\n"),
        r"r\.csv:4: user id b'a\\xffnn' is not valid UTF-8 text; if the file is Latin-1, pass --encoding latin-1"),
    Bad("ids", "invalid UTF-8 in an item id", text("r.csv", b"user,item,rating\n1,x,3\n2,y\xc3,4\n"),
        r"r\.csv:3: item id b'y\\xc3' is not valid UTF-8 text"),
    Bad("ids", "header not UTF-8", text("r.csv", b"us\xe9r,item,rating\n1,1,3\n2,1,4\n"),
        r"r\.csv:1: not valid utf-8 text \(byte 0xe9\); if the file is Latin-1, pass --encoding latin-1"),
    Bad("ids", "empty user id", csv_with(3, ",1,3"), r"r\.csv:3: empty user id"),
    Bad("ids", "blank user id", csv_with(3, "   ,1,3", header="user,item,rating"), r"r\.csv:3: empty user id"),
    Bad("ids", "user id NA", csv_with(12, "NA,1,3"), r"r\.csv:12: missing user id \('NA' is read as missing\)"),
    Bad("ids", "item id null", csv_with(4, "3,null,3"), r"r\.csv:4: missing item id \('null' is read as missing\)"),
    Bad("ids", "user id nan", csv_with(5, "nan,1,3"), r"r\.csv:5: missing user id \('nan' is read as missing\)"),
    Bad("ids", "user id inf", csv_with(5, "inf,1,3"), r"r\.csv:5: user id inf is not an id"),
    Bad("ids", "NUL byte in an id", csv_with(3, "1\x002,1,3"), r"r\.csv:3: NUL byte: not a text ratings file"),
    Bad("ids", "control character in an id past the first 64 KiB",
        text("r.csv", "user,item,rating\n" + "".join(f"u{k},i,3\n" for k in range(9000)) + "u\x01x,i,4\n"),
        r"r\.csv:9002: user id 'u\\x01x' holds a control character"),
    Bad("ids", "ml-100k u.data: user 'abc' on line 500", udata(500, "abc\t2\t3\t881250949"),
        r"u\.data:500: user id 'abc' is not an integer"),
    Bad("ids", "ml-100k u.data: item '+1'", udata(20, "1\t+1\t3\t881250949"),
        r"u\.data:20: item id '\+1' is not an integer"),
    Bad("ids", "ml-100k u.data: item 1.5", udata(21, "1\t1.5\t3\t881250949"),
        r"u\.data:21: item id '1\.5' is not an integer"),
    Bad("ids", "ml-100k u.data: empty user", udata(8, "\t2\t3\t881250949"), r"u\.data:8: empty user id"),
    Bad("ids", "ml-latest-small: movieId 'abc'", csv_edition(3, "1,abc,4,964982703"),
        r"ratings\.csv:3: item id 'abc' is not an integer"),
    Bad("ids", "parquet: uint64 user id past int64",
        parquet({"user": pa.array([1, 2**64 - 1], pa.uint64()), "item": [1, 2], "rating": [3.0, 4.0]}),
        r"r\.parquet: row 2: user id 18446744073709551615 does not fit in a 64-bit integer"),
    Bad("ids", "parquet: true/false user ids", parquet({"user": [True, False], "item": [1, 2], "rating": [3.0, 4.0]}),
        r"r\.parquet: the user id column holds bool values, not ids"),
    Bad("ids", "parquet: null item id", parquet({"user": [1, 2], "item": pa.array([1, None]), "rating": [3.0, 4.0]}),
        r"r\.parquet: row 2: empty item id"),
    # ---- lines: every parser error names the right line and value
    Bad("lines", "too few fields on line 10 (separator sniffed)",
        text("r.tsv", "".join(f"{k}\t1\t3\n" for k in range(9)) + "9\t1\n" + "".join(f"{k}\t2\t3\n" for k in range(5))),
        r"r\.tsv:10: expected 3 fields, found 2"),
    Bad("lines", "too many fields on line 6", csv_with(6, "1,2,3,4"), r"r\.csv:6: expected 3 fields, found 4"),
    Bad("lines", "ml-100k u.data: too few fields on line 10", udata(10, "1\t2"),
        r"u\.data:10: expected 4 fields, found 2"),
    Bad("lines", "ml-1m ratings.dat: too few fields", dat_edition(2, "1::185::838983525"),
        r"ratings\.dat:2: expected 4 fields, found 3"),
    Bad("lines", "ml-100k u.data: bad timestamp on line 7", udata(7, "1\t2\t3\tyesterday"),
        r"u\.data:7: timestamp 'yesterday' is not an integer"),
    Bad("lines", "ml-100k u.data: a date as timestamp", udata(9, "1\t2\t3\t2020-01-01"),
        r"u\.data:9: timestamp '2020-01-01' is not an integer"),
    Bad("lines", "own file: bad timestamp on line 7",
        text("r.csv", "user,item,rating,timestamp\n" + "".join(f"{k},1,3,{1000 + k}\n" for k in range(5))
             + "9,1,3,abc\n" + "".join(f"{k},2,3,{1000 + k}\n" for k in range(5))),
        r"r\.csv:7: timestamp 'abc' is neither a number nor a date"),
    Bad("lines", "rating x", csv_with(3, "1,99,x"), r"r\.csv:3: rating 'x' is not a number"),
    Bad("lines", "rating empty", csv_with(14, "1,99,"), r"r\.csv:14: missing rating \(empty or NaN\)"),
    Bad("lines", "rating NaN", csv_with(15, "1,99,NaN"), r"r\.csv:15: missing rating \(empty or NaN\)"),
    Bad("lines", "rating inf", csv_with(16, "1,99,inf"), r"r\.csv:16: infinite rating"),
    Bad("lines", "rating -inf", csv_with(17, "1,99,-inf"), r"r\.csv:17: infinite rating"),
    Bad("lines", "rating too large for float32", csv_with(18, "1,99,1e39"), r"r\.csv:18: rating 1e39 is too large"),
    Bad("lines", "rating 'four' among numbers", csv_with(20, "1,99,four"), r"r\.csv:20: rating 'four' is not a number"),
    Bad("lines", "an unbalanced quote", csv_with(5, '"1,99,3'),
        r"r\.csv:5: a quote \(\"\) opens a field that runs on to line 41"),
    Bad("lines", "a 9 MB rating (a line pyarrow reads)", text("r.csv", _good_csv() + "1,2," + "9" * 9_000_000 + "\n"),
        r"r\.csv:42: infinite rating"),
    Bad("lines", "a 17 MB line (longer than two parse blocks)",
        text("r.csv", _good_csv() + "1,2," + "9" * 17_000_000 + "\n"),
        r"r\.csv:42: a line of 17,000,004 bytes, longer than the 8,388,608-byte blocks the file is parsed in"),
    Bad("lines", "CR-only line ends (old Mac files)", text("r.csv", "user,item,rating\r1,1,3\r1,2,4\r1,3\r"),
        r"r\.csv:4: expected 3 fields, found 2"),
    Bad("lines", "CRLF line ends", text("r.csv", "user,item,rating\r\n1,1,3\r\n1,2,4\r\n1,3,5\r\n1,4,x\r\n"),
        r"r\.csv:5: rating 'x' is not a number"),
    Bad("lines", "blank lines before the bad line", text("r.csv", "user,item,rating\n1,1,3\n\n\n1,2,4\n1,3,5\n1,4,x\n"),
        r"r\.csv:7: rating 'x' is not a number"),
    Bad("lines", "a BOM, then a bad line 2", text("r.csv", b"\xef\xbb\xbfuser,item,rating\n1,1,x\n"),
        r"r\.csv:2: rating 'x' is not a number"),
    Bad("lines", "gzip: a bad line", text("r.csv.gz", gzip.compress((_good_csv() + "1,99,x\n").encode())),
        r"r\.csv\.gz:42: rating 'x' is not a number"),
    Bad("lines", "bz2: too few fields", text("r.csv.bz2", bz2.compress(b"user,item,rating\n1,1,3\n2,1\n3,1,4\n")),
        r"r\.csv\.bz2:3: expected 3 fields, found 2"),
    Bad("lines", "a duplicate (user, item) pair", csv_with(5, "1,1,2"),
        r"r\.csv:5: duplicate rating of user 1 for item 1 \(first at line 2\)"),
    Bad("lines", "a header and nothing else", text("r.csv", "user,item,rating\n"), r"r\.csv: no ratings"),
    Bad("lines", "an empty file", text("r.csv", ""), r"r\.csv: empty file"),
    Bad("lines", "blank lines only", text("r.csv", "\n\n   \n\n"), r"r\.csv: empty file"),
    Bad("lines", "ml-latest-small: too few fields", csv_edition(4, "1,2,3"),
        r"ratings\.csv:4: expected 4 fields, found 3"),
    Bad("lines", "a comma line in a semicolon file", text("r.csv", "user;item;rating\n1;1;3\n1;2;4\n1,3,5\n1;4;2\n"),
        r"r\.csv:4: expected 3 fields, found 1"),
    # ---- columns and flags
    Bad("columns", "--user-col names no column", csv_with(2, "1,1,3", "--user-col", "nope", user_col="nope"),
        r"r\.csv: no column 'nope' \(the user column\); columns are: 'user', 'item', 'rating'"),
    Bad("columns", "--user-col past the last column", text("r.csv", "1,1,3\n2,1,4\n", "--user-col", "7", user_col=7),
        r"r\.csv: no column at position 7 \(the user column\); the file has 3 columns, positions 0\.\.2"),
    Bad("columns", "a header naming a column twice", text("r.csv", "user,user,item,rating\n1,2,1,3\n"),
        r"r\.csv: column 'user' appears 2 times"),
    Bad("columns", "one column for two roles",
        text("r.csv", "a,b,c\n1,1,3\n", "--user-col", "a", "--item-col", "a", "--rating-col", "c",
             user_col="a", item_col="a", rating_col="c"),
        r"r\.csv: column 'a' is given as the user and item column"),
    Bad("columns", "a header deepmf cannot read", text("r.csv", "a,b,c\n1,1,4\n"),
        r"r\.csv: cannot tell which column is the user/item/rating \(columns: 'a', 'b', 'c'\); pass --user-col"),
    Bad("columns", "no rating column", text("r.csv", "user,item\n1,1\n"), r"cannot tell which column is the rating"),
    Bad("columns", "--time-col names no column", csv_with(2, "1,1,3", "--time-col", "when", time_col="when"),
        r"no column 'when' \(the timestamp column\)"),
    Bad("columns", "--sep of a quote", csv_with(2, "1,1,3", "--sep", '"', sep='"'), r"cannot separate fields"),
    Bad("columns", "--sep empty", csv_with(2, "1,1,3", "--sep", "", sep=""),
        r"a separator is a non-empty string|--sep is empty"),
    Bad("columns", "--encoding unknown", csv_with(2, "1,1,3", "--encoding", "klingon", encoding="klingon"),
        r"unknown encoding 'klingon'"),
    Bad("columns", "--duplicates unknown", csv_with(2, "1,1,3", "--duplicates", "first", duplicates="first"),
        r"unknown duplicates policy 'first'"),
    Bad("columns", "column flags for an edition", udata(2, "1\t2\t3\t881250949"),
        r"--user-col apply to your own ratings files", command=("info", "--user-col", "u"), api=False),
    Bad("columns", "--encoding for an edition", udata(2, "1\t2\t3\t881250949"),
        r"--encoding apply to your own ratings files", command=("info", "--encoding", "latin-1"), api=False),
    # ---- files that are not rating files
    Bad("files", "no such file", special(lambda folder: folder / "missing.csv"),
        r"missing\.csv: no such file or folder"),
    Bad("files", "a named pipe", special(_fifo), r"ratings\.csv: not a regular file \(a pipe, socket or device\)"),
    Bad("files", "a device", special(lambda folder: os.devnull), r"/dev/null: not a regular file"),
    Bad("files", "a folder with no ratings", special(lambda folder: folder), r"not a MovieLens folder"),
    Bad("files", "a zip archive", text("r.csv", _zip_bytes()), r"r\.csv: is a zip archive"),
    Bad("files", "an xz file", text("r.csv.xz", b"\xfd7zXZ\x00" + bytes(40)), r"r\.csv\.xz: is xz-compressed"),
    Bad("files", "a zstd file", text("r.csv.zst", b"\x28\xb5\x2f\xfd" + bytes(40)), r"is zstd-compressed"),
    Bad("files", "a 7-Zip archive", text("r.7z", b"7z\xbc\xaf\x27\x1c" + bytes(40)), r"is a 7-Zip archive"),
    Bad("files", "an old Excel workbook", text("r.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(40)),
        r"r\.xls: is an old Office \(\.xls\) file"),
    Bad("files", "a truncated gzip file", text("r.csv.gz", gzip.compress(_good_csv().encode())[:60]),
        r"r\.csv\.gz: cannot read"),
    Bad("files", "an image", text("r.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)),
        r"r\.png:3: NUL byte: not a text ratings file"),
    Bad("files", "UTF-16 text", text("r.csv", _good_csv().encode("utf-16")), r"r\.csv: is UTF-16 text"),
    Bad("files", "parquet: string ratings", parquet({"user": [1, 2], "item": [1, 2], "rating": ["a", "b"]}),
        r"r\.parquet: row 1: rating 'a' is not a number"),
    Bad("files", "parquet: a NaN rating", parquet({"user": [1, 2], "item": [1, 2], "rating": [3.0, float("nan")]}),
        r"r\.parquet: row 2: missing rating"),
    Bad("files", "parquet: list ratings", parquet({"user": [1], "item": [1], "rating": [[3.0]]}),
        r"r\.parquet: the rating column holds list<\w+: double> values, not numbers"),
    Bad("files", "a CSV named .parquet", text("r.parquet", _good_csv()), r"r\.parquet: not a readable parquet file"),
    Bad("files", "a path too long", special(lambda folder: folder / ("x" * 300 + ".csv")),
        r"x+\.csv: cannot access \(File name too long\)"),
    Bad("files", "a loop of links", special(_link_loop),
        r"a\.csv: cannot access \(Too many levels of symbolic links\)"),
    Bad("files", "train --test of a folder with no ratings",
        special(_training_file, "--test", "."),
        r"not a MovieLens folder", command=_TRAIN, api=False),
]


def _ids(cases: list[Bad]) -> list[str]:
    return [f"{case.kind}: {case.name}" for case in cases]


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_bad_input_is_one_line_exit_2(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Bad) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths ("." for a folder) resolve in the case's own folder
    data, flags, _ = case.build(tmp_path)
    code, out, err = run(*case.command, data, *flags)
    assert code == 2, (out, err)
    assert out == ""
    line = _one_error_line(err)
    assert re.search(case.message, line), line


@pytest.mark.parametrize("case", [c for c in CASES if c.api], ids=_ids([c for c in CASES if c.api]))
def test_bad_input_is_a_typed_error_in_python(tmp_path: Path, case: Bad) -> None:
    data, _, kwargs = case.build(tmp_path)
    with pytest.raises(DeepMFError) as caught:
        load(data, **kwargs)
    assert isinstance(caught.value, (ValueError, OSError))
    assert "\n" not in str(caught.value)
    assert re.search(case.message, str(caught.value)), str(caught.value)


def test_malformed_line_500_of_the_real_ml100k(run, ml100k_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    lines = (ml100k_dir / "u.data").read_text().split("\n")
    lines[499] = "abc\t2\t3\t881250949"
    (folder / "u.data").write_text("\n".join(lines))
    code, _, err = run("info", folder)
    assert code == 2 and _one_error_line(err) == f"error: {folder}/u.data:500: user id 'abc' is not an integer"
    lines[499] = "\t".join([*lines[500].split("\t")[:2], "7", "881250949"])
    (folder / "u.data").write_text("\n".join(lines))
    with pytest.raises(DeepMFError, match=r"u\.data:500: rating 7 is outside the scale 1\.\.5"):
        load(folder)


# ---- inputs deepmf reads (each checked value by value) --------------------------------------------------------
@dataclass(frozen=True)
class Good:
    """An unusual but valid input: ``check(ratings)`` asserts what it must load as."""

    name: str
    build: Build
    check: Callable[[deepmf.Ratings], None]
    kind: str = "tolerated"


def _frame(r: deepmf.Ratings) -> list[tuple[Any, Any, float]]:
    frame = r.to_frame()
    return list(zip(frame["user"].tolist(), frame["item"].tolist(), frame["rating"].tolist(), strict=True))


def _utf16(folder: Path) -> Path:
    (folder / "r.csv").write_bytes("user,item,rating\nJosé,Café,4\nAnn,Café,3\n".encode("utf-16"))
    return folder / "r.csv"


GOOD: list[Good] = [
    Good("a BOM and CRLF line ends", text("r.csv", b"\xef\xbb\xbfuser,item,rating\r\n1,2,3\r\n1,3,4\r\n"),
         lambda r: _frame(r) == [(1, 2, 3.0), (1, 3, 4.0)]),
    Good("negative ids", text("r.csv", "user,item,rating\n-5,-1,3\n-5,0,4\n7,-1,5\n"),
         lambda r: _frame(r) == [(-5, -1, 3.0), (-5, 0, 4.0), (7, -1, 5.0)]),
    Good("ids written as 1.0", text("r.csv", "user,item,rating\n1.0,2.0,3\n1,3,4\n"),
         lambda r: _frame(r) == [(1, 2, 3.0), (1, 3, 4.0)] and r.user_ids.kind == "int"),
    Good("spaces around ids", text("r.csv", "user,item,rating\n ann ,x,3\nann, y ,4\n"),
         lambda r: r.user_ids.to_list() == ["ann"] and r.item_ids.to_list() == ["x", "y"]),
    Good("a quoted separator in an id", text("r.csv", 'user,item,rating\n"Smith, J.",1,3\nAnn,1,4\n'),
         lambda r: sorted(r.user_ids.to_list()) == ["Ann", "Smith, J."]),
    Good("one line, no header", text("r.csv", "1,2,3\n"), lambda r: _frame(r) == [(1, 2, 3.0)]),
    Good("gzip", text("r.csv.gz", gzip.compress(b"user,item,rating\n1,2,3\n")), lambda r: _frame(r) == [(1, 2, 3.0)]),
    Good("gzip without a .gz name", text("r.csv", gzip.compress(b"user,item,rating\n1,2,3\n")),
         lambda r: _frame(r) == [(1, 2, 3.0)]),
    Good("bz2", text("r.csv.bz2", bz2.compress(b"user,item,rating\n1,2,3\n")), lambda r: _frame(r) == [(1, 2, 3.0)]),
    Good("UTF-16 with --encoding utf-16", special(_utf16, "--encoding", "utf-16", encoding="utf-16"),
         lambda r: sorted(r.user_ids.to_list()) == ["Ann", "José"] and r.item_ids.to_list() == ["Café"]),
    Good("latin-1 with --encoding latin-1",
         text("r.csv", "user;item;rating\nJosé;Café;4\n".encode("latin-1"), "--encoding", "latin-1",
              encoding="latin-1"),
         lambda r: r.user_ids.to_list() == ["José"]),
    Good("parquet ratings as numeric text", parquet({"user": [1, 2], "item": [1, 2], "rating": ["3", "4.5"]}),
         lambda r: _frame(r) == [(1, 1, 3.0), (2, 2, 4.5)]),
    Good("parquet categorical ids", parquet({"user": pa.array(["a", "b"]).dictionary_encode(), "item": [1, 1],
                                            "rating": [3.0, 4.0]}),
         lambda r: r.user_ids.to_list() == ["a", "b"]),
    Good("a separator at each line end", text("r.csv", "user,item,rating,\n1,2,3,\n"),
        lambda r: _frame(r) == [(1, 2, 3.0)]),
    Good("ids past int32", text("r.csv", f"user,item,rating\n{2**40},1,3\n{-(2**40)},1,4\n"),
         lambda r: sorted(r.user_ids.to_list()) == [-(2**40), 2**40]),
    Good("an id of 2**63 - 1", text("r.csv", f"user,item,rating\n{2**63 - 1},1,3\n"),
         lambda r: r.user_ids.to_list() == [2**63 - 1]),
    Good("unix seconds and dates in one column",
        text("r.csv", "user,item,rating,time\n1,1,3,86400\n1,2,4,1970-01-03\n"),
         lambda r: r.timestamps.tolist() == [86400, 2 * 86400]),
]


@pytest.mark.parametrize("case", GOOD, ids=[f"{c.kind}: {c.name}" for c in GOOD])
def test_unusual_but_valid_input_loads_exactly(run, tmp_path: Path, case: Good) -> None:
    data, flags, kwargs = case.build(tmp_path)
    assert case.check(load(data, **kwargs))
    code, out, err = run("info", data, *flags, "--json")
    assert code == 0 and "Traceback" not in err, err
    assert json.loads(out)["n_ratings"] >= 1


# ---- an inferred scale: printed, and a warning when a few ratings lie far from the rest ------------------------
def _stars(n: int, extra: list[str]) -> str:
    rng = np.random.default_rng(1)
    lines = [f"{k % 97},{k // 97},{rng.integers(1, 6)}" for k in range(n)]
    return "user,item,rating\n" + "\n".join(lines + extra) + "\n"


WARNED = [
    ("a 7 among 1..5 stars", _stars(500, ["1000,1,7"]), r"1 rating \(7; first at line 502\) lies far outside the "
     r"other ratings \(1\.\.5\); the inferred scale 1\.\.7 by 1 includes it; declare the scale .*--scale 1,5"),
    ("a -3 among 1..5 stars", _stars(500, ["1000,1,-3"]), r"\(-3; first at line 502\) lies far outside"),
    ("a 50 among half stars", "user,item,rating\n" + "\n".join(f"{k % 97},{k // 97},{(k % 10 + 1) / 2:g}"
                                                               for k in range(500)) + "\n5,999,50\n",
     r"\(50; first at line 502\) lies far outside the other ratings \(0\.5\.\.5\)"),
    ("a 5.5 among whole stars", _stars(500, ["1000,1,5.5"]), r"\(5\.5; first at line 502\) lies off the step 1"),
    ("two 9s and a -4 among 1..5 stars", _stars(3000, ["1000,1,9", "1000,2,9", "1000,3,-4"]),
     r"3 ratings \(-4, 9; first at line 3002\) lie far outside the other ratings \(1\.\.5\)"),
]
QUIET = [
    ("ML-100K-like stars", _stars(500, [])),
    ("continuous ratings", "user,item,rating\n" + "\n".join(f"{k % 97},{k // 97},{1 + (k * 0.37) % 4:.4f}"
                                                            for k in range(500)) + "\n"),
    ("1..10 with rare 1s", _stars(2000, ["1000,1,1"]).replace(",5\n", ",10\n")),
    ("two values only", "user,item,rating\n" + "\n".join(f"{k % 97},{k // 97},{1 + 4 * (k % 2)}"
                                                         for k in range(500)) + "\n"),
]


@pytest.mark.parametrize(("name", "content", "message"), WARNED, ids=[w[0] for w in WARNED])
def test_a_few_far_ratings_are_warned_about(run, tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(content)
    with pytest.warns(DataWarning, match=message):
        r = load(path)
    assert r.meta["scale_source"] == "inferred" and re.search(message, r.meta["scale_warning"])
    code, out, err = run("info", path, "--json")
    assert code == 0
    (line,) = err.rstrip("\n").split("\n")
    assert line.startswith("warning: ") and re.search(message, line)
    scale = json.loads(out)["scale"]
    assert scale["source"] == "inferred" and scale["warning"] == r.meta["scale_warning"]
    assert (scale["min"], scale["max"]) == (float(r.ratings.min()), float(r.ratings.max()))


@pytest.mark.parametrize(("name", "content"), QUIET, ids=[q[0] for q in QUIET])
def test_ordinary_scales_give_no_warning(run, tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / "r.csv"
    path.write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        r = load(path)
    assert r.meta["scale_warning"] is None
    code, out, err = run("info", path)
    assert code == 0 and err == "" and "(inferred from the ratings)" in out


# ---- the real entry point, in a child process -------------------------------------------------------------
SUBPROCESS = [case for case in CASES if case.name in (
    "ml-100k u.data: user 'abc' on line 500", "a 17 MB line (longer than two parse blocks)")]


@pytest.mark.parametrize("case", SUBPROCESS, ids=_ids(SUBPROCESS))
def test_bad_input_through_the_installed_command(tmp_path: Path, case: Bad) -> None:
    data, flags, _ = case.build(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", "from deepmf.cli.app import main; main()", *case.command, data, *flags],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "80"},
    )
    assert child.returncode == 2 and child.stdout == ""
    assert re.search(case.message, _one_error_line(child.stderr))




# ---- the Python API: typed errors for wrong types and values ----------------------------------------------------
def _tiny() -> pd.DataFrame:
    return pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [1, 2, 1, 3, 2], "rating": [4.0, 3.0, 5.0, 2.0, 1.0]})


def _ratings() -> deepmf.Ratings:
    return load(_tiny())


def _ratings_with(**changes: Any) -> deepmf.Ratings:
    r = _ratings()
    arguments = {"users": r.users, "items": r.items, "ratings": r.ratings, "user_ids": r.user_ids,
                 "item_ids": r.item_ids, "scale": r.scale, **changes}
    return deepmf.Ratings(**arguments)


def _evaluate_on_sevens() -> Any:
    rec = deepmf.fit(_tiny(), epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        sevens = load(_tiny().assign(rating=[4.0, 3.0, 7.0, 2.0, 1.0]))
    return rec.evaluate(sevens)


@dataclass(frozen=True)
class Call:
    """A Python API call that must raise a typed error whose one line matches ``message``."""

    name: str
    call: Callable[[], Any]
    message: str
    kind: str = field(default="api")


API: list[Call] = [
    Call("load(123)", lambda: load(123), r"load\(\) takes an edition name, a path or a pandas DataFrame, not int"),
    Call("load(None)", lambda: load(None), r"not NoneType"),
    Call("load(bytes)", lambda: load(b"ratings.csv"), r"not bytes"),
    Call("load(a list)", lambda: load(["ratings.csv"]), r"not list"),
    Call("load(a path too long)", lambda: load("x/" * 3000), r"cannot access \(File name too long\)"),
    Call("load(a path holding NUL)", lambda: load("a\x00b.csv"), r"a path cannot hold a NUL character"),
    Call("load(data_dir=5)", lambda: load("ml-100k", data_dir=5), r"data_dir must be a path, not int"),
    Call("load(user_col=1.5)", lambda: load(_tiny(), user_col=1.5), r"the user column must be a name or a 0-based"),
    Call("load(sep=5)", lambda: load("r.csv", sep=5), r"a separator is a non-empty string|--sep is empty"),
    Call("load(scale=object())", lambda: load(_tiny(), scale=object()), r"a scale is MIN,MAX or MIN,MAX,STEP"),
    Call("load(duplicates=None)", lambda: load(_tiny(), duplicates=None), r"unknown duplicates policy None"),
    Call("load(encoding=5)", lambda: load("r.csv", encoding=5), r"encoding must be a codec name"),
    Call("load(DataFrame, sep=',')", lambda: load(_tiny(), sep=","), r"sep and encoding apply to files"),
    Call("load(DataFrame) with a NaN rating", lambda: load(_tiny().assign(rating=[4.0, np.nan, 5, 2, 1])),
         r"^DataFrame row 1: missing rating \(empty or NaN\)$"),
    Call("load(DataFrame) with an infinite rating", lambda: load(_tiny().assign(rating=[4.0, 3, np.inf, 2, 1])),
         r"^DataFrame row 2: infinite rating$"),
    Call("load(DataFrame) with a NaN user", lambda: load(_tiny().assign(user=[1, 1, np.nan, 2, 3])),
         r"^DataFrame row 2: empty user id$"),
    Call("load(DataFrame) with a duplicate pair", lambda: load(_tiny().assign(item=[1, 1, 1, 3, 2])),
         r"^DataFrame row 1: duplicate rating of user 1 for item 1 \(first at row 0\); choose duplicates='last'"),
    Call("load(DataFrame) with a labelled index", lambda: load(_tiny().assign(rating=[4.0, np.nan, 5, 2, 1])
                                                          .set_axis(list("abcde"))),
         r"^DataFrame row 1 \(index 'b'\): missing rating"),
    Call("load(DataFrame) whose columns deepmf cannot tell",
         lambda: load(_tiny().rename(columns={"user": "a", "item": "b", "rating": "c"})),
         r"^DataFrame: cannot tell which column is the user/item/rating \(columns: 'a', 'b', 'c'\); "
         r"pass user_col=\.\.\., item_col=\.\.\., rating_col=\.\.\.$"),
    Call("load(DataFrame, user_col='nope')", lambda: load(_tiny(), user_col="nope"), r"no column 'nope'"),
    Call("load(DataFrame, scale=(1, 5)) with a 7", lambda: load(_tiny().assign(rating=[4.0, 3, 7, 2, 1]), scale=(1, 5)),
         r"^DataFrame row 2: rating 7 is outside the scale 1\.\.5$"),
    Call("load(empty DataFrame)", lambda: load(_tiny().iloc[:0]), r"^DataFrame: no ratings$"),
    Call("load(DataFrame with two column levels)",
         lambda: load(pd.DataFrame([[1, 1, 3.0]], columns=pd.MultiIndex.from_tuples([("a", "user"), ("a", "item"),
                                                                                      ("a", "rating")]))),
         r"columns with several levels"),
    Call("Ratings.from_frame with NaN",
         lambda: deepmf.Ratings.from_frame(_tiny().assign(rating=[4.0, np.nan, 5, 2, 1])),
         r"^DataFrame row 1: missing rating"),
    Call("Ratings.from_frame with a duplicate pair", lambda: deepmf.Ratings.from_frame(pd.concat([_tiny(), _tiny()])),
         r"duplicate rating of user 1 for item 1"),
    Call("Ratings.from_frame widening a declared scale",
         lambda: deepmf.Ratings.from_frame(_tiny().assign(rating=[4.0, 3, 7, 2, 1]), scale=deepmf.RatingScale(1, 5, 1)),
         r"^DataFrame row 2: rating 7 is outside the scale 1\.\.5$"),
    Call("Ratings.from_frame(a list)", lambda: deepmf.Ratings.from_frame([1, 2, 3]),
        r"expected a pandas DataFrame, got list"),
    Call("Ratings.from_frame with a missing column", lambda: deepmf.Ratings.from_frame(_tiny(), user_col="u"),
         r"no column 'u' \(the user column\)"),
    Call("Ratings with an index past its id map", lambda: _ratings_with(users=np.array([0, 0, 1, 1, 9])),
         r"user indices must lie in 0\.\.2"),
    Call("Ratings with float indices", lambda: _ratings_with(items=np.array([0.5, 0, 1, 1, 2])),
         r"Ratings\.items must be a 1-D array of int32 values"),
    Call("Ratings without id maps", lambda: _ratings_with(user_ids=None), r"Ratings needs IdMap user_ids"),
    Call("Ratings with a scale of the wrong type", lambda: _ratings_with(scale=(1, 5)), r"Ratings needs a RatingScale"),
    Call("split(Ratings, 5)", lambda: deepmf.split(_ratings(), 5), r"a split is named by a string"),
    Call("split(Ratings, None)", lambda: deepmf.split(_ratings(), None), r"a split is named by a string"),
    Call("split(seed=-1)", lambda: deepmf.split(_ratings(), "random:0.2", seed=-1),
        r"a seed is an integer from 0 to 4294967295, not -1"),
    Call("split(seed='a')", lambda: deepmf.split(_ratings(), "random:0.2", seed="a"), r"not 'a'"),
    Call("split(123)", lambda: deepmf.split(123), r"expected Ratings \(from deepmf\.load\)"),
    Call("split('kfold:5')", lambda: deepmf.split(_ratings(), "kfold:2"), r"gives 2 splits"),
    Call("split('bogus')", lambda: deepmf.split(_ratings(), "bogus"), r"unknown split 'bogus'"),
    Call("fit(None)", lambda: deepmf.fit(None), r"expected Ratings \(from deepmf\.load\)"),
    Call("fit(a DataFrame deepmf cannot read)", lambda: deepmf.fit(_tiny().rename(columns={"user": "who"})),
         r"DataFrame: cannot tell which column is the user"),
    Call("Recommender.evaluate on ratings outside the model's scale", _evaluate_on_sevens,
         r"^DataFrame: row 3: rating 7 is outside the model's scale 1\.\.5$"),
]


@pytest.mark.parametrize("case", API, ids=[f"api: {c.name}" for c in API])
def test_python_api_raises_typed_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Call) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.csv").write_text(_good_csv())
    with pytest.raises(DeepMFError) as caught:
        case.call()
    assert isinstance(caught.value, (ValueError, OSError))
    assert "\n" not in str(caught.value)
    assert re.search(case.message, str(caught.value)), str(caught.value)


def test_dataframes_are_first_class() -> None:
    frame = pd.DataFrame({"customer": ["b", "a", "a"], "product": [7, 7, 9], "stars": [4, 5, 3], "when": [30, 10, 20]})
    r = load(frame, user_col="customer", item_col="product", rating_col="stars", time_col="when")
    assert r.user_ids.to_list() == ["a", "b"] and r.item_ids.to_list() == [7, 9]
    assert _frame(r) == [("b", 7, 4.0), ("a", 7, 5.0), ("a", 9, 3.0)] and r.timestamps.tolist() == [30, 10, 20]
    assert r.meta["scale_source"] == "inferred" and r.name == "DataFrame"
    aliased = load(frame.rename(columns={"customer": "userId", "product": "movieId", "stars": "rating"}))
    assert _frame(aliased) == _frame(r) and aliased.timestamps is None
    assert load(frame.iloc[[0, 1, 2, 1]], user_col="customer", item_col="product", rating_col="stars",
                duplicates="mean").ratings.tolist() == [4.0, 5.0, 3.0]
    rec = deepmf.fit(_tiny(), epochs=2, seed=0)
    assert rec.n_users == 3 and rec.scale == deepmf.RatingScale(1.0, 5.0, 1.0)
    assert len(deepmf.split(_tiny(), "random:0.4").test) == 2


# ---- the README's counts ------------------------------------------------------------------------------------
CLASS_LABELS = {"scale": "rating scales", "ids": "ids", "lines": "lines", "columns": "columns and flags",
                "files": "files that are not rating files"}


def readme_counts() -> list[str]:
    """The phrases of the README's "Reliability" bullets that carry this suite's counts."""
    from test_fuzz import FUZZ_EXAMPLES, TABLE_EXAMPLES

    kinds = list(dict.fromkeys(case.kind for case in CASES))
    breakdown = ", ".join(f"{CLASS_LABELS[k]} ({sum(c.kind == k for c in CASES)})" for k in kinds)
    return [
        f"**{len(CASES)} bad inputs** in {len(kinds)} classes",
        breakdown,
        f"{len(SUBPROCESS)} of them",
        f"**{len(API)} Python API calls**",
        f"**{len(GOOD)} unusual but valid inputs**",
        f"**{len(WARNED) + len(QUIET)} inferred scales**: {len(WARNED)} with",
        f"{len(QUIET)} ordinary ones",
        f"{FUZZ_EXAMPLES} generated lines",
        f"{TABLE_EXAMPLES} random tables",
    ]


def test_readme_counts_the_cases() -> None:
    readme = " ".join(README.read_text(encoding="utf-8").split())  # line breaks folded to spaces
    for phrase in readme_counts():
        assert phrase in readme, phrase


# The table's rows, in order, and the files whose cases each counts.
TABLE_FILES = (("test_adv_folders.py",), ("test_adv_crash_swap.py", "test_adv_crash_train.py"),
               ("test_adv_os_errors.py",), ("test_adv_model_files.py",), ("test_adv_bounded.py",),
               ("test_adv_api.py",), ("test_adv_environment.py",))


def test_readme_counts_the_adversarial_cases() -> None:
    here = Path(__file__).parent
    files = sorted(p.name for p in here.glob("test_adv_*.py"))
    assert sorted(name for row in TABLE_FILES for name in row) == files  # every file has its row
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                *files], cwd=here, capture_output=True, text=True, check=True).stdout
    tests = [line.split("::")[0] for line in collected.splitlines() if "::" in line]
    per_file = {name: sum(Path(path).name == name for path in tests) for name in files}
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("## Reliability"):readme.index("Bad input, generated by the shipped")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| class")]
    counts = [int(re.match(r"\s*(\d+)", row.split(" | ")[1]).group(1)) for row in rows]
    assert counts == [sum(per_file[name] for name in row) for row in TABLE_FILES]
    assert f"**{sum(per_file.values())} cases**" in readme
