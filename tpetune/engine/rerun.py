"""Re-run one stored trial exactly, away from its study, and compare the two runs.

:func:`replay` rebuilds the trial's objective argument from its stored assignment (the same
``space_eval`` the driver used), gives the objective the trial's own seed
(``derive_seed(study seed, tid, "objective")``) and a scratch study folder, and runs it with
no pruner. The study is only read: a replay never writes to it, so it may run while the
study runs.

Where the objective comes from:

- a ``tpetune run FILE.py`` study: ``FILE.py``'s ``objective``, from the path the study
  recorded. The file must still hash to what the study recorded (:mod:`tpetune.study.provenance`);
  a changed file is refused unless ``force``, since the replay would answer another question.
- a bundled study (stock, digits; its space file defines no objective): the objective of
  the bundled study whose labels the space has, rebuilt from the stored settings
  (``objective_config``) by its :class:`tpetune.bundled.BundledStudy`. A stock study made
  from a ``--csv`` file cannot be rebuilt so (the prices are not stored).
- a study made in code (``tpetune.fmin`` or ``tune`` in a script or module): the objective and
  space found again from where the study recorded them (:mod:`tpetune.engine.origin`); a file
  changed since is refused unless ``force``. A ``tpetune.fmin`` objective is called as
  ``tpetune.fmin`` calls it (result dicts, ``fmin_pass_expr_memo_ctrl``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpetune._io import jsonable
from tpetune.bundled import BUNDLED, bundled_study, made_by
from tpetune.engine.origin import find_objective
from tpetune.errors import ConfigError, StoreError, TpetuneError
from tpetune.executors.base import Job, run_trial
from tpetune.migrate.objective import FminObjective
from tpetune.search.space import Space, load_file
from tpetune.study import provenance
from tpetune.study.store import TrialRecord
from tpetune.study.study import load_study
from tpetune.trial.context import TrialContext, derive_seed


@dataclass(frozen=True)
class Replay:
    """A stored trial beside its replay."""

    tid: int
    seed: int
    stored_state: str
    stored_loss: float | None
    stored_curves: dict[str, list[float]]
    state: str
    loss: float | None
    curves: dict[str, list[float]]
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """Same loss (bit for bit) and same per-epoch curves."""
        return self.loss == self.stored_loss and self.curves == self.stored_curves

    def to_dict(self) -> dict[str, Any]:
        return {
            "tid": self.tid,
            "seed": self.seed,
            "stored": {
                "state": self.stored_state,
                "loss": self.stored_loss,
                "curves": self.stored_curves,
            },
            "replayed": {
                "state": self.state,
                "loss": self.loss,
                "curves": self.curves,
                "error": self.error,
            },
            "identical": self.identical,
            "notes": self.notes,
        }


def replay(
    study_dir: str | Path,
    tid: int,
    *,
    force: bool = False,
    objective: Callable[[Any], Any] | None = None,
    space: Any = None,
    scratch: str | Path | None = None,
) -> Replay:
    """Re-run trial ``tid`` of the study with its stored arguments and seed.

    Args:
        study_dir: the study (read only).
        tid: the trial to replay.
        force: replay even when the space file changed since the study recorded it.
        objective: the objective to call (default: found as the module docstring says).
        space: the space's hp tree, with ``objective``, for a study whose space was built in
            code (``tpetune.fmin``, ``tune`` from a script): nothing is looked up then.
        scratch: the scratch study folder (default: a temporary folder, removed afterwards).

    Raises:
        StoreError: no such study or trial.
        ConfigError: the space file changed (without ``force``), or the objective cannot be
            found.
    """

    study = load_study(study_dir)
    record = _find(study.records, tid, Path(study_dir))
    notes: list[str] = []
    if objective is not None and space is not None:
        space_tree = space
    else:
        space_tree, found = _objective_and_space(
            study.meta, Path(study_dir), force=force, notes=notes
        )
        objective = objective or found
    tspace = Space(space_tree, source=str(study.meta.get("space_source", "<memory>")))
    if tspace.fingerprint != study.meta.get("fingerprint"):
        if not force:
            raise ConfigError(
                f"the space differs from study {study_dir}'s "
                f"({tspace.diff(study.meta.get('space', {}))}): give the study's space, or "
                "replay with --force (force=True) to run anyway"
            )
        notes.append("the space's fingerprint differs from the study's (forced)")
    args = tspace.evaluate(record.vals)
    if record.args is not None and jsonable(args) != record.args:
        if not force:
            raise ConfigError(
                f"trial {tid}'s stored arguments differ from what the space gives now: the space "
                "changed; replay with --force to run the space's version anyway"
            )
        notes.append("the arguments differ from the stored ones (forced)")
    seed = derive_seed(int(study.meta.get("seed", 0)), tid, "objective")
    folder = (
        Path(scratch) if scratch is not None else Path(tempfile.mkdtemp(prefix="tpetune-replay-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if record.state.value == "pruned":
            notes.append("the stored trial was pruned; the replay runs without a pruner")
        ctx = TrialContext(tid, seed, folder, vals=dict(record.vals))
        outcome = run_trial(objective, Job(tid, args, ctx))
    finally:
        if scratch is None:
            shutil.rmtree(folder, ignore_errors=True)
    return Replay(
        tid=tid,
        seed=seed,
        stored_state=record.state.value,
        stored_loss=record.loss,
        stored_curves=record.curves,
        state=outcome.state.value,
        loss=outcome.loss,
        curves=outcome.curves,
        error=outcome.error,
        notes=notes,
    )


def _find(records: list[TrialRecord], tid: int, study_dir: Path) -> TrialRecord:
    for record in records:
        if record.tid == tid:
            return record
    last = records[-1].tid if records else None
    raise StoreError(
        f"study {study_dir} has no trial {tid}"
        + (f" (its trials are 0..{last})" if last is not None else " (it has no trials)")
    )


def _objective_and_space(
    meta: dict[str, Any], study_dir: Path, *, force: bool, notes: list[str]
) -> tuple[Any, Callable[[Any], Any]]:
    """The space tree and objective of the study: a bundled study's, or its space file's."""

    source = meta.get("space_source")
    if not source or str(source).startswith("<"):
        return _made_in_code(meta, force=force, notes=notes)
    changed = provenance.space_file_changed(meta, source)
    if changed:
        if not force:
            raise ConfigError(f"{changed}: restore it, or replay with --force to run it anyway")
        notes.append(changed + " (forced)")
    namespace = load_file(source)
    if callable(namespace.get("objective")):
        return namespace["space"], namespace["objective"]
    built, reasons = _bundled_objective(meta, study_dir, namespace["space"], str(source))
    if built is None:
        raise ConfigError(
            f"{source} defines no `objective` and no bundled study rebuilds it ("
            + "; ".join(reasons)
            + "): replay needs the objective the trials ran"
        )
    return namespace["space"], built


def _made_in_code(
    meta: dict[str, Any], *, force: bool, notes: list[str]
) -> tuple[Any, Callable[[Any], Any]]:
    """The space and objective of a study made in code (``tpetune.fmin`` or ``tune`` in a
    script), found again from its recorded origin (:mod:`tpetune.engine.origin`)."""

    origin = meta.get("origin")
    if not isinstance(origin, dict):
        raise ConfigError(
            "the study's space was built in code and the study (made before tpetune recorded "
            "where) does not say where its objective is: call "
            "tpetune.engine.rerun.replay(study_dir, tid, objective=fn, space=space)"
        )
    space, fn = find_objective(origin, str(meta.get("fingerprint")), force=force, notes=notes)
    via = origin.get("via", "tune")
    if str(via).startswith("fmin"):  # called as tpetune.fmin calls it (dicts, ctrl, errors)
        from hyperopt.base import Domain

        domain = Domain(fn, space, pass_expr_memo_ctrl=True) if via == "fmin-ctrl" else None
        return space, FminObjective(fn, raise_errors=False, domain=domain)
    return space, fn


def _bundled_objective(
    meta: dict[str, Any], study_dir: Path, tree: Any, source: str
) -> tuple[Callable[[Any], Any] | None, list[str]]:
    """The objective of the bundled study (stock, digits) whose stored settings and labels
    fit, rebuilt from the study's ``objective_config``; else ``None`` and why each did not."""

    space = Space(tree, source=source)
    stored = meta.get("objective_config") or {}
    maker = made_by(stored)
    if maker == "stock" and ".csv:" in str(stored.get("data")):
        return None, [
            f"it is a `tpetune stock --csv` study ({stored['data']}), and a study does not store "
            "the prices of a --csv file, so replay cannot rebuild its objective"
        ]
    reasons = []
    for name in BUNDLED if maker is None else [maker]:
        bundle = bundled_study(name)
        try:
            settings = bundle.settings(stored, study_dir=study_dir)
            objective = bundle.make_objective(settings)
            bundle.validate(space, objective)
        except TpetuneError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        return objective, reasons
    return None, reasons


def format_replay(result: Replay) -> str:
    """Stored vs replayed loss, then the per-epoch curves side by side."""
    lines = [f"trial {result.tid} (objective seed {result.seed})"]
    lines.append(f"  {'':10} {'stored':>22} {'replayed':>22}")
    lines.append(f"  {'state':10} {result.stored_state:>22} {result.state:>22}")
    lines.append(f"  {'loss':10} {_num(result.stored_loss):>22} {_num(result.loss):>22}")
    if result.error:
        lines.append(f"  replay failed: {result.error}")
    for name in sorted(set(result.stored_curves) | set(result.curves)):
        a, b = result.stored_curves.get(name, []), result.curves.get(name, [])
        lines.append(f"  {name} per epoch:")
        for epoch in range(max(len(a), len(b))):
            left = _num(a[epoch]) if epoch < len(a) else "-"
            right = _num(b[epoch]) if epoch < len(b) else "-"
            mark = "" if left == right else "   (differs)"
            lines.append(f"  {epoch + 1:>10} {left:>22} {right:>22}{mark}")
    lines.append("identical" if result.identical else "NOT identical")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "-" if x is None else repr(float(x))
