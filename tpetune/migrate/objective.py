"""``fn`` of :func:`tpetune.fmin` as :func:`tpetune.tune`'s objective.

It passes hyperopt result dicts on as they are (tpetune reads ``loss``/``status``, stores the
``attachments`` and keeps the rest), calls an ``fn`` marked ``fmin_pass_expr_memo_ctrl`` as
hyperopt's ``Domain`` does, and keeps this run's raw results and exceptions for the user's
``Trials``.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from tpetune.migrate.trials import TrialCtrl
from tpetune.search.documents import RAISED
from tpetune.study.store import TrialRecord
from tpetune.trial.context import current_trial


class FminObjective:
    """``fn`` as tune()'s objective: hyperopt result dicts pass as they are (tpetune reads
    ``loss``/``status`` and keeps the rest); this run's raw results fill the user's Trials.

    An exception in ``fn`` is recorded (the trial fails, as in tpetune) and, when
    ``raise_errors`` (hyperopt's ``catch_eval_exceptions=False``), stops the run through
    :meth:`stop_on_error` so that :func:`fmin` re-raises it, as hyperopt.fmin does."""

    def __init__(
        self, fn: Callable[..., Any], *, raise_errors: bool = True, domain: Any = None
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.raise_errors = raise_errors
        self.domain = domain  # hyperopt's Domain when fn takes (expr, memo, ctrl)
        self.results: dict[int, Any] = {}
        self.errors: dict[int, BaseException] = {}
        self.error: BaseException | None = None
        # how `tpetune replay` calls fn again (tpetune.engine.origin records it)
        self.replay_as = "fmin" if domain is None else "fmin-ctrl"

    def __call__(self, params: Any) -> Any:

        ctx = current_trial()
        try:
            result = self._call(params, ctx)
        except Exception as exc:  # recorded as hyperopt records it: an error document
            if ctx is not None:
                self.errors[ctx.tid] = exc
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
            return {
                "status": "fail",
                "error": f"{type(exc).__name__}: {exc}{where}",
                RAISED: [str(type(exc)), str(exc)],
            }
        if ctx is not None:
            self.results[ctx.tid] = result
        return result

    def _call(self, params: Any, ctx: Any) -> Any:
        """``fn(params)``, or as hyperopt's Domain calls a ``pass_expr_memo_ctrl`` function:
        ``fn(expr=..., memo=..., ctrl=...)``, whose ``ctrl.attachments`` join the result's."""
        if self.domain is None:
            return self.fn(params)
        import numpy as np

        vals = dict(ctx.vals) if ctx is not None and ctx.vals is not None else {}
        # hyperopt's memo holds the algorithm's numpy scalars (fn(params) gets Python values)
        vals = {k: np.int64(v) if isinstance(v, int) else np.float64(v) for k, v in vals.items()}
        ctrl = TrialCtrl(ctx.tid if ctx is not None else -1, vals, ctx and ctx.study_dir)
        memo = self.domain.memo_from_config(vals)
        result = self.fn(expr=self.domain.expr, memo=memo, ctrl=ctrl)
        written = ctrl.written()
        if written:  # hyperopt writes the returned attachments after ctrl's
            if not isinstance(result, Mapping):
                result = {"loss": float(result), "status": "ok"}
            result = {**result, "attachments": {**written, **(result.get("attachments") or {})}}
        return result

    def stop_on_error(self, trials: Any, record: TrialRecord) -> str | None:
        exc = self.errors.get(record.tid)
        if exc is None or not self.raise_errors:
            return None
        self.error = exc
        return f"fn raised {type(exc).__name__} in trial {record.tid}"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(results={}, errors={}, error=None)  # they stay in the driver's process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
