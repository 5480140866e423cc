"""Worker processes as process groups: each leads its own and leaves as a group.

A worker's trials may start processes of their own (data loaders, tools, a
``multiprocessing`` pool). Started here, a worker leads a new process group, so killing the
group ends whatever its trials left behind; it dies with the driver (Linux: parent-death
signal), and reads stdin from ``/dev/null`` (a process group in the background stops when it
reads the terminal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any


def start(
    argv: Sequence[str], env: dict[str, str], *, pass_fds: Sequence[int]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` leading a process group of its own, dying with this process (Linux)."""
    return subprocess.Popen(
        list(argv),
        pass_fds=list(pass_fds),
        env=env,
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=_parent_death_hook(),
    )


def ended_how(code: int | None) -> str:
    """How a process ended, from its return code."""
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _parent_death_hook() -> Callable[[], Any] | None:
    """A preexec function making the worker die with the driver (Linux), or ``None``.

    ``prctl`` is resolved here, in the driver: between fork and exec only a C call may run
    safely when the driver has other threads (TensorFlow's, for one).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import functools

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return functools.partial(prctl, 1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``process`` leads (itself and what its trials started)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has ended
        pass
    except PermissionError:  # pragma: no cover - a member became another user's (setuid)
        process.kill()
