"""The study lock: one driver per study folder, a lock that dies with its process.

``STUDY/lock`` is held with ``flock`` by the process driving the study (the pid it writes is
for people and messages only). Readers never take it; ``show`` asks
:meth:`StudyLock.is_held_elsewhere`. The file is removed on a clean release, so a study left
cleanly holds no stale pid.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

from tpetune.errors import StudyInUseError, from_os_error

LOCK_NAME = "lock"

__all__ = ["LOCK_NAME", "StudyLock"]


class StudyLock:
    """An OS file lock on the study folder that dies with its process (``flock``).

    The ``lock`` file (holding the pid) is removed on :meth:`release`, while still locked, so
    a study left cleanly has no stale pid in it. A process that opened the file just before
    it was removed locks a file no longer at that path: :meth:`acquire` sees that (another
    inode at the path, or none) and tries again on the new one.

    A ``flock`` belongs to the open file, which a ``fork`` shares: a child the objective
    forks (a fork-mode ``multiprocessing.Pool``, a data loader, ``os.fork``) would keep the
    study locked after the driver dies. So each forked child closes its copies at once
    (``os.register_at_fork``); ``exec`` closes them anyway (the descriptor is not inheritable).

    Raises:
        StudyInUseError: on :meth:`acquire` when another live process holds it.
        NotWritableError: on :meth:`acquire` when the folder cannot be created or written.
    """

    def __init__(self, study_dir: str | Path) -> None:
        self.path = Path(study_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> StudyLock:
        import fcntl  # POSIX only: importing the store must work everywhere

        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise from_os_error(exc, self.path.parent, "lock the study") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise StudyInUseError(_in_use_message(self.path, holder)) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # its holder removed it on release: lock the file there now
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        _HELD.add(self)
        return self

    def release(self) -> None:
        _HELD.discard(self)
        if self._fd is not None:
            with contextlib.suppress(OSError):  # removed while locked: no stale pid stays
                self.path.unlink()
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def _forget_in_child(self) -> None:
        """In a forked child: close this copy (the parent's lock stays held by the parent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def is_held_elsewhere(self) -> bool:
        """True while another process drives the study (for ``show``); writes nothing."""
        import fcntl  # POSIX only: importing the store must work everywhere

        if self._fd is not None or not self.path.exists():
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # not ours to read (another user's study): we cannot tell
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # also drops the probe's shared lock
        return False

    @contextlib.contextmanager
    def held(self) -> Iterator[StudyLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()


def _same_file(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


# Locks this process holds; a forked child closes its copies (see StudyLock).
_HELD: weakref.WeakSet[StudyLock] = weakref.WeakSet()


def _close_held_in_child() -> None:
    for lock in list(_HELD):
        lock._forget_in_child()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


def _in_use_message(path: Path, holder: str) -> str:
    """Why a study cannot be locked: who holds it, and whether the pid in the file lives."""
    study = path.parent
    fix = "wait for it to finish, stop it, or use another --study-dir"
    if not holder.isdigit() or _alive(int(holder)):
        return f"study {study} is in use by pid {holder}: {fix}"
    others = ", ".join(f"pid {p}" for p in _processes_with_open(path)) or "a process it started"
    return (
        f"study {study} is locked by {others}: pid {holder}, which took the lock, has exited, "
        f"and a process it started still holds the lock file open; stop that process "
        f"(`fuser -v {path}` lists it) and run again, or use another --study-dir"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _processes_with_open(path: Path) -> list[int]:
    """Pids of the processes holding ``path`` open (Linux ``/proc``; empty elsewhere)."""
    target, found = str(path.resolve()), []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone, or not ours to look at
            continue
        if target in links and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return sorted(found)
