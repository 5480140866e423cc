"""tpetune.errors: one front end's words for the library's, and OS errors as one line."""

from __future__ import annotations

import errno

import pytest

from tpetune.errors import (
    ConfigError,
    NotWritableError,
    StorageFullError,
    StudyInUseError,
    from_os_error,
    in_words,
    reworded,
)

WORDS = (("Search(seed=...)", "random_state"), ("fresh=True", "another study_dir"))


def test_reworded_replaces_every_pair_in_order() -> None:
    message = "Search(seed=...) differs from the study's; use fresh=True"
    expected = "random_state differs from the study's; use another study_dir"
    assert reworded(message, WORDS) == expected
    assert reworded("nothing to say", WORDS) == "nothing to say"
    # Order matters: the longer phrase first, or the shorter one eats it.
    longer_first = [("use fresh=True", "A"), ("fresh=True", "B")]
    assert reworded("use fresh=True or X", longer_first) == "A or X"


def test_in_words_keeps_the_error_type_and_adds_the_prefix() -> None:
    expected = r"^front: random_state is taken$"
    with pytest.raises(StudyInUseError, match=expected) as caught, in_words(WORDS, "front: "):
        raise StudyInUseError("Search(seed=...) is taken")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert caught.value.exit_code == StudyInUseError.exit_code


def test_in_words_keeps_the_cause_and_leaves_an_unreworded_error_as_it_was() -> None:
    cause = OSError("disk")
    with pytest.raises(StudyInUseError) as caught, in_words(WORDS):
        raise StudyInUseError("Search(seed=...) is taken") from cause
    assert caught.value.__cause__ is cause and str(caught.value) == "random_state is taken"
    original = StudyInUseError("nothing to reword")
    with pytest.raises(StudyInUseError) as same, in_words(WORDS):
        raise original
    assert same.value is original


def test_in_words_leaves_other_exceptions_alone() -> None:
    with pytest.raises(ValueError, match=r"^Search\(seed=\.\.\.\)$"), in_words(WORDS):
        raise ValueError("Search(seed=...)")
    with in_words(WORDS):  # nothing raised: nothing to do
        pass


def test_os_errors_become_one_line_with_the_fix() -> None:
    full = from_os_error(OSError(errno.ENOSPC, "No space left on device"), "runs/x", "write plots")
    assert isinstance(full, StorageFullError) and "free space" in str(full)
    denied = from_os_error(OSError(errno.EACCES, "Permission denied", "runs/x/a"), "runs/x", "x")
    assert isinstance(denied, NotWritableError) and "not writable" in str(denied)
    folder = from_os_error(IsADirectoryError(errno.EISDIR, "Is a directory", "out"), "d", "export")
    assert isinstance(folder, NotWritableError)
    assert "out is a folder; give a file path" in str(folder)
    other = OSError(errno.EIO, "I/O error")
    assert from_os_error(other, "d", "x") is other  # not one of ours: the caller re-raises it
    assert not isinstance(other, ConfigError)
