"""What an objective may know about the trial it is evaluating.

The driver (or a worker process) sets the context around each objective call, so an
objective keeps the plain hyperopt signature ``objective(params)`` and still can key
checkpoints by trial id, seed its framework per trial, or ask the pruner whether to stop.
Outside a trial :func:`current_trial` returns ``None``; objectives must work then too
(e.g. when a user calls ``objective(study.best_args)`` by hand).

The current trial is a ``ContextVar``, which a ``threading.Thread`` does not inherit. A
training loop in a thread of its own still sees its trial: where the variable is unset, the
one trial running in this process is current (serial studies and worker processes run one
at a time). Where several run in one process, such a thread sees none and
:func:`ambiguous_thread_error` says how to pass the trial on.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpetune.pruners.policies import NoPruner, Pruner, pruner_from_json
from tpetune.study.artifacts import save


@dataclass(frozen=True)
class TrialContext:
    """The trial being evaluated.

    Attributes:
        tid: trial id, unique and stable within the study (0, 1, 2, ...).
        seed: per-trial seed derived from the study seed and ``tid``; the same on resume.
        study_dir: the study folder, or ``None`` for an in-memory evaluation.
        workdir: a folder private to this trial (created on demand by :meth:`ensure_workdir`)
            for checkpoints such as ``keras.callbacks.BackupAndRestore``; it survives a
            crash so a resumed trial continues, and is removed when the trial finishes.
        pruner: the study's pruner in its JSON form
            (:func:`tpetune.pruners.policies.pruner_from_json`);
            ``None`` when the study prunes nothing.
        notes: what the trial reports back besides its return value; the Keras pruning
            callback sets ``notes["pruned_at_epoch"]`` so the trial is recorded ``pruned``
            without the objective having to say so.
        vals: the trial's point in hyperopt's flat form (label -> value, choices as indices),
            for objectives that evaluate the space themselves (hyperopt's
            ``fmin_pass_expr_memo_ctrl``); ``None`` outside the driver.
        reference: a snapshot of the study's finished curves and rung values, shipped with the
            trial when it runs where the study folder may not exist (a Spark executor on
            another node): ``{"curves": [[...], ...], "rungs": {rung: {tid: [pruned, value]}}}``.
            The pruner then decides from it, and the steps travel back with the outcome.
        last_step: the last step this trial recorded before this attempt (a thaw of a paused
            trial, a re-run after a crash); ``None`` when it reported nothing yet. Read it
            with :func:`tpetune.last_step`.
        board_upto: with a lagged study (``Search(lag=...)``), the last trial id the pruner
            may look at: finished curves and rung values of later trials are left out, so the
            trial is judged the same whatever ran beside it. ``None``: every trial.
    """

    tid: int
    seed: int
    study_dir: Path | None = None
    pruner: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    vals: dict[str, Any] | None = None

    @functools.cached_property
    def active_pruner(self) -> Pruner:
        """:attr:`pruner` parsed, once per context (:class:`NoPruner` when there is none)."""
        return pruner_from_json(self.pruner) if self.pruner else NoPruner()

    last_step: int | None = None
    board_upto: int | None = None

    @property
    def workdir(self) -> Path | None:
        return None if self.study_dir is None else self.study_dir / "trials" / str(self.tid)

    def save_model(self, model: Any, key: str = "model") -> str:
        """Keep a Keras ``model`` with this trial (``STUDY/models/<tid>.keras``, the best
        trials' files retained); returns its path in the study or ``"unavailable: ..."``.
        See :mod:`tpetune.study.artifacts`."""

        return save(model, self, key)

    def ensure_workdir(self) -> Path | None:
        """Create and return :attr:`workdir` (``None`` when there is no study folder)."""
        wd = self.workdir
        if wd is not None:
            wd.mkdir(parents=True, exist_ok=True)
        return wd


_CURRENT: contextvars.ContextVar[TrialContext | None] = contextvars.ContextVar(
    "tpetune_trial", default=None
)


# Every trial in scope in this process, for threads the ContextVar does not reach.
_ACTIVE: list[TrialContext] = []
_ACTIVE_LOCK = threading.Lock()


def current_trial() -> TrialContext | None:
    """The trial being evaluated: this thread's (or task's), else the only one running in
    this process (a thread the objective started), else ``None``."""
    ctx = _CURRENT.get()
    if ctx is None:
        with _ACTIVE_LOCK:
            ctx = _ACTIVE[0] if len(_ACTIVE) == 1 else None
    return ctx


def trials_in_process() -> int:
    """How many trials are in scope in this process (all threads)."""
    with _ACTIVE_LOCK:
        return len(_ACTIVE)


def ambiguous_thread_error(call: str) -> str:
    """The message for ``call`` made from a thread that belongs to no trial while several run."""
    return (
        f"{call} was called from a thread that belongs to no trial while "
        f"{trials_in_process()} trials run in this process: start the thread with "
        "`ctx = contextvars.copy_context(); threading.Thread(target=ctx.run, args=(fn,))` "
        "from inside the objective so it knows its trial"
    )


@contextlib.contextmanager
def trial_scope(ctx: TrialContext) -> Iterator[TrialContext]:
    """Make ``ctx`` the current trial for the duration of the ``with`` block."""
    token = _CURRENT.set(ctx)
    with _ACTIVE_LOCK:
        _ACTIVE.append(ctx)
    try:
        yield ctx
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.remove(ctx)
        _CURRENT.reset(token)


def derive_seed(study_seed: int, tid: int, purpose: str = "propose") -> int:
    """A 31-bit seed that depends only on (study seed, trial id, purpose).

    Hashing rather than ``study_seed + tid`` keeps neighbouring studies' streams unrelated
    (seed 1 trial 0 would otherwise equal seed 0 trial 1).
    """
    digest = hashlib.blake2b(f"{study_seed}:{tid}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31 - 1)
