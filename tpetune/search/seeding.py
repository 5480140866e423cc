"""hyperopt.fmin's seed stream, kept with a study so that a resume continues it.

``hyperopt.fmin`` seeds each call of the algorithm with ``rstate.integers(2**31 - 1)``: one
draw per proposal from one numpy ``Generator``. A study made by :func:`tpetune.fmin` keeps
that stream: its meta holds the generator's initial state (``seed_stream``, part of what the
study is) and the first trial id it seeded (``seed_stream_start``: the warm-start points or
imported trials before it drew nothing). Every later trial id took exactly one draw, so the
stored trials themselves say where the stream stands: a resumed run skips that many draws
and then draws what an uninterrupted one would, and a run never interrupted proposes exactly
what ``hyperopt.fmin`` proposes.

Studies made by :func:`tpetune.tune` seed each proposal from (study seed, trial id) instead
(:func:`tpetune.trial.context.derive_seed`); the README says why, "Coming from hyperopt".

States are stored in JSON: numpy's ``bit_generator.state`` dict with its arrays (MT19937,
Philox, SFC64) as ``{"ndarray": [...], "dtype": "uint64"}``.
"""

from __future__ import annotations

from typing import Any

#: hyperopt.fmin draws each proposal's seed as ``rstate.integers(HIGH)``.
HIGH = 2**31 - 1


def state_to_json(state: Any) -> Any:
    """A ``bit_generator.state`` value in JSON form (arrays tagged with their dtype)."""
    import numpy as np

    if isinstance(state, dict):
        return {k: state_to_json(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return {"ndarray": state.tolist(), "dtype": str(state.dtype)}
    if isinstance(state, np.integer):
        return int(state)
    return state


def state_from_json(data: Any) -> Any:
    """The inverse of :func:`state_to_json`."""
    import numpy as np

    if isinstance(data, dict):
        if set(data) == {"ndarray", "dtype"}:
            return np.asarray(data["ndarray"], dtype=data["dtype"])
        return {k: state_from_json(v) for k, v in data.items()}
    return data


def generator_state(rng: Any) -> dict[str, Any]:
    """The JSON form of a ``numpy.random.Generator``'s state (the generator is not moved)."""
    state: dict[str, Any] = state_to_json(rng.bit_generator.state)
    return state


def generator_from(state: dict[str, Any]) -> Any:
    """A ``numpy.random.Generator`` in the JSON ``state`` (see :func:`generator_state`)."""
    import numpy as np

    raw = state_from_json(state)
    bit_generator = getattr(np.random, str(raw["bit_generator"]))()
    bit_generator.state = raw
    return np.random.Generator(bit_generator)


class SeedStream:
    """The proposal seeds of a study made with hyperopt's seeding.

    Args:
        state: the generator's initial state (JSON form).
        drawn: how many seeds were drawn already (trials proposed so far): skipped here.
    """

    def __init__(self, state: dict[str, Any], drawn: int = 0) -> None:
        self._rng = generator_from(state)
        for _ in range(drawn):  # one by one, exactly as they were drawn (microseconds each)
            self._rng.integers(HIGH)

    def draw(self) -> int:
        """The next proposal's seed, drawn as ``hyperopt.fmin`` draws it."""
        return int(self._rng.integers(HIGH))

    def state(self) -> dict[str, Any]:
        """The generator's state after the draws so far (JSON form)."""
        return generator_state(self._rng)


def first_draw(state: dict[str, Any]) -> int:
    """The first seed the stream gives (a study's ``seed``), without moving anything."""
    return SeedStream(state).draw()
