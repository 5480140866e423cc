"""Warm hand-over: the lot's bookkeeping, and real workers handed from one executor to the next."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from tpetune import TrialState
from tpetune.executors import warm
from tpetune.executors.base import Job
from tpetune.executors.processes import ProcessExecutor
from tpetune.executors.warm import warm_workers
from tpetune.trial.context import TrialContext


def test_the_lot_hands_out_only_equal_environments_and_stops_the_rest_at_the_end() -> None:
    stopped: list[str] = []
    assert not warm.park({"A": "1"}, "outside", stopped.append)  # outside: the caller stops it
    with warm_workers():
        assert warm.park({"A": "1"}, "w1", stopped.append)
        assert warm.park({"A": "2"}, "w2", stopped.append)
        assert warm.take({"A": "3"}) is None
        assert warm.take({"A": "1"}) == "w1"
        assert warm.take({"A": "1"}) is None  # taken once
        with warm_workers():  # not re-entrant: the inner block leaves the lot to the outer
            pass
        assert stopped == []
    assert stopped == ["w2"]
    assert warm.take({"A": "2"}) is None


def test_the_lot_stops_what_is_parked_when_the_block_ends_with_an_error() -> None:
    stopped: list[str] = []
    with pytest.raises(RuntimeError), warm_workers():
        warm.park({}, "w", stopped.append)
        raise RuntimeError("the search failed")
    assert stopped == ["w"]


def _tagged(tag: str) -> Any:
    def objective(params: Any) -> dict[str, Any]:
        return {"loss": 0.0, "metrics": {"pid": os.getpid(), "tag": tag}}

    return objective


def _run_one(executor: ProcessExecutor) -> dict[str, Any]:
    try:
        executor.submit(Job(0, {}, TrialContext(tid=0, seed=0)))
        [(_, outcome)] = executor.wait()
    finally:
        executor.close()
    assert outcome.state is TrialState.OK, outcome.error
    return outcome.metrics


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_warm_workers_hand_a_worker_to_the_next_executor_and_stop_it_at_the_end() -> None:
    with warm_workers():
        first = _run_one(ProcessExecutor(_tagged("search"), workers=2, threads=1))
        second = _run_one(ProcessExecutor(_tagged("report"), workers=1, threads=1))
        assert second == {"pid": first["pid"], "tag": "report"}  # the same process, new objective
        # Other thread settings need another process (TensorFlow fixes them at start-up).
        other = _run_one(ProcessExecutor(_tagged("other"), workers=1, threads=2))
        assert other["pid"] != first["pid"] and other["tag"] == "other"
    assert _gone(first["pid"]) and _gone(other["pid"])  # nothing outlives the block
    # Outside the block each executor starts and stops its own.
    alone = _run_one(ProcessExecutor(_tagged("alone"), workers=1))
    again = _run_one(ProcessExecutor(_tagged("again"), workers=1))
    assert alone["pid"] != again["pid"] and _gone(alone["pid"])


def test_a_parked_worker_that_died_is_replaced_by_a_fresh_one() -> None:
    with warm_workers():
        first = _run_one(ProcessExecutor(_tagged("search"), workers=1))
        os.kill(first["pid"], signal.SIGKILL)
        second = _run_one(ProcessExecutor(_tagged("report"), workers=1))
        assert second["tag"] == "report" and second["pid"] != first["pid"]
    assert _gone(first["pid"]) and _gone(second["pid"])


def test_a_spare_left_unused_is_parked_for_the_next_executor() -> None:
    """A worker in its last trial (``recycle_after``) starts its replacement; the search
    ends before it is used, and the next executor (the report) takes it. Nothing outlives
    the block, the spare of the second executor included."""
    from tests.executors.test_processes import _children

    before = _children()
    with warm_workers():
        first = _run_one(ProcessExecutor(_tagged("search"), workers=1, recycle_after=1))
        assert _gone(first["pid"])  # recycled after its one trial
        parked = _children() - before  # its spare
        second = _run_one(ProcessExecutor(_tagged("report"), workers=1, recycle_after=1))
        assert len(parked) == 1 and second == {"pid": parked.pop(), "tag": "report"}
        assert len(_children() - before) == 1  # the second one's own spare, parked
    assert _children() - before == set()
