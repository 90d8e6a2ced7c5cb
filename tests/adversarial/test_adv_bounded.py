"""Bounded work: huge counts, huge models and hostile archives are clamped or refused before the work is done.

Archives are served from ``file://`` URLs (the downloader takes any http(s) or file base URL), so no server
is needed; the limits are lowered with monkeypatch where a real archive past them would take gigabytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _checks import FAST, assert_one_line_exit_2

import deepmf.memory
from deepmf.data import download as downloader
from deepmf.data.movielens import EDITIONS
from deepmf.errors import DownloadError

U_DATA = "1\t10\t4\t881250949\n2\t10\t3\t881250950\n2\t11\t5\t881250951\n"
BIG = 10_000_000_000


# ---- counts --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["recommend", "similar"])
def test_a_huge_n_is_clamped_to_the_catalogue(run, model_dir: Path, trained, command: str) -> None:
    subject = "1" if command == "recommend" else str(trained.item_ids.raw(np.array([0]))[0])
    code, out, err = run(command, model_dir, subject, "-n", str(BIG), "--json")
    assert code == 0, err
    rows = json.loads(out)["items" if command == "recommend" else "similar"]
    assert 0 < len(rows) <= trained.n_items


def test_huge_counts_in_the_python_api_stay_bounded(trained) -> None:
    users = trained.user_ids.raw(np.arange(3))
    assert len(trained.recommend_many(users, n=BIG)) <= 3 * trained.n_items
    items = trained.item_ids.raw(np.array([0]))
    assert len(trained.similar_items(items[0], n=BIG)) < trained.n_items


def test_a_huge_k_in_evaluation_divides_by_k_without_allocating_it(trained, ratings_csv: Path) -> None:
    import deepmf

    data = deepmf.load(str(ratings_csv))
    huge, whole = trained.evaluate(data, k=BIG).metrics, trained.evaluate(data, k=trained.n_items).metrics
    assert huge["recall"] == whole["recall"] and huge["hit_rate"] == whole["hit_rate"]  # the same lists
    assert huge["precision"] == pytest.approx(whole["precision"] * trained.n_items / BIG)


# ---- models that do not fit --------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [
    ("--factors", "1000000000"),
    ("--model", "deepmf", "--user-dim", "1000000", "--item-dim", "1000000", "--layers", "1000000,1000000"),
    ("--model", "neumf", "--factors", "100000000"),
], ids=["mf factors", "deepmf widths", "neumf factors"])
def test_a_model_too_big_for_memory_is_refused_before_allocating(run, ratings_csv: Path, tmp_path: Path,
                                                                 flags: tuple[str, ...]) -> None:
    args = [a for a in FAST if a not in ("--factors", "3")]
    line = assert_one_line_exit_2(run("train", ratings_csv, *flags, "--out", tmp_path / "m", *args),
                                  "needs at least", "of memory", "refused before allocating")
    assert "GB" in line or "TB" in line or "PB" in line
    assert not (tmp_path / "m" / "model.json").exists()


def test_a_model_folder_too_big_for_memory_is_refused_before_reading(run, model_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deepmf.memory, "available_bytes", lambda device="cpu": 1000)
    assert_one_line_exit_2(run("recommend", model_dir, "1"), "needs about", "of memory")


# ---- archives ------------------------------------------------------------------------------------------------
def _zip(members: dict[str, bytes | str], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _serve(tmp_path: Path, body: bytes, known: bool = False) -> tuple[str, object]:
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    (served / "ml-100k.zip").write_bytes(body)
    edition = dataclasses.replace(EDITIONS["ml-100k"], md5=None, sha256=hashlib.sha256(body).hexdigest() if known
                                  else None, size=len(body) if known else None)
    return served.as_uri(), edition


def _fetch(tmp_path: Path, body: bytes, **limits: int) -> tuple[Path, pytest.ExceptionInfo]:
    base, edition = _serve(tmp_path, body)
    root = tmp_path / "data"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in limits.items():
            patch.setattr(downloader, name, value)
        with pytest.raises(DownloadError) as info:
            downloader.fetch_edition(edition, root, url_base=base)
    assert "\n" not in str(info.value)
    return root, info


def _nothing_extracted(root: Path) -> None:
    assert not root.exists() or list(root.iterdir()) == []


def test_a_zip_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    bomb = _zip({"ml-100k/u.data": U_DATA, "ml-100k/padding.txt": b"\0" * (8 << 20)})
    assert len(bomb) < 100_000  # 8 MB of zeros in a few kilobytes
    root, info = _fetch(tmp_path, bomb)
    assert info.match("expands .* times")
    _nothing_extracted(root)


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    members = {"ml-100k/u.data": U_DATA, **{f"ml-100k/f{i}.txt": "x" for i in range(1_001)}}
    root, info = _fetch(tmp_path, _zip(members))
    assert info.match("members, more than")
    _nothing_extracted(root)


def test_an_archive_expanding_past_the_total_limit_is_refused(tmp_path: Path) -> None:
    root, info = _fetch(tmp_path, _zip({"ml-100k/u.data": U_DATA * 100}), MAX_EXTRACTED_BYTES=1000)
    assert info.match("expands to .* more than")
    _nothing_extracted(root)


def test_an_archive_larger_than_the_free_disk_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 10, 10))
    root, info = _fetch(tmp_path, _zip({"ml-100k/u.data": U_DATA}))
    assert info.match("only 10 B is free")
    _nothing_extracted(root)


def test_a_member_lying_about_its_size_is_refused(tmp_path: Path) -> None:
    body = bytearray(_zip({"ml-100k/u.data": U_DATA * 50}))
    declared = len(U_DATA * 50).to_bytes(4, "little")
    at = body.find(declared)
    while at != -1:  # the local header and the central directory both declare the size: declare less
        body[at:at + 4] = (100).to_bytes(4, "little")
        at = body.find(declared, at + 4)
    root, info = _fetch(tmp_path, bytes(body))
    assert info.match("not a valid zip|more than the")
    _nothing_extracted(root)


@pytest.mark.parametrize("member", ["/etc/evil", "ml-100k/../../evil", "C:\\evil", "ml-100k/..\\..\\evil"])
def test_members_escaping_the_edition_folder_are_refused(tmp_path: Path, member: str) -> None:
    root, _ = _fetch(tmp_path, _zip({"ml-100k/u.data": U_DATA, member: "pwned"}))
    _nothing_extracted(root)
    assert not (tmp_path / "evil").exists()


def test_a_member_appearing_twice_is_refused(tmp_path: Path) -> None:
    # The last copy was extracted in silence: which copy lands depends on the tool, a way past a review.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("ml-100k/u.data", U_DATA)
        archive.writestr("ml-100k/u.data", U_DATA.replace("\t4\t", "\t9\t"))
    root, info = _fetch(tmp_path, buffer.getvalue())
    assert info.match("'ml-100k/u.data' appears twice")
    _nothing_extracted(root)


@pytest.mark.parametrize("member", ["ml-100k/.deepmf", "ml-100k/sub/.deepmf"])
def test_a_member_named_like_deepmfs_marker_is_refused(tmp_path: Path, member: str) -> None:
    # It collided with the temp folder's own marker ("File exists" naming the data folder), or, below it,
    # would make an extracted folder pass for one deepmf may remove.
    root, info = _fetch(tmp_path, _zip({"ml-100k/u.data": U_DATA, member: "x"}))
    assert info.match("named like deepmf's marker")
    _nothing_extracted(root)


def test_a_symlink_member_is_refused(tmp_path: Path) -> None:
    root, info = _fetch(tmp_path, _zip({"ml-100k/u.data": U_DATA}, links=("ml-100k/u.item",)))
    assert info.match("link")
    _nothing_extracted(root)


def test_a_download_larger_than_the_known_size_is_stopped(tmp_path: Path) -> None:
    base, edition = _serve(tmp_path, _zip({"ml-100k/u.data": U_DATA}), known=True)
    (tmp_path / "served" / "ml-100k.zip").write_bytes(b"x" * 10_000_000)  # not what was announced
    with pytest.raises(DownloadError, match="larger than"):
        downloader.fetch_edition(edition, tmp_path / "data", url_base=base)
    assert [p.name for p in (tmp_path / "data").iterdir()] == []


def test_a_download_of_unknown_size_past_the_cap_is_stopped(tmp_path: Path) -> None:
    root, info = _fetch(tmp_path, b"y" * 5000, MAX_DOWNLOAD_BYTES=1000)
    assert info.match("larger than")
    _nothing_extracted(root)


@pytest.mark.parametrize("url", ["ftp://example.org/ml", "not a url", "http://", "http://[::1", "javascript:x",
                                 "https:///no-host"])
def test_a_malformed_download_url_is_one_line(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              url: str) -> None:
    monkeypatch.setenv("DEEPMF_DOWNLOAD_URL", url)
    assert_one_line_exit_2(run("download", "ml-100k", "--dir", tmp_path / "data", "--force"),
                           "malformed download URL")
    _nothing_extracted(tmp_path / "data")


def test_force_download_never_deletes_a_users_file_in_the_edition_folder(tmp_path: Path, unchanged) -> None:
    body = _zip({"ml-100k/u.data": U_DATA})
    base, edition = _serve(tmp_path, body)
    root = tmp_path / "data"
    downloader.fetch_edition(edition, root, url_base=base)
    (root / "ml-100k" / "my_analysis.ipynb").write_text("{}")
    check = unchanged(root)
    with pytest.raises(DownloadError, match=r"my_analysis\.ipynb, which is not part of"):
        downloader.fetch_edition(edition, root, url_base=base, force=True)
    check()


def test_force_download_replaces_an_edition_folder_holding_only_its_files(tmp_path: Path) -> None:
    body = _zip({"ml-100k/u.data": U_DATA})
    base, edition = _serve(tmp_path, body)
    root = tmp_path / "data"
    downloader.fetch_edition(edition, root, url_base=base)
    (root / "ml-100k" / "u.data").write_text("edited")
    downloader.fetch_edition(edition, root, url_base=base, force=True)
    assert (root / "ml-100k" / "u.data").read_text() == U_DATA
    assert sorted(p.name for p in root.iterdir()) == ["ml-100k"]
