"""``tpetune dashboard``: optuna-dashboard over an Optuna export kept in step with a study.

The study store stays the one source of truth and is only read: every ``poll_s`` seconds the
study is loaded read-only and :class:`tpetune.exporters.optuna.OptunaExport` adds the trials
that appeared and completes those that finished (incremental and idempotent by tid), so the
dashboard follows a study that runs in another process. optuna-dashboard's own WSGI app
serves the export on ``host`` (127.0.0.1 unless told otherwise) from a thread; the calling
thread polls. Ctrl-C or SIGTERM stops both (``KeyboardInterrupt`` reaches the caller; the CLI
exits 0, since stopping is how a dashboard ends).
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tpetune._signals import sigterm_as_interrupt
from tpetune.errors import ConfigError
from tpetune.exporters import require
from tpetune.exporters.optuna import DEFAULT_TARGET, EXTRA, OptunaExport, storage_url
from tpetune.study.study import load_study

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

    ``db`` is the export file (default ``STUDY_DIR/optuna.db``); ``port`` 0 picks a free one.
    ``on_ready`` gets the study's dashboard URL once the server listens.

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
    study = load_study(study_dir)
    path = Path(db) if db is not None else study_dir / DEFAULT_TARGET
    exporter = OptunaExport(path)
    exporter.sync(study)
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
            url = f"http://{host}:{server.server_port}/dashboard/studies/{exporter.study_id}"
            if on_ready is not None:
                on_ready(url)
            polls = 0
            while max_polls is None or polls < max_polls:
                time.sleep(poll_s)
                exporter.sync(load_study(study_dir))
                polls += 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard's page fetches several resources at once."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request on stderr
