"""A study as people and programs read it: records, best trial, hyperopt interop, tables.

:func:`load_study` opens a study folder read-only without importing TensorFlow or hyperopt
(hyperopt is imported only when :attr:`Study.trials` is asked for), so ``show`` and ``plot``
work on a study that is running, finished or was killed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tpetune.search.documents import build_trials  # imports hyperopt 2 s of scipy
from tpetune.study.artifacts import best_model
from tpetune.study.store import Store, StudyLock, TrialRecord, TrialState

if TYPE_CHECKING:
    import pandas as pd

    from tpetune.search.space import Space


@dataclass(frozen=True)
class Progress:
    """How far a study is: counts by state against its ``max_evals`` budget."""

    done: int
    total: int
    ok: int
    failed: int
    pruned: int
    running: int
    elapsed_s: float
    paused: int = 0  # counted in ``done``: a paused trial is one of the study's trials

    @property
    def lowered(self) -> bool:
        """A later run asked for fewer trials (``max_evals``) than the study holds: its
        trials are kept, and ``total`` is what that run asked for."""
        return self.done > self.total


class Study:
    """A snapshot of one study.

    Attributes:
        study_dir: the study folder.
        meta: the stored study settings (seed, algo, max_evals, fingerprint, versions, ...).
        records: one :class:`TrialRecord` per trial, in id order.
        space: the :class:`Space` when known (after :func:`tpetune.tune`), else ``None``.
        stop_reason: why the last run stopped, when this study came from :func:`tpetune.tune`.
    """

    def __init__(
        self,
        study_dir: Path,
        meta: dict[str, Any],
        records: list[TrialRecord],
        *,
        space: Space | None = None,
        stop_reason: str | None = None,
    ) -> None:
        self.study_dir = study_dir
        self.meta = meta
        self.records = records
        self.space = space
        self.stop_reason = stop_reason

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"Study({str(self.study_dir)!r}, trials={p.done}/{p.total}, best_loss={self.best_loss})"
        )

    @property
    def best(self) -> TrialRecord | None:
        """The finished (``ok``) trial with the lowest loss; ties go to the earlier trial."""
        ok = [r for r in self.records if r.finished_ok]
        return min(ok, key=lambda r: (r.loss, r.tid)) if ok else None

    @property
    def best_loss(self) -> float | None:
        best = self.best
        return None if best is None else best.loss

    @property
    def best_params(self) -> dict[str, Any] | None:
        """The best trial's active hyperparameters as ``label -> value`` (its ``params``).

        Flat, with values (never choice indices), as Optuna's ``best_params``; ``None`` when
        no trial finished. :attr:`best_args` is the nested argument the objective received.
        """
        best = self.best
        return None if best is None else dict(best.params)

    @property
    def best_args(self) -> Any:
        """Exactly what the objective received in the best trial (nested, values).

        The stored JSON copy of the argument (tuples read back as lists), the same for the
        study :func:`tpetune.tune` returns and for :func:`load_study`: the space graph is not
        evaluated again, so a space with random nodes cannot give another value here.
        """
        best = self.best
        return None if best is None else best.args

    def best_model(self, key: str = "model") -> Any:
        """The best trial's Keras model (kept by ``tune(keep_models=...)``), loaded in Keras'
        safe mode; see :func:`tpetune.study.artifacts.best_model` for what is raised when it
        is absent."""

        return best_model(self, key)

    @property
    def progress(self) -> Progress:
        counts = {s: 0 for s in TrialState}
        for r in self.records:
            counts[r.state] += 1
        return Progress(
            done=counts[TrialState.OK]
            + counts[TrialState.FAIL]
            + counts[TrialState.PRUNED]
            + counts[TrialState.PAUSED],
            total=int(self.meta.get("max_evals", 0)),
            ok=counts[TrialState.OK],
            failed=counts[TrialState.FAIL],
            pruned=counts[TrialState.PRUNED],
            running=counts[TrialState.RUNNING],
            elapsed_s=float(self.meta.get("elapsed_s", 0.0)),
            paused=counts[TrialState.PAUSED],
        )

    def is_running(self) -> bool:
        """True while a process drives this study."""
        return StudyLock(self.study_dir).is_held_elsewhere()

    def top(self, n: int = 5) -> list[TrialRecord]:
        """The ``n`` best ``ok`` trials, best first."""
        ok = sorted((r for r in self.records if r.finished_ok), key=lambda r: (r.loss, r.tid))
        return ok[:n]

    @property
    def param_labels(self) -> list[str]:
        """Every label that was active in at least one trial, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r.params))
        return list(seen)

    @property
    def trials(self) -> Any:
        """A hyperopt ``Trials`` rebuilt from the store (for code written against hyperopt),
        with the trials' attachments (``trials.trial_attachments(trial)[name]``)."""
        labels = list(self.meta.get("space", {})) or self.param_labels

        trials = build_trials(self.records, labels)
        if Store.exists(self.study_dir):
            store = Store.open(self.study_dir, readonly=True)
            try:
                for tid, items in store.attachments().items():
                    trials.attachments.update({f"ATTACH::{tid}::{k}": v for k, v in items.items()})
            finally:
                store.close()
        return trials

    def to_dict(self) -> dict[str, Any]:
        """The ``show --json`` / ``export --format json`` document."""
        best = self.best
        p = self.progress
        return {
            "study_dir": str(self.study_dir),
            "progress": {
                "done": p.done,
                "total": p.total,
                "ok": p.ok,
                "failed": p.failed,
                "pruned": p.pruned,
                "running": p.running,
                "paused": p.paused,
                "elapsed_s": round(p.elapsed_s, 3),
            },
            "best": None
            if best is None
            else {"tid": best.tid, "loss": best.loss, "params": best.params},
            "trials": [
                {
                    "tid": r.tid,
                    "state": r.state.value,
                    "loss": r.loss,
                    "params": r.params,
                    "error": r.error,
                    "duration_s": r.duration_s,
                    "metrics": r.metrics,
                }
                for r in self.records
            ],
        }

    def to_dataframe(self) -> pd.DataFrame:
        """One row per trial: tid, state, loss, duration_s, error, one column per param.

        A parameter that was inactive in a trial is ``NaN``/``None`` there.
        """
        import pandas as pd

        labels = self.param_labels
        rows = [
            {
                "tid": r.tid,
                "state": r.state.value,
                "loss": r.loss,
                "duration_s": r.duration_s,
                "error": r.error,
                **{label: r.params.get(label) for label in labels},
            }
            for r in self.records
        ]
        columns = ["tid", "state", "loss", "duration_s", "error", *labels]
        return pd.DataFrame(rows, columns=columns).set_index("tid")


def load_study(study_dir: str | Path) -> Study:
    """Open a study folder read-only (no TensorFlow, no hyperopt import).

    Raises:
        StoreError: the folder is missing, unreadable, or not a tpetune study.
    """
    store = Store.open(study_dir, readonly=True)
    try:
        return Study(Path(study_dir), store.meta(), store.records())
    finally:
        store.close()
