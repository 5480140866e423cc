"""``tpetune dashboard``: optuna-dashboard over an Optuna export kept in step with a study.

The study store stays the one source of truth and is only read: every ``poll_s`` seconds
:class:`tpetune.study.follow.StudyFollower` asks SQLite whether anything was committed and reads
only the trials that changed, and :class:`tpetune.exporters.optuna.OptunaExport` adds those
that appeared (in one transaction) and completes those that finished, so the dashboard
follows a study that runs in another process and costs next to nothing while it is idle.

The export (the "mirror") lives outside the study folder, in :func:`default_mirror` (the
user's cache folder), unless ``db`` names a file: the study folder is never written. Deleting
the study in the dashboard's UI deletes only the mirror's copy; it is written again from the
store at the next poll, and ``on_ready`` gets its URL again.

optuna-dashboard's own WSGI app serves the export on ``host`` (127.0.0.1 unless told
otherwise) from a thread; the calling thread polls. Ctrl-C or SIGTERM stops both
(``KeyboardInterrupt`` reaches the caller; the CLI exits 0, since stopping is how a dashboard
ends).
"""

from __future__ import annotations

import hashlib
import os
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tpetune._signals import sigterm_as_interrupt
from tpetune.errors import ConfigError
from tpetune.exporters import refuse_study_files, require
from tpetune.exporters.optuna import EXTRA, OptunaExport, storage_url
from tpetune.study.follow import StudyFollower

DEFAULT_PORT = 8080


def serve(
    study_dir: str | Path,
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    db: str | Path | None = None,
    poll_s: float = 1.0,
    on_ready: Callable[[str], None] | None = None,
    max_polls: int | None = None,
) -> None:
    """Serve the dashboard of ``study_dir`` until interrupted (or after ``max_polls`` polls).

    ``db`` is the export file (default :func:`default_mirror`); ``port`` 0 picks a free one.
    ``on_ready`` gets the study's dashboard URL once the server listens, and again after the
    study was deleted in the UI and written again.

    Raises:
        MissingDependencyError: optuna or optuna-dashboard is not installed.
        StoreError: ``study_dir`` is not a study.
        ConfigError: the port cannot be bound, or ``db`` cannot be written.
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after stopping the server.
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not a TCP port: give --port 0..65535 (0: any free)")
    require("optuna", EXTRA)
    dashboard = require("optuna_dashboard", EXTRA)
    study_dir = Path(study_dir)
    follower = StudyFollower(study_dir)
    study, changed = follower.poll()
    if db is not None:
        refuse_study_files(study_dir, db, "--db")
    path = Path(db) if db is not None else default_mirror(study_dir)
    exporter = OptunaExport(path)
    exporter.sync(study, changed)
    app = dashboard.wsgi(storage_url(path))
    try:
        server = make_server(host, port, app, _Server, _QuietHandler)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port"
        ) from None
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        with sigterm_as_interrupt():
            base = f"http://{host}:{server.server_port}/dashboard/studies/"
            if on_ready is not None:
                on_ready(f"{base}{exporter.study_id}")
            polls = 0
            while max_polls is None or polls < max_polls:
                time.sleep(poll_s)
                rewritten = exporter.rewritten
                exporter.sync(*follower.poll())
                if exporter.rewritten != rewritten and on_ready is not None:
                    on_ready(f"{base}{exporter.study_id}")
                polls += 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        follower.close()


def default_mirror(study_dir: str | Path) -> Path:
    """Where the dashboard keeps its Optuna export of ``study_dir`` unless told (``--db``):
    ``$XDG_CACHE_HOME/tpetune/dashboard/NAME-HASH/optuna.db`` (``~/.cache`` by default; the
    system's temporary folder where that cannot be created). One per study folder, kept
    between runs, so a restarted dashboard only adds what is new."""
    resolved = Path(study_dir).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    for root in (Path(home), Path(tempfile.gettempdir())):
        folder = root / "tpetune" / "dashboard" / f"{resolved.name}-{digest}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder / "optuna.db"
    raise ConfigError(
        f"no writable cache folder for the dashboard's copy of {study_dir}: give --db FILE"
    )


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard's page fetches several resources at once."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request on stderr
