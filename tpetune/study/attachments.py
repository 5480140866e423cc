"""Trial attachments: the ``attachments`` table of a study store.

hyperopt lets an objective return ``{"loss": ..., "attachments": {name: value}}`` (or write
``ctrl.attachments[name] = value``) and serves the values as
``trials.trial_attachments(trial)[name]``; MongoTrials keeps bytes and strings. tpetune keeps
them the same way: ``bytes`` as a BLOB, ``str`` as TEXT, read back as they were written,
committed in the same transaction as the finished trial. Other values are not stored (the
store holds no pickles: ``pickle.dumps`` them, as hyperopt's docs do).

The table is additive: writers create it (``CREATE TABLE IF NOT EXISTS``, with the rest of
the schema); readers of a study made before it see no attachments.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("tpetune")

ATTACHMENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS attachments (
    tid   INTEGER NOT NULL,
    name  TEXT NOT NULL,
    value BLOB NOT NULL,                 -- bytes (BLOB) or str (TEXT), as the objective gave
    PRIMARY KEY (tid, name)
);
"""

Attachment = bytes | str


def storable(items: Any, tid: int | None = None) -> dict[str, Attachment]:
    """The attachments of a result that the store keeps (``str`` names; ``bytes``/``str``
    values), with one warning per value left out."""
    where = "" if tid is None else f"trial {tid}: "
    if not isinstance(items, Mapping):
        if items is not None:
            log.warning("%s'attachments' must be a dict of name -> bytes/str", where)
        return {}
    kept: dict[str, Attachment] = {}
    for name, value in items.items():
        if isinstance(value, bytes | bytearray | memoryview):
            kept[str(name)] = bytes(value)
        elif isinstance(value, str):
            kept[str(name)] = value
        else:
            log.warning(
                "%sattachment %r is a %s, not bytes or str: not stored in the study "
                "(pickle.dumps it, as hyperopt's MongoTrials needs too)",
                where,
                name,
                type(value).__name__,
            )
    return kept


class AttachmentsMixin:
    """The ``attachments`` methods of :class:`tpetune.store.Store` (over its connection)."""

    _conn: sqlite3.Connection

    def attachments(self, tid: int | None = None) -> dict[int, dict[str, Attachment]]:
        """Stored attachments by tid (of trial ``tid`` only, when given); ``{}`` for a study
        made before the table existed."""
        sql, args = "SELECT tid, name, value FROM attachments", tuple[int, ...]()
        if tid is not None:
            sql, args = sql + " WHERE tid=?", (tid,)
        try:
            rows = list(self._conn.execute(sql + " ORDER BY tid, rowid", args))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}
            raise
        out: dict[int, dict[str, Attachment]] = {}
        for t, name, value in rows:
            out.setdefault(int(t), {})[name] = value
        return out

    def _put_attachments(self, tid: int, items: Mapping[str, Attachment] | None) -> None:
        """Write ``items`` for trial ``tid`` inside the caller's transaction."""
        if items:
            self._conn.executemany(
                "INSERT OR REPLACE INTO attachments(tid, name, value) VALUES (?, ?, ?)",
                [(tid, name, value) for name, value in items.items()],
            )
