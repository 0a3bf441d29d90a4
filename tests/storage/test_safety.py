"""No mistake costs data: overwrite replaces only a lie-sweep store, and never at a dangerous path."""

import os
from pathlib import Path

import fsspec
import pytest

from storage.errors import StoreError, StoreExistsError, brief
from storage.safety import refuse_unsafe_path

from .stores import make_store


def test_overwrite_never_deletes_a_directory_that_is_not_a_store(tmp_path):
    p = tmp_path / "p"
    (p / "sub").mkdir(parents=True)
    (p / "notes.txt").write_text("keep")
    (p / "sub" / "data.csv").write_text("1,2")
    for overwrite in (False, True):
        with pytest.raises(StoreExistsError) as info:
            make_store(p, overwrite=overwrite)
        assert "not a lie-sweep store" in str(info.value) and "\n" not in str(info.value)
    assert (p / "notes.txt").read_text() == "keep" and (p / "sub" / "data.csv").read_text() == "1,2"
    assert sorted(os.listdir(p)) == ["notes.txt", "sub"]                  # nothing created either


def test_overwrite_replaces_a_store_but_not_files_a_user_put_in_it(tmp_path):
    make_store(tmp_path / "s")
    make_store(tmp_path / "s", overwrite=True)                              # a store is replaced
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(StoreExistsError, match="files lie-sweep did not write"):
        make_store(tmp_path / "s", overwrite=True)
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"


def test_an_empty_directory_is_taken_and_an_unfinished_store_replaced(tmp_path):
    (tmp_path / "e").mkdir()
    make_store(tmp_path / "e")
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "lie-sweep.json").write_text('{"format": "lie-sweep", "schema_version": 3}')  # creation killed
    with pytest.raises(StoreExistsError):
        make_store(tmp_path / "u")
    make_store(tmp_path / "u", overwrite=True)


def test_object_stores_get_the_same_protection():
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/p/notes.txt", b"keep")
    with pytest.raises(StoreExistsError, match="not a lie-sweep store"):
        make_store("memory://bucket/p", overwrite=True)
    assert fs.cat("/bucket/p/notes.txt") == b"keep"
    make_store("memory://bucket/s")
    make_store("memory://bucket/s", overwrite=True)
    with pytest.raises(StoreError, match="root of memory://bucket"):
        make_store("memory://bucket", overwrite=True)


@pytest.mark.parametrize("path, found", [("", "empty path"), (".", "current directory"), ("./", "current directory"),
                                         ("/", "filesystem root"), ("~", "home directory"),
                                         ("..", "containing the current directory")])
def test_dangerous_paths_are_refused_in_one_line(path, found, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError) as info:
        refuse_unsafe_path(path)
    assert found in str(info.value) and "\n" not in str(info.value) and "overwrite=true" not in str(info.value)


def test_a_directory_holding_the_checkpoints_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ck = tmp_path / "out" / "ck" / "step_1.pt"
    with pytest.raises(StoreError, match="containing the sweep's checkpoints"):
        refuse_unsafe_path("out", [ck])
    with pytest.raises(StoreError, match="containing the sweep's checkpoints"):
        refuse_unsafe_path(str(tmp_path / "out" / "ck"), [tmp_path / "out" / "ck"])
    refuse_unsafe_path("out/sweep", [ck])                                   # beside them is fine
    refuse_unsafe_path(str(Path("out") / "ck" / "sweep"), [ck])             # and inside their folder too


def test_long_lists_are_brief_in_messages():
    assert brief(list(range(32))) == "0..31 (32 values)"
    assert brief([3, 8, 21]) == "3, 8, 21"
    assert brief(list(range(0, 64, 2))) == "0, 2, 4, 6, 8, … (32 values)"


def test_a_store_path_is_judged_by_what_it_resolves_to(tmp_path):
    """issue 30: a path through a missing folder (`missing/..`), a symlink or a file:// URL is the store or the
    folder it resolves to, for the existence, ownership and overwrite checks alike."""
    from storage.location import normalise_store_path

    make_store(tmp_path / "s")
    (tmp_path / "link").symlink_to(tmp_path / "s")
    for spelling in (f"{tmp_path}/missing/../s", f"{tmp_path}/link", f"file://{tmp_path}/missing/../s",
                     f"{tmp_path}//s/"):
        assert normalise_store_path(spelling) == str((tmp_path / "s").resolve())
        with pytest.raises(StoreExistsError, match="already holds a sweep store"):
            make_store(spelling)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "a.txt").write_text("keep")
    with pytest.raises(StoreExistsError, match="not a lie-sweep store"):
        make_store(f"{tmp_path}/missing/../theirs", overwrite=True)
    assert os.listdir(tmp_path / "theirs") == ["a.txt"] and not (tmp_path / "missing").exists()
    assert normalise_store_path("memory://bucket//a/./b/../c/") == "memory://bucket/a/c"
    with pytest.raises(StoreError, match="climbs out of its bucket"):
        normalise_store_path("s3://bucket/../../other/x")
    assert normalise_store_path("") == "" and normalise_store_path("~/x") == os.path.realpath(os.path.expanduser("~/x"))
