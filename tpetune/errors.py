"""The one exception tree of tpetune.

Every error a user can cause is a :class:`TpetuneError`; the CLI prints its message on one
line and exits with its ``exit_code`` (2 for bad input, 1 for a failed search). Anything
else escaping is a bug.

TpetuneError
├── SpaceError          a space file that is missing, broken or rejected by hyperopt
├── ObjectiveError      an objective file or return value that breaks the contract
├── DataError           input data that cannot be used (missing columns, gaps, too short)
├── StoreError          a study folder that cannot be opened, or is not a tpetune study
│   ├── SpaceMismatchError  resuming a study with a changed space
│   ├── StudyInUseError     another process drives the study
│   ├── StoreDamagedError   study.db is damaged; nothing is written to it
│   ├── NotWritableError    a writer was pointed at a folder it cannot write (or a path that
│   │                       is not a folder)
│   └── StorageFullError    the disk is full or a file-size limit was hit (exit code 1)
├── ConfigError         bad options (non-positive max_evals, unknown algo, ...)
├── MissingDependencyError  an optional extra that is not installed
├── ExecutorError       trials cannot run where asked (workers die at start, Spark executors
│                       cannot import tpetune or the objective)
└── SearchFailedError   too many consecutive failed trials (exit code 1)
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterable, Iterator
from pathlib import Path


class TpetuneError(Exception):
    """Root of all errors tpetune raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code: int = 2


class SpaceError(TpetuneError):
    """A search space file cannot be loaded or hyperopt rejects the space."""


class ObjectiveError(TpetuneError):
    """The objective is missing or returned something that is not a loss."""


class DataError(TpetuneError):
    """Input data is unusable; the message names the problem and the fix."""


class StoreError(TpetuneError):
    """A study folder is unreadable, foreign, or from an incompatible schema."""


class SpaceMismatchError(StoreError):
    """The study was created with a different search space than the one given now."""


class StudyInUseError(StoreError):
    """Another live process holds the study's lock."""


class ConfigError(TpetuneError):
    """An option has a value tpetune cannot work with."""


class MissingDependencyError(TpetuneError):
    """An optional dependency needed for the requested feature is not installed."""


class SearchFailedError(TpetuneError):
    """The search stopped because too many consecutive trials failed."""

    exit_code = 1


class ExecutorError(TpetuneError):
    """Trials cannot run where asked; the message says what to install or fix where."""


class StoreDamagedError(StoreError):
    """The study database is damaged; the message says what can be recovered and how."""


class NotWritableError(StoreError):
    """A folder to write into is not writable, or the path is not a folder."""


class StorageFullError(StoreError):
    """A write failed for lack of space (or a file-size limit); what is committed is kept."""

    exit_code = 1


class StoreBusyError(StoreError):
    """Another program held the study database's write lock too long; what is committed is
    kept and the same command resumes."""


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def from_os_error(exc: OSError, folder: str | Path, action: str) -> TpetuneError | OSError:
    """The one-line tpetune error for an ``OSError`` met while ``action`` in ``folder``
    (``exc`` itself when it is none of: full disk, permission, read-only file system, a path
    that is a file, a file path that is a folder, a folder that does not exist).

    ``action`` completes "could not ...", e.g. ``"write plots"``.
    """
    where = Path(exc.filename) if exc.filename else Path(folder)
    if exc.errno in _FULL:
        return StorageFullError(
            f"could not {action} in {folder}: {exc.strerror}. What was written before is "
            "kept; free space (or raise the file-size limit) and run the same command again"
        )
    if exc.errno in _DENIED:
        return NotWritableError(
            f"study folder {folder} is not writable ({exc.strerror}: {where}): fix its "
            "permissions, write elsewhere (plot --out DIR, export -o FILE), or copy the study "
            "to a folder you can write; reading a study needs no write access"
        )
    if exc.errno == errno.EISDIR:
        return NotWritableError(f"could not {action}: {where} is a folder; give a file path")
    if exc.errno == errno.ENOENT:
        return NotWritableError(
            f"could not {action} in {folder}: {exc.strerror} ({where}); create the folder "
            "first or write elsewhere"
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        while not where.exists() and where != where.parent:  # name the file in the way
            where = where.parent
        return NotWritableError(
            f"could not {action} in {folder}: {where} is a file, not a folder; give a folder path"
        )
    return exc


#: A front end's vocabulary: (the library's words, the front end's words) pairs, applied in
#: order, so a longer phrase must come before a shorter one it contains.
Words = Iterable[tuple[str, str]]


def reworded(message: str, words: Words) -> str:
    """``message`` in a front end's words: the library names its own arguments
    (``Search(seed=...)``, ``fresh=True``); the CLI, ``tpetune.fmin`` and ``TPESearchCV`` each
    say what their user types instead (``--seed``, ``rstate``, ``random_state``)."""
    for theirs, ours in words:
        message = message.replace(theirs, ours)
    return message


@contextlib.contextmanager
def in_words(words: Words, prefix: str = "") -> Iterator[None]:
    """Re-raise a :class:`TpetuneError` from the block as the same type, its message
    :func:`reworded` and after ``prefix``, with the original's cause (a SQLite error, say);
    one with nothing to reword goes on unchanged."""
    try:
        yield
    except TpetuneError as exc:
        message = prefix + reworded(str(exc), words)
        if message == str(exc):
            raise
        raise type(exc)(message) from exc.__cause__
